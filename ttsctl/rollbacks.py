"""The rollbacks the webhook receiver starts: one at a time, one per candidate, in the
background, through the same runner path and release lock as ``ttsctl rollback``.

Alertmanager repeats a notification until it is answered, sends one per alert group, and may
send several at once; the receiver must turn all of them into exactly one rollback. A claim,
taken under a lock before answering, says "a rollback of this candidate is running or done":
later alerts about it are ignored, and once the playbook has run the release state says
``rolled_back``, so they would be ignored anyway, by this process or its successor.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Callable

from ttsctl import alerts, clock, lock, release_view, runner
from ttsctl.settings import Settings

OPERATOR = "alertmanager"
SOURCE = "webhook"

log = logging.getLogger("ttsctl.webhook")


@dataclass(frozen=True)
class RunResult:
    """What one run of the rollback playbook came to: ok, failed, refused (nothing changed:
    the release state did not allow it) or locked (another change kept the lock)."""
    result: str
    message: str | None = None
    record_id: int | None = None


RunRollback = Callable[[str, alerts.Candidate], RunResult]


def playbook_runner(settings: Settings, inventory: str | None = None) -> RunRollback:
    """playbooks/rollback.yml through ttsctl.runner, as operator ``alertmanager``, for this
    candidate only: the release state refuses it once another change has come between."""

    def run(reason: str, candidate: alerts.Candidate) -> RunResult:
        try:
            outcome = runner.run_playbook(settings, "rollback", {}, inventory=inventory, source=SOURCE,
                                          operator=OPERATOR, reason=reason, expect=candidate.expected())
        except lock.LockHeld as held:
            return RunResult("locked", f"{held}; waited {held.waited:.0f} s")
        except runner.RunFailed as exc:
            return RunResult("failed", str(exc))
        return RunResult(outcome.result, outcome.message, (outcome.record or {}).get("id"))

    return run


@dataclass
class Rollback:
    """One rollback, from the alert that asked for it to its end."""
    color: str
    version: str
    epoch: str
    reason: str
    alert: dict
    received_at: str = field(default_factory=clock.stamp)
    finished_at: str | None = None
    result: str = "running"          # running, ok, failed, refused, locked, skipped
    message: str | None = None
    audit_record: int | None = None
    attempts: int = 0
    seconds: float | None = None

    def report(self) -> dict:
        return asdict(self)


class Rollbacks:
    """Claims, runs and remembers the receiver's rollbacks.

    ``run`` runs the playbook once; ``current_candidate`` reads the release state again
    before a retry; ``metrics`` is a ttsctl.webhook_metrics.WebhookMetrics; ``notify``, if
    given, is called with a report after every rollback (its failures are its own).
    """

    def __init__(self, run: RunRollback, *, current_candidate: Callable[[], alerts.Candidate | None],
                 metrics, notify: Callable[[dict], None] | None = None, attempts: int = 3,
                 retry_delay: float = 5.0, remember: int = 100):
        self._run = run
        self._current_candidate = current_candidate
        self._metrics = metrics
        self._notify = notify
        self._attempts = max(1, attempts)
        self._retry_delay = retry_delay
        self._remember = remember
        self._lock = threading.Lock()
        self._running: Rollback | None = None
        self._thread: threading.Thread | None = None
        self._done: OrderedDict[tuple, Rollback] = OrderedDict()
        self.last: Rollback | None = None

    def start(self, candidate: alerts.Candidate, alert: alerts.Alert) -> str | None:
        """Start rolling the candidate back in the background, unless a rollback is running
        or this candidate was rolled back already: then the reason it does nothing."""
        with self._lock:
            if self._running is not None:
                return alerts.IN_PROGRESS
            if candidate.key in self._done:
                return alerts.ALREADY_DONE
            rollback = Rollback(color=candidate.color, version=candidate.version, epoch=candidate.epoch,
                                reason=alerts.rollback_reason(alert), alert=alert.describe())
            self._running = rollback
            self._done[candidate.key] = rollback
            while len(self._done) > self._remember:
                self._done.popitem(last=False)
            self.last = rollback
            # Not a daemon: a worker that is told to stop waits for the rollback it started.
            self._thread = threading.Thread(target=self._roll_back, args=(candidate, rollback),
                                            name=f"rollback-{candidate.color}-{candidate.version}")
            self._metrics.rollback_in_progress.set(1)
        log.info("rolling back %s %s (epoch %s): %s", candidate.color, candidate.version,
                 candidate.epoch, rollback.reason)
        self._thread.start()
        return None

    @property
    def running(self) -> Rollback | None:
        return self._running

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait for the running rollback, if any; False if it is still running."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def _roll_back(self, candidate: alerts.Candidate, rollback: Rollback) -> None:
        started = time.monotonic()
        try:
            self._attempt_all(candidate, rollback)
        except Exception as exc:  # noqa: BLE001 - the thread must always close its rollback
            log.exception("rollback of %s %s crashed", candidate.color, candidate.version)
            rollback.result, rollback.message = "failed", f"{type(exc).__name__}: {exc}"
        rollback.seconds = round(time.monotonic() - started, 3)
        rollback.finished_at = clock.stamp()
        with self._lock:
            if rollback.result != "ok" and rollback.result != "skipped":
                # Let a later notification (Alertmanager repeats) try again.
                self._done.pop(candidate.key, None)
            self._running = None
            self._metrics.rollback_in_progress.set(0)
        if rollback.result == "ok":
            self._metrics.rollback_duration.observe(rollback.seconds)
            log.info("rolled back %s %s in %.1f s (audit record %s)", candidate.color, candidate.version,
                     rollback.seconds, rollback.audit_record)
        elif rollback.result == "skipped":
            log.info("rollback of %s %s skipped: %s", candidate.color, candidate.version, rollback.message)
        else:
            self._metrics.rollbacks_failed.inc()
            log.error("rollback of %s %s %s: %s", candidate.color, candidate.version, rollback.result,
                      rollback.message)
        if self._notify:
            self._notify(rollback.report())

    def _attempt_all(self, candidate: alerts.Candidate, rollback: Rollback) -> None:
        for attempt in range(1, self._attempts + 1):
            if attempt > 1:
                time.sleep(self._retry_delay)
                try:
                    now = self._current_candidate()
                except release_view.StateUnreadable:
                    now = candidate  # cannot tell: try again, the playbook reads the state itself
                if now is None or (now.color, now.version) != (candidate.color, candidate.version):
                    rollback.result = "skipped"
                    rollback.message = "the candidate is no longer deployed: nothing left to roll back"
                    return
            rollback.attempts = attempt
            outcome = self._run(rollback.reason, candidate)
            rollback.result, rollback.message = outcome.result, outcome.message
            rollback.audit_record = outcome.record_id or rollback.audit_record
            # A refusal changed nothing and would be refused again; failed or locked may pass.
            if outcome.result in ("ok", "refused"):
                return
            log.warning("rollback attempt %d of %d %s: %s", attempt, self._attempts, outcome.result,
                        outcome.message)
