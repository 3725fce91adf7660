"""``tradefleet up --port`` and ``tradefleet serve api`` as real processes answering HTTP on loopback."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

RUN = [sys.executable, "-c", "from tradefleet.cli import main; main()"]
CONFIG = """
[simulated]
synthetic_days = 5

[[paper.bots]]
bot_id = "sma-btc"
strategy = "SmaCross"
pairs = ["BTC/USDT"]
timeframe = "5m"
"""
PASSWORD_LINE = re.compile(r"created admin account 'admin' with password: (\S+)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEFLEET") and k != "DATABASE_URL"}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


class Process:
    """A TradeFleet process whose stdout is collected line by line; stderr goes to a file."""

    def __init__(self, workdir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        (workdir / "tradefleet.toml").write_text(CONFIG)
        self.stderr_path = workdir / f"stderr-{time.monotonic_ns()}.log"
        self.lines: list[str] = []
        with self.stderr_path.open("wb") as stderr:
            self.proc = subprocess.Popen(
                [*RUN, "--data-dir", "var", *args],
                cwd=workdir,
                env=env or clean_env(),
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout as out:
            for line in out:
                self.lines.append(line.rstrip("\n"))

    @property
    def stdout(self) -> str:
        return "\n".join(self.lines)

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_healthy(self, url: str, timeout: float = 120) -> httpx.Response:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"process ended early:\n{self.stdout}\n{self.stderr}"
            try:
                answer = httpx.get(f"{url}/health", timeout=5)
            except httpx.TransportError:
                time.sleep(0.2)
                continue
            return answer
        raise AssertionError(f"no answer from {url}/health:\n{self.stdout}\n{self.stderr}")

    def stop(self, sig: signal.Signals = signal.SIGINT, timeout: float = 60) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self.reader.join(10)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def login(url: str, password: str) -> httpx.Response:
    return httpx.post(f"{url}/api/v1/auth/login", json={"username": "admin", "password": password}, timeout=10)


def test_up_serves_the_api_next_to_the_fleet_and_stops_both_on_sigint(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    first = Process(tmp_path, "up", "--port", str(port))
    try:
        health = first.wait_healthy(url)
        assert health.status_code == 200, health.text
        components = health.json()["components"]
        assert components["storage"]["status"] == "ok"
        assert components["gateways"]["status"] == "ok", components
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
        assert "tradefleet_gateways_alive 1.0" in metrics, metrics
        assert 'tradefleet_bots{status="running"} 1.0' in metrics, metrics  # the one configured bot
        passwords = [m.group(1) for line in first.lines if (m := PASSWORD_LINE.search(line))]
        assert len(passwords) == 1, first.stdout
        assert login(url, passwords[0]).status_code == 200
        assert first.stop(signal.SIGINT) == 0, first.stderr
    finally:
        first.kill()
    assert "stopped: stopped" in first.stdout and "sma-btc" in first.stdout
    assert passwords[0] not in first.stderr, "the one-time password is printed, never logged"
    assert "Traceback" not in first.stderr

    second = Process(tmp_path, "up", "--port", str(port))
    try:
        assert second.wait_healthy(url).status_code == 200
        assert login(url, passwords[0]).status_code == 200, "the same admin, from the first run"
        assert second.stop(signal.SIGTERM) == 0, second.stderr
    finally:
        second.kill()
    assert "admin account" not in second.stdout, "the password is printed on the first run only"


def test_serve_api_takes_the_admin_password_from_the_environment(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    secret = "a-long-enough-admin-password-42"
    proc = Process(tmp_path, "serve", "api", "--port", str(port), env=clean_env(TRADEFLEET_ADMIN_PASSWORD=secret))
    try:
        health = proc.wait_healthy(url)
        assert health.status_code == 200
        assert health.json()["components"]["exchanges"]["status"] == "not_configured"
        assert login(url, secret).status_code == 200
        assert proc.stop(signal.SIGINT) == 0, proc.stderr
    finally:
        proc.kill()
    assert "password from TRADEFLEET_ADMIN_PASSWORD" in proc.stdout
    assert secret not in proc.stdout and secret not in proc.stderr


def test_up_on_a_busy_port_fails_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        proc = Process(tmp_path, "up", "--port", str(port))
        try:
            rc = proc.proc.wait(60)
        finally:
            proc.kill()
    assert rc != 0
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr and "Traceback" not in proc.stderr
