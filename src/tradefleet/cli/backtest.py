"""``tradefleet backtest`` (run one or several strategies over stored candles) and ``backtest history``.

Options that take several values accept them the way Freqtrade users type them: ``--pairs ETH/BTC ADA/BTC``,
as well as ``--pairs ETH/BTC --pairs ADA/BTC`` and ``--pairs ETH/BTC,ADA/BTC``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from tradefleet.cli._common import fail, handle_errors, progress, settings_from
from tradefleet.core.errors import ConfigError

MULTI_VALUE_FLAGS = frozenset({"--pairs", "--strategy-list", "--export", "--spaces"})


def expand_multi_values(args: Sequence[str], flags: Iterable[str] = MULTI_VALUE_FLAGS) -> list[str]:
    """Rewrite ``--flag a b c`` as ``--flag a --flag b --flag c`` for the options that take several values.

    Values run until the next argument that starts with ``-``; everything after ``--`` is left alone.
    """
    wanted = set(flags)
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            out.extend(args[i:])
            break
        out.append(arg)
        i += 1
        if arg not in wanted:
            continue
        first = True
        while i < len(args) and not args[i].startswith("-"):
            if not first:
                out.append(arg)
            out.append(args[i])
            first = False
            i += 1
    return out


def split_values(values: Iterable[str] | None) -> list[str]:
    """Return the values of a repeatable option, with comma- or space-separated items split apart."""
    found: list[str] = []
    for value in values or ():
        found.extend(v for v in value.replace(",", " ").split() if v)
    return list(dict.fromkeys(found))


class MultiValueGroup(TyperGroup):
    """A command group whose own options may take several values (see :func:`expand_multi_values`)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, expand_multi_values(args))


class MultiValueCommand(TyperCommand):
    """A command whose options may take several values (see :func:`expand_multi_values`)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, expand_multi_values(args))


backtest_app = typer.Typer(
    name="backtest",
    cls=MultiValueGroup,
    invoke_without_command=True,
    rich_markup_mode=None,
    help="Backtest strategies on stored candles; `backtest history` lists earlier runs.",
)


def register(app: typer.Typer) -> None:
    """Add the ``backtest`` command group to ``app``."""
    app.add_typer(backtest_app, name="backtest")


@backtest_app.callback()
@handle_errors
def backtest(
    ctx: typer.Context,
    strategy: Annotated[str | None, typer.Option("--strategy", "-s", help="strategy name or path.py[:Class]")] = None,
    pairs: Annotated[
        list[str] | None, typer.Option("--pairs", "-p", help="pairs, e.g. --pairs ETH/BTC ADA/BTC")
    ] = None,
    timeframe: Annotated[
        str | None, typer.Option("--timeframe", "-t", help="candle timeframe (default: the strategy's)")
    ] = None,
    timerange: Annotated[
        str | None, typer.Option("--timerange", help="YYYYMMDD-YYYYMMDD, open ends allowed (default: all data)")
    ] = None,
    stake: Annotated[float | None, typer.Option("--stake", help="stake per trade (quote, or % with percent)")] = None,
    stake_mode: Annotated[str | None, typer.Option("--stake-mode", help="fixed or percent")] = None,
    max_open_trades: Annotated[int | None, typer.Option("--max-open-trades", help="open trades at most")] = None,
    balance: Annotated[float | None, typer.Option("--balance", help="starting balance in the quote currency")] = None,
    fee: Annotated[float | None, typer.Option("--fee", help="taker fee as a fraction, e.g. 0.001")] = None,
    engine: Annotated[str, typer.Option("--engine", help="fast (compiled kernel) or event (the live engine)")] = "fast",
    export: Annotated[list[str] | None, typer.Option("--export", help="json and/or html (repeatable)")] = None,
    export_dir: Annotated[
        Path | None, typer.Option("--export-dir", help="where exports go (default <data_dir>/backtest_results)")
    ] = None,
    strategy_list: Annotated[
        list[str] | None, typer.Option("--strategy-list", help="several strategies, compared side by side")
    ] = None,
    check_lookahead: Annotated[
        bool, typer.Option("--check-lookahead", help="also check the strategy for look-ahead on this data")
    ] = False,
    params: Annotated[
        str | None, typer.Option("--params", help="strategy parameters: a JSON object or a JSON file")
    ] = None,
    exchange: Annotated[
        str | None, typer.Option("--exchange", help="prefer candles stored under this exchange name")
    ] = None,
) -> None:
    """Backtest a strategy (or --strategy-list) over stored candles, print the report and store the run."""
    if ctx.invoked_subcommand is not None:
        return
    from tradefleet.services.backtest.data import parse_timerange

    targets = split_values(strategy_list) or ([strategy] if strategy else [])
    if not targets:
        raise fail("--strategy is required (or --strategy-list A B C)", code=2)
    pair_list = split_values(pairs)
    if not pair_list:
        raise fail("--pairs is required, e.g. --pairs ETH/BTC ADA/BTC", code=2)
    if engine not in ("fast", "event"):
        raise ConfigError(f"--engine {engine!r} is not fast or event")
    formats = [f.lower() for f in split_values(export)]
    bad = [f for f in formats if f not in ("json", "html")]
    if bad:
        raise ConfigError(f"--export {bad[0]!r} is not json or html")
    if stake_mode not in (None, "fixed", "percent"):
        raise ConfigError(f"--stake-mode {stake_mode!r} is not fixed or percent")
    settings = settings_from(ctx)
    session_settings = _session_settings(
        settings, pair_list, timeframe, parse_timerange(timerange), stake, stake_mode, max_open_trades, balance, fee,
        engine, exchange, params,
    )  # fmt: skip
    _run(settings, targets, session_settings, formats, export_dir, check_lookahead)


def _session_settings(
    settings: Any,
    pairs: list[str],
    timeframe: str | None,
    timerange: Any,
    stake: float | None,
    stake_mode: str | None,
    max_open_trades: int | None,
    balance: float | None,
    fee: float | None,
    engine: str,
    exchange: str | None,
    params: str | None,
) -> Any:
    from tradefleet.adapters.data.store import normalize_pair
    from tradefleet.core.candles import timeframe_to_ms
    from tradefleet.core.risk import RiskSettings
    from tradefleet.services.backtest.session import BacktestSettings, read_params_arg

    if timeframe is not None:
        timeframe_to_ms(timeframe)
    risk = settings.risk.model_dump()
    if stake is not None:
        risk.update(stake_mode=stake_mode or "fixed", stake_amount=stake)
    elif stake_mode is not None:
        risk.update(stake_mode=stake_mode)
    if max_open_trades is not None:
        risk.update(max_open_trades=max_open_trades, max_per_pair=min(risk["max_per_pair"], max_open_trades))
    if balance is not None and not balance > 0:
        raise ConfigError(f"--balance must be positive, got {balance:g}")
    if fee is not None and not 0 <= fee < 0.1:
        raise ConfigError(f"--fee must be a fraction in [0, 0.1), got {fee:g}", hint="0.001 is 0.1%")
    return BacktestSettings(
        pairs=tuple(normalize_pair(p) for p in pairs),
        timeframe=timeframe,
        timerange=timerange,
        risk=RiskSettings.model_validate(risk),
        starting_balance=balance if balance is not None else settings.simulated.starting_balance,
        taker_fee=fee if fee is not None else settings.simulated.taker_fee,
        slippage_bps=settings.simulated.slippage_bps,
        engine="event" if engine == "event" else "fast",
        exchange=exchange,
        params=read_params_arg(params),
    )


def _run(
    settings: Any,
    targets: list[str],
    session_settings: Any,
    formats: list[str],
    export_dir: Path | None,
    lookahead: bool,
) -> None:
    from tradefleet.adapters.data.store import CandleStore
    from tradefleet.adapters.reports import render_text
    from tradefleet.services.backtest import session
    from tradefleet.services.backtest.history import record_of, save_runs

    store = CandleStore(settings.candles_dir)
    # Check every strategy and load all data before anything runs or is written.
    prepared = [session.prepare(t, session_settings, store, settings.strategies_dir) for t in targets]
    findings_total = 0
    outputs = []
    for run in prepared:
        for note in (run.params_source, *run.data.notes):
            if note:
                typer.echo(f"{run.cls.__name__}: {note}", err=True)
        if run.data.synthetic:
            typer.echo(f"note: synthetic candles for {', '.join(run.data.synthetic)}", err=True)
        if lookahead:
            findings_total += _report_lookahead(run, session)
        with progress(f"backtesting {run.cls.__name__}", 1) as advance:
            outputs.append(session.execute(run))
            advance(1)
    ascii_only = not sys.stdout.isatty()
    for out in outputs:
        typer.echo(render_text(out.result, out.metrics, ascii_only=ascii_only))
    if len(outputs) > 1:
        typer.echo(comparison_table(outputs))
    ids = save_runs(settings.database_url, [record_of(o.result, o.metrics, o.prepared.data) for o in outputs])
    for out, run_id in zip(outputs, ids, strict=True):
        typer.echo(f"stored as backtest run #{run_id} ({out.prepared.cls.__name__}); see `tradefleet backtest history`")
    if formats:
        _export(outputs, ids, formats, export_dir or settings.data_dir / "backtest_results")
    if findings_total:
        raise fail(f"look-ahead: {findings_total} column(s) change when future candles are removed (see above)")


def _report_lookahead(run: Any, session: Any) -> int:
    found = session.lookahead_findings(run)
    count = 0
    for pair, findings in found.items():
        if not findings:
            typer.echo(f"look-ahead check {run.cls.__name__} {pair}: no findings")
        for finding in findings:
            typer.echo(f"look-ahead {run.cls.__name__} {pair}: {finding.describe()}")
        count += len(findings)
    return count


def comparison_table(outputs: list[Any]) -> str:
    """Return the side-by-side comparison of several strategies' results."""
    header = ("Strategy", "Trades", "Win%", "Profit %", "Profit", "Max DD %", "Sharpe", "Sortino", "Calmar")
    rows = [header]
    for out in outputs:
        m = out.metrics
        rows.append(
            (
                out.prepared.cls.__name__,
                str(m.trades),
                _num(None if m.win_rate is None else 100 * m.win_rate),
                _num(100 * m.profit_ratio),
                f"{m.profit_abs:.6g} {out.result.config.quote_currency}",
                _num(100 * m.max_drawdown_ratio),
                _num(m.sharpe),
                _num(m.sortino),
                _num(m.calmar),
            )
        )
    return "STRATEGY COMPARISON\n" + _table(rows)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _table(rows: Sequence[Sequence[str]], text_columns: int = 1) -> str:
    """Return rows as aligned columns: the first ``text_columns`` left-aligned, numbers right-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            c.ljust(w) if i < text_columns else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _export(outputs: list[Any], ids: list[int], formats: list[str], folder: Path) -> None:
    from tradefleet.adapters.reports import write_json

    for out, run_id in zip(outputs, ids, strict=True):
        stem = f"backtest-{run_id}-{out.prepared.cls.__name__}"
        if "json" in formats:
            path = write_json(folder / f"{stem}.json", out.result, out.metrics)
            typer.echo(f"exported {path}")
        if "html" in formats:
            try:
                from tradefleet.adapters.reports import html
            except ImportError as exc:
                raise ConfigError(f"--export html needs {exc.name or 'plotly'}", hint="pip install plotly") from None
            path = html.write_html(folder / f"{stem}.html", out.result, out.metrics, out.prepared.data.candles)
            typer.echo(f"exported {path}")


@backtest_app.command("history")
@handle_errors
def history(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", help="newest runs to show")] = 20,
    strategy: Annotated[str | None, typer.Option("--strategy", "-s", help="only runs of this strategy")] = None,
) -> None:
    """List stored backtest runs, newest first."""
    from tradefleet.services.backtest.history import list_runs

    if limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    settings = settings_from(ctx)
    url = settings.database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        typer.echo("no backtest runs stored yet — run `tradefleet backtest --strategy ... --pairs ...`")
        return
    runs = list_runs(url, limit=limit, strategy=strategy)
    if not runs:
        typer.echo("no backtest runs stored yet — run `tradefleet backtest --strategy ... --pairs ...`")
        return
    header = ("ID", "When (UTC)", "Strategy", "Pairs", "TF", "Timerange", "Trades", "Profit %", "Max DD %", "Sharpe")
    rows = [header]
    for r in runs:
        when = datetime.fromtimestamp(r.created_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")
        rows.append(
            (
                str(r.id), when, r.strategy, " ".join(r.pairs), r.timeframe, r.timerange or "all", str(r.trades),
                f"{r.profit_pct:.2f}", f"{r.max_drawdown_pct:.2f}", _num(r.sharpe),
            )
        )  # fmt: skip
    typer.echo(_table(rows, text_columns=6))
