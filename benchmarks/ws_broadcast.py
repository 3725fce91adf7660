"""WebSocket broadcast: one event published on the bus → every connected ``/ws`` client, latency and rate.

The API (uvicorn in a thread of this process, like ``tradefleet up``) serves ``/ws`` from an ``EventsFeed``
tailing an in-process bus. A SEPARATE load-generator process (this file with ``--generate``: asyncio +
``websockets``) connects ``--clients`` clients (default 1,000), each authenticated with an admin access
token in the header and subscribed to every bot. This process then publishes events onto the bus the way
the outbox relay does, each carrying its send time (``CLOCK_MONOTONIC``, shared by processes on Linux):

* ``steady``: for ``--seconds`` each, events at each of ``--rates`` per second (2, 5, 10, 20: a quiet to
  a very busy fleet, every client subscribed to all of it);
* ``burst``: ``--burst`` events published at once (a fleet-wide storm: queueing shows).

Each client records publish→receive latency for every event; the table gives p50/p95/p99/max over all
deliveries (goal: steady p99 < 250 ms with 1,000 clients), deliveries (events × clients) per second and
the API process's CPU per delivery. Clients offer permessage-deflate as browsers do, so the server
compresses every message for every client (``--no-compression`` to compare). The machine's load average
is printed first: on a shared machine, other work inflates the latencies.

    .venv/bin/python benchmarks/ws_broadcast.py [--clients 1000] [--rates 2,5,10,20] [--seconds 6] [--burst 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

GOAL_P99_MS = 250.0
USER, PASSWORD = "bench-admin", "bench password 1234"


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, needed)) if hard != resource.RLIM_INFINITY else max(soft, needed)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < needed:
        sys.exit(f"the open-file limit is {want}, below the {needed} this run needs (raise `ulimit -n`)")


# ------------------------------------------------------------------------------------------ load generator


_SENT = re.compile(rb'"phase":"([^"]+)".*"sent_ns":(\d+)')


class _BenchClient(asyncio.Protocol):
    """One client on the ``websockets`` sans-I/O protocol: handshake, auth header, subscribe, then it only
    timestamps what arrives. Cheaper per message than the asyncio client (no future, no queue per message),
    so 1,000 of them in one process measure the server rather than themselves."""

    def __init__(self, url: str, token: str, total: int, deflate: bool, out: dict[str, Any]) -> None:
        from websockets.client import ClientProtocol
        from websockets.extensions.permessage_deflate import enable_client_permessage_deflate
        from websockets.uri import parse_uri

        self.ws = ClientProtocol(parse_uri(url), extensions=enable_client_permessage_deflate(None) if deflate else None)
        self.token, self.total, self.out = token, total, out
        self.texts = 0
        self.ready: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is a Transport, not a subclass
        request = self.ws.connect()
        request.headers["Authorization"] = f"Bearer {self.token}"
        self.ws.send_request(request)
        self._flush()

    def data_received(self, data: bytes) -> None:
        from websockets.frames import Frame, Opcode

        now = time.monotonic_ns()
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                self._text(bytes(event.data), now)
        self._flush()
        if self.ws.close_rcvd is not None and not self.done.done():
            self.out["closed"].append(f"{self.ws.close_rcvd.code} {self.ws.close_rcvd.reason}")
            self._finish()

    def _text(self, data: bytes, now: int) -> None:
        self.texts += 1
        if self.texts == 1:  # {"type": "authenticated", ...}
            self.ws.send_text(json.dumps({"type": "subscribe", "bots": ["*"]}).encode())
        elif self.texts == 2:  # {"type": "subscribed", ...}
            self.ready.set_result(True)
        elif (found := _SENT.search(data)) is not None:
            self.out["latencies"].append((found[1].decode(), now - int(found[2])))
            if self.texts - 2 == self.total:
                self.out["last_ns"] = max(self.out["last_ns"], now)
                self._finish()

    def _flush(self) -> None:
        assert self.transport is not None
        for chunk in self.ws.data_to_send():
            if chunk:
                self.transport.write(chunk)

    def _finish(self) -> None:
        if not self.ready.done():
            self.ready.set_result(False)
        if not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.out["errors"].append(f"connection lost after {max(self.texts - 2, 0)} events: {exc!r}")
        self._finish()


async def generate(url: str, token: str, clients: int, total: int, deflate: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"latencies": [], "ready": 0, "closed": [], "errors": [], "last_ns": 0}
    loop = asyncio.get_running_loop()
    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    started = time.perf_counter()
    opening = asyncio.Semaphore(100)  # connect 100 at a time: the handshakes, not the backlog, are the limit
    made: list[_BenchClient] = []

    async def one() -> None:
        async with opening:
            _transport, client = await loop.create_connection(
                lambda: _BenchClient(url, token, total, deflate, out), "127.0.0.1", port
            )
            made.append(client)
            ready = await asyncio.wait_for(client.ready, 60)
            out["ready"] += ready

    results = await asyncio.gather(*(one() for _ in range(clients)), return_exceptions=True)
    out["errors"] += [repr(r) for r in results if isinstance(r, BaseException)]
    out["connect_s"] = time.perf_counter() - started
    print(f"READY {out['ready']}", flush=True)  # the publisher starts now
    timeout = float(os.environ.get("WS_BENCH_TIMEOUT_S", "120"))
    _done, pending = await asyncio.wait([c.done for c in made], timeout=timeout)
    out["timed_out"] = len(pending)
    for client in made:
        if client.transport is not None:
            client.transport.close()
    return out


def run_generator(args: argparse.Namespace) -> None:
    raise_fd_limit(args.clients + 100)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    out = asyncio.run(generate(args.url, args.token, args.clients, args.total, not args.no_compression))
    by_phase: dict[str, list[int]] = {}
    for phase, ns in out.pop("latencies"):
        by_phase.setdefault(phase, []).append(ns)
    out["phases"] = by_phase
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out["cpu_s"] = usage.ru_utime + usage.ru_stime
    sys.stdout.write("RESULT " + json.dumps(out) + "\n")


# ------------------------------------------------------------------------------------------ server + publisher


def start_api(folder: Path) -> tuple[Any, Any, str, str]:
    """Start the API with an events feed on an in-process bus; return (server, bus, ws url, admin token)."""
    import argon2

    from tradefleet.adapters.bus import MemoryBus
    from tradefleet.adapters.storage import SqlTradingStore, make_engine, upgrade
    from tradefleet.adapters.storage.owner_tables import SqlBotOwners
    from tradefleet.api import ApiServices, create_app
    from tradefleet.cli.serve import listen, make_server
    from tradefleet.engine.clock import WallClock
    from tradefleet.services.auth import AuthService, PasswordHasher, Role, SqlAuthRepository, load_or_create_keys
    from tradefleet.services.bots import BotService
    from tradefleet.services.events import EventsFeed

    url = f"sqlite:///{(folder / 'bench.sqlite').as_posix()}"
    upgrade(url)
    engine = make_engine(url)
    cheap = argon2.Parameters(
        type=argon2.Type.ID, version=19, salt_len=16, hash_len=32, time_cost=1, memory_cost=1024, parallelism=1
    )
    auth = AuthService(
        SqlAuthRepository(engine), load_or_create_keys(folder), WallClock(), hasher=PasswordHasher(cheap)
    )
    auth.create_user(USER, PASSWORD, Role.ADMIN)
    token = auth.authenticate(USER, PASSWORD).access_token
    bus = MemoryBus()
    feed = EventsFeed(bus)
    feed.start()
    app = create_app(ApiServices(auth=auth), on_shutdown=[feed.stop, engine.dispose])
    app.state.events_feed = feed
    app.state.bot_service = BotService(SqlTradingStore(engine), SqlBotOwners(engine))
    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = make_server(app, "127.0.0.1", port)
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="api").start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the API server did not start")
        time.sleep(0.01)
    return server, bus, f"ws://127.0.0.1:{port}/ws", token


def publish(bus: Any, phase: str, count: int, rate: float | None, offset: int) -> float:
    """Publish ``count`` events (at ``rate`` per second, or at once); return the seconds it took."""
    from tradefleet.core.bus import EVENTS_STREAM
    from tradefleet.core.events import TradeExecuted

    started = time.perf_counter()
    for i in range(count):
        if rate:
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        event = TradeExecuted(
            bot_id=f"bot-{(offset + i) % 50:03d}", ts_ms=1_700_000_000_000 + offset + i, trade_id=offset + i,
            pair="BTC/USDT", side="buy", amount=0.0123, price=43_210.5, fee=0.53, action="entry", reason="enter_long",
        )  # fmt: skip
        payload = {**event.to_dict(), "phase": phase, "sent_ns": time.monotonic_ns()}
        bus.publish(EVENTS_STREAM, event.type, payload)
    return time.perf_counter() - started


def phases(args: argparse.Namespace) -> list[tuple[str, int, float | None]]:
    """(name, events, rate per second or None for at once) of each phase, in order."""
    steady = [(f"{rate:g}/s", max(1, round(rate * args.seconds)), rate) for rate in args.rates]
    return [*steady, ("burst", args.burst, None)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1_000)
    parser.add_argument("--rates", type=lambda v: [float(r) for r in v.split(",")], default=[2.0, 5.0, 10.0, 20.0],
                        help="steady publish rates, events per second (default 2,5,10,20)")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each steady phase")
    parser.add_argument("--burst", type=int, default=100, help="events published at once, last")
    parser.add_argument("--no-compression", action="store_true", help="clients do not offer permessage-deflate")
    parser.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--total", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        run_generator(args)
        return

    import _common as c

    raise_fd_limit(args.clients + 200)
    deflate = "without" if args.no_compression else "with"
    c.header(f"WebSocket broadcast: {args.clients:,} clients on /ws, {deflate} permessage-deflate", quick=False)
    with tempfile.TemporaryDirectory(prefix="ws-bench-") as tmp:
        server, bus, url, token = start_api(Path(tmp))
        total = sum(count for _name, count, _rate in phases(args))
        command = [sys.executable, __file__, "--generate", "--url", url, "--token", token, "--total", str(total)]
        command += ["--clients", str(args.clients)] + (["--no-compression"] if args.no_compression else [])
        generator = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        try:
            results, timings = _drive(generator, bus, args)
        finally:
            if generator.poll() is None:
                generator.kill()
            server.should_exit = True
    _report(c, args, results, timings)


def _drive(
    generator: subprocess.Popen[str], bus: Any, args: argparse.Namespace
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Publish every phase once the clients are ready; return the generator's result and our timings."""
    assert generator.stdout is not None
    ready = generator.stdout.readline().split()
    if not ready or ready[0] != "READY":
        raise RuntimeError(f"the load generator did not connect its clients: {ready}")
    timings: dict[str, Any] = {"cpu_s": {}, "span_s": {}}
    offset = 0
    for name, count, rate in phases(args):
        cpu0, started = time.process_time(), time.monotonic_ns()
        took = publish(bus, name, count, rate, offset)
        offset += count
        if rate is None:  # the burst is last: it is over when every client has everything
            line = generator.stdout.readline()
            generator.wait(30)
        else:
            time.sleep(1.5)  # let the phase drain before the next one
        timings["cpu_s"][name] = time.process_time() - cpu0
        timings["span_s"][name] = took if rate else None
        timings.setdefault("burst_start_ns", started)
        if rate is None:
            timings["burst_start_ns"] = started
    if not line.startswith("RESULT "):
        raise RuntimeError("the load generator gave no result")
    return json.loads(line[len("RESULT ") :]), timings


def _report(c: Any, args: argparse.Namespace, results: dict[str, Any], timings: dict[str, Any]) -> None:
    rows, met = [], []
    for name, count, rate in phases(args):
        ms = [ns / 1e6 for ns in results["phases"].get(name, [])]
        span = timings["span_s"][name] or (results["last_ns"] - timings["burst_start_ns"]) / 1e9
        p99 = c.percentile(ms, 99)
        if rate is not None and p99 < GOAL_P99_MS:
            met.append(name)
        cpu_us = timings["cpu_s"][name] / max(len(ms), 1) * 1e6
        rows.append([
            "steady" if rate else "burst", name if rate else "at once", count, len(ms), count * args.clients,
            c.percentile(ms, 50), c.percentile(ms, 95), p99, max(ms, default=float("nan")),
            len(ms) / span if span > 0 else 0.0, cpu_us,
        ])  # fmt: skip
    headers = ["phase", "publish", "events", "deliveries", "expected", "p50 ms", "p95 ms", "p99 ms", "max ms"]
    c.print_table(
        [*headers, "deliveries/s", "API µs/delivery"],
        rows,
        title=f"publish → client latency, {results['ready']:,} clients connected in {results['connect_s']:.1f} s",
    )
    goal = f"steady p99 < {GOAL_P99_MS:.0f} ms"
    print(f"\n{goal}: met at {', '.join(met) or 'no rate'} (of {', '.join(n for n, _c, r in phases(args) if r)})")
    print(f"load generator CPU: {results['cpu_s']:.1f} s in all (connecting included)")
    if results["closed"] or results["errors"] or results["timed_out"]:
        print(f"dropped/closed clients: {len(results['closed'])} {results['closed'][:3]}")
        print(f"client errors: {len(results['errors'])} {results['errors'][:3]}; timed out: {results['timed_out']}")


if __name__ == "__main__":
    main()
