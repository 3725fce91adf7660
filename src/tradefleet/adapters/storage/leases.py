"""Gateways, bot leases and bot logs over the ``platform_tables``: how gateways share the bots.

A lease says which gateway runs a bot until ``expires_ms``. A gateway renews the leases of the bots it runs
with each heartbeat; one that dies stops renewing, its leases expire and another gateway claims the bots. Claims and
renewals are single conditional UPDATEs, so two gateways can never both hold a bot: the loser's UPDATE
matches no row. ``epoch`` grows on every claim (a fencing token). Each method is its own transaction.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import Engine, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from tradefleet.adapters.storage.db import read_transaction, storage_error
from tradefleet.adapters.storage.platform_tables import bot_leases, bot_logs, gateways

# The API asks for a bot's holder on every status read: built once, SQLAlchemy then only binds parameters.
_HOLDER = select(bot_leases).where(
    bot_leases.c.bot_id == bindparam("bot_id"), bot_leases.c.expires_ms > bindparam("now")
)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class GatewayInfo:
    gateway_id: str
    host: str
    pid: int
    started_ms: int
    heartbeat_ms: int
    capacity: int
    bots: int = 0


@dataclass(frozen=True, slots=True)
class Lease:
    bot_id: str
    gateway_id: str
    epoch: int
    expires_ms: int


class SqlLeases:
    """Gateway registry and bot leases in the trading database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def register(self, gateway_id: str, host: str, pid: int, capacity: int) -> None:
        """Insert or refresh this gateway's row (a restarted gateway keeps its id)."""
        now = now_ms()
        row = {"host": host, "pid": pid, "started_ms": now, "heartbeat_ms": now, "capacity": capacity}
        try:
            with self._engine.begin() as conn:
                done = conn.execute(update(gateways).where(gateways.c.gateway_id == gateway_id).values(**row))
                if done.rowcount == 0:
                    conn.execute(insert(gateways), {"gateway_id": gateway_id, **row})
        except SQLAlchemyError as exc:
            raise storage_error("registering a gateway", exc) from exc

    def heartbeat(self, gateway_id: str, ttl_ms: int, bot_ids: Collection[str]) -> dict[str, int]:
        """Say this gateway is alive and renew its unexpired leases of ``bot_ids`` (the bots it runs: a
        lease of a bot it dropped is left to expire); return bot id -> epoch of the leases it still holds."""
        now = now_ms()
        held = and_(
            bot_leases.c.gateway_id == gateway_id,
            bot_leases.c.expires_ms > now,
            bot_leases.c.bot_id.in_(list(bot_ids)),
        )
        try:
            with self._engine.begin() as conn:
                conn.execute(update(gateways).where(gateways.c.gateway_id == gateway_id).values(heartbeat_ms=now))
                if not bot_ids:
                    return {}
                conn.execute(update(bot_leases).where(held).values(expires_ms=now + ttl_ms))
                rows = conn.execute(select(bot_leases.c.bot_id, bot_leases.c.epoch).where(held)).all()
        except SQLAlchemyError as exc:
            raise storage_error("renewing leases", exc) from exc
        return {bot_id: int(epoch) for bot_id, epoch in rows}

    def claim(self, bot_id: str, gateway_id: str, ttl_ms: int) -> int | None:
        """Take ``bot_id`` if nobody holds it (or its lease expired); return the new epoch, or None."""
        now = now_ms()
        free = and_(
            bot_leases.c.bot_id == bot_id,
            or_(bot_leases.c.expires_ms <= now, bot_leases.c.gateway_id == gateway_id),
        )
        try:
            with self._engine.begin() as conn:
                done = conn.execute(
                    update(bot_leases)
                    .where(free)
                    .values(
                        gateway_id=gateway_id,
                        epoch=bot_leases.c.epoch + 1,
                        acquired_ms=now,
                        expires_ms=now + ttl_ms,
                    )
                )
                if done.rowcount == 0:
                    exists = conn.execute(select(bot_leases.c.epoch).where(bot_leases.c.bot_id == bot_id)).first()
                    if exists is not None:
                        return None
                    conn.execute(
                        insert(bot_leases),
                        {
                            "bot_id": bot_id,
                            "gateway_id": gateway_id,
                            "epoch": 1,
                            "acquired_ms": now,
                            "expires_ms": now + ttl_ms,
                        },
                    )
                epoch = conn.execute(select(bot_leases.c.epoch).where(bot_leases.c.bot_id == bot_id)).scalar_one()
        except IntegrityError:
            return None  # another gateway inserted the first lease at the same moment
        except SQLAlchemyError as exc:
            raise storage_error("claiming a bot", exc) from exc
        return int(epoch)

    def release(self, bot_id: str, gateway_id: str) -> None:
        """Give ``bot_id`` up now (a clean stop), so another gateway may claim it at once."""
        mine = and_(bot_leases.c.bot_id == bot_id, bot_leases.c.gateway_id == gateway_id)
        try:
            with self._engine.begin() as conn:
                conn.execute(update(bot_leases).where(mine).values(expires_ms=0))
        except SQLAlchemyError as exc:
            raise storage_error("releasing a lease", exc) from exc

    def holder(self, bot_id: str) -> Lease | None:
        """Return the live lease on ``bot_id``, or None when no gateway runs it."""
        with read_transaction(self._engine, "reading a lease") as conn:
            row = conn.execute(_HOLDER, {"bot_id": bot_id, "now": now_ms()}).first()
        return None if row is None else Lease(row.bot_id, row.gateway_id, int(row.epoch), int(row.expires_ms))

    def live_leases(self) -> dict[str, Lease]:
        """Return bot id → live lease for every bot some gateway runs."""
        query = select(bot_leases).where(bot_leases.c.expires_ms > now_ms())
        with read_transaction(self._engine, "listing leases") as conn:
            rows = conn.execute(query).all()
        return {r.bot_id: Lease(r.bot_id, r.gateway_id, int(r.epoch), int(r.expires_ms)) for r in rows}

    def gateways(self, alive_within_ms: int | None = None) -> list[GatewayInfo]:
        """Return registered gateways (only those that beat within ``alive_within_ms``), with bot counts."""
        now = now_ms()
        counts = (
            select(bot_leases.c.gateway_id, func.count().label("n"))
            .where(bot_leases.c.expires_ms > now)
            .group_by(bot_leases.c.gateway_id)
            .subquery()
        )
        query = select(gateways, func.coalesce(counts.c.n, 0).label("bots")).outerjoin(
            counts, counts.c.gateway_id == gateways.c.gateway_id
        )
        if alive_within_ms is not None:
            query = query.where(gateways.c.heartbeat_ms > now - alive_within_ms)
        with read_transaction(self._engine, "listing gateways") as conn:
            rows = conn.execute(query.order_by(gateways.c.gateway_id)).all()
        return [
            GatewayInfo(
                r.gateway_id, r.host, int(r.pid), int(r.started_ms), int(r.heartbeat_ms), int(r.capacity), int(r.bots)
            )
            for r in rows
        ]


@dataclass(frozen=True, slots=True)
class LogLine:
    ts_ms: int
    level: str
    logger: str
    message: str


class SqlBotLogs:
    """Recent log lines per bot, written in batches by gateways and read by the API."""

    def __init__(self, engine: Engine, keep_per_bot: int = 1000) -> None:
        self._engine = engine
        self.keep_per_bot = keep_per_bot

    def append(self, bot_id: str, lines: list[LogLine]) -> None:
        """Add ``lines`` and drop the bot's oldest beyond ``keep_per_bot``."""
        if not lines:
            return
        rows = [
            {"bot_id": bot_id, "ts_ms": x.ts_ms, "level": x.level, "logger": x.logger, "message": x.message}
            for x in lines
        ]
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(bot_logs), rows)
                cutoff = conn.execute(
                    select(bot_logs.c.seq)
                    .where(bot_logs.c.bot_id == bot_id)
                    .order_by(bot_logs.c.seq.desc())
                    .offset(self.keep_per_bot)
                    .limit(1)
                ).scalar()
                if cutoff is not None:
                    conn.execute(delete(bot_logs).where(and_(bot_logs.c.bot_id == bot_id, bot_logs.c.seq <= cutoff)))
        except SQLAlchemyError as exc:
            raise storage_error("writing bot logs", exc) from exc

    def recent(self, bot_id: str, limit: int = 100) -> list[LogLine]:
        """Return the bot's newest ``limit`` lines, oldest first."""
        query = select(bot_logs).where(bot_logs.c.bot_id == bot_id).order_by(bot_logs.c.seq.desc()).limit(limit)
        with read_transaction(self._engine, "reading bot logs") as conn:
            rows = conn.execute(query).all()
        return [LogLine(int(r.ts_ms), r.level, r.logger, r.message) for r in reversed(rows)]
