"""Sign-in rate limiting: after N failures in a window, a name or an address must wait.

In-process state: each engine process counts its own failures, so with several API
processes behind a balancer an attacker gets N per process per window. That bounds
guessing well enough with argon2 hashes; a shared limiter (at the proxy) can add more.
The counts are keyed by user/client name and by client address; a success clears the
name's count, never the address's.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class Throttle:
    def __init__(self, failures: int, window_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.failures = failures
        self.window_s = window_s
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        seen = self._seen.get(key)
        if seen is None:
            return deque()
        while seen and seen[0] <= now - self.window_s:
            seen.popleft()
        if not seen:
            del self._seen[key]
        return seen

    def wait_s(self, *keys: str) -> int:
        """Seconds until any of these keys may try again (0: go ahead)."""
        now = self._clock()
        with self._lock:
            waits = [0.0]
            for key in keys:
                seen = self._recent(key, now)
                if len(seen) >= self.failures:
                    waits.append(seen[len(seen) - self.failures] + self.window_s - now)
        return int(max(waits) + 0.999)

    def failed(self, *keys: str) -> None:
        now = self._clock()
        with self._lock:
            if len(self._seen) > 100_000:  # a flood of names: forget the oldest half
                for key in list(self._seen)[: len(self._seen) // 2]:
                    del self._seen[key]
            for key in keys:
                self._recent(key, now)
                self._seen.setdefault(key, deque(maxlen=self.failures * 4)).append(now)

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._seen.pop(key, None)
