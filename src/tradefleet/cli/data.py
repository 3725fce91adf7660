"""``tradefleet data``: import, download, generate and list candle data."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from tradefleet.adapters.data.store import CandleStore, SeriesInfo, normalize_pair
from tradefleet.cli._common import handle_errors, progress, settings_from
from tradefleet.core.candles import timeframe_to_ms
from tradefleet.core.errors import ConfigError

data_app = typer.Typer(name="data", help="Import, download, generate and list candle data.", no_args_is_help=True)

PairOption = Annotated[str, typer.Option("--pair", help="BASE/QUOTE, e.g. BTC/USDT")]
TimeframeOption = Annotated[str, typer.Option("--timeframe", "-t", help="candle length: 1m, 5m, 1h, 1d, ...")]


def register(app: typer.Typer) -> None:
    """Add the ``data`` command group to ``app``."""
    app.add_typer(data_app, name="data")


def parse_when(value: str, flag: str) -> int:
    """Return epoch milliseconds for ``YYYY-MM-DD`` or an ISO 8601 time (UTC when no offset is given)."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ConfigError(
            f"{flag}: cannot read {value!r} as a date",
            hint="use YYYY-MM-DD or an ISO 8601 time such as 2024-01-01T00:00:00Z",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _store(ctx: typer.Context) -> CandleStore:
    return CandleStore(Path(settings_from(ctx).candles_dir))


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


@data_app.command("import")
@handle_errors
def import_cmd(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="a Freqtrade data folder, or one .feather/.json/.csv file")],
    *,
    pair: Annotated[str | None, typer.Option("--pair", help="pair, when the file name does not say")] = None,
    timeframe: Annotated[
        str | None, typer.Option("--timeframe", "-t", help="timeframe, when the file name does not say")
    ] = None,
    exchange: Annotated[str, typer.Option("--exchange", help="store the candles under this name")] = "imported",
) -> None:
    """Import candles from Freqtrade data or CSV; every file is checked before anything is written."""
    from tradefleet.adapters.data.importers import candle_files, import_path

    store = _store(ctx)
    files = candle_files(path)
    with progress("importing", len(files)) as advance:
        results = import_path(store, path, exchange=exchange, pair=pair, timeframe=timeframe, progress=advance)
    for r in results:
        span = f"{r.start:%Y-%m-%d %H:%M} → {r.end:%Y-%m-%d %H:%M}" if r.start is not None else "empty"
        typer.echo(f"{r.exchange} {r.pair} {r.timeframe}: {r.rows} rows, {r.added} new ({span}) from {r.source}")


@data_app.command("list")
@handle_errors
def list_cmd(ctx: typer.Context) -> None:
    """List stored candle series; generated ones are marked synthetic."""
    store = _store(ctx)
    series = store.list_series()
    if not series:
        typer.echo(f"no candles in {store.root} — use `tradefleet data import|download|generate`")
        return
    rows = [_row(s) for s in series]
    header = ("EXCHANGE", "PAIR", "TF", "ROWS", "FROM", "TO", "GAPS", "KIND")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        typer.echo("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _row(s: SeriesInfo) -> tuple[str, ...]:
    start = f"{s.start:%Y-%m-%d %H:%M}" if s.start is not None else "-"
    end = f"{s.end:%Y-%m-%d %H:%M}" if s.end is not None else "-"
    kind = "SYNTHETIC" if s.synthetic else "real"
    return (s.exchange, s.pair, s.timeframe, str(s.rows), start, end, str(s.gaps), kind)


@data_app.command("generate")
@handle_errors
def generate_cmd(
    ctx: typer.Context,
    *,
    pair: PairOption = "SYN/USDT",
    timeframe: TimeframeOption = "1m",
    days: Annotated[float, typer.Option("--days", help="how much history to generate")] = 365,
    seed: Annotated[int, typer.Option("--seed", help="same seed, same market")] = 7,
    start: Annotated[str, typer.Option("--start", help="first candle, YYYY-MM-DD (UTC)")] = "2024-01-01",
    exchange: Annotated[str, typer.Option("--exchange", help="store under this name")] = "simulated",
    start_price: Annotated[float | None, typer.Option("--start-price", help="price of the first open")] = None,
) -> None:
    """Generate a synthetic market (labelled synthetic) and store it."""
    from tradefleet.adapters.data.generator import generate_days

    pair = normalize_pair(pair)
    start_ms = parse_when(start, "--start")
    if not (math.isfinite(days) and days > 0):
        raise ConfigError(f"--days must be positive, got {days:g}", hint="for example --days 365")
    store = _store(ctx)
    with progress("generating", 2) as advance:
        frame = generate_days(pair, timeframe, days=days, seed=seed, start_ms=start_ms, start_price=start_price)
        advance(1)
        added = store.write(exchange, pair, timeframe, frame, synthetic=True)
        advance(1)
    typer.echo(
        f"{exchange} {pair} {timeframe}: {len(frame)} synthetic candles (seed {seed}), {added} new "
        f"→ {store.path(exchange, pair, timeframe)}"
    )


@data_app.command("download")
@handle_errors
def download_cmd(
    ctx: typer.Context,
    *,
    pair: PairOption,
    since: Annotated[str, typer.Option("--since", help="first candle, YYYY-MM-DD or ISO 8601 (UTC)")],
    timeframe: TimeframeOption = "1h",
    exchange: Annotated[str, typer.Option("--exchange", help="ccxt exchange id")] = "binance",
    until: Annotated[str | None, typer.Option("--until", help="stop before this time (default: now)")] = None,
    api_url: Annotated[
        str | None, typer.Option("--api-url", help="REST base URL override (a proxy or a local mirror)")
    ] = None,
) -> None:
    """Download closed candles from an exchange; an interrupted download resumes where it stopped."""
    from tradefleet.adapters.data.downloader import download, make_client

    pair = normalize_pair(pair)
    step = timeframe_to_ms(timeframe)
    since_ms = parse_when(since, "--since")
    until_ms = parse_when(until, "--until") if until is not None else None
    if until_ms is not None and until_ms <= since_ms:
        raise ConfigError("--until must be after --since")
    store = _store(ctx)
    client = make_client(exchange, api_url=api_url)
    try:
        end = until_ms if until_ms is not None else int(time.time() * 1000)
        with progress(f"downloading {pair} {timeframe}", max(1, (end - since_ms) // step)) as advance:
            result = download(
                store,
                exchange,
                pair,
                timeframe,
                since_ms=since_ms,
                until_ms=until_ms,
                client=client,
                progress=advance,
            )
    finally:
        client.close()
    first, last = result.first_ms, result.last_ms
    span = f"{_when(first)} → {_when(last)}" if first is not None and last is not None else "none"
    typer.echo(
        f"{result.exchange} {result.pair} {result.timeframe}: {result.added} new candles in {result.pages} "
        f"page(s); stored {span}"
    )
