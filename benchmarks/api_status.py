"""API under load: authenticated ``GET /api/v1/bots/{id}/status`` from concurrent clients against a real server.

Starts ``tradefleet serve api`` as a subprocess on a free loopback port with a fresh data dir (SQLite there
by default; with ``--database-url postgresql://…`` a fresh database is created on that server and dropped
at the end, nothing else is touched), creates a trader and a paper bot over REST, then runs the load in
separate processes (``--load-procs``, clients split between them): each process runs its share of
``--clients`` asyncio clients on one ``httpx.AsyncClient`` pool, each client sending one request at a time
back to back. After ``--warmup`` seconds requests are counted for ``--duration`` seconds.

Two credentials are measured, one after the other: a bearer access token (JWT; the user is looked up per
request for its current role) and an API key (``X-API-Key``; looked up by prefix, sha256-compared).

CPU columns: the share of one core the server process and the load processes used during the measured
window, and the server's CPU time per answered request (the figure that holds on a busy machine, where
throughput and latency also measure the other processes). A load side near 100 % of a core means the
figures are bounded by the client, not the server.

    .venv/bin/python benchmarks/api_status.py [--quick] [--duration 10] [--clients 50] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import queue
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common as c
import httpx

ADMIN_PASSWORD_ENV = "TRADEFLEET_ADMIN_PASSWORD"
BOT = {"bot_id": "bench", "strategy": "SampleStrategy", "pairs": ["BTC/USDT", "ETH/USDT"], "timeframe": "5m"}
START_TIMEOUT_S = 60.0


# ------------------------------------------------------------------------------------------ the server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """Create a fresh database on the server of ``server_url``, yield its URL, drop it at the end."""
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(server_url).set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"tradefleet_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    admin_password: str
    log: Path

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the server process used so far (Linux /proc)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def api_server(data_dir: Path, database_url: str | None) -> Iterator[Server]:
    """Run ``tradefleet serve api`` on a free port until the block ends."""
    port, password = free_port(), secrets.token_urlsafe(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEFLEET") and k != "DATABASE_URL"}
    env[ADMIN_PASSWORD_ENV] = password
    if database_url:
        env["DATABASE_URL"] = database_url
    log = data_dir / "server.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-c", "from tradefleet.cli import main; main()", "--data-dir", str(data_dir),
               "serve", "api", "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(process, f"http://127.0.0.1:{port}", password, log)
    try:
        wait_until_up(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def wait_until_up(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the API server exited ({server.process.returncode}):\n{server.log.read_text()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=2).status_code in (200, 503):
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the API server did not answer within {START_TIMEOUT_S:.0f} s:\n{server.log.read_text()}")


def prepare(server: Server) -> tuple[str, dict[str, str], dict[str, str]]:
    """Create a trader and its bot over REST; return the status path and the bearer and API-key headers."""
    with httpx.Client(base_url=server.url, timeout=30) as client:

        def call(method: str, path: str, **kwargs: Any) -> Any:
            answer = client.request(method, path, **kwargs)
            if answer.status_code >= 300:
                raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text}")
            return answer.json()

        admin = call("POST", "/api/v1/auth/login", json={"username": "admin", "password": server.admin_password})
        password = secrets.token_urlsafe(16)
        call("POST", "/api/v1/users", json={"username": "bench", "password": password, "role": "trader"},
             headers={"Authorization": f"Bearer {admin['access_token']}"})  # fmt: skip
        tokens = call("POST", "/api/v1/auth/login", json={"username": "bench", "password": password})
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        call("POST", "/api/v1/bots", json=BOT, headers=bearer)
        key = call("POST", "/api/v1/auth/api-keys", json={"name": "bench"}, headers=bearer)
        path = f"/api/v1/bots/{BOT['bot_id']}/status"
        call("GET", path, headers=bearer)
        return path, bearer, {"X-API-Key": key["api_key"]}


# ------------------------------------------------------------------------------------------ the load


@dataclass
class LoadResult:
    latencies_ms: list[float]
    errors: int
    statuses: dict[int, int]
    cpu_s: float


async def _load(url: str, path: str, headers: dict[str, str], clients: int, warmup_s: float, duration_s: float) -> Any:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as client:
        start = time.perf_counter()
        measure_from, stop_at = start + warmup_s, start + warmup_s + duration_s
        cpu0: list[float] = []

        async def one_client() -> None:
            nonlocal errors
            while True:
                t0 = time.perf_counter()
                if t0 >= stop_at:
                    return
                try:
                    answer = await client.get(path)
                    ok, status = answer.status_code == 200, answer.status_code
                except httpx.HTTPError:
                    ok, status = False, 0
                t1 = time.perf_counter()
                if t0 >= measure_from and t1 <= stop_at:
                    latencies.append((t1 - t0) * 1000)
                    statuses[status] = statuses.get(status, 0) + 1
                    errors += not ok

        async def cpu_mark() -> None:
            await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
            cpu0.append(time.process_time())

        await asyncio.gather(cpu_mark(), *(one_client() for _ in range(clients)))
        return latencies, errors, statuses, time.process_time() - cpu0[0]


def _load_process(args: tuple[Any, ...], results: Any) -> None:
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    results.put(runner(_load(*args)))


def run_load(
    url: str, path: str, headers: dict[str, str], clients: int, procs: int, warmup_s: float, duration_s: float
) -> LoadResult:
    """Run ``clients`` clients split over ``procs`` processes; merge what they measured."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    shares = [clients // procs + (i < clients % procs) for i in range(procs)]
    workers = [
        ctx.Process(target=_load_process, args=((url, path, headers, n, warmup_s, duration_s), results))
        for n in shares
        if n
    ]
    for worker in workers:
        worker.start()
    parts: list[Any] = []
    deadline = time.monotonic() + warmup_s + duration_s + 120
    while len(parts) < len(workers):
        try:
            parts.append(results.get(timeout=1))
        except queue.Empty:
            dead = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"a load process failed (exit codes {dead})") from None
    for worker in workers:
        worker.join(30)
    merged = LoadResult([], 0, {}, 0.0)
    for latencies, errors, statuses, cpu in parts:
        merged.latencies_ms.extend(latencies)
        merged.errors += errors
        merged.cpu_s += cpu
        for status, n in statuses.items():
            merged.statuses[status] = merged.statuses.get(status, 0) + n
    return merged


# ------------------------------------------------------------------------------------------ main


def measure(backend: str, database_url: str | None, args: argparse.Namespace, rows: list[list[Any]]) -> None:
    with tempfile.TemporaryDirectory(prefix="tf-api-bench-") as tmp, api_server(Path(tmp), database_url) as server:
        path, bearer, api_key = prepare(server)
        for credential, headers in (("bearer JWT", bearer), ("API key", api_key)):
            window = args.warmup + args.duration
            cpu_before = server.cpu_s()
            t0 = time.perf_counter()
            result = run_load(server.url, path, headers, args.clients, args.load_procs, args.warmup, args.duration)
            elapsed = time.perf_counter() - t0
            # Server CPU over the whole run scaled to the measured window (the warm-up is load at the same rate).
            server_cpu = (server.cpu_s() - cpu_before) * args.duration / max(elapsed, window)
            lat = result.latencies_ms
            others = {s: n for s, n in result.statuses.items() if s != 200}
            rows.append([
                backend, credential, len(lat), result.errors, len(lat) / args.duration,
                c.percentile(lat, 50), c.percentile(lat, 90), c.percentile(lat, 99), max(lat, default=float("nan")),
                f"{server_cpu / args.duration:.0%}", server_cpu * 1000 / max(1, len(lat)),
                f"{result.cpu_s / args.duration:.0%}",
            ])  # fmt: skip
            if others:
                print(f"{backend} {credential}: non-200 answers {others}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 s per run")
    parser.add_argument("--duration", type=float, default=None, help="measured seconds per run (default 10)")
    parser.add_argument("--warmup", type=float, default=None, help="seconds of load before measuring (default 2)")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--load-procs", type=int, default=1, help="processes the clients are split over")
    parser.add_argument(
        "--database-url", default=None, help="postgresql://… server to create a throw-away database on (also run)"
    )
    args = parser.parse_args()
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0)
    c.header(
        f"API status under load: {args.clients} clients over {args.load_procs} process(es), "
        f"{args.warmup:g} s warm-up + {args.duration:g} s",
        args.quick,
    )
    rows: list[list[Any]] = []
    measure("sqlite", None, args, rows)
    if args.database_url:
        with postgres_database(args.database_url) as url:
            measure("postgresql", url, args, rows)
    c.print_table(
        ["db", "credential", "requests", "errors", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "server CPU",
         "CPU ms/req", "load CPU"],
        rows,
        title="GET /api/v1/bots/{id}/status (one uvicorn worker)",
    )  # fmt: skip


if __name__ == "__main__":
    main()
