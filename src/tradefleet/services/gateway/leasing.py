"""The gateway's hold on its bots: leases renewed by a heartbeat thread of their own.

The heartbeat renews the leases of the bots the gateway runs or is starting (a bot it dropped is left to
expire), measures how long the last renewal vouches for them, and reports the leases it found lost for the
gateway's loop to drop. It renews nothing while the loop shows no progress for ``loop_stall_s`` (a strategy
that never returns), so another gateway takes the bots over instead of them going unmanaged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection
from typing import Protocol

from tradefleet.core.errors import TradeFleetError

log = logging.getLogger(__name__)


class LeaseStore(Protocol):
    def register(self, gateway_id: str, host: str, pid: int, capacity: int) -> None: ...
    def heartbeat(self, gateway_id: str, ttl_ms: int, bot_ids: Collection[str]) -> dict[str, int]: ...
    def claim(self, bot_id: str, gateway_id: str, ttl_ms: int) -> int | None: ...
    def release(self, bot_id: str, gateway_id: str) -> None: ...


class LeaseKeeper:
    """Renews one gateway's leases on its own thread between :meth:`start` and :meth:`stop`."""

    def __init__(
        self, leases: LeaseStore, gateway_id: str, *, ttl_s: float, heartbeat_s: float, loop_stall_s: float
    ) -> None:
        self.leases = leases
        self.gateway_id = gateway_id
        self.ttl_s = ttl_s
        self.heartbeat_s = heartbeat_s
        self.loop_stall_s = loop_stall_s
        self.ok_until = 0.0  # monotonic time until which the last renewal vouches for the leases
        self._lock = threading.Lock()
        self._epochs: dict[str, int] = {}  # bots hosted or starting -> lease epoch
        self._lost: dict[str, int] = {}  # leases found lost, for the loop to drop
        self._alive = time.monotonic()  # the loop's last sign of progress
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def ttl_ms(self) -> int:
        return int(self.ttl_s * 1000)

    def fresh(self) -> bool:
        """True while the last renewal vouches for the leases (bots may trade)."""
        return time.monotonic() < self.ok_until

    def progress(self) -> None:
        """The loop made progress (a pass, a delivered candle, a bot started)."""
        self._alive = time.monotonic()

    def track(self, bot_id: str, epoch: int | None) -> None:
        """Renew ``bot_id``'s lease at ``epoch`` from now on (None: stop renewing it)."""
        with self._lock:
            if epoch is None:
                self._epochs.pop(bot_id, None)
            else:
                self._epochs[bot_id] = epoch

    def take_lost(self) -> list[str]:
        """The bots whose lease was found lost, and still tracked at that epoch (not since dropped or re-claimed)."""
        with self._lock:
            lost, self._lost = self._lost, {}
            return [b for b, e in lost.items() if self._epochs.get(b) == e]

    def start(self) -> None:
        self._stop.clear()
        self.progress()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{self.gateway_id}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while True:
            self.beat()
            if self._stop.wait(self.heartbeat_s):
                return

    def beat(self) -> None:
        """Renew once (the thread's work; callable directly)."""
        mono = time.monotonic()
        with self._lock:
            mine = dict(self._epochs)
        stalled = mono - self._alive
        if stalled > self.loop_stall_s:
            log.error("gateway %s: the loop has made no progress for %.0f s; letting the leases of %d bot(s) "
                      "expire so another gateway takes them over", self.gateway_id, stalled, len(mine))  # fmt: skip
            return
        try:
            held = self.leases.heartbeat(self.gateway_id, self.ttl_ms, mine)
        except TradeFleetError as exc:
            log.warning("gateway %s: heartbeat failed (%s); bots pause until it succeeds", self.gateway_id, exc)
            return
        except Exception:
            log.exception("gateway %s: heartbeat failed; bots pause until it succeeds", self.gateway_id)
            return
        # Trust the leases for most of their time to live, measured from before the renewal was sent.
        self.ok_until = mono + self.ttl_s * 0.8
        lost = {bot_id: epoch for bot_id, epoch in mine.items() if held.get(bot_id) != epoch}
        if lost:
            with self._lock:
                self._lost.update(lost)
