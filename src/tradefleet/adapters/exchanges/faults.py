"""Fault injection for the simulated exchange: latency, 5xx, 429 and "accepted, response lost"."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from tradefleet.core.errors import AmbiguousOrderError, RateLimitError, TemporaryExchangeError


@dataclass
class FaultPlan:
    """Probabilities (0..1) of each fault per call; seeded so a failing test can be replayed.

    ``timeout_after_accept`` applies to order placement only: the venue commits the order, then the caller
    sees a timeout, exactly the ambiguous outcome real venues produce.
    """

    latency_s: float = 0.0
    server_error: float = 0.0
    rate_limit: float = 0.0
    timeout_after_accept: float = 0.0
    seed: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("server_error", "rate_limit", "timeout_after_accept"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"fault probability {name}={value} is outside [0, 1]")
        self._rng = random.Random(self.seed)  # noqa: S311 -- reproducible faults, not security

    def _hit(self, name: str, probability: float) -> bool:
        if probability > 0 and self._rng.random() < probability:
            self.counts[name] = self.counts.get(name, 0) + 1
            return True
        return False

    def before_call(self, call: str) -> None:
        """Apply latency and maybe fail before the venue acts (nothing happened on the venue)."""
        if self.latency_s:
            time.sleep(self.latency_s)
        if self._hit("rate_limit", self.rate_limit):
            raise RateLimitError(f"simulated 429 Too Many Requests on {call}", retry_after=0.01)
        if self._hit("server_error", self.server_error):
            raise TemporaryExchangeError(f"simulated 503 Service Unavailable on {call}")

    def after_accept(self, client_order_id: str) -> None:
        """Maybe lose the response of an order the venue has already accepted."""
        if self._hit("timeout_after_accept", self.timeout_after_accept):
            raise AmbiguousOrderError(
                f"simulated timeout after the venue accepted order {client_order_id}",
                hint="look the order up by client order id; never resend it",
            )
