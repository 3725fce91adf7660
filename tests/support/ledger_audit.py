"""Compare the simulated venue's ledger with TradeFleet's database, the way an operator would after a crash.

The venue (``adapters/exchanges/sim_ledger.py``) keeps its own SQLite file of balances, orders and fills,
one account per bot. TradeFleet's database (``adapters/storage/tables.py``) is the source of truth of what
the bots *think* happened. :func:`audit` reads both, read-only, and lists every disagreement:

* **lost**: the database says the venue accepted an order (OPEN, PARTIALLY_FILLED, FILLED or CANCELED with
  an exchange order id) but the ledger has no such order;
* **unresolved**: database orders still ``PENDING_SUBMIT`` or ``UNKNOWN`` (acceptable right after a crash,
  never after a clean run: start-up reconciliation must resolve them);
* **duplicated**: more than one ledger order of one account with one client order id (the venue executed
  a resend), or more than one database row with one client order id;
* **orphans**: ledger orders no database row knows (placed without committing the intent first);
* **status mismatches**: both know the order but disagree on its status, account or exchange order id;
* **fill mismatches**: fills per order differ (trade ids, price, amount, fee), or the order totals do;
* **trade mismatches**: a trade's amount or rates disagree with the orders that opened and closed it;
* **position mismatches**: per bot (one ledger account), the base currency held on the venue is not the sum
  of the bot's open trades, or the quote balance is not starting balance + realised PnL − cost of open trades;
* **stop mismatches** and **unprotected** (informational: a kill switch legitimately cancels stops): open
  trades with more than one live stop, whose live stop rests at another price than the trade's stop price,
  or with no live stop at all; live stops of closed trades.

Every list entry is a sentence naming the bot, the client order id and both values, so a failing
``assert result.ok, result.report()`` explains itself.
"""

from __future__ import annotations

import math
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from tradefleet.adapters.storage import tables as t
from tradefleet.adapters.storage.db import make_engine

ACCEPTED = ("OPEN", "PARTIALLY_FILLED", "FILLED", "CANCELED")
UNRESOLVED = ("PENDING_SUBMIT", "UNKNOWN")
FINAL = ("FILLED", "CANCELED", "REJECTED")
# Database status → ledger status it must agree with (the simulated venue never fills partially).
EXPECTED_LEDGER_STATUS = {
    "OPEN": "OPEN",
    "PARTIALLY_FILLED": "OPEN",
    "FILLED": "FILLED",
    "CANCELED": "CANCELED",
    "REJECTED": None,  # a refused order must not exist on the venue at all
}
REL_TOL = 1e-9  # prices and fees: float noise only
QUOTE_TOL = 1e-6  # quote balances (thousands): summing hundreds of trades stays far below a micro-unit
AMOUNT_TOL = 1e-9  # base amounts: a tenth of the venue's 1e-8 step, so being one step off always shows
LEDGER = "_ledger"  # the key naming the file each ledger row came from (order and fill ids restart per file)


def _close(a: float, b: float, *, rel: float = REL_TOL, abs_tol: float = 1e-12) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_tol)


def _same_amount(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=AMOUNT_TOL)


@dataclass
class AuditResult:
    """Counts and explanations of every disagreement between the venue ledger and the database."""

    ledger_orders: int = 0
    db_orders: int = 0
    ledger_fills: int = 0
    db_fills: int = 0
    db_orders_by_status: dict[str, int] = field(default_factory=dict)
    open_trades: int = 0
    closed_trades: int = 0
    lost: list[str] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    status_mismatches: list[str] = field(default_factory=list)
    fill_mismatches: list[str] = field(default_factory=list)
    trade_mismatches: list[str] = field(default_factory=list)
    position_mismatches: list[str] = field(default_factory=list)
    stop_mismatches: list[str] = field(default_factory=list)
    unprotected: list[str] = field(default_factory=list)
    settled: list[str] = field(default_factory=list)
    positions: dict[str, dict[str, Any]] = field(default_factory=dict)

    PROBLEMS = (
        "lost",
        "unresolved",
        "duplicated",
        "orphans",
        "status_mismatches",
        "fill_mismatches",
        "trade_mismatches",
        "position_mismatches",
    )
    INFORMATIONAL = ("stop_mismatches", "unprotected", "settled")

    def counts(self) -> dict[str, int]:
        """Return the number of findings of each kind (the informational ones included)."""
        return {name: len(getattr(self, name)) for name in (*self.PROBLEMS, *self.INFORMATIONAL)}

    @property
    def ok(self) -> bool:
        """True when ledger and database agree (stop findings are reported but not part of this)."""
        return not any(getattr(self, name) for name in self.PROBLEMS)

    def invariant_violations(self) -> list[str]:
        """Return what must hold at *every* instant, even right after ``kill -9``.

        Reconciliation may still have to resolve in-flight orders (unresolved, an OPEN order the venue has
        filled since, positions that lag by that fill), but it can never repair these: an order the venue
        lost or executed twice, a venue order without a database row (intent not committed first), a
        disagreement about an order the database already holds as final (FILLED, CANCELED, REJECTED), or a
        trade that does not match the orders that made it.
        """
        return [*self.lost, *self.duplicated, *self.orphans, *self.settled, *self.trade_mismatches]

    def report(self, limit: int = 15) -> str:
        """Return a readable summary: totals, then up to ``limit`` examples of each finding."""
        lines = [
            f"ledger: {self.ledger_orders} orders, {self.ledger_fills} fills; "
            f"database: {self.db_orders} orders {dict(sorted(self.db_orders_by_status.items()))}, "
            f"{self.db_fills} fills, "
            f"{self.open_trades} open / {self.closed_trades} closed trades",
            "findings: " + ", ".join(f"{k}={v}" for k, v in self.counts().items()),
        ]
        for name in (*self.PROBLEMS, *self.INFORMATIONAL):
            items = getattr(self, name)
            if items:
                lines.append(f"{name} ({len(items)}):")
                lines.extend(f"  - {item}" for item in items[:limit])
                if len(items) > limit:
                    lines.append(f"  ... and {len(items) - limit} more")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- reading
def _read_ledger(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    if not path.is_file():
        raise FileNotFoundError(f"no venue ledger at {path}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        orders = [dict(r) for r in conn.execute("SELECT * FROM orders ORDER BY id")]
        fills = [dict(r) for r in conn.execute("SELECT * FROM fills ORDER BY trade_id")]
        balances = [dict(r) for r in conn.execute("SELECT * FROM balances")]
    finally:
        conn.close()
    return orders, fills, balances


def _read_ledgers(paths: list[Path]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Read and merge several ledgers; every row is tagged with its file (``LEDGER``) as ids restart per file."""
    orders: list[dict[str, Any]] = []
    fills: list[dict[str, Any]] = []
    balances: list[dict[str, Any]] = []
    for path in paths:
        rows = _read_ledger(path)
        for merged, part in zip((orders, fills, balances), rows, strict=True):
            merged.extend({**row, LEDGER: str(path)} for row in part)
    return orders, fills, balances


def venue_trade_id(fill: dict[str, Any]) -> str:
    """The trade id the simulated venue reports for a ledger fill row (``account:sequence``)."""
    return f"{fill['account']}:{fill['trade_id']}"


def _read_db(database_url: str) -> dict[str, list[dict[str, Any]]]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return {
                name: [dict(r._mapping) for r in conn.execute(select(table))]
                for name, table in (
                    ("bots", t.bots),
                    ("orders", t.orders),
                    ("fills", t.fills),
                    ("trades", t.trades),
                )
            }
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------------------------- audit
def audit(
    ledger_path: str | Path | Sequence[str | Path],
    database_url: str,
    *,
    starting_balances: dict[str, float] | None = None,
    exchange: str = "simulated",
) -> AuditResult:
    """Compare the venue ledger at ``ledger_path`` (or several, e.g. one per bot) with the database.

    ``starting_balances`` (bot id → quote funded at account opening) defaults to each bot's configured
    ``starting_balance`` in the ``bots`` table. Only bots that have a ledger account are checked for
    positions; every database order and ledger order is checked. Several ledgers are merged: their accounts
    must not overlap (an account found in two ledgers is a position mismatch).
    """
    paths = [ledger_path] if isinstance(ledger_path, str | Path) else list(ledger_path)
    l_orders, l_fills, l_balances = _read_ledgers([Path(p) for p in paths])
    db = _read_db(database_url)
    result = AuditResult(
        ledger_orders=len(l_orders),
        db_orders=len(db["orders"]),
        ledger_fills=len(l_fills),
        db_fills=len(db["fills"]),
        db_orders_by_status=dict(Counter(o["status"] for o in db["orders"])),
        open_trades=sum(1 for tr in db["trades"] if tr["is_open"]),
        closed_trades=sum(1 for tr in db["trades"] if not tr["is_open"]),
    )
    ledger_by_key = _check_duplicates(result, l_orders, db["orders"])
    db_by_coid = {o["client_order_id"]: o for o in db["orders"]}
    _check_orders(result, ledger_by_key, db_by_coid)
    _check_fills(result, ledger_by_key, l_fills, db_by_coid, db["fills"], exchange)
    _check_trades(result, db_by_coid, db["trades"])
    _check_positions(result, db, l_balances, starting_balances)
    _check_stops(result, db_by_coid, db["trades"], ledger_by_key)
    return result


def _check_duplicates(
    result: AuditResult, l_orders: list[dict[str, Any]], db_orders: list[dict[str, Any]]
) -> dict[tuple[str, str], dict[str, Any]]:
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in l_orders:
        grouped[(row["account"], row["client_order_id"])].append(row)
    for (account, coid), rows in sorted(grouped.items()):
        if len(rows) > 1:
            desc = ", ".join(f"#{r['id']} {r['type']} {r['side']} {r['amount']} {r['status']}" for r in rows)
            result.duplicated.append(f"venue has {len(rows)} orders of {account} with client id {coid}: {desc}")
    for coid, n in sorted(Counter(o["client_order_id"] for o in db_orders).items()):
        if n > 1:
            result.duplicated.append(f"database has {n} order rows with client id {coid}")
    # Keep the latest ledger order per key (what a look-up by client order id returns).
    return {key: max(rows, key=lambda r: r["id"]) for key, rows in grouped.items()}


def _mismatch(result: AuditResult, bucket: list[str], order: dict[str, Any], text: str) -> None:
    """Record a disagreement; one about an order the database holds as final is also a settled one."""
    bucket.append(text)
    if order["status"] in FINAL:
        result.settled.append(text)


def _describe(order: dict[str, Any]) -> str:
    return (
        f"{order['bot_id']} {order['intent']} {order['type']} {order['side']} {order['pair']} "
        f"{order['client_order_id']}"
    )


def _check_orders(
    result: AuditResult,
    ledger_by_key: dict[tuple[str, str], dict[str, Any]],
    db_by_coid: dict[str, dict[str, Any]],
) -> None:
    ledger_by_coid: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (_account, coid), row in ledger_by_key.items():
        ledger_by_coid[coid].append(row)
    for coid, order in db_by_coid.items():
        venue = ledger_by_key.get((order["bot_id"], coid))
        status = order["status"]
        if status in UNRESOLVED:
            seen = f"venue has it as {venue['status']}" if venue else "venue has no such order"
            result.unresolved.append(f"{_describe(order)} is still {status} ({seen})")
            continue
        if venue is None:
            elsewhere = [r["account"] for r in ledger_by_coid.get(coid, [])]
            if elsewhere:
                _mismatch(
                    result,
                    result.status_mismatches,
                    order,
                    f"{_describe(order)} is on the venue under account(s) {elsewhere}, not {order['bot_id']}",
                )
            elif status in ACCEPTED:
                result.lost.append(
                    f"{_describe(order)} is {status} with exchange id {order['exchange_order_id']!r} "
                    "in the database but the venue has no such order"
                )
            continue
        expected = EXPECTED_LEDGER_STATUS[status]
        if expected != venue["status"]:
            _mismatch(
                result,
                result.status_mismatches,
                order,
                f"{_describe(order)}: database says {status}, venue says {venue['status']} (#{venue['id']})",
            )
        if order["exchange_order_id"] != str(venue["id"]):
            _mismatch(
                result,
                result.status_mismatches,
                order,
                f"{_describe(order)}: database exchange id {order['exchange_order_id']!r}, venue id {venue['id']}",
            )
    for (account, coid), row in sorted(ledger_by_key.items()):
        if coid not in db_by_coid:
            result.orphans.append(
                f"venue order #{row['id']} of {account} ({row['type']} {row['side']} {row['amount']} "
                f"{row['symbol']}, {row['status']}) client id {coid} is unknown to the database"
            )


def _check_fills(
    result: AuditResult,
    ledger_by_key: dict[tuple[str, str], dict[str, Any]],
    l_fills: list[dict[str, Any]],
    db_by_coid: dict[str, dict[str, Any]],
    db_fills: list[dict[str, Any]],
    exchange: str,
) -> None:
    venue_fills: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for fill in l_fills:
        venue_fills[(fill[LEDGER], fill["order_id"])].append(fill)
    ours: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for fill in db_fills:
        if fill["exchange"] != exchange:
            continue
        ours[fill["client_order_id"]].append(fill)
        if fill["client_order_id"] not in db_by_coid:
            text = f"database fill {fill['trade_id']} names client id {fill['client_order_id']}, which has no order row"
            result.fill_mismatches.append(text)
            result.settled.append(text)
    for coid, order in db_by_coid.items():
        venue = ledger_by_key.get((order["bot_id"], coid))
        if venue is None:
            if ours.get(coid):
                _mismatch(
                    result,
                    result.fill_mismatches,
                    order,
                    f"{_describe(order)} has database fills but no venue order",
                )
            continue
        theirs = {venue_trade_id(f): f for f in venue_fills.get((venue[LEDGER], venue["id"]), [])}
        mine = {f["trade_id"]: f for f in ours.get(coid, [])}
        if order["status"] in UNRESOLVED:
            continue  # reported as unresolved; fills arrive with the resolution
        if set(theirs) != set(mine):
            _mismatch(
                result,
                result.fill_mismatches,
                order,
                f"{_describe(order)}: venue fills {sorted(theirs)}, database fills {sorted(mine)}",
            )
        for trade_id in set(theirs) & set(mine):
            a, b = theirs[trade_id], mine[trade_id]
            for name in ("price", "amount", "fee"):
                if not (_same_amount if name == "amount" else _close)(a[name], b[name]):
                    _mismatch(
                        result,
                        result.fill_mismatches,
                        order,
                        f"{_describe(order)} fill {trade_id}: venue {name} {a[name]!r}, database {b[name]!r}",
                    )
            if b["bot_id"] != order["bot_id"]:
                _mismatch(
                    result,
                    result.fill_mismatches,
                    order,
                    f"{_describe(order)} fill {trade_id} is booked to bot {b['bot_id']}",
                )
        for name in ("filled", "average", "fee"):
            if not (_same_amount if name == "filled" else _close)(order[name], venue[name]):
                _mismatch(
                    result,
                    result.fill_mismatches,
                    order,
                    f"{_describe(order)}: database {name} {order[name]!r}, venue {name} {venue[name]!r}",
                )


def _check_trades(result: AuditResult, db_by_coid: dict[str, dict[str, Any]], trades: list[dict[str, Any]]) -> None:
    entries = Counter(tr["entry_order"] for tr in trades)
    for coid, n in entries.items():
        if n > 1:
            result.trade_mismatches.append(f"{n} trades were opened by the one entry order {coid}")
    for tr in trades:
        name = f"trade {tr['id']} of {tr['bot_id']} on {tr['pair']}"
        entry = db_by_coid.get(tr["entry_order"])
        if entry is None or entry["status"] != "FILLED":
            status = entry["status"] if entry else "missing"
            result.trade_mismatches.append(f"{name}: entry order {tr['entry_order']} is {status}")
        elif not (_same_amount(entry["filled"], tr["amount"]) and _close(entry["average"], tr["open_rate"])):
            result.trade_mismatches.append(
                f"{name}: amount {tr['amount']} @ {tr['open_rate']} but the entry filled "
                f"{entry['filled']} @ {entry['average']}"
            )
        if tr["is_open"]:
            continue
        exit_order = db_by_coid.get(tr["exit_order"] or "")
        if exit_order is None or exit_order["status"] != "FILLED":
            status = exit_order["status"] if exit_order else "missing"
            result.trade_mismatches.append(f"{name}: closed by order {tr['exit_order']} which is {status}")
        elif not (_same_amount(exit_order["filled"], tr["amount"]) and _close(exit_order["average"], tr["close_rate"])):
            result.trade_mismatches.append(
                f"{name}: closed {tr['amount']} @ {tr['close_rate']} but the exit filled "
                f"{exit_order['filled']} @ {exit_order['average']}"
            )
    # Every filled entry must have opened a trade, every filled exit or stop must have closed one.
    opened = set(entries)
    closed = {tr["exit_order"] for tr in trades if not tr["is_open"]}
    for coid, order in db_by_coid.items():
        if order["status"] != "FILLED" or order["filled"] <= 0:
            continue
        if order["intent"] == "entry" and coid not in opened:
            result.trade_mismatches.append(f"{_describe(order)} filled but opened no trade")
        if order["intent"] in ("exit", "stop") and coid not in closed:
            result.trade_mismatches.append(f"{_describe(order)} filled but closed no trade")


def _check_positions(
    result: AuditResult,
    db: dict[str, list[dict[str, Any]]],
    l_balances: list[dict[str, Any]],
    starting_balances: dict[str, float] | None,
) -> None:
    balances: dict[str, dict[str, float]] = defaultdict(dict)
    ledgers: dict[str, set[str]] = defaultdict(set)
    for row in l_balances:
        balances[row["account"]][row["currency"]] = row["free"] + row["used"]
        ledgers[row["account"]].add(row[LEDGER])
    for account, files in sorted(ledgers.items()):
        if len(files) > 1:
            result.position_mismatches.append(f"venue account {account} is in {len(files)} ledgers: {sorted(files)}")
    configs = {b["bot_id"]: b["config"] for b in db["bots"]}
    trades_by_bot: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for tr in db["trades"]:
        trades_by_bot[tr["bot_id"]].append(tr)
    for bot_id in sorted(balances):
        config = configs.get(bot_id)
        if config is None:
            result.position_mismatches.append(f"venue account {bot_id} belongs to no bot in the database")
            continue
        quote = config["quote_currency"]
        start = (starting_balances or {}).get(bot_id, config["starting_balance"])
        held: dict[str, float] = defaultdict(float)
        realised = open_cost = 0.0
        for tr in trades_by_bot[bot_id]:
            cost = tr["amount"] * tr["open_rate"] + tr["fee_open"]
            if tr["is_open"]:
                held[tr["pair"].split("/")[0]] += tr["amount"]
                open_cost += cost
            else:
                realised += tr["amount"] * (tr["close_rate"] or 0.0) - tr["fee_close"] - cost
        venue = balances[bot_id]
        expected_quote = start + realised - open_cost
        have_quote = venue.get(quote, 0.0)
        result.positions[bot_id] = {
            "quote": quote,
            "venue_quote": have_quote,
            "expected_quote": expected_quote,
            "realised": realised,
            "open_cost": open_cost,
            "venue_base": {c: v for c, v in venue.items() if c != quote},
            "expected_base": dict(held),
        }
        if not math.isclose(have_quote, expected_quote, rel_tol=1e-12, abs_tol=QUOTE_TOL):
            result.position_mismatches.append(
                f"{bot_id}: venue holds {have_quote:.8f} {quote}, database implies {expected_quote:.8f} "
                f"(start {start} + realised {realised:.8f} − open cost {open_cost:.8f}); "
                f"difference {have_quote - expected_quote:+.8f}"
            )
        for currency in sorted(set(held) | {c for c in venue if c != quote}):
            have, want = venue.get(currency, 0.0), held.get(currency, 0.0)
            if not _same_amount(have, want):
                result.position_mismatches.append(
                    f"{bot_id}: venue holds {have:.10f} {currency}, open trades in the database hold "
                    f"{want:.10f}; difference {have - want:+.10f}"
                )


def _check_stops(
    result: AuditResult,
    db_by_coid: dict[str, dict[str, Any]],
    trades: list[dict[str, Any]],
    ledger_by_key: dict[tuple[str, str], dict[str, Any]],
) -> None:
    live_stops: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for order in db_by_coid.values():
        if order["intent"] == "stop" and order["status"] in ("OPEN", "PARTIALLY_FILLED", *UNRESOLVED):
            live_stops[order["trade_ref"]].append(order)
    for tr in trades:
        if not tr["is_open"]:
            for stop in live_stops.get(tr["id"], []):
                result.stop_mismatches.append(
                    f"{_describe(stop)} is still {stop['status']} but its trade {tr['id']} is closed"
                )
            continue
        stops = live_stops.get(tr["id"], [])
        name = f"open trade {tr['id']} of {tr['bot_id']} on {tr['pair']}"
        if not stops:
            result.unprotected.append(f"{name} has no live stop order (stop price {tr['stop_price']!r})")
        if len(stops) > 1:
            result.stop_mismatches.append(
                f"{name} has {len(stops)} live stops: {[s['client_order_id'] for s in stops]}"
            )
        for stop in stops:
            venue = ledger_by_key.get((stop["bot_id"], stop["client_order_id"]))
            venue_stop = venue["stop_price"] if venue else None
            if venue_stop is None or not math.isclose(venue_stop, tr["stop_price"], rel_tol=1e-9, abs_tol=1e-8):
                result.stop_mismatches.append(
                    f"{name}: stop price {tr['stop_price']!r} in the database, but its live stop "
                    f"{stop['client_order_id']} rests at {venue_stop!r} on the venue"
                )
