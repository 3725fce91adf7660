"""The bots service, transport-neutral: REST routes, CLI and MCP all call :class:`BotService`.

Who may do what::

    viewer   read bots it owns
    trader   read and act on bots it owns; create bots (it becomes the owner)
    admin    everything on every bot; the only one to clear a kill switch or create a live bot
    service  nothing on bots: a machine client owns none (``services.bots.visibility``, shared with ``/ws``)

A bot the caller may not see answers exactly like a bot that does not exist (:class:`UnknownBotError`,
404), so ids of other users' bots cannot be probed. Emergency stops are written to the store, whose
kill switches the running fleet applies within a second (``Fleet.check_kill_switches``); a trader can
only raise a bot's level, lowering or clearing it is for admins.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any, Protocol

from pydantic import ValidationError

from tradefleet.core.bots import BotConfig, BotStatus, check_bot_id
from tradefleet.core.bus import CommandType
from tradefleet.core.errors import TradeFleetError
from tradefleet.core.ports import TradingStore
from tradefleet.core.risk import KillSwitchLevel
from tradefleet.core.trades import Trade
from tradefleet.services.auth import PermissionDenied, Principal, Role, authorize
from tradefleet.services.bots.mappers import bot_out, equity_point, order_out, performance, position_out, trades_out
from tradefleet.services.bots.schemas import (
    AccountOut,
    BotCreate,
    BotOut,
    BotStatusOut,
    BotUpdate,
    CommandOut,
    EquityPoint,
    ForceEnterIn,
    ForceExitIn,
    KillLevelName,
    KillSwitchOut,
    LogLineOut,
    OrderOut,
    PerformanceOut,
    PositionsOut,
    TradesPage,
)
from tradefleet.services.bots.visibility import bot_visibility, may_see

FLEET_SCOPE = "*"
MAX_PAGE = 500


class UnknownBotError(TradeFleetError):
    code = "bot_not_found"
    hint = "list your bots with GET /api/v1/bots"
    http_status = 404


class BotExistsError(TradeFleetError):
    code = "bot_exists"
    hint = "pick another bot_id"
    http_status = 409


class BotStateError(TradeFleetError):
    code = "bot_state"
    http_status = 409


class BotValidationError(TradeFleetError):
    code = "validation_error"
    http_status = 422


class GatewayUnavailableError(TradeFleetError):
    code = "gateway_unavailable"
    hint = "start a gateway (`tradefleet up` or `tradefleet serve gateway`) and start the bot"
    http_status = 503


class CommandReplyLike(Protocol):
    @property
    def ok(self) -> bool: ...
    @property
    def message(self) -> str: ...
    @property
    def result(self) -> dict[str, Any]: ...


class BotCommands(Protocol):
    """Commands to the gateway running a bot (``services.gateway.BusCommands``)."""

    def send(self, command: CommandType, bot_id: str, payload: Mapping[str, Any], *, actor: str) -> str: ...
    def wait(self, command_id: str, timeout_s: float) -> CommandReplyLike | None: ...


class BotLogs(Protocol):
    """Recent log lines per bot (``adapters.storage.leases.SqlBotLogs``)."""

    def recent(self, bot_id: str, limit: int = 100) -> list[Any]: ...


class BotHolders(Protocol):
    """Which gateway runs which bot (``adapters.storage.leases.SqlLeases``)."""

    def holder(self, bot_id: str) -> Any | None: ...


class BotOwners(Protocol):
    """Who owns which bot (``adapters.storage.owner_tables.SqlBotOwners``)."""

    def owner_of(self, bot_id: str) -> int | None: ...
    def owners(self) -> dict[str, int]: ...
    def claim(self, bot_id: str, user_id: int) -> bool: ...
    def release(self, bot_id: str) -> None: ...


class BotService:
    """Bots, their state and their emergency controls, over the trading store and the owners table."""

    def __init__(
        self,
        store: TradingStore,
        owners: BotOwners,
        *,
        commands: BotCommands | None = None,
        logs: BotLogs | None = None,
        holders: BotHolders | None = None,
        reply_timeout_s: float = 5.0,
    ) -> None:
        self.store = store
        self.owners = owners
        self.commands = commands
        self.logs_store = logs
        self.holders = holders
        self.reply_timeout_s = reply_timeout_s

    # ------------------------------------------------------------------ access
    def _config(self, principal: Principal, bot_id: str, minimum: Role = Role.VIEWER) -> BotConfig:
        """Return the bot if ``principal`` may see it; the role check comes first and says nothing of the bot."""
        authorize(principal, minimum)
        try:
            check_bot_id(bot_id)  # an id no bot can have (control characters, say) never reaches the database
        except ValueError:
            raise UnknownBotError(f"no bot {bot_id[:63]!r}") from None
        config = self.store.get_bot(bot_id)
        if config is None or not may_see(principal, self.owners.owner_of(bot_id)):
            raise UnknownBotError(f"no bot {bot_id!r}")
        return config

    def _out(self, config: BotConfig, owner: int | None) -> BotOut:
        return bot_out(config, owner, self.store.get_bot_status(config.bot_id))

    # ------------------------------------------------------------------ CRUD
    def list_bots(self, principal: Principal) -> list[BotOut]:
        """Every bot for admins; the caller's own bots for everyone else."""
        authorize(principal, Role.VIEWER)
        owners, visible = self.owners.owners(), bot_visibility(principal)
        return [self._out(c, owners.get(c.bot_id)) for c in self.store.list_bots() if visible(owners.get(c.bot_id))]

    def get_bot(self, principal: Principal, bot_id: str) -> BotOut:
        config = self._config(principal, bot_id)
        return self._out(config, self.owners.owner_of(bot_id))

    def create_bot(self, principal: Principal, body: BotCreate) -> BotOut:
        """Store a new (stopped) bot owned by the caller (traders and admins; live bots: admins)."""
        authorize(principal, Role.TRADER)
        if principal.user_id is None:
            raise PermissionDenied("only users own bots", hint="create the bot with a user's token or API key")
        if body.mode == "live":
            authorize(principal, Role.ADMIN)
        config = _validated(body.model_dump())
        if self.store.get_bot(config.bot_id) is not None:
            raise BotExistsError(f"a bot {config.bot_id!r} already exists")
        if self._has_history(config.bot_id):  # a new bot would inherit its trades, PnL and kill switch
            raise BotExistsError(
                f"bot id {config.bot_id!r} belonged to a deleted bot whose trades are kept as history",
                hint="choose another bot id",
            )
        if not self.owners.claim(config.bot_id, principal.user_id):
            raise BotExistsError(f"a bot {config.bot_id!r} already exists")
        try:
            self.store.save_bot(config)
        except BaseException:
            self.owners.release(config.bot_id)
            raise
        return self._out(config, principal.user_id)

    def _has_history(self, bot_id: str) -> bool:
        store = self.store
        with store.transaction(write=False):
            return bool(
                store.closed_trades(bot_id, limit=1)
                or store.open_trades(bot_id)
                or store.equity_history(bot_id, limit=1)
                or store.get_kill_switch(bot_id) is not KillSwitchLevel.NONE
            )

    def update_bot(self, principal: Principal, bot_id: str, body: BotUpdate) -> BotOut:
        """Change risk settings, pairs or strategy parameters; they apply when the bot next starts."""
        config = self._config(principal, bot_id, Role.TRADER)
        values = config.model_dump()
        if body.risk is not None:
            values["risk"] = _merge(values["risk"], body.risk)
        if body.pairs is not None:
            values["pairs"] = body.pairs
        if body.strategy_params is not None:
            values["strategy_params"] = body.strategy_params
        updated = _validated(values)
        if updated != config:
            self.store.save_bot(updated)
        return self._out(updated, self.owners.owner_of(bot_id))

    def delete_bot(self, principal: Principal, bot_id: str) -> None:
        """Forget a stopped bot without open trades; its trades and equity stay as history."""
        self._config(principal, bot_id, Role.TRADER)
        status = self.store.get_bot_status(bot_id)
        if status in (BotStatus.RUNNING, BotStatus.STOPPING_ENTRIES):
            raise BotStateError(f"bot {bot_id!r} is {status.value}", hint="stop the bot before deleting it")
        if self.store.open_trades(bot_id):
            raise BotStateError(f"bot {bot_id!r} has open trades", hint="close its positions first")
        self.store.delete_bot(bot_id)
        self.owners.release(bot_id)

    # ------------------------------------------------------------------ state
    def status(self, principal: Principal, bot_id: str) -> BotStatusOut:
        # The store's six reads in one read-only transaction (no write lock on SQLite) instead of six.
        with self.store.transaction(write=False):
            self._config(principal, bot_id)
            own, fleet = self.store.get_kill_switch(bot_id), self.store.get_kill_switch(FLEET_SCOPE)
            progress = self.store.load_progress(bot_id)
            status = self.store.get_bot_status(bot_id)
            open_trades = len(self.store.open_trades(bot_id))
        return BotStatusOut(
            bot_id=bot_id,
            status=status,
            kill_switch=own.name,
            fleet_kill_switch=fleet.name,
            effective_kill_switch=max(own, fleet).name,
            open_trades=open_trades,
            last_candle_ms=max(progress.values(), default=None),
            progress=progress,
            gateway=self._holder(bot_id),
        )

    def _holder(self, bot_id: str) -> str | None:
        lease = self.holders.holder(bot_id) if self.holders is not None else None
        return None if lease is None else str(lease.gateway_id)

    def positions(self, principal: Principal, bot_id: str) -> PositionsOut:
        """Open trades; unrealized PnL from the last equity snapshot (per trade only when one is open)."""
        self._config(principal, bot_id)
        trades = self.store.open_trades(bot_id)
        last = self.store.equity_history(bot_id, limit=1)
        snapshot = last[0] if last else None
        # Snapshots hold the bot's total, not marks per pair: it is one trade's only when that trade was
        # the only one open when the snapshot was taken.
        single = snapshot is not None and len(trades) == 1 and snapshot.ts_ms >= trades[0].open_ms
        return PositionsOut(
            bot_id=bot_id,
            as_of_ms=snapshot.ts_ms if snapshot else None,
            unrealized_total=snapshot.unrealized if snapshot else None,
            positions=[position_out(t, snapshot.unrealized if single and snapshot else None) for t in trades],
        )

    def trades(
        self,
        principal: Principal,
        bot_id: str,
        *,
        limit: int = 50,
        offset: int = 0,
        pair: str | None = None,
        exit_reason: str | None = None,
    ) -> TradesPage:
        """Closed trades, newest first, filtered by pair and exit reason, one page at a time."""
        self._config(principal, bot_id)
        if not 1 <= limit <= MAX_PAGE or offset < 0:
            raise BotValidationError(f"limit must be 1-{MAX_PAGE} and offset at least 0")
        found = [
            t
            for t in reversed(self.store.closed_trades(bot_id))
            if (pair is None or t.pair == pair) and (exit_reason is None or t.exit_reason == exit_reason)
        ]
        page = found[offset : offset + limit]
        return TradesPage(bot_id=bot_id, total=len(found), limit=limit, offset=offset, trades=trades_out(page))

    def performance(self, principal: Principal, bot_id: str) -> PerformanceOut:
        self._config(principal, bot_id)
        closed = self.store.closed_trades(bot_id)
        by_pair: dict[str, list[Trade]] = defaultdict(list)
        for trade in closed:
            by_pair[trade.pair].append(trade)
        pairs = sorted((performance(p, ts) for p, ts in by_pair.items()), key=lambda p: (-p.profit_abs, p.pair))
        total = performance("*", closed)
        return PerformanceOut(
            bot_id=bot_id,
            trades=total.trades,
            wins=total.wins,
            win_rate=total.win_rate,
            profit_abs=total.profit_abs,
            profit_ratio=total.profit_ratio,
            pairs=pairs,
        )

    def equity(self, principal: Principal, bot_id: str, limit: int = 1000) -> list[EquityPoint]:
        """The most recent ``limit`` equity snapshots, oldest first."""
        self._config(principal, bot_id)
        return [equity_point(s) for s in self.store.equity_history(bot_id, limit=limit)]

    # ------------------------------------------------------------------ controls
    def stop_entries(self, principal: Principal, bot_id: str) -> BotStatusOut:
        """Stop opening trades (exits go on); kept as the bot's wanted status across restarts."""
        self._config(principal, bot_id, Role.TRADER)
        self._require_started(bot_id)
        self.store.set_bot_status(bot_id, BotStatus.STOPPING_ENTRIES)
        self._notify(CommandType.STOP_ENTRIES, bot_id, principal)
        return self.status(principal, bot_id)

    def resume(self, principal: Principal, bot_id: str) -> BotStatusOut:
        """Open trades again after :meth:`stop_entries` (a kill switch still blocks them)."""
        self._config(principal, bot_id, Role.TRADER)
        self._require_started(bot_id)
        self.store.set_bot_status(bot_id, BotStatus.RUNNING)
        self._notify(CommandType.RESUME, bot_id, principal)
        return self.status(principal, bot_id)

    def start_bot(self, principal: Principal, bot_id: str) -> BotStatusOut:
        """Ask for the bot to run: its wanted status is committed, then a gateway claims and starts it."""
        config = self._config(principal, bot_id, Role.TRADER)
        if config.mode == "live":
            authorize(principal, Role.ADMIN)
        if self.store.get_bot_status(bot_id) not in (BotStatus.RUNNING, BotStatus.STOPPING_ENTRIES):
            self.store.set_bot_status(bot_id, BotStatus.RUNNING, f"started by {principal.username}")
        self._notify(CommandType.START_BOT, bot_id, principal)
        return self.status(principal, bot_id)

    def stop_bot(self, principal: Principal, bot_id: str) -> BotStatusOut:
        """Ask for the bot to stop; its gateway saves it (open trades keep their stops) and lets it go."""
        self._config(principal, bot_id, Role.TRADER)
        self.store.set_bot_status(bot_id, BotStatus.STOPPED, f"stopped by {principal.username}")
        self._notify(CommandType.STOP_BOT, bot_id, principal)
        return self.status(principal, bot_id)

    def _notify(self, command: CommandType, bot_id: str, principal: Principal) -> None:
        """Wake the gateways for a state change already committed (a lost notice delays it by a scan)."""
        if self.commands is not None:
            self.commands.send(command, bot_id, {}, actor=principal.username)

    def force_enter(self, principal: Principal, bot_id: str, body: ForceEnterIn) -> CommandOut:
        """Buy a pair now at market through the bot's gateway (risk rules apply)."""
        config = self._config(principal, bot_id, Role.TRADER)
        if body.pair not in config.pairs:
            raise BotValidationError(f"{body.pair} is not one of the bot's pairs ({', '.join(config.pairs)})")
        payload = {"pair": body.pair, "stake_amount": body.stake_amount, "enter_tag": body.enter_tag}
        return self._command(principal, bot_id, CommandType.FORCE_ENTER, payload)

    def force_exit(self, principal: Principal, bot_id: str, body: ForceExitIn) -> CommandOut:
        """Sell at market one trade, a pair's trades or all open trades through the bot's gateway."""
        self._config(principal, bot_id, Role.TRADER)
        payload = {"trade_id": body.trade_id, "pair": body.pair}
        return self._command(principal, bot_id, CommandType.FORCE_EXIT, payload)

    def _command(self, principal: Principal, bot_id: str, command: CommandType, payload: dict[str, Any]) -> CommandOut:
        self._require_started(bot_id)
        if self.commands is None:
            raise GatewayUnavailableError("this process has no command bus to reach the gateways")
        if self.holders is not None and self.holders.holder(bot_id) is None:
            raise GatewayUnavailableError(f"no gateway is running bot {bot_id!r} right now")
        command_id = self.commands.send(command, bot_id, payload, actor=principal.username)
        reply = self.commands.wait(command_id, self.reply_timeout_s)
        if reply is None:
            return CommandOut(command_id=command_id, bot_id=bot_id, command=command.value, status="accepted",
                              message="sent; the gateway did not answer in time: check the bot's orders")  # fmt: skip
        return CommandOut(
            command_id=command_id,
            bot_id=bot_id,
            command=command.value,
            status="done" if reply.ok else "failed",
            message=reply.message,
            result=dict(reply.result),
        )

    def open_orders(self, principal: Principal, bot_id: str) -> list[OrderOut]:
        """Orders not yet final (open, partly filled, or awaiting the exchange's answer)."""
        self._config(principal, bot_id)
        return [order_out(o) for o in self.store.live_orders(bot_id)]

    def logs(self, principal: Principal, bot_id: str, limit: int = 100) -> list[LogLineOut]:
        """The bot's most recent log lines (written by its gateway), oldest first."""
        self._config(principal, bot_id)
        if not 1 <= limit <= 1000:
            raise BotValidationError("limit must be 1-1000")
        if self.logs_store is None:
            return []
        return [
            LogLineOut(ts_ms=x.ts_ms, level=x.level, logger=x.logger, message=x.message)
            for x in self.logs_store.recent(bot_id, limit)
        ]

    def account(self, principal: Principal, bot_id: str) -> AccountOut:
        """The bot's account as of its last equity snapshot (its starting balance before any)."""
        config = self._config(principal, bot_id)
        last = self.store.equity_history(bot_id, limit=1)
        snap = last[0] if last else None
        return AccountOut(
            bot_id=bot_id,
            quote_currency=config.quote_currency,
            starting_balance=config.starting_balance,
            cash=snap.cash if snap else config.starting_balance,
            equity=snap.equity if snap else config.starting_balance,
            realized=snap.realized if snap else 0.0,
            unrealized=snap.unrealized if snap else 0.0,
            fees_paid=snap.fees_paid if snap else 0.0,
            open_trades=len(self.store.open_trades(bot_id)),
            as_of_ms=snap.ts_ms if snap else None,
        )

    def _require_started(self, bot_id: str) -> None:
        status = self.store.get_bot_status(bot_id)
        if status not in (BotStatus.RUNNING, BotStatus.STOPPING_ENTRIES):
            raise BotStateError(f"bot {bot_id!r} is {status.value}", hint="start the bot first")

    def emergency_stop(
        self, principal: Principal, bot_id: str, level: KillLevelName, reason: str = ""
    ) -> KillSwitchOut:
        """Raise the bot's kill switch to ``level`` (never lowers it); the fleet applies it within a second."""
        self._config(principal, bot_id, Role.TRADER)
        wanted = KillSwitchLevel[level]
        current = self.store.get_kill_switch(bot_id)
        if wanted > current:
            self.store.set_kill_switch(bot_id, wanted, principal.username, reason or "emergency stop")
            self._notify(CommandType.EMERGENCY_STOP, bot_id, principal)
        return self._kill_out(bot_id, max(wanted, current), principal, reason)

    def clear_kill_switch(self, principal: Principal, bot_id: str, reason: str = "") -> KillSwitchOut:
        """Set the bot's kill switch back to NONE (admins)."""
        self._config(principal, bot_id, Role.ADMIN)
        self.store.set_kill_switch(bot_id, KillSwitchLevel.NONE, principal.username, reason or "cleared")
        return self._kill_out(bot_id, KillSwitchLevel.NONE, principal, reason or "cleared")

    @staticmethod
    def _kill_out(bot_id: str, level: KillSwitchLevel, principal: Principal, reason: str) -> KillSwitchOut:
        return KillSwitchOut(bot_id=bot_id, level=level.name, actor=principal.username, reason=reason)


def _validated(values: dict[str, Any]) -> BotConfig:
    """Build the core BotConfig, turning its failures into a 422 with one entry per offending field."""
    try:
        config = BotConfig.model_validate(values)
    except ValidationError as exc:
        errors = [
            {"loc": [str(p) for p in err["loc"]], "message": err["msg"], "type": err["type"]} for err in exc.errors()
        ]
        raise BotValidationError("the bot is invalid", details={"errors": errors}) from None
    wrong = [p for p in config.pairs if p.split("/")[1] != config.quote_currency]
    if wrong:
        raise BotValidationError(
            f"pairs {', '.join(wrong)} are not quoted in {config.quote_currency}",
            hint="give the bot pairs with one quote currency (set quote_currency to match)",
        )
    return config


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Merge ``patch`` into ``base``, nested settings key by key."""
    merged = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
