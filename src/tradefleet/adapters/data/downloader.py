"""Download closed candles from a ccxt exchange into a :class:`CandleStore`.

Downloads are resumable: each page is written as it arrives, and the next run continues after the last
stored candle. Only the idempotent ``load_markets`` and ``fetch_ohlcv`` calls are retried, on ccxt network
errors, a bounded number of times. ccxt errors leave this module translated into
:mod:`tradefleet.core.errors`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import ccxt
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from tradefleet.adapters.data.store import CandleStore, normalize_exchange, normalize_pair
from tradefleet.adapters.exchanges.ccxt import rebase_urls
from tradefleet.core.candles import ohlcv_rows_frame, timeframe_to_ms
from tradefleet.core.errors import (
    AuthenticationError,
    ConfigError,
    ExchangeError,
    RateLimitError,
    TemporaryExchangeError,
    TradeFleetError,
    UnknownSymbolError,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
Progress = Callable[[int], None]

# Per-venue ccxt options, declared rather than branched on: candles come from spot markets, and binance
# would otherwise also load its futures and delivery markets (two more endpoints) on every load_markets.
_CCXT_OPTIONS: dict[str, dict[str, Any]] = {
    "binance": {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]}},
}
_DEFAULT_OPTIONS: dict[str, Any] = {"defaultType": "spot"}


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently an idempotent exchange call is retried after a network error."""

    attempts: int = 5
    first_wait: float = 0.5
    max_wait: float = 10.0


@dataclass(frozen=True, slots=True)
class DownloadResult:
    """What one download did."""

    exchange: str
    pair: str
    timeframe: str
    pages: int
    fetched: int
    added: int
    first_ms: int | None
    last_ms: int | None
    resumed_from_ms: int | None


def make_client(exchange_id: str, *, api_url: str | None = None, timeout_ms: int = 30_000) -> Any:
    """Return a rate-limited sync ccxt client; ``api_url`` re-points every REST base URL (proxies, tests)."""
    name = normalize_exchange(exchange_id)
    if name not in ccxt.exchanges:
        raise ConfigError(
            f"unknown exchange {exchange_id!r}",
            hint="use a ccxt exchange id such as binance, kraken, okx, bybit",
        )
    options = _CCXT_OPTIONS.get(name, _DEFAULT_OPTIONS)
    client = getattr(ccxt, name)({"enableRateLimit": True, "timeout": timeout_ms, "options": dict(options)})
    if api_url is not None:
        client.urls["api"] = rebase_urls(client.urls["api"], api_url)
    return client


def download(
    store: CandleStore,
    exchange_id: str,
    pair: str,
    timeframe: str,
    *,
    since_ms: int,
    until_ms: int | None = None,
    client: Any = None,
    progress: Progress | None = None,
    limit: int = 1000,
    retry: RetryPolicy = RetryPolicy(),
) -> DownloadResult:
    """Fetch closed candles opening in ``[since_ms, until_ms)`` (until now when None) into the store.

    Candles already stored are not fetched again; a range before the stored one is filled in too.
    ``progress`` is called with the number of candle slots covered so far, page by page.
    """
    exchange = normalize_exchange(exchange_id)
    pair = normalize_pair(pair)
    step = timeframe_to_ms(timeframe)
    if ":" in pair:
        raise ConfigError(f"cannot download {pair}: only spot pairs are supported", hint="use BASE/QUOTE")
    if limit < 1:
        raise ConfigError(f"invalid page size {limit}", hint="use a limit of 1 or more")
    own = client is None
    client = make_client(exchange) if own else client
    try:
        _call(client.load_markets, retry, f"{exchange}: loading markets")
        _check_market(client, exchange, pair, timeframe)
        forming = client.milliseconds() // step * step  # open time of the still-forming candle
        end = forming if until_ms is None else min(until_ms, forming)
        first, last = store.first_ms(exchange, pair, timeframe), store.last_ms(exchange, pair, timeframe)
        windows, resumed = _windows(since_ms, end, step, first, last)
        if progress is not None and resumed is not None:
            progress(max(0, (resumed - since_ms) // step))
        pages = fetched = added = 0
        for lo, hi in windows:
            cursor = lo
            while cursor < hi:
                rows: list[list[Any]] = _call(
                    partial(client.fetch_ohlcv, pair, timeframe, since=cursor, limit=limit),
                    retry,
                    f"{exchange} {pair} {timeframe}: fetching candles",
                )
                pages += 1
                frame = ohlcv_rows_frame(rows, cursor, hi)
                if len(frame):
                    added += store.write(exchange, pair, timeframe, frame)
                    fetched += len(frame)
                newest = max((int(r[0]) for r in rows), default=None)
                if newest is None or newest < cursor:
                    break  # the venue has nothing more in this window
                covered = min(newest + step, hi)
                if progress is not None:
                    progress((covered - cursor) // step)
                cursor = newest + step
        return DownloadResult(
            exchange=exchange,
            pair=pair,
            timeframe=timeframe,
            pages=pages,
            fetched=fetched,
            added=added,
            first_ms=store.first_ms(exchange, pair, timeframe),
            last_ms=store.last_ms(exchange, pair, timeframe),
            resumed_from_ms=resumed,
        )
    finally:
        if own:
            client.close()


def translate_error(exc: ccxt.BaseError, what: str) -> TradeFleetError:
    """Return the TradeFleet error for a ccxt error; the message keeps ccxt's first 300 characters."""
    text = f"{what}: {type(exc).__name__}: {str(exc)[:300]}"
    if isinstance(exc, ccxt.BadSymbol):
        return UnknownSymbolError(text)
    if isinstance(exc, ccxt.AuthenticationError):
        return AuthenticationError(text)
    if isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
        return RateLimitError(text, hint="the venue is rate limiting us; wait a minute and run it again")
    if isinstance(exc, ccxt.OperationFailed):  # network errors, bad responses: may work later
        return TemporaryExchangeError(text)
    if isinstance(exc, ccxt.NotSupported):
        return ExchangeError(text, hint="this exchange does not offer that through ccxt")
    return ExchangeError(text)


def _call(fn: Callable[[], T], retry: RetryPolicy, what: str) -> T:
    """Run an idempotent exchange call, retrying ccxt network errors (429s and timeouts included)."""
    retrying = Retrying(
        retry=retry_if_exception_type(ccxt.NetworkError),
        stop=stop_after_attempt(max(1, retry.attempts)),
        wait=wait_exponential(multiplier=retry.first_wait, max=retry.max_wait),
        before_sleep=lambda state: _log_retry(state, what),
        reraise=True,
    )
    try:
        return retrying(fn)
    except ccxt.BaseError as exc:
        raise translate_error(exc, what) from exc


def _log_retry(state: RetryCallState, what: str) -> None:
    error = state.outcome.exception() if state.outcome else None
    log.warning("%s failed (attempt %d): %s; retrying", what, state.attempt_number, error)


def _check_market(client: Any, exchange: str, pair: str, timeframe: str) -> None:
    if pair not in (client.markets or {}):
        raise UnknownSymbolError(f"{exchange} does not list {pair}")
    timeframes = getattr(client, "timeframes", None) or {}
    if timeframes and timeframe not in timeframes:
        raise ConfigError(f"{exchange} does not offer {timeframe} candles", hint=f"use one of: {', '.join(timeframes)}")


def _windows(
    since: int, end: int, step: int, first: int | None, last: int | None
) -> tuple[list[tuple[int, int]], int | None]:
    """Return the open-time ranges still to fetch and where fetching resumes after stored candles."""
    if first is None or last is None:
        return ([(since, end)] if since < end else []), None
    windows = [(since, min(first, end))] if since < first else []
    resume = max(since, last + step)
    if resume < end:
        windows.append((resume, end))
    return [(lo, hi) for lo, hi in windows if lo < hi], resume if resume > since else None
