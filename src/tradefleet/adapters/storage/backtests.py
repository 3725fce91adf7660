"""Stored backtest runs: one row per run with its settings, data fingerprint and headline metrics.

The table belongs to the trading database's metadata (``tables.Base``), so the migrations and the
schema-vs-metadata check cover it; migration ``0002`` creates it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Engine, Index, Table, insert, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from tradefleet.adapters.storage.db import make_engine, storage_error
from tradefleet.adapters.storage.tables import Base, SurrogateKey


class BacktestRunRow(Base):
    """One backtest run: what was run on which data, and how it did."""

    __tablename__ = "backtest_runs"
    __table_args__ = (Index(None, "strategy", "created_ms"),)

    id: Mapped[int] = mapped_column(SurrogateKey, primary_key=True, autoincrement=True)
    created_ms: Mapped[int]
    strategy: Mapped[str]
    pairs: Mapped[str]  # space-separated, in the order given
    timeframe: Mapped[str]
    timerange: Mapped[str]
    start_ms: Mapped[int | None]
    end_ms: Mapped[int | None]
    engine: Mapped[str]
    trades: Mapped[int]
    profit_pct: Mapped[float]
    max_drawdown_pct: Mapped[float]
    sharpe: Mapped[float | None]
    data_fingerprint: Mapped[str]
    elapsed_s: Mapped[float]
    config: Mapped[dict[str, Any]]
    metrics: Mapped[dict[str, Any]]


backtest_runs = cast(Table, BacktestRunRow.__table__)


@dataclass(frozen=True)
class BacktestRunRecord:
    """A stored run as the history shows it; ``id`` is 0 until saved."""

    created_ms: int
    strategy: str
    pairs: tuple[str, ...]
    timeframe: str
    timerange: str
    start_ms: int | None
    end_ms: int | None
    engine: str
    trades: int
    profit_pct: float
    max_drawdown_pct: float
    sharpe: float | None
    data_fingerprint: str
    elapsed_s: float
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    id: int = 0


_COLUMNS = (
    "created_ms", "strategy", "pairs", "timeframe", "timerange", "start_ms", "end_ms", "engine", "trades",
    "profit_pct", "max_drawdown_pct", "sharpe", "data_fingerprint", "elapsed_s", "config", "metrics",
)  # fmt: skip


def _row(record: BacktestRunRecord) -> dict[str, Any]:
    row = {name: getattr(record, name) for name in _COLUMNS}
    row["pairs"] = " ".join(record.pairs)
    return row


def _record(row: Any) -> BacktestRunRecord:
    values = {name: getattr(row, name) for name in _COLUMNS}
    values["pairs"] = tuple(str(row.pairs).split())
    return BacktestRunRecord(id=int(row.id), **values)


class BacktestRunStore:
    """Save and read backtest runs; the schema must be migrated (``adapters.storage.db.upgrade``)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._owns_engine = False

    @classmethod
    def from_url(cls, url: str) -> BacktestRunStore:
        """Open the store on its own engine, which :meth:`close` disposes of."""
        store = cls(make_engine(url))
        store._owns_engine = True
        return store

    def close(self) -> None:
        if self._owns_engine:
            self._engine.dispose()

    def __enter__(self) -> BacktestRunStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def save_run(self, record: BacktestRunRecord) -> int:
        """Insert a run and return its id."""
        try:
            with self._engine.begin() as conn:
                result = conn.execute(insert(backtest_runs).values(_row(record)).returning(backtest_runs.c.id))
                return int(result.scalar_one())
        except SQLAlchemyError as exc:
            raise storage_error("saving a backtest run", exc) from exc

    def list_runs(self, limit: int | None = 50, strategy: str | None = None) -> list[BacktestRunRecord]:
        """Return the newest runs first, optionally of one strategy only."""
        query = select(backtest_runs).order_by(backtest_runs.c.id.desc())
        if strategy is not None:
            query = query.where(backtest_runs.c.strategy == strategy)
        if limit is not None:
            query = query.limit(limit)
        try:
            with self._engine.connect() as conn:
                return [_record(row) for row in conn.execute(query)]
        except SQLAlchemyError as exc:
            raise storage_error("reading backtest runs", exc) from exc

    def get_run(self, run_id: int) -> BacktestRunRecord | None:
        """Return one run by id, or None."""
        try:
            with self._engine.connect() as conn:
                row = conn.execute(select(backtest_runs).where(backtest_runs.c.id == run_id)).first()
        except SQLAlchemyError as exc:
            raise storage_error("reading a backtest run", exc) from exc
        return _record(row) if row is not None else None
