"""The one exception tree of TradeFleet.

Every error raised by TradeFleet code derives from :class:`TradeFleetError` and carries a stable ``code``
and a ``hint`` that tells the user what to do. Adapters translate foreign errors (ccxt, SQLAlchemy, OS)
into this tree at the edge::

    TradeFleetError
    ├── ConfigError                  bad or contradictory settings
    ├── DataError                    candle data problems
    │   ├── CandleValidationError    rows that break OHLC conventions (carries the offending rows)
    │   └── DataNotFoundError        no stored candles for a pair/timeframe/range
    ├── StrategyError                user strategy cannot be loaded or is unsafe
    │   ├── StrategyLoadError        syntax error, missing class or method
    │   └── LookAheadError           strategy reads future candles
    ├── RiskError                    the risk gate refused an action (not a bug: a decision)
    ├── OrderStateError              illegal order state transition
    ├── StorageError                 persistence failures
    └── ExchangeError                anything the venue or the path to it said
        ├── TemporaryExchangeError   retry may succeed (network, 5xx, maintenance)
        │   ├── RateLimitError       429 / DDoS protection; has ``retry_after``
        │   └── AmbiguousOrderError  the order may or may not exist: resolve by client order id
        ├── InvalidOrderError        the venue refused the order (precision, min notional, ...)
        │   └── InsufficientFundsError
        ├── OrderNotFoundError
        ├── UnknownSymbolError
        └── AuthenticationError
"""

from __future__ import annotations

from typing import Any


class TradeFleetError(Exception):
    """Base of every error TradeFleet raises on purpose."""

    code = "error"
    hint = ""

    def __init__(self, message: str, *, hint: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint
        self.details = details

    def one_line(self) -> str:
        """Return the message and the hint as one line for a terminal."""
        return f"{self.message} — {self.hint}" if self.hint else self.message


class ConfigError(TradeFleetError):
    code = "config_error"
    hint = "fix the setting named above in tradefleet.toml, the environment or the command line"


class DataError(TradeFleetError):
    code = "data_error"


class CandleValidationError(DataError):
    code = "invalid_candles"
    hint = "repair or re-download the data; nothing was written"


class DataNotFoundError(DataError):
    code = "data_not_found"
    hint = "import or download candles first (tradefleet data import|download|generate)"


class StrategyError(TradeFleetError):
    code = "strategy_error"


class StrategyLoadError(StrategyError):
    code = "strategy_load_error"
    hint = "fix the strategy file and run `tradefleet strategy validate` again"


class LookAheadError(StrategyError):
    code = "lookahead"
    hint = "use only past candles: no shift(-n), no centred windows, no whole-column statistics"


class RiskError(TradeFleetError):
    code = "risk_refused"


class OrderStateError(TradeFleetError):
    code = "order_state"


class StorageError(TradeFleetError):
    code = "storage_error"


class LeaseLostError(TradeFleetError):
    """A gateway no longer holds the lease of the bot it acted for: another gateway may run the bot now."""

    code = "lease_lost"
    hint = "the bot is dropped here; the gateway holding its lease runs it"
    http_status = 409


class ExchangeError(TradeFleetError):
    code = "exchange_error"


class TemporaryExchangeError(ExchangeError):
    code = "exchange_temporary"
    hint = "the venue or the network failed; the call may succeed later"


class RateLimitError(TemporaryExchangeError):
    code = "exchange_rate_limited"

    def __init__(self, message: str, *, retry_after: float = 1.0, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class AmbiguousOrderError(TemporaryExchangeError):
    """The venue may have accepted the order: never resend, look it up by client order id."""

    code = "order_outcome_unknown"


class InvalidOrderError(ExchangeError):
    code = "invalid_order"


class InsufficientFundsError(InvalidOrderError):
    code = "insufficient_funds"


class OrderNotFoundError(ExchangeError):
    code = "order_not_found"


class UnknownSymbolError(ExchangeError):
    code = "unknown_symbol"
    hint = "check the pair spelling (BASE/QUOTE) and that the exchange lists it"


class AuthenticationError(ExchangeError):
    code = "exchange_auth"
    hint = "check the API key and secret for this exchange account"
