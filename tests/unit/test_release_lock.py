"""The release lock: one holder at a time, a named holder, dead holders taken over.

POSIX locks belong to a process, so the other holder is always a real second process."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ttsctl import lock

HOLD = """
import sys, time
from ttsctl import lock
l = lock.ReleaseLock(sys.argv[1])
token = sys.argv[3] if len(sys.argv) > 3 else None
l.acquire(lock.Holder.this_process(operator="alice", action="canary", source="ttsctl", token=token), 5)
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
l.release()
print("released", flush=True)
"""


@pytest.fixture
def lock_path(tmp_path):
    return tmp_path / "release.lock"


def holder(operator="bob", action="rollback", token=None):
    return lock.Holder.this_process(operator=operator, action=action, source="test", token=token)


def hold(lock_path, seconds, token=None):
    """A second process that takes the lock and keeps it for ``seconds``."""
    args = [sys.executable, "-c", HOLD, str(lock_path), str(seconds)] + ([token] if token else [])
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    assert process.stdout.readline().strip() == "locked"
    return process


def test_a_free_lock_is_taken_and_names_its_holder(lock_path):
    release_lock = lock.ReleaseLock(lock_path)
    grant = release_lock.acquire(holder(), 0)
    assert grant.owned and grant.took_over is None
    written = release_lock.read_holder()
    assert (written.operator, written.action, written.pid) == ("bob", "rollback", os.getpid())
    release_lock.release()
    assert release_lock.read_holder() is None


def test_a_second_change_waits_up_to_the_timeout_then_says_who_holds_it_since_when(lock_path):
    other = hold(lock_path, 30)
    try:
        started = time.monotonic()
        with pytest.raises(lock.LockHeld) as held:
            lock.ReleaseLock(lock_path).acquire(holder(), 0.6)
        assert time.monotonic() - started >= 0.6
        assert held.value.holder.operator == "alice" and held.value.holder.pid == other.pid
        assert "alice (canary via ttsctl" in str(held.value) and "since" in str(held.value)
    finally:
        other.kill()
        other.wait()


def test_a_waiting_change_proceeds_once_the_holder_releases(lock_path):
    other = hold(lock_path, 0.5)
    waited_for = []
    release_lock = lock.ReleaseLock(lock_path)
    grant = release_lock.acquire(holder(), 10, on_wait=waited_for.append)
    release_lock.release()
    assert grant.owned and grant.took_over is None and grant.waited > 0.2
    assert waited_for and waited_for[0].operator == "alice"
    other.wait()


def test_a_lock_left_by_a_killed_holder_is_taken_over_and_names_it(lock_path):
    other = hold(lock_path, 30)
    other.send_signal(signal.SIGKILL)
    other.wait()
    release_lock = lock.ReleaseLock(lock_path)
    grant = release_lock.acquire(holder(), 0)
    assert grant.owned and grant.took_over.pid == other.pid and grant.took_over.operator == "alice"
    assert release_lock.read_holder().took_over["pid"] == other.pid  # the holder file says whom it replaced
    release_lock.release()


def test_a_holder_whose_playbook_outlives_it_is_not_taken_over(lock_path):
    runner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        dead_parent = {"operator": "alice", "action": "canary", "source": "ttsctl", "pid": 2 ** 22 - 7,
                       "pid_start": None, "host": lock.socket.gethostname(), "since": "2025-01-01T00:00:00Z",
                       "runner_pid": runner.pid, "runner_pid_start": lock.process_start(runner.pid)}
        release_lock = lock.ReleaseLock(lock_path)
        release_lock.holder_path.write_text(json.dumps(dead_parent))
        with pytest.raises(lock.LockHeld):
            release_lock.acquire(holder(), 0.3)
    finally:
        runner.kill()
        runner.wait()
    release_lock = lock.ReleaseLock(lock_path)
    assert release_lock.acquire(holder(), 0).took_over.runner_pid == runner.pid
    release_lock.release()


def test_the_child_of_the_holder_proceeds_under_its_lock_with_the_token(lock_path):
    token = lock.new_token()
    parent = hold(lock_path, 30, token=token)
    try:
        grant = lock.ReleaseLock(lock_path).acquire(holder(), 0, token=token)
        assert not grant.owned and grant.holder.pid == parent.pid
        with pytest.raises(lock.LockHeld):
            lock.ReleaseLock(lock_path).acquire(holder(), 0, token=lock.new_token())
    finally:
        parent.kill()
        parent.wait()


def test_the_child_does_not_remove_its_parents_holder_file(lock_path):
    token = lock.new_token()
    parent = hold(lock_path, 30, token=token)
    try:
        child = lock.ReleaseLock(lock_path)
        child.acquire(holder(), 0, token=token)
        child.annotate(record_id=7)
        child.release()
        assert lock.ReleaseLock(lock_path).read_holder().record_id == 7
    finally:
        parent.kill()
        parent.wait()


def test_keep_holder_leaves_the_lock_to_be_taken_over(lock_path):
    release_lock = lock.ReleaseLock(lock_path)
    release_lock.acquire(holder(), 0)
    release_lock.annotate(record_id=3)
    release_lock.release(keep_holder=True)
    left = release_lock.read_holder()
    assert left.record_id == 3 and left.released and not left.is_alive()  # ours, yet dead to others
    taker = lock.ReleaseLock(lock_path)
    assert taker.acquire(holder(), 0).took_over.record_id == 3
    taker.release()


def test_a_reused_pid_is_not_mistaken_for_the_holder():
    assert lock.process_alive(os.getpid(), lock.process_start(os.getpid()))
    assert not lock.process_alive(os.getpid(), lock.process_start(os.getpid()) + 1)
    assert not lock.process_alive(None)


def test_a_child_that_outlives_its_holder_clears_the_lock_when_it_ends(lock_path):
    token = lock.new_token()
    parent = hold(lock_path, 30, token=token)
    child = lock.ReleaseLock(lock_path)
    child.acquire(holder(), 0, token=token)
    child.release_orphaned(token)
    assert child.read_holder() is not None  # the parent still lives: its lock, its file
    parent.kill()
    parent.wait()
    child.release_orphaned(token)
    assert child.read_holder() is None
    after = lock.ReleaseLock(lock_path)
    assert after.acquire(holder(), 0).took_over is None
    after.release()


def test_the_holder_file_names_the_token_only_by_its_digest(lock_path):
    token = lock.new_token()
    release_lock = lock.ReleaseLock(lock_path)
    release_lock.acquire(holder(token=token), 0)
    written = release_lock.holder_path.read_text()
    assert token not in written and lock.digest(token) in written
    assert release_lock.read_holder().handed(token) and not release_lock.read_holder().handed("guess")
    release_lock.release()


def test_threads_of_one_process_take_turns(lock_path):
    first, second = lock.ReleaseLock(lock_path), lock.ReleaseLock(lock_path)
    first.acquire(holder(), 0)
    with pytest.raises(lock.LockHeld):
        second.acquire(holder(), 0.2)
    first.release()
    assert second.acquire(holder(), 0).took_over is None
    second.release()


def test_a_change_is_allowed_only_to_the_run_the_live_holder_handed_its_token(lock_path):
    assert "no run holds the release lock" in lock.change_refusal(lock_path, "t")
    release_lock = lock.ReleaseLock(lock_path)
    release_lock.acquire(holder(action="canary", token="t"), 0)
    try:
        assert "no open audit record" in lock.change_refusal(lock_path, "t")
        release_lock.annotate(record_id=7)
        assert lock.change_refusal(lock_path, "t") is None
        for wrong in (None, "", "u", lock.digest("t")):
            assert "held by bob (canary via test" in lock.change_refusal(lock_path, wrong)
    finally:
        release_lock.release()
    assert "no run holds" in lock.change_refusal(lock_path, "t")


def test_a_rollback_may_change_without_a_record_but_not_for_a_dead_holder(lock_path):
    release_lock = lock.ReleaseLock(lock_path)
    release_lock.acquire(holder(action="rollback", token="t"), 0)
    try:
        assert lock.change_refusal(lock_path, "t") is None
    finally:
        release_lock.release(keep_holder=True)  # as a holder that died mid-run leaves it
    assert "no longer runs" in lock.change_refusal(lock_path, "t")
