"""``tradefleet serve api``: one role per process; and the uvicorn plumbing ``tradefleet up`` shares."""

from __future__ import annotations

import contextlib
import errno
import signal
import socket
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tradefleet.cli._common import fail, handle_errors, settings_from

if TYPE_CHECKING:
    import uvicorn

    from tradefleet.services.auth import AuthService

serve_app = typer.Typer(help="Run one TradeFleet role in this process (scale-out).", no_args_is_help=True)


def listen(host: str, port: int) -> socket.socket:
    """Bind the API socket now, so a busy port fails in one line before anything starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        why = "the port is in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
        raise fail(f"cannot listen on {host}:{port}: {why}; pick another with --port (or --no-api)") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def make_server(app: Any, host: str, port: int) -> uvicorn.Server:
    """Return a uvicorn server for ``app`` that leaves signal handling to the caller."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:  # the caller stops us (and the fleet) on a signal
            yield

    # No per-message deflate: events are small and it was over half of the broadcast cost (ws_broadcast.py).
    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, lifespan="on", server_header=False, ws_per_message_deflate=False
    )
    return Server(config)


def on_stop_signals(stop: Callable[[], None], server: uvicorn.Server) -> None:
    """Run ``stop`` on SIGINT/SIGTERM; a second signal abandons open connections."""
    seen: list[int] = []

    def handler(sig: int, _frame: object) -> None:
        if seen:
            server.force_exit = True
        seen.append(sig)
        stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)


def announce_admin(auth: AuthService) -> None:
    """Create the first admin on first run and print its one-time password (never logged)."""
    from tradefleet.services.auth import ADMIN_PASSWORD_ENV

    first = auth.ensure_admin()
    if first is None:
        return
    if first.password is None:
        typer.echo(f"First run: created admin account '{first.username}' with the password from {ADMIN_PASSWORD_ENV}.")
        return
    typer.echo(
        f"First run: created admin account '{first.username}' with password: {first.password}\n"
        "This password is shown only once; log in and keep it safe."
    )


@handle_errors
def api(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="address to listen on (default api.host)")] = None,
    port: Annotated[int | None, typer.Option(help="port to listen on (default api.port)", min=1, max=65535)] = None,
) -> None:
    """Serve the management API (auth, users, bots, health, metrics) on the configured database and bus."""
    from tradefleet.bootstrap import build_api, build_bus, build_platform
    from tradefleet.logs import configure_logging

    settings = settings_from(ctx)
    configure_logging(settings.log.level, settings.log.json)
    bind_host, bind_port = host or settings.api.host, port or settings.api.port
    sock = listen(bind_host, bind_port)
    platform = build_platform(settings)
    bus = build_bus(settings)
    try:
        app = build_api(platform, bus)
        announce_admin(app.state.services.auth)
        server = make_server(app, bind_host, bind_port)
        on_stop_signals(lambda: setattr(server, "should_exit", True), server)
        typer.echo(f"TradeFleet API on http://{bind_host}:{bind_port} (docs at /docs). Ctrl-C stops.")
        try:
            server.run(sockets=[sock])
        except SystemExit:
            raise fail("the API server failed to start; see the log above") from None
    finally:
        sock.close()
        bus.close()
        platform.close()


@handle_errors
def gateway(
    ctx: typer.Context,
    gateway_id: Annotated[str | None, typer.Option("--id", help="gateway id (default host-pid)")] = None,
    capacity: Annotated[int, typer.Option(help="bots this gateway may hold", min=1)] = 100,
    lease_ttl: Annotated[float, typer.Option(help="seconds a lease lives without a heartbeat", min=1.0)] = 10.0,
) -> None:
    """Host bots: claim them by lease, run them, obey commands from the bus (needs REDIS_URL to scale out)."""
    import threading

    from tradefleet.bootstrap import build_bus, build_gateway, build_platform
    from tradefleet.logs import configure_logging

    settings = settings_from(ctx)
    configure_logging(settings.log.level, settings.log.json)
    if not settings.redis.url:
        typer.echo("warning: no REDIS_URL: commands from API processes cannot reach this gateway", err=True)
    platform = build_platform(settings)
    bus = build_bus(settings)
    try:
        host = build_gateway(platform, bus, gateway_id=gateway_id, capacity=capacity, lease_ttl_s=lease_ttl)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        typer.echo(f"TradeFleet gateway {host.id}: up to {capacity} bots, lease {lease_ttl:g}s. Ctrl-C stops.")
        host.run(stop)
        typer.echo(f"gateway {host.id} stopped; its bots were saved and released")
    finally:
        bus.close()
        platform.close()


def register(app: typer.Typer) -> None:
    serve_app.command("api")(api)
    serve_app.command("gateway")(gateway)
    app.add_typer(serve_app, name="serve")
