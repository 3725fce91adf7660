"""``tradefleet up`` and ``tradefleet paper``: run bots on the simulated exchange."""

from __future__ import annotations

import fcntl
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from tradefleet.cli._common import fail, handle_errors, settings_from
from tradefleet.core.bots import BotConfig
from tradefleet.core.events import DomainEvent, RiskAlert, TradeExecuted

_EPOCH = "%Y-%m-%d %H:%M"


class TradePrinter:
    """Event sink that prints trades and risk alerts as they happen."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out

    def publish(self, event: DomainEvent) -> None:
        import datetime as dt

        when = dt.datetime.fromtimestamp(event.ts_ms / 1000, tz=dt.UTC).strftime(_EPOCH)
        if isinstance(event, TradeExecuted):
            if event.action == "entry":
                line = (
                    f"{when}  {event.bot_id:<18} BUY  {event.pair:<10} {event.amount:.6f} @ {event.price:.6f}"
                    f"  {event.reason}"
                )
            else:
                line = (
                    f"{when}  {event.bot_id:<18} SELL {event.pair:<10} {event.amount:.6f} @ {event.price:.6f}"
                    f"  {event.reason:<18} PnL {event.profit_abs or 0.0:+.4f} ({100 * (event.profit_ratio or 0):+.2f}%)"
                )
        elif isinstance(event, RiskAlert):
            line = f"{when}  {event.bot_id:<18} RISK {event.rule}: {event.message}"
        else:
            return
        typer.echo(line, file=self.out)


@contextmanager
def exclusive(data_dir: Path, name: str) -> Iterator[None]:
    """Hold a lock so two processes never drive the same bots (that would duplicate orders)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / f"{name}.lock"
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise fail(f"another TradeFleet process is running '{name}' on {data_dir}; stop it first") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield


def _run_fleet(
    ctx: typer.Context,
    bots: list[BotConfig],
    name: str,
    speed: float,
    until: str | None,
    api_port: int | None = None,
) -> None:
    from tradefleet.bootstrap import build_paper_fleet, build_platform, load_bot_strategies

    settings = settings_from(ctx)
    until_ms = _parse_until(until)
    load_bot_strategies(settings, bots)  # fail on a bad strategy before anything is written
    from tradefleet.logs import configure_logging

    configure_logging(settings.log.level, settings.log.json)
    with exclusive(settings.data_dir, name):
        if api_port is not None:
            _run_fleet_and_api(settings, bots, name, speed, until_ms, api_port)
            return
        platform = build_platform(settings)
        try:
            fleet = build_paper_fleet(platform, bots, name=name, speed=speed, sink=TradePrinter())
            stop = threading.Event()
            fleet.stop_event = stop
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
            typer.echo(
                f"TradeFleet paper fleet '{name}': {len(bots)} bot(s) at {speed:g}x on the simulated exchange; "
                f"state in {settings.data_dir}. Ctrl-C stops."
            )
            reason = fleet.run(until_ms=until_ms)
            fleet.shutdown()
            _summary(fleet)
            typer.echo(f"stopped: {reason}")
        finally:
            platform.close()


def _run_fleet_and_api(
    settings: Any, bots: list[BotConfig], name: str, speed: float, until_ms: int | None, port: int
) -> None:
    """Run the platform in one process: an in-process gateway hosting the bots, and the API in this thread."""
    from tradefleet.bootstrap import build_api, build_bus, build_gateway, build_platform
    from tradefleet.cli.serve import announce_admin, listen, make_server, on_stop_signals
    from tradefleet.core.bots import BotStatus

    if until_ms is not None:
        raise fail("--until replays to a date without the API; add --no-api")
    host = settings.api.host
    sock = listen(host, port)
    platform = build_platform(settings)
    bus = build_bus(settings)
    try:
        app = build_api(platform, bus)
        announce_admin(app.state.services.auth)  # first: a bad TRADEFLEET_ADMIN_PASSWORD fails fast
        store = platform.store
        for config in bots:  # configured bots run unless a user stopped them through the API
            if store.get_bot(config.bot_id) is None:
                store.save_bot(config)
                store.set_bot_status(config.bot_id, BotStatus.RUNNING, "configured in tradefleet.toml")
            elif store.get_bot(config.bot_id) != config:
                store.save_bot(config)
        gateway = build_gateway(platform, bus, gateway_id=f"{name}-local", speed=speed, printer=TradePrinter())
        server = make_server(app, host, port)
        stop = threading.Event()
        outcome: dict[str, Any] = {}

        def stop_all() -> None:
            stop.set()
            server.should_exit = True

        def drive() -> None:
            try:
                gateway.run(stop)
            except BaseException as exc:  # re-raised in the main thread once the server is down
                outcome["error"] = exc
            finally:
                server.should_exit = True  # a gateway that fails takes the API down with it

        on_stop_signals(stop_all, server)
        typer.echo(
            f"TradeFleet paper fleet '{name}': {len(bots)} configured bot(s) at {speed:g}x on the simulated "
            f"exchange; state in {settings.data_dir}. Ctrl-C stops."
        )
        typer.echo(f"API on http://{host}:{port} (docs at /docs, health at /health).")
        runner = threading.Thread(target=drive, name=f"gateway-{name}", daemon=True)
        runner.start()
        try:
            server.run(sockets=[sock])
        except SystemExit:
            stop.set()
            runner.join()
            raise fail("the API server failed to start; see the log above") from None
        stop.set()
        runner.join()
        if "error" in outcome:
            raise outcome["error"]
        _store_summary(store)
        typer.echo("stopped: stopped")
    finally:
        sock.close()
        bus.close()
        platform.close()


def _store_summary(store: Any) -> None:
    typer.echo(f"{'bot':<20}{'trades':>8}{'open':>6}{'realized':>14}")
    for config in store.list_bots():
        closed = store.closed_trades(config.bot_id)
        realized = sum(t.profit_abs for t in closed)
        typer.echo(f"{config.bot_id:<20}{len(closed):>8}{len(store.open_trades(config.bot_id)):>6}{realized:>14.4f}")


def _parse_until(until: str | None) -> int | None:
    if until is None:
        return None
    import pandas as pd

    try:
        stamp = pd.Timestamp(until)
    except ValueError as exc:
        raise fail(f"--until {until!r} is not a date (use YYYY-MM-DD or an ISO timestamp)") from exc
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return int(stamp.value // 1_000_000)


def _summary(fleet: object) -> None:
    from tradefleet.engine.fleet import Fleet

    assert isinstance(fleet, Fleet)
    typer.echo(f"{'bot':<20}{'trades':>8}{'open':>6}{'realized':>14}{'equity':>14}")
    for bot in fleet.bots:
        closed = fleet.store.closed_trades(bot.bot_id)
        equity = bot.portfolio.equity(bot.marks)
        realized = sum(t.profit_abs for t in closed)
        n_open = sum(len(t) for t in bot.trades.values())
        typer.echo(f"{bot.bot_id:<20}{len(closed):>8}{n_open:>6}{realized:>14.4f}{equity:>14.4f}")


@handle_errors
def up(
    ctx: typer.Context,
    speed: Annotated[float | None, typer.Option(help="market seconds per wall second (default paper.speed)")] = None,
    until: Annotated[str | None, typer.Option(help="stop when market time reaches this date")] = None,
    port: Annotated[
        int | None, typer.Option(help="serve the API on this port (default api.port)", min=1, max=65535)
    ] = None,
    no_api: Annotated[bool, typer.Option("--no-api", help="run the fleet only, without the API")] = False,
) -> None:
    """Run the configured paper fleet on the embedded default (SQLite, simulated exchange) and the API."""
    settings = settings_from(ctx)
    run_speed = speed if speed is not None else settings.paper.speed
    if run_speed <= 0:
        raise fail("--speed must be positive")
    if no_api and port is not None:
        raise fail("--port and --no-api contradict each other; give one")
    api_port = None if no_api else (port or settings.api.port)
    _run_fleet(ctx, settings.paper_bot_configs(), "up", run_speed, until, api_port)


@handle_errors
def paper(
    ctx: typer.Context,
    strategy: Annotated[str, typer.Option(help="strategy name or path.py[:Class]")],
    pair: Annotated[list[str], typer.Option(help="pair to trade, e.g. BTC/USDT (repeatable)")],
    timeframe: Annotated[str, typer.Option(help="candle timeframe")] = "5m",
    speed: Annotated[float, typer.Option(help="market seconds per wall second")] = 600.0,
    balance: Annotated[float | None, typer.Option(help="starting quote balance")] = None,
    stake: Annotated[float | None, typer.Option(help="stake per trade in quote currency")] = None,
    max_open_trades: Annotated[int | None, typer.Option(help="open trades at most")] = None,
    bot_id: Annotated[str | None, typer.Option(help="bot id (default derived from strategy and pairs)")] = None,
    until: Annotated[str | None, typer.Option(help="stop when market time reaches this date")] = None,
) -> None:
    """Run one bot on the simulated exchange at an accelerated clock, printing its trades and PnL."""
    if speed <= 0:
        raise fail("--speed must be positive")
    settings = settings_from(ctx)
    quote = pair[0].split("/")[-1].upper() if "/" in pair[0] else settings.simulated.quote
    risk = settings.risk.model_dump()
    if stake is not None:
        risk.update(stake_mode="fixed", stake_amount=stake)
    if max_open_trades is not None:
        risk.update(max_open_trades=max_open_trades, max_per_pair=min(risk["max_per_pair"], max_open_trades))
    ident = bot_id or "paper-" + "-".join([strategy.split("/")[-1].split(".")[0], *pair]).lower().replace("/", "-")
    config = BotConfig.model_validate(
        {
            "bot_id": ident[:63].replace(":", "-"),
            "strategy": strategy,
            "pairs": tuple(pair),
            "timeframe": timeframe,
            "quote_currency": quote,
            "starting_balance": balance or settings.simulated.starting_balance,
            "risk": risk,
        }
    )
    _run_fleet(ctx, [config], f"paper-{config.bot_id}", speed, until)


def register(app: typer.Typer) -> None:
    app.command("up")(up)
    app.command("paper")(paper)
