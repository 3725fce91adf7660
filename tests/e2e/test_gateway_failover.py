"""Gateway failover: ``kill -9`` one of two gateways and the other carries on with every bot, nothing lost.

Real processes on the real Redis and a fresh PostgreSQL database: one ``tradefleet serve api`` and two
``tradefleet serve gateway`` (``gw-a`` holds at most 5 bots, ``gw-b`` up to all 10, so the fleet splits
between them and the survivor can take everything). Ten paper bots are created and started over REST, a few
manual orders go through the gateways, then ``gw-a`` is killed with SIGKILL while its bots trade and a
forced entry is on its way to it. Within 30 s every bot must be held by ``gw-b`` and have processed
candles past the moment of the kill (its lease expired, ``gw-b`` claimed it, reconciled it with its venue
account and replayed the candles it missed). After a clean stop, every bot's venue ledger
(``sim/bots/<bot_id>.sqlite``) must agree with the database: no order lost, duplicated or unknown.

The gateways' command stream lives under the fixed ``tradefleet:`` key prefix, so the test runs its
processes on a Redis database of its own (number :data:`REDIS_DB` on the server of
``TRADEFLEET_TEST_REDIS_URL``), emptied before and after.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from sqlalchemy import Engine, func, select

from support.ledger_audit import audit
from tradefleet.adapters.storage import tables as t
from tradefleet.adapters.storage.db import make_engine

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(300)]

REDIS_URL_VAR = "TRADEFLEET_TEST_REDIS_URL"
REDIS_DB = 15
RUN = [sys.executable, "-c", "from tradefleet.cli import main; main()"]
PASSWORD = "failover-admin-pw-1"
SPEED = 600  # 10 one-minute candles per second per bot
LEASE_TTL_S = 4.0
TAKEOVER_LIMIT_S = 30.0
MIN_ORDERS = 60  # in the whole run
MORE_ORDERS = 10  # placed by the taken-over bots on the survivor
STRATEGIES = ("SmaCross", "RsiMeanReversion", "BollingerBreakout", "MacdTrend")
PAIRS = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "BNB/USDT")
BOTS = tuple((f"bot-{i:02d}", STRATEGIES[i % 4], PAIRS[(i + i // 4) % 4]) for i in range(10))
CONFIG = f"""
[simulated]
synthetic_days = 20
synthetic_seed = 11

[paper]
speed = {SPEED}

[log]
level = "WARNING"
json = true
"""
ALL = ("api", "gw-a", "gw-b")
T = TypeVar("T")


def skip_or_fail(reason: str) -> NoReturn:
    if os.environ.get("TRADEFLEET_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (TRADEFLEET_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The test Redis server's database :data:`REDIS_DB`, empty; skip (or fail) without Redis."""
    base = os.environ.get(REDIS_URL_VAR, "")
    if not base:
        skip_or_fail(f"the gateway failover test needs {REDIS_URL_VAR}, e.g. redis://127.0.0.1:6379/0")
    redis = pytest.importorskip("redis")
    url = urlunsplit(urlsplit(base)._replace(path=f"/{REDIS_DB}"))
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.flushdb()
    except redis.RedisError as exc:
        skip_or_fail(f"Redis at {base} does not answer: {exc}")
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


# ---------------------------------------------------------------------------------------------- processes
def clean_env(**extra: str) -> dict[str, str]:
    """The environment without the developer's own TradeFleet settings, plus ``extra``."""
    from tradefleet.config import WELL_KNOWN_ENV

    known = {name for names, _key in WELL_KNOWN_ENV for name in names}
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("TRADEFLEET") and k not in known}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


class Process:
    """A TradeFleet process in ``workdir``; stdout and stderr go to files named after it."""

    def __init__(self, workdir: Path, name: str, args: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.out_path, self.err_path = workdir / f"{name}.stdout", workdir / f"{name}.stderr"
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [*RUN, "--config", "tradefleet.toml", "--data-dir", "var", *args],
                cwd=workdir,
                env=env,
                stdout=out,
                stderr=err,
            )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def describe(self) -> str:
        tail = [
            f"--- {self.name} {label} (last 20 lines):\n"
            + "\n".join(path.read_text(errors="replace").splitlines()[-20:])
            for label, path in (("stdout", self.out_path), ("stderr", self.err_path))
        ]
        return f"{self.name}: exit code {self.proc.poll()}\n" + "\n".join(tail)

    def stop(self, sig: signal.Signals, timeout: float = 30) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def ensure_dead(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class Cluster:
    """The API and the gateways of one test, sharing a work directory, a database and a Redis database."""

    def __init__(self, workdir: Path, database_url: str, redis_url: str, port: int) -> None:
        (workdir / "tradefleet.toml").write_text(CONFIG)
        self.workdir = workdir
        self.env = clean_env(DATABASE_URL=database_url, REDIS_URL=redis_url, TRADEFLEET_ADMIN_PASSWORD=PASSWORD)
        self.url = f"http://127.0.0.1:{port}"
        self.port = port
        self.procs: dict[str, Process] = {}

    def start(self, name: str, *args: str) -> Process:
        self.procs[name] = Process(self.workdir, name, list(args), self.env)
        return self.procs[name]

    def start_gateway(self, gateway_id: str, capacity: int) -> Process:
        args = ["--id", gateway_id, "--capacity", str(capacity), "--lease-ttl", str(LEASE_TTL_S)]
        return self.start(gateway_id, "serve", "gateway", *args)

    def describe(self) -> str:
        return "\n".join(p.describe() for p in self.procs.values())

    def check_alive(self, *names: str) -> None:
        dead = [n for n in names if not self.procs[n].alive()]
        assert not dead, f"{dead} ended early\n{self.describe()}"

    def close(self) -> None:
        for proc in self.procs.values():
            proc.ensure_dead()


def wait_for(what: str, check: Callable[[], T | None], timeout: float, cluster: Cluster, *alive: str) -> T:
    """Poll ``check`` until it returns something truthy; fail (with the processes' output) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        cluster.check_alive(*alive)
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{cluster.describe()}")
        time.sleep(0.2)


# ---------------------------------------------------------------------------------------------- REST
class Rest:
    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=30)

    def login(self) -> bool:
        try:
            answer = self.client.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
        except httpx.TransportError:
            return False
        assert answer.status_code == 200, answer.text
        self.client.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
        return True

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, expect: int = 200) -> Any:
        answer = self.client.request(method, f"/api/v1/bots{path}", json=body)
        assert answer.status_code == expect, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json()

    def statuses(self) -> dict[str, dict[str, Any]]:
        return {bot_id: self.call("GET", f"/{bot_id}/status") for bot_id, _s, _p in BOTS}

    def holders(self) -> dict[str, str | None]:
        return {bot_id: status["gateway"] for bot_id, status in self.statuses().items()}


# ---------------------------------------------------------------------------------------------- database
def orders_by_bot(engine: Engine) -> dict[str, int]:
    query = select(t.orders.c.bot_id, func.count()).group_by(t.orders.c.bot_id)
    with engine.connect() as conn:
        return {bot_id: int(n) for bot_id, n in conn.execute(query)}


def market_ms_at(engine: Engine, wall_ms: int) -> int:
    """The shared market clock's time at wall time ``wall_ms`` (from the anchor the gateways share)."""
    with engine.connect() as conn:
        value = conn.execute(select(t.kv_state.c.value).where(t.kv_state.c.key == "gateway.clock")).scalar_one()
    anchor = json.loads(value)
    return int(anchor["market_origin_ms"] + (wall_ms - anchor["wall_origin_ms"]) * anchor["speed"])


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# ---------------------------------------------------------------------------------------------- steps
def create_and_start_bots(rest: Rest) -> None:
    risk = {"stake_mode": "percent", "stake_amount": 20, "max_open_trades": 3, "max_per_pair": 3}
    for bot_id, strategy, pair in BOTS:
        body = {"bot_id": bot_id, "strategy": strategy, "pairs": [pair], "timeframe": "1m", "risk": risk}
        rest.call("POST", "", body, expect=201)
        rest.call("POST", f"/{bot_id}/start")


def start_split_fleet(cluster: Cluster, rest: Rest) -> tuple[list[str], list[str]]:
    """Start gw-a (5 bots at most), then gw-b (up to 10); return the bots each holds once all 10 run."""
    cluster.start_gateway("gw-a", capacity=5)
    wait_for("gw-a to hold 5 bots", lambda: list(rest.holders().values()).count("gw-a") == 5, 90, cluster, *ALL[:2])
    cluster.start_gateway("gw-b", capacity=len(BOTS))
    holders = wait_for("every bot to have a gateway", lambda: all_held(rest), 90, cluster, *ALL)
    a_bots = sorted(b for b, g in holders.items() if g == "gw-a")
    b_bots = sorted(b for b, g in holders.items() if g == "gw-b")
    assert len(a_bots) == 5 and len(b_bots) == 5, holders
    return a_bots, b_bots


def manual_round(rest: Rest, bot_id: str) -> list[str]:
    """Force-exit every open trade of ``bot_id``, then force an entry; return both answers' statuses."""
    pair = next(p for b, _s, p in BOTS if b == bot_id)
    out = rest.call("POST", f"/{bot_id}/force-exit", {})
    for _ in range(10):
        enter = rest.call("POST", f"/{bot_id}/force-enter", {"pair": pair, "enter_tag": "failover-test"})
        # Refusals a user simply retries: the bot's own entry rests until the next candle opens (paper market
        # orders fill at the next open), or the bot, just started on its gateway, has no price yet.
        if enter["status"] == "done" or not any(t in enter.get("message", "") for t in TRANSIENT_REFUSALS):
            break
        time.sleep(0.2)
    assert enter["status"] == "done", f"forced entry not done: {enter}"
    return [out["status"], enter["status"]]


TRANSIENT_REFUSALS = ("entry refused: entry_pending", "no price for")


def force_enter_in_background(rest: Rest, bot_id: str, answers: list[Any]) -> threading.Thread:
    """Send a forced entry from another thread (it is on its way when the gateway dies)."""
    pair = next(p for b, _s, p in BOTS if b == bot_id)
    client = httpx.Client(base_url=rest.client.base_url, headers=rest.client.headers, timeout=30)

    def send() -> None:
        with client, contextlib.suppress(httpx.HTTPError):
            body = {"pair": pair, "enter_tag": "in-flight"}
            answer = client.post(f"/api/v1/bots/{bot_id}/force-enter", json=body)
            answers.append((answer.status_code, answer.json()))

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def all_held(rest: Rest) -> dict[str, str | None] | None:
    holders = rest.holders()
    return holders if None not in holders.values() else None


def trading(engine: Engine, a_bots: list[str], b_bots: list[str]) -> bool:
    """True once gw-a's bots placed 10 orders and gw-b's some."""
    counts = orders_by_bot(engine)
    return sum(counts.get(b, 0) for b in a_bots) >= 10 and any(counts.get(b) for b in b_bots)


def taken_over(rest: Rest, market_at_kill: int) -> dict[str, dict[str, Any]] | None:
    """Every bot's status once all run on gw-b and have processed a candle after the kill, else None."""
    statuses = rest.statuses()
    done = all(s["gateway"] == "gw-b" and (s["last_candle_ms"] or 0) > market_at_kill for s in statuses.values())
    return statuses if done else None


def log_events(path: Path, *levels: str, since: int = 0) -> list[str]:
    """The messages of ``path``'s JSON log lines at one of ``levels``, from byte ``since`` on."""
    found = []
    for line in path.read_bytes()[since:].decode(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict) and record.get("level") in levels:
                found.append(str(record.get("event")))
    return found


@dataclass
class Failover:
    """What one run of the scenario saw."""

    a_bots: list[str]
    b_bots: list[str]
    trading_s: float = 0.0
    takeover_s: float = 0.0
    manual: list[str] = field(default_factory=list)
    in_flight: list[Any] = field(default_factory=list)
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    orders_at_kill: dict[str, int] = field(default_factory=dict)
    survivor_log_at_kill: int = 0  # size of gw-b's log when gw-a was killed


def bring_up(cluster: Cluster, rest: Rest, engine: Engine) -> Failover:
    """Start the API and both gateways, create and start the bots, wait until both gateways' bots trade."""
    cluster.start("api", "serve", "api", "--port", str(cluster.port))
    wait_for("the API to answer", rest.login, 60, cluster, "api")
    create_and_start_bots(rest)
    run = Failover(*start_split_fleet(cluster, rest))
    wait_for("the bots of both gateways to trade", lambda: trading(engine, run.a_bots, run.b_bots), 60, cluster, *ALL)
    run.manual = [s for bot_id in (run.a_bots[0], run.a_bots[1], run.b_bots[0]) for s in manual_round(rest, bot_id)]
    return run


def kill_and_take_over(cluster: Cluster, rest: Rest, engine: Engine, run: Failover) -> None:
    """SIGKILL gw-a with a forced entry on its way to it; wait until gw-b runs every bot past the kill."""
    sender = force_enter_in_background(rest, run.a_bots[2], run.in_flight)
    time.sleep(0.05)  # let the command leave: the kill is meant to catch it in flight
    killed_at, kill_wall = time.monotonic(), wall_ms()
    run.survivor_log_at_kill = cluster.procs["gw-b"].err_path.stat().st_size
    assert cluster.procs["gw-a"].stop(signal.SIGKILL, timeout=10) == -signal.SIGKILL
    market_at_kill = market_ms_at(engine, kill_wall)
    run.orders_at_kill = orders_by_bot(engine)
    run.statuses = wait_for(
        "every bot to run on gw-b past the kill",
        lambda: taken_over(rest, market_at_kill),
        TAKEOVER_LIMIT_S,
        cluster,
        "api",
        "gw-b",
    )
    run.takeover_s = time.monotonic() - killed_at
    sender.join(60)
    assert not sender.is_alive(), "the forced entry sent at the kill got no answer"


def traded_on(engine: Engine, run: Failover) -> bool:
    """True once the taken-over bots placed :data:`MORE_ORDERS` orders since the kill and all bots enough."""
    counts = orders_by_bot(engine)
    more = sum(counts.get(b, 0) - run.orders_at_kill.get(b, 0) for b in run.a_bots)
    return more >= MORE_ORDERS and sum(counts.values()) >= MIN_ORDERS


def carry_on(cluster: Cluster, rest: Rest, engine: Engine, run: Failover) -> None:
    """Command a taken-over bot through gw-b, let the taken-over bots trade there, stop gw-b and the API."""
    run.manual += manual_round(rest, run.a_bots[0])
    wait_for(
        f"the taken-over bots to place {MORE_ORDERS} orders on gw-b, {MIN_ORDERS} in all",
        lambda: traded_on(engine, run),
        45,
        cluster,
        "api",
        "gw-b",
    )
    assert cluster.procs["gw-b"].stop(signal.SIGTERM) == 0, cluster.describe()
    assert cluster.procs["api"].stop(signal.SIGTERM) == 0, cluster.describe()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_bots_of_a_killed_gateway_continue_on_the_other_with_nothing_lost_or_doubled(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    began = time.monotonic()
    cluster = Cluster(tmp_path, database_url, redis_url, free_port())
    rest = Rest(cluster.url)
    engine = make_engine(database_url)
    try:
        run = bring_up(cluster, rest, engine)
        trading_from = time.monotonic()
        kill_and_take_over(cluster, rest, engine, run)
        carry_on(cluster, rest, engine, run)
        run.trading_s = time.monotonic() - trading_from
    finally:
        cluster.close()
        rest.client.close()
        engine.dispose()

    result = audit([tmp_path / "var" / "sim" / "bots" / f"{b}.sqlite" for b, _s, _p in BOTS], database_url)
    survivor_log = cluster.procs["gw-b"].err_path
    survivor_warnings = log_events(survivor_log, "warning", "error", "critical")
    after_kill = log_events(survivor_log, "warning", "error", "critical", since=run.survivor_log_at_kill)
    print(
        f"\n{len(BOTS)} bots split {len(run.a_bots)}/{len(run.b_bots)}; gw-a killed, every bot on gw-b and past "
        f"the kill {run.takeover_s:.1f}s later (lease ttl {LEASE_TTL_S:g}s, speed {SPEED}); "
        f"{run.trading_s:.0f}s from the kill to gw-b's stop; manual commands {run.manual}; in flight at the kill: "
        f"{[(code, body.get('status')) for code, body in run.in_flight]}; gw-b warnings: {survivor_warnings}\n"
        f"{result.report(5)}\n{time.monotonic() - began:.0f}s in all"
    )
    assert run.takeover_s <= TAKEOVER_LIMIT_S
    # Taking 5 bots over must not cost the survivor its own leases (nor those it just took).
    assert not [w for w in after_kill if "lost the lease" in w], after_kill
    assert log_events(survivor_log, "error", "critical") == []
    assert result.lost == [], result.report()
    assert result.duplicated == [], result.report()
    assert result.orphans == [], result.report()
    assert result.unresolved == [], result.report()
    assert result.status_mismatches == [], result.report()
    assert result.ok, result.report()
    assert result.unprotected == [], result.report()
    assert result.stop_mismatches == [], result.report()
    assert set(result.positions) == {b for b, _s, _p in BOTS}, result.report()
    assert result.db_orders >= MIN_ORDERS, result.report()
