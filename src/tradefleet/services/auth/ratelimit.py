"""Login rate limiting: a sliding window of failures per key (client IP, username).

:class:`FailureLimiter` is the port; :class:`InMemoryFailureLimiter` keeps the windows in this process
(the embedded default). A Redis implementation (a sorted set per key, scored by time) can replace it for
several API processes without changing the service.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from typing import Protocol


class FailureLimiter(Protocol):
    """Counts failures per key in a sliding window and says how long a blocked key must wait."""

    def retry_after_s(self, key: str, now_ms: int) -> float:
        """Return the seconds until ``key`` may try again; 0 when it is not blocked."""
        ...

    def record_failure(self, key: str, now_ms: int) -> None:
        """Count one failure of ``key`` at ``now_ms``."""
        ...

    def reset(self, key: str) -> None:
        """Forget the failures of ``key`` (after a successful login)."""
        ...


class InMemoryFailureLimiter:
    """At most ``max_failures`` per ``window_s`` per key; thread-safe; remembers at most ``max_keys`` keys.

    When more keys are seen than ``max_keys`` (a spray of random usernames), the least recently failing
    keys are forgotten, so memory stays bounded.
    """

    def __init__(self, max_failures: int = 5, window_s: float = 300.0, *, max_keys: int = 100_000) -> None:
        if max_failures < 1 or window_s <= 0:
            raise ValueError("max_failures must be at least 1 and window_s positive")
        self.max_failures = max_failures
        self._window_ms = int(window_s * 1000)
        self._max_keys = max_keys
        self._failures: OrderedDict[str, deque[int]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after_s(self, key: str, now_ms: int) -> float:
        with self._lock:
            times = self._recent(key, now_ms)
            if times is None or len(times) < self.max_failures:
                return 0.0
            # Blocked until enough failures leave the window for one more attempt to be allowed.
            unblocks_at = times[len(times) - self.max_failures] + self._window_ms
            return max(0.0, (unblocks_at - now_ms) / 1000)

    def record_failure(self, key: str, now_ms: int) -> None:
        with self._lock:
            times = self._recent(key, now_ms)
            if times is None:
                times = self._failures[key] = deque(maxlen=self.max_failures)
                while len(self._failures) > self._max_keys:
                    self._failures.popitem(last=False)
            times.append(now_ms)
            self._failures.move_to_end(key)

    def reset(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def _recent(self, key: str, now_ms: int) -> deque[int] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now_ms - self._window_ms:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times


class LoginRateLimiter:
    """Limit failed logins per client IP and per username, each with its own :class:`FailureLimiter`.

    Defaults: 5 failures per username and 20 per IP in 5 minutes. The IP limit is looser because many
    users may share one address (office NAT); it still stops one client from spraying many usernames.
    """

    def __init__(self, per_user: FailureLimiter | None = None, per_ip: FailureLimiter | None = None) -> None:
        self.per_user = per_user if per_user is not None else InMemoryFailureLimiter(5, 300)
        self.per_ip = per_ip if per_ip is not None else InMemoryFailureLimiter(20, 300)

    def retry_after_s(self, username: str, ip: str | None, now_ms: int) -> float:
        """Return the seconds to wait before this username may be tried from this IP; 0 if allowed."""
        wait = self.per_user.retry_after_s(username, now_ms)
        if ip:
            wait = max(wait, self.per_ip.retry_after_s(ip, now_ms))
        return wait

    def record_failure(self, username: str, ip: str | None, now_ms: int) -> None:
        self.per_user.record_failure(username, now_ms)
        if ip:
            self.per_ip.record_failure(ip, now_ms)

    def record_success(self, username: str) -> None:
        # The IP's count is kept: a client with one valid account must not clear its own tally by logging in.
        self.per_user.reset(username)
