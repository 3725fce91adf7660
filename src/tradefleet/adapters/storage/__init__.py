"""Persistence of trading state: SQLite by default, PostgreSQL for scale-out, both through SQLAlchemy 2.

``make_engine(url)`` opens the database, ``upgrade(url)`` applies the Alembic migrations shipped in this
package (the only way tables are created), and :class:`SqlTradingStore` implements
``core.ports.TradingStore`` on top.
"""

from tradefleet.adapters.storage.db import (
    current_revision,
    head_revision,
    make_engine,
    normalize_url,
    upgrade,
)
from tradefleet.adapters.storage.repository import SqlTradingStore

# Registers the backtest_runs table in the shared metadata, so migrations and schema checks see every table.
from tradefleet.adapters.storage import backtests as _backtests  # noqa: F401  # isort: skip
from tradefleet.adapters.storage import auth_tables as _auth_tables  # noqa: F401  # isort: skip
from tradefleet.adapters.storage import owner_tables as _owner_tables  # noqa: F401  # isort: skip
from tradefleet.adapters.storage import platform_tables as _platform_tables  # noqa: F401  # isort: skip

__all__ = ["SqlTradingStore", "current_revision", "head_revision", "make_engine", "normalize_url", "upgrade"]
