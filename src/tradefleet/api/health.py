"""Dependency checks for ``GET /health``: each component reports in one shape.

A component is ``ok``, ``error`` or ``not_configured``. The answer is 200 when every *required* component is
ok, else 503 (in the one error body, the components under ``error.details``).
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from tradefleet.logs import mask_url_credentials

log = logging.getLogger(__name__)


class HealthStatus(enum.StrEnum):
    OK = "ok"
    ERROR = "error"
    NOT_CONFIGURED = "not_configured"


@dataclass(frozen=True)
class ComponentHealth:
    status: HealthStatus
    required: bool
    latency_ms: float | None = None
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status.value, "required": self.required,
                "latency_ms": self.latency_ms, "detail": self.detail}  # fmt: skip


class HealthCheck(Protocol):
    name: str
    required: bool

    def check(self) -> ComponentHealth: ...


class DatabaseCheck:
    """Storage answers ``SELECT 1`` on a fresh checkout from its engine."""

    def __init__(self, engine: Engine, *, name: str = "storage", required: bool = True) -> None:
        self.engine = engine
        self.name = name
        self.required = required

    def check(self) -> ComponentHealth:
        begin = time.perf_counter()
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1")).scalar_one()
        except SQLAlchemyError as exc:
            # The driver's first line says what failed (no such file, refused); URL credentials masked.
            reason = mask_url_credentials(str(getattr(exc, "orig", exc) or exc).splitlines()[0])
            log.warning("health: %s failed: %s", self.name, reason)
            return ComponentHealth(
                HealthStatus.ERROR, self.required, _ms(begin), f"{self.engine.dialect.name}: {reason}"
            )
        return ComponentHealth(HealthStatus.OK, self.required, _ms(begin), self.engine.dialect.name)


class StaticCheck:
    """A component whose state is known without probing, e.g. ``not configured`` in this process."""

    def __init__(self, name: str, status: HealthStatus = HealthStatus.NOT_CONFIGURED, detail: str | None = None,
                 *, required: bool = False) -> None:  # fmt: skip
        self.name = name
        self.required = required
        self._health = ComponentHealth(status, required, None, detail)

    def check(self) -> ComponentHealth:
        return self._health


class CallableCheck:
    """Adapt a function returning ``(ok, detail)``, or None when the component is not configured."""

    def __init__(self, name: str, probe: Callable[[], tuple[bool, str] | None], *, required: bool = False) -> None:
        self.name = name
        self.required = required
        self._probe = probe

    def check(self) -> ComponentHealth:
        begin = time.perf_counter()
        try:
            result = self._probe()
        except Exception as exc:  # a probe failing is the component failing, not the endpoint
            log.warning("health: %s probe raised", self.name, exc_info=exc)
            return ComponentHealth(HealthStatus.ERROR, self.required, _ms(begin), type(exc).__name__)
        if result is None:
            return ComponentHealth(HealthStatus.NOT_CONFIGURED, self.required)
        ok, detail = result
        return ComponentHealth(HealthStatus.OK if ok else HealthStatus.ERROR, self.required, _ms(begin), detail)


@dataclass(frozen=True)
class HealthReport:
    components: dict[str, ComponentHealth]

    @property
    def healthy(self) -> bool:
        return all(c.status is HealthStatus.OK for c in self.components.values() if c.required)

    def failing(self) -> list[str]:
        return [n for n, c in self.components.items() if c.required and c.status is not HealthStatus.OK]

    def as_dict(self) -> dict[str, Any]:
        return {name: c.as_dict() for name, c in self.components.items()}


def run_checks(checks: Iterable[HealthCheck]) -> HealthReport:
    """Run every check in order and collect their answers."""
    return HealthReport({c.name: c.check() for c in checks})


def _ms(begin: float) -> float:
    return round((time.perf_counter() - begin) * 1000, 3)
