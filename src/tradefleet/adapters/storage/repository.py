"""The trading store on SQLite or PostgreSQL: :class:`SqlTradingStore` implements ``core.ports.TradingStore``.

Hot-path writes (``add_order``, ``update_order``, ``add_fill``) are Core statements built once; the
ORM unit of work is not used. Conflicts on natural keys are resolved by ``INSERT ... ON CONFLICT`` in
the database, so an idempotent write never raises and never spoils an enclosing transaction.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, Table, bindparam, false, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import BindParameter

from tradefleet.adapters.storage import tables as t
from tradefleet.adapters.storage.db import READ_ONLY_BEGIN, make_engine, storage_error
from tradefleet.adapters.storage.owner_tables import bot_owners
from tradefleet.adapters.storage.platform_tables import bot_leases, bot_logs, exchange_credentials
from tradefleet.adapters.storage.tables import (
    ORDER_FIELDS,
    TRADE_FIELDS,
    order_row,
    orders_from_rows,
    trade_from_row,
    trade_row,
)
from tradefleet.core.bots import BotConfig, BotStatus
from tradefleet.core.errors import LeaseLostError, StorageError
from tradefleet.core.events import DomainEvent
from tradefleet.core.orders import Fill, Order, OrderStatus
from tradefleet.core.ports import Clock, EquitySnapshot, PendingEvent
from tradefleet.core.risk import KillSwitchLevel
from tradefleet.core.trades import Trade
from tradefleet.logs import current_trace_id

_LIVE_STATUSES = [s.value for s in OrderStatus if s.is_live]
_CHUNK = 500  # ids per IN (...) list, well under every driver's parameter limit

_EQUITY_FIELDS = ("cash", "equity", "realized", "unrealized", "fees_paid")


class SqlTradingStore:
    """Durable trading state in one SQL database, behind one connection guarded by a lock.

    Each call commits on its own, unless made inside ``with store.transaction():``, which commits everything
    once at the end or rolls everything back on an exception. A nested ``transaction()`` joins the outer
    one; if an exception escapes the inner block, the whole outer transaction is rolled back even if the
    caller catches it, and leaving the outer block raises :class:`StorageError`.

    The store is safe to share between threads (calls are serialised). A transaction belongs to the store,
    not to an asyncio task: do not ``await`` inside a transaction block. Errors of the database are raised
    as :class:`~tradefleet.core.errors.StorageError` with a hint saying what to do.

    ``clock`` stamps bookkeeping times (bot timestamps, kill switch changes); wall-clock time by default.
    """

    def __init__(self, engine: Engine, clock: Clock | None = None) -> None:
        self._engine = engine
        self._clock = clock
        self._lock = threading.RLock()
        self._conn: Connection | None = None
        self._closed = False
        self._owns_engine = False
        self._depth = 0
        self._doomed = False
        self._fences: dict[str, tuple[str, int]] = {}  # bot id -> (gateway, lease epoch) that may trade it
        self._fence_checked: set[str] = set()  # fenced bots whose lease the open transaction has checked
        insert = sqlite.insert if engine.dialect.name == "sqlite" else postgresql.insert

        # Natural keys decide idempotency: ON CONFLICT DO NOTHING, then "was a row written?" from rowcount,
        # which SQLAlchemy only keeps for INSERT when asked to (preserve_rowcount).
        def insert_ignore(table: Table, keys: list[str]) -> Insert:
            stmt = insert(table).inline().on_conflict_do_nothing(index_elements=keys)
            return stmt.execution_options(preserve_rowcount=True)

        self._add_order = insert_ignore(t.orders, ["client_order_id"])
        self._add_fill = insert_ignore(t.fills, ["exchange", "trade_id"])
        self._add_event = insert_ignore(t.events_outbox, ["event_id"])
        self._add_processed = insert_ignore(t.processed_events, ["consumer", "event_id"])
        self._update_order = (
            t.orders.update()
            .where(t.orders.c.client_order_id == bindparam("key"))
            .values({name: bindparam(name) for name in ORDER_FIELDS})
        )
        self._update_trade = (
            t.trades.update()
            .where(t.trades.c.id == bindparam("key"))
            .values({name: bindparam(name) for name in TRADE_FIELDS})
        )
        # Reads on the hot path, built once: SQLAlchemy then only binds parameters.
        with_fills = select(
            t.orders, t.fills.c.trade_id, t.fills.c.fee.label("fill_fee"), t.fills.c.fee_currency
        ).outerjoin(t.fills, t.fills.c.client_order_id == t.orders.c.client_order_id)
        key: BindParameter[str] = bindparam("key")
        self._select_order = with_fills.where(t.orders.c.client_order_id == key)
        self._select_orders = with_fills.where(t.orders.c.bot_id == key).order_by(t.orders.c.id)
        self._select_live_orders = self._select_orders.where(t.orders.c.status.in_(_LIVE_STATUSES))
        self._select_state = select(t.kv_state.c.value).where(t.kv_state.c.key == key)
        self._select_kill = select(t.kill_switch.c.level).where(t.kill_switch.c.scope == key)
        self._select_status = select(t.bots.c.status).where(t.bots.c.bot_id == key)
        self._upserts = {
            "bots": _upsert(insert(t.bots), ["bot_id"], ["config", "updated_ms"]),
            "progress": _upsert(insert(t.bot_progress), ["bot_id", "pair"], ["last_candle_ms"]),
            "equity": _upsert(insert(t.equity_snapshots), ["bot_id", "ts_ms"], list(_EQUITY_FIELDS)),
            "kill": _upsert(insert(t.kill_switch), ["scope"], ["level", "actor", "reason", "updated_ms"]),
            "state": _upsert(insert(t.kv_state), ["key"], ["value"]),
        }

    @classmethod
    def from_url(cls, url: str, clock: Clock | None = None) -> SqlTradingStore:
        """Open a store on its own engine, which :meth:`close` disposes of; the schema must be migrated."""
        store = cls(make_engine(url), clock)
        store._owns_engine = True
        return store

    # ------------------------------------------------------------------ connection and transactions
    def close(self) -> None:
        """Release the connection (and an engine opened by :meth:`from_url`); the store is then unusable."""
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._owns_engine:
                self._engine.dispose()

    def __enter__(self) -> SqlTradingStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[None]:
        """Group calls into one atomic commit; nested blocks join the outermost one.

        ``write=False`` marks an outermost block that only reads: on SQLite it opens a deferred transaction,
        so it neither waits for nor holds the write lock (a write inside it may then fail as busy).
        """
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                except BaseException:
                    self._doomed = True
                    raise
                finally:
                    self._depth -= 1
                return
            self._depth, self._doomed = 1, False
            try:
                conn = self._connection()
                if not write:  # consumed by the BEGIN of the block's first statement
                    conn.info[READ_ONLY_BEGIN] = True
                yield
                if self._doomed:
                    raise StorageError("transaction rolled back: a nested block or a store call in it failed")
                conn.commit()
            except SQLAlchemyError as exc:
                self._discard()
                raise storage_error("transaction", exc) from exc
            except BaseException:
                self._discard()
                raise
            finally:
                self._depth, self._doomed = 0, False
                self._fence_checked.clear()
                if not write and self._conn is not None:  # a block that ran no statement left it unconsumed
                    self._conn.info.pop(READ_ONLY_BEGIN, None)

    def _connection(self) -> Connection:
        if self._closed:
            raise StorageError("the trading store is closed", hint="create a new store from the engine")
        if self._conn is None:
            self._conn = self._engine.connect()
        return self._conn

    def _discard(self) -> None:
        """Roll back after a failure; drop a broken connection so the next call starts on a fresh one."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.rollback()
        except SQLAlchemyError:
            conn.invalidate()
            conn.close()
            return
        if conn.invalidated:
            conn.close()
        else:
            self._conn = conn

    @contextmanager
    def _unit(self, operation: str, *, write: bool = True) -> Iterator[Connection]:
        """Run one store call: inside the current transaction, or in its own committed one."""
        with self._lock:
            read_only = not write and not self._depth
            try:
                with self.transaction():
                    if self._doomed:
                        raise StorageError(f"{operation} refused: an earlier call in this transaction failed")
                    conn = self._connection()
                    if read_only:  # SQLite: a deferred BEGIN, so readers never wait for the write lock
                        conn.info[READ_ONLY_BEGIN] = True
                    try:
                        yield conn
                    except SQLAlchemyError as exc:
                        raise storage_error(operation, exc) from exc
            finally:
                if read_only and self._conn is not None:
                    self._conn.info.pop(READ_ONLY_BEGIN, None)

    def _now_ms(self) -> int:
        return self._clock.now_ms() if self._clock is not None else time.time_ns() // 1_000_000

    # ------------------------------------------------------------------ bots
    def save_bot(self, config: BotConfig) -> None:
        now = self._now_ms()
        row = {
            "bot_id": config.bot_id,
            "config": config.model_dump(mode="json"),
            "status": BotStatus.STOPPED.value,
            "detail": "",
            "created_ms": now,
            "updated_ms": now,
        }
        with self._unit("save_bot") as conn:
            conn.execute(self._upserts["bots"], row)

    def get_bot(self, bot_id: str) -> BotConfig | None:
        with self._unit("get_bot", write=False) as conn:
            config = conn.execute(select(t.bots.c.config).where(t.bots.c.bot_id == bot_id)).scalar()
        return None if config is None else BotConfig.model_validate(config)

    def list_bots(self) -> list[BotConfig]:
        with self._unit("list_bots", write=False) as conn:
            configs = conn.execute(select(t.bots.c.config).order_by(t.bots.c.bot_id)).scalars().all()
        return [BotConfig.model_validate(config) for config in configs]

    def delete_bot(self, bot_id: str) -> None:
        """Forget a bot in one transaction: its configuration, candle progress, owner, lease, log lines and
        exchange credentials. Its orders, fills, trades, equity, kill switch and events stay as history."""
        with self._unit("delete_bot") as conn:
            for table in (t.bot_progress, bot_owners, bot_leases, bot_logs, exchange_credentials, t.bots):
                conn.execute(table.delete().where(table.c.bot_id == bot_id))

    def set_bot_status(self, bot_id: str, status: BotStatus, detail: str = "") -> None:
        stmt = (
            t.bots.update()
            .where(t.bots.c.bot_id == bot_id)
            .values(status=BotStatus(status).value, detail=detail, updated_ms=self._now_ms())
        )
        with self._unit("set_bot_status") as conn:
            if conn.execute(stmt).rowcount == 0:
                raise StorageError(f"no bot {bot_id!r} to set the status of", hint="save the bot first")

    def get_bot_status(self, bot_id: str) -> BotStatus:
        """Return the stored status; an unknown bot is ``STOPPED``."""
        with self._unit("get_bot_status", write=False) as conn:
            status = conn.execute(self._select_status, {"key": bot_id}).scalar()
        return BotStatus.STOPPED if status is None else BotStatus(status)

    def save_progress(self, bot_id: str, pair: str, last_candle_ms: int) -> None:
        row = {"bot_id": bot_id, "pair": pair, "last_candle_ms": last_candle_ms}
        with self._unit("save_progress") as conn:
            self._guard(conn, bot_id)
            conn.execute(self._upserts["progress"], row)

    def load_progress(self, bot_id: str) -> dict[str, int]:
        stmt = select(t.bot_progress.c.pair, t.bot_progress.c.last_candle_ms).where(t.bot_progress.c.bot_id == bot_id)
        with self._unit("load_progress", write=False) as conn:
            return {pair: last for pair, last in conn.execute(stmt)}

    # ------------------------------------------------------------------ orders and fills
    def add_order(self, order: Order) -> bool:
        """Insert ``order``; return False and write nothing when its client order id is already stored.

        A fenced bot (:meth:`fence`) gets no new order unless its gateway still holds the lease it claimed:
        the check and the insert are one transaction, and on PostgreSQL the lease row stays share-locked
        until it commits, so a takeover waits for the order row and then finds it when it reconciles.
        """
        with self._unit("add_order") as conn:
            self._guard(conn, order.bot_id)
            return bool(conn.execute(self._add_order, order_row(order)).rowcount == 1)

    def fence(self, bot_id: str, holder: str, epoch: int) -> None:
        """Let ``bot_id`` trade only while ``holder`` holds its lease at ``epoch``.

        Every write of the bot's trading state (orders, fills, trades, candle progress) then checks the
        lease once per transaction and raises :class:`LeaseLostError` without writing when it is lost.
        """
        with self._lock:
            self._fences[bot_id] = (holder, epoch)

    def unfence(self, bot_id: str, holder: str) -> None:
        """Lift ``holder``'s fence of ``bot_id`` (another holder's fence stays)."""
        with self._lock:
            if self._fences.get(bot_id, (None, 0))[0] == holder:
                del self._fences[bot_id]

    def check_fence(self, bot_id: str) -> None:
        """Raise :class:`LeaseLostError` if ``bot_id`` is fenced and its lease is lost (before a venue call)."""
        if bot_id in self._fences:
            with self._unit("check_fence", write=False) as conn:
                self._guard(conn, bot_id)

    def _guard(self, conn: Connection, bot_id: str) -> None:
        fence = self._fences.get(bot_id)
        if fence is None or bot_id in self._fence_checked:
            return
        holder, epoch = fence
        held = (
            select(bot_leases.c.epoch)
            .where(
                bot_leases.c.bot_id == bot_id,
                bot_leases.c.gateway_id == holder,
                bot_leases.c.epoch == epoch,
                bot_leases.c.expires_ms > time.time_ns() // 1_000_000,
            )
            .with_for_update(read=True)
        )
        if conn.execute(held).first() is None:
            raise LeaseLostError(f"gateway {holder} no longer holds the lease of bot {bot_id} (epoch {epoch})")
        self._fence_checked.add(bot_id)  # share-locked (PostgreSQL) or write-locked (SQLite) until commit

    def update_order(self, order: Order) -> None:
        """Store every field of ``order``; ``fill_ids`` come from the fills recorded with :meth:`add_fill`."""
        row = order_row(order)
        row["key"] = row.pop("client_order_id")
        with self._unit("update_order") as conn:
            self._guard(conn, order.bot_id)
            if conn.execute(self._update_order, row).rowcount == 0:
                raise StorageError(
                    f"no order {order.client_order_id!r} to update", hint="add the order before updating it"
                )

    def get_order(self, client_order_id: str) -> Order | None:
        with self._unit("get_order", write=False) as conn:
            found = orders_from_rows(conn.execute(self._select_order, {"key": client_order_id}))
        return found[0] if found else None

    def live_orders(self, bot_id: str) -> list[Order]:
        """Return the bot's orders that may still rest on (or reach) the exchange, oldest first."""
        with self._unit("live_orders", write=False) as conn:
            return orders_from_rows(conn.execute(self._select_live_orders, {"key": bot_id}))

    def list_orders(self, bot_id: str) -> list[Order]:
        """Return all orders of the bot, oldest first."""
        with self._unit("list_orders", write=False) as conn:
            return orders_from_rows(conn.execute(self._select_orders, {"key": bot_id}))

    def add_fill(self, exchange: str, bot_id: str, fill: Fill) -> bool:
        """Record a fill; return False and write nothing when ``(exchange, trade_id)`` is already stored."""
        row = {
            "exchange": exchange,
            "trade_id": fill.trade_id,
            "client_order_id": fill.client_order_id,
            "bot_id": bot_id,
            "price": fill.price,
            "amount": fill.amount,
            "fee": fill.fee,
            "fee_currency": fill.fee_currency,
            "ts_ms": fill.timestamp_ms,
        }
        with self._unit("add_fill") as conn:
            self._guard(conn, bot_id)
            return bool(conn.execute(self._add_fill, row).rowcount == 1)

    # ------------------------------------------------------------------ trades
    def add_trade(self, trade: Trade) -> int:
        """Insert a new trade and return its id (``trade`` itself is not modified)."""
        if trade.id is not None:
            raise StorageError(f"trade {trade.id} is already stored", hint="use update_trade for a stored trade")
        with self._unit("add_trade") as conn:
            self._guard(conn, trade.bot_id)
            key = conn.execute(t.trades.insert(), trade_row(trade)).inserted_primary_key
        if key is None:  # pragma: no cover - every supported dialect returns the new key
            raise StorageError("the database did not return the new trade id")
        return int(key[0])

    def update_trade(self, trade: Trade) -> None:
        if trade.id is None:
            raise StorageError("cannot update a trade without id", hint="store it with add_trade first")
        row = trade_row(trade)
        row["key"] = trade.id
        with self._unit("update_trade") as conn:
            self._guard(conn, trade.bot_id)
            if conn.execute(self._update_trade, row).rowcount == 0:
                raise StorageError(f"no trade {trade.id} to update", hint="store it with add_trade first")

    def open_trades(self, bot_id: str) -> list[Trade]:
        """Return the bot's open trades, oldest first."""
        stmt = select(t.trades).where(t.trades.c.bot_id == bot_id, t.trades.c.is_open).order_by(t.trades.c.id)
        with self._unit("open_trades", write=False) as conn:
            return [trade_from_row(row) for row in conn.execute(stmt)]

    def closed_trades(self, bot_id: str, limit: int | None = None) -> list[Trade]:
        """Return the bot's closed trades in closing order; with ``limit``, only the most recent ones."""
        stmt = (
            select(t.trades)
            .where(t.trades.c.bot_id == bot_id, t.trades.c.is_open == false())
            .order_by(t.trades.c.close_ms.desc(), t.trades.c.id.desc())
            .limit(limit)
        )
        with self._unit("closed_trades", write=False) as conn:
            rows = conn.execute(stmt).all()
        return [trade_from_row(row) for row in reversed(rows)]

    # ------------------------------------------------------------------ equity
    def add_equity_snapshots(self, rows: list[EquitySnapshot]) -> None:
        """Store snapshots; one taken again at the same ``(bot_id, ts_ms)`` replaces the earlier one."""
        if not rows:
            return
        values = [{"bot_id": r.bot_id, "ts_ms": r.ts_ms, **{f: getattr(r, f) for f in _EQUITY_FIELDS}} for r in rows]
        with self._unit("add_equity_snapshots") as conn:
            conn.execute(self._upserts["equity"], values)

    def equity_history(self, bot_id: str, limit: int | None = None) -> list[EquitySnapshot]:
        """Return snapshots oldest first; with ``limit``, only the most recent ones."""
        e = t.equity_snapshots
        stmt = select(e).where(e.c.bot_id == bot_id).order_by(e.c.ts_ms.desc()).limit(limit)
        with self._unit("equity_history", write=False) as conn:
            found = conn.execute(stmt).all()
        return [
            EquitySnapshot(r.bot_id, r.ts_ms, r.cash, r.equity, r.realized, r.unrealized, r.fees_paid)
            for r in reversed(found)
        ]

    # ------------------------------------------------------------------ kill switch
    def get_kill_switch(self, scope: str) -> KillSwitchLevel:
        """Return the level set for exactly ``scope`` (``*`` is the fleet); ``NONE`` if never set."""
        with self._unit("get_kill_switch", write=False) as conn:
            level = conn.execute(self._select_kill, {"key": scope}).scalar()
        return KillSwitchLevel.NONE if level is None else KillSwitchLevel[level]

    def set_kill_switch(self, scope: str, level: KillSwitchLevel, actor: str, reason: str) -> None:
        """Set the level of ``scope``, recording who did it, why and when (clearing is ``NONE``)."""
        row = {
            "scope": scope,
            "level": KillSwitchLevel(level).name,
            "actor": actor,
            "reason": reason,
            "updated_ms": self._now_ms(),
        }
        with self._unit("set_kill_switch") as conn:
            conn.execute(self._upserts["kill"], row)

    def kill_switch_record(self, scope: str) -> dict[str, Any] | None:
        """Return ``level``, ``actor``, ``reason`` and ``updated_ms`` of the last change of ``scope``."""
        with self._unit("kill_switch_record", write=False) as conn:
            row = conn.execute(select(t.kill_switch).where(t.kill_switch.c.scope == scope)).first()
        if row is None:
            return None
        record = dict(row._mapping)
        record["level"] = KillSwitchLevel[record["level"]]
        return record

    # ------------------------------------------------------------------ events outbox
    def add_events(self, events: list[DomainEvent]) -> None:
        """Queue events for publication with the trace id bound now (``logs.bind_trace_id``), if any.

        An event id already queued is ignored.
        """
        if not events:
            return
        trace_id = current_trace_id()
        rows = [
            {
                "event_id": e.event_id,
                "type": e.type,
                "bot_id": e.bot_id,
                "payload": e.to_dict(),
                "ts_ms": e.ts_ms,
                "published": False,
                "trace_id": trace_id,
            }
            for e in events
        ]
        with self._unit("add_events") as conn:
            conn.execute(self._add_event, rows)

    def pending_events(self, limit: int = 100, bot_ids: Collection[str] | None = None) -> list[PendingEvent]:
        """Return up to ``limit`` unpublished events in the order added.

        ``bot_ids`` restricts them to those bots' events (a gateway relays only the bots it holds).
        """
        o = t.events_outbox
        stmt = select(o.c.payload, o.c.trace_id).where(o.c.published == false())
        if bot_ids is not None:
            if not bot_ids:
                return []
            stmt = stmt.where(o.c.bot_id.in_(list(bot_ids)))
        stmt = stmt.order_by(o.c.seq).limit(limit)
        with self._unit("pending_events", write=False) as conn:
            return [PendingEvent(dict(payload), trace_id) for payload, trace_id in conn.execute(stmt)]

    def mark_published(self, event_ids: list[str]) -> None:
        o = t.events_outbox
        with self._unit("mark_published") as conn:
            for chunk in _chunks(event_ids):
                conn.execute(o.update().where(o.c.event_id.in_(chunk)).values(published=True))

    def mark_processed(self, consumer: str, event_id: str) -> bool:
        """Record that ``consumer`` applied ``event_id``; return False when it already had."""
        row = {"consumer": consumer, "event_id": event_id, "processed_ms": self._now_ms()}
        with self._unit("mark_processed") as conn:
            return bool(conn.execute(self._add_processed, row).rowcount == 1)

    # ------------------------------------------------------------------ key/value
    def get_state(self, key: str) -> str | None:
        with self._unit("get_state", write=False) as conn:
            value = conn.execute(self._select_state, {"key": key}).scalar()
        return None if value is None else str(value)

    def set_state(self, key: str, value: str) -> None:
        with self._unit("set_state") as conn:
            conn.execute(self._upserts["state"], {"key": key, "value": value})


# ---------------------------------------------------------------------- row mapping
def _upsert(stmt: Any, keys: list[str], update: list[str]) -> Insert:
    """Return ``INSERT ... ON CONFLICT (keys) DO UPDATE SET col = excluded.col`` for ``update``."""
    return stmt.on_conflict_do_update(  # type: ignore[no-any-return]
        index_elements=keys, set_={name: stmt.excluded[name] for name in update}
    )


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


__all__ = ["SqlTradingStore"]
