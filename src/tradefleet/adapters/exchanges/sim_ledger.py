"""Durable ledger of the simulated venue: a SQLite file that survives ``kill -9`` like a real venue would.

The ledger belongs to the *venue*, not to TradeFleet's database: after a crash the bot reconciles against it
exactly as it would against Binance.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS balances (
    account TEXT NOT NULL, currency TEXT NOT NULL, free REAL NOT NULL, used REAL NOT NULL,
    PRIMARY KEY (account, currency));
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT NOT NULL, client_order_id TEXT NOT NULL,
    symbol TEXT NOT NULL, side TEXT NOT NULL, type TEXT NOT NULL, amount REAL NOT NULL,
    price REAL, stop_price REAL, status TEXT NOT NULL, filled REAL NOT NULL DEFAULT 0,
    average REAL NOT NULL DEFAULT 0, fee REAL NOT NULL DEFAULT 0, reserved REAL NOT NULL DEFAULT 0,
    ts_ms INTEGER NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS orders_open_client_id ON orders (account, client_order_id)
    WHERE status = 'OPEN';
CREATE INDEX IF NOT EXISTS orders_client_id ON orders (account, client_order_id);
CREATE INDEX IF NOT EXISTS orders_open_symbol ON orders (symbol, status);
CREATE TABLE IF NOT EXISTS fills (
    trade_id INTEGER PRIMARY KEY AUTOINCREMENT, order_id INTEGER NOT NULL REFERENCES orders(id),
    account TEXT NOT NULL, price REAL NOT NULL, amount REAL NOT NULL, fee REAL NOT NULL, ts_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS fills_order ON fills (order_id);
"""


class Ledger:
    """Thread-safe wrapper over one SQLite connection; ``path=None`` keeps the ledger in memory."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path) if path else ":memory:", isolation_level=None, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        if path is not None:
            self._conn.execute("PRAGMA journal_mode=WAL")
            # The venue stands for a remote exchange: WAL + NORMAL survives kill -9 (the OS keeps the WAL);
            # only power loss could drop its last transactions, which a real venue would not.
            self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.executescript(SCHEMA)
        self._lock = threading.RLock()
        self._depth = 0

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """Run a block in one immediate transaction (nested calls join it)."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")
            finally:
                self._depth = 0

    def query(self, sql: str, args: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()
