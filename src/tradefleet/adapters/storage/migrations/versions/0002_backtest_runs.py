"""Backtest runs: one row per ``tradefleet backtest`` run, for ``tradefleet backtest history``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the types this revision used: later changes to the table module must not rewrite history.
_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_INT = sa.BigInteger()
_FLOAT: sa.Double[float] = sa.Double()
_STR = sa.String()


def upgrade() -> None:
    op.create_table(
        "backtest_runs",
        sa.Column("id", _KEY, autoincrement=True, nullable=False),
        sa.Column("created_ms", _INT, nullable=False),
        sa.Column("strategy", _STR, nullable=False),
        sa.Column("pairs", _STR, nullable=False),
        sa.Column("timeframe", _STR, nullable=False),
        sa.Column("timerange", _STR, nullable=False),
        sa.Column("start_ms", _INT, nullable=True),
        sa.Column("end_ms", _INT, nullable=True),
        sa.Column("engine", _STR, nullable=False),
        sa.Column("trades", _INT, nullable=False),
        sa.Column("profit_pct", _FLOAT, nullable=False),
        sa.Column("max_drawdown_pct", _FLOAT, nullable=False),
        sa.Column("sharpe", _FLOAT, nullable=True),
        sa.Column("data_fingerprint", _STR, nullable=False),
        sa.Column("elapsed_s", _FLOAT, nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_backtest_runs"),
    )
    op.create_index("ix_backtest_runs_strategy_created_ms", "backtest_runs", ["strategy", "created_ms"])


def downgrade() -> None:
    op.drop_index("ix_backtest_runs_strategy_created_ms", table_name="backtest_runs")
    op.drop_table("backtest_runs")
