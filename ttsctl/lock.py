"""The release lock: one state change at a time, whoever asks (ttsctl, a raw ansible-playbook,
the webhook).

``release.lock`` carries a POSIX record lock (``fcntl.lockf``) held by the process that
runs the change; the kernel drops it when that process dies, however it dies.
``release.lock.json`` beside it says who holds it (operator, action, pid, since, audit
record) and is removed on a clean release. So a lock that is free while that file is still
there was left by a holder that died: the next taker checks that none of the holder's
processes live on, takes the lock over and reports whom it took it from.

POSIX locks belong to one process and are not inherited, so ttsctl, which takes the lock
before it starts ansible-playbook, hands its child a token (``TTSCTL_LOCK_TOKEN``); a
child whose token matches the holder's proceeds under its parent's lock. The holder file,
readable by all, carries only the token's digest.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import secrets
import socket
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

from ttsctl import clock

TOKEN_ENV = "TTSCTL_LOCK_TOKEN"
# POSIX locks do not exclude threads of one process (the webhook receiver runs playbooks
# from threads): they queue here first.
_THREADS = threading.Lock()


@dataclass(frozen=True)
class Holder:
    operator: str
    action: str
    source: str
    pid: int
    pid_start: int | None
    host: str
    since: str
    token: str | None = None            # digest of the token handed to the holder's child
    record_id: int | None = None        # the audit record of the run under the lock ...
    audit_db: str | None = None         # ... in this audit log
    runner_pid: int | None = None       # the ansible-playbook process, when not ``pid``
    runner_pid_start: int | None = None
    took_over: dict | None = field(default=None, compare=False)
    released: bool = False              # let go by a process that lives on, its run unfinished

    @classmethod
    def this_process(cls, *, operator: str, action: str, source: str, token: str | None = None) -> Holder:
        pid = os.getpid()
        return cls(operator=operator, action=action, source=source, pid=pid,
                   pid_start=process_start(pid), host=socket.gethostname(),
                   since=clock.stamp(), token=digest(token) if token else None)

    def handed(self, token: str | None) -> bool:
        """Whether ``token`` is the one this holder handed to its child."""
        return bool(token and self.token and self.token == digest(token))

    def describe(self) -> str:
        pids = f"pid {self.pid}" + (f", ansible-playbook pid {self.runner_pid}" if self.runner_pid else "")
        by = f"{self.operator} ({self.action} via {self.source}, {pids} on {self.host})"
        return f"{by} since {self.since} ({clock.age(self.since)} ago)"

    def is_alive(self) -> bool:
        """Whether any process of the holder still runs. Holders on another host count as
        alive: their processes cannot be checked from here."""
        if self.host != socket.gethostname():
            return True
        return ((not self.released and process_alive(self.pid, self.pid_start))
                or (self.runner_pid is not None and process_alive(self.runner_pid, self.runner_pid_start)))


class LockHeld(Exception):
    """Another change holds the lock (and kept it past the timeout)."""

    def __init__(self, holder: Holder | None, waited: float):
        self.holder, self.waited = holder, waited
        who = holder.describe() if holder else "another process (holder unknown)"
        super().__init__(f"another change holds the release lock: {who}")


@dataclass(frozen=True)
class Grant:
    """How the lock was obtained."""
    owned: bool                           # this process holds the POSIX lock
    holder: Holder
    took_over: Holder | None = None       # a dead holder found and replaced
    waited: float = 0.0


def new_token() -> str:
    return secrets.token_hex(16)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def process_start(pid: int) -> int | None:
    """Start time of a process (clock ticks since boot): tells a reused pid from the original."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return int(stat.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def process_alive(pid: int | None, start: int | None = None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by someone else
    if start is not None:
        now = process_start(pid)
        if now is not None and now != start:
            return False  # the pid was reused by another process
    if _is_zombie(pid):
        return False
    return True


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


class ReleaseLock:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.holder_path = self.path.with_name(self.path.name + ".json")
        self._fd: int | None = None

    # -- reading ---------------------------------------------------------------------------
    def read_holder(self) -> Holder | None:
        try:
            data = json.loads(self.holder_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None
        known = {k: v for k, v in data.items() if k in Holder.__dataclass_fields__}
        try:
            return Holder(**known)
        except TypeError:
            return None

    def _write_holder(self, holder: Holder) -> None:
        temporary = self.holder_path.with_name(f".{self.holder_path.name}.{os.getpid()}")
        temporary.write_text(json.dumps(asdict(holder), sort_keys=True) + "\n")
        os.chmod(temporary, 0o644)
        os.replace(temporary, self.holder_path)

    # -- taking and giving back ------------------------------------------------------------
    def _try_lock(self) -> bool:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o664)
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                return False
            raise

    def _unlock(self) -> None:
        if self._fd is not None:
            # Closing the only descriptor drops the POSIX lock; never open the file twice.
            os.close(self._fd)
            self._fd = None

    def acquire(self, holder: Holder, timeout: float = 0, *, token: str | None = None,
                poll: float = 0.2, on_wait: Callable[[Holder | None], None] | None = None) -> Grant:
        """Take the lock for ``holder``, waiting up to ``timeout`` seconds.

        ``token``: the one ttsctl handed to its child; when the current holder carries the
        same token, the lock is already ours (held by the parent process) and is not taken.
        Raises LockHeld when it stays held.
        """
        started = time.monotonic()
        if not _THREADS.acquire(timeout=max(timeout, 0)):
            raise LockHeld(self.read_holder(), time.monotonic() - started)
        try:
            grant = self._acquire(holder, timeout, token, poll, on_wait, started)
        except BaseException:
            _THREADS.release()
            raise
        if not grant.owned:
            _THREADS.release()
        return grant

    def _acquire(self, holder, timeout, token, poll, on_wait, started) -> Grant:
        told = False
        while True:
            if self._try_lock():
                previous = self.read_holder()
                if previous is None:
                    self._write_holder(holder)
                    return Grant(True, holder, waited=time.monotonic() - started)
                if previous.pid == os.getpid() or not previous.is_alive():
                    mine = replace(holder, took_over=asdict(previous))
                    self._write_holder(mine)
                    return Grant(True, mine, took_over=previous, waited=time.monotonic() - started)
                # Free, but the holder's ansible-playbook outlived it (its parent died):
                # the change is still running, so keep waiting.
                self._unlock()
                current = previous
            else:
                current = self.read_holder()
                if current is not None and current.handed(token):
                    self._unlock()  # never held: the parent holds it
                    return Grant(False, current, waited=time.monotonic() - started)
            waited = time.monotonic() - started
            if waited >= timeout:
                self._unlock()
                raise LockHeld(current, waited)
            if on_wait and not told:
                on_wait(current)
                told = True
            time.sleep(min(poll, max(0.0, timeout - waited)))

    def annotate(self, **values) -> None:
        """Add what becomes known under the lock (the audit record, the child's pid)."""
        holder = self.read_holder()
        if holder is not None:
            self._write_holder(replace(holder, **values))

    def release(self, *, keep_holder: bool = False) -> None:
        """Give the lock back. ``keep_holder`` leaves the holder file in place, marked
        released, so the next taker treats it as a holder that died (used when the child run
        did not finish: its record is still open)."""
        if self._fd is None:
            return
        try:
            if keep_holder:
                self.annotate(released=True)
            else:
                self.holder_path.unlink(missing_ok=True)
        finally:
            self._unlock()
            _THREADS.release()

    def release_orphaned(self, token: str | None) -> None:
        """For a child run whose parent (the holder) died while it went on to the end: clear the
        holder file, so the next change neither waits for it nor takes it for dead."""
        holder = self.read_holder()
        if holder and holder.handed(token) and not process_alive(holder.pid, holder.pid_start):
            self.holder_path.unlink(missing_ok=True)

    @property
    def owned(self) -> bool:
        return self._fd is not None


def change_refusal(path: str | Path, token: str | None) -> str | None:
    """Why a process handed ``token`` may not change the release state now; None when it may.

    The audit callback takes the lock, yet a run without the callback (turned off, or a
    playbook that declares no change) would change the state unlocked and unrecorded. So
    the release state module's action plugin asks here first: the holder must have handed
    this process its token, still run, and have its audit record open (a rollback may go on
    without one, as the callback allows when the audit log cannot be written)."""
    holder = ReleaseLock(path).read_holder()
    if holder is None:
        return f"no run holds the release lock {path}"
    if not holder.handed(token):
        return f"the release lock {path} is held by {holder.describe()}, not by this run"
    if not holder.is_alive():
        return f"the holder of the release lock {path} no longer runs: {holder.describe()}"
    if holder.record_id is None and holder.action != "rollback":
        return "the run under the release lock has no open audit record"
    return None
