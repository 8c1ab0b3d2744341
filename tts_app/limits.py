"""Per-worker admission: a bounded number of speech requests at once, the rest refused.

The instance declares its capacity (workers x max_concurrency, in /version) and the load
balancer's maxconn queues requests beyond it, so normally none arrives here without room.
This refusal (503 + Retry-After, never a wait) is the safety net for when they disagree:
a worker still never runs more than it can, and a queue inside it would only hide overload.
"""
from __future__ import annotations

import threading


class Lease:
    """One admitted request; releasing twice is harmless, so every exit path may release."""

    def __init__(self, semaphore: threading.BoundedSemaphore):
        self._semaphore = semaphore
        self._lock = threading.Lock()
        self._held = True

    def release(self) -> None:
        with self._lock:
            if not self._held:
                return
            self._held = False
        self._semaphore.release()


class ConcurrencyLimit:
    def __init__(self, limit: int):
        self.limit = limit
        self._semaphore = threading.BoundedSemaphore(limit)

    def try_acquire(self) -> Lease | None:
        """A lease when there is room now, else None: never waits."""
        if not self._semaphore.acquire(blocking=False):
            return None
        return Lease(self._semaphore)
