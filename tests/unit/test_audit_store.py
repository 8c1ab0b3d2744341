"""The audit log: committed at the start, closed once, never rewritten, never deleted."""
import os
import pwd
import sqlite3

import pytest

from ttsctl.audit import AuditStore, Query

STATE = {"active": "blue", "candidate_weight": 0, "phase": "deployed"}


@pytest.fixture
def store(tmp_path):
    return AuditStore(tmp_path / "audit.db")


def start(store, **overrides):
    fields = dict(operator="alice", action="canary", parameters={"weight": "5"}, reason="try it",
                  source="ttsctl", playbook="/p/canary.yml", inventory=["inventory/local"],
                  controller="vm", pid=123)
    fields.update(overrides)
    return store.open(**fields)


def test_a_run_is_committed_as_running_when_it_starts(store):
    run = start(store)
    record = store.get(run)
    assert record["result"] == "running" and record["finished_at"] is None
    assert record["started_at"].endswith("Z") and "T" in record["started_at"]
    assert (record["operator"], record["action"], record["parameters"], record["reason"]) == \
        ("alice", "canary", {"weight": "5"}, "try it")


def test_closing_a_run_records_its_result_hosts_and_release_states(store):
    run = start(store)
    after = {**STATE, "candidate_weight": 5, "phase": "canary"}
    assert store.close(run, result="ok", changed=True, failed_hosts=[], state_before=STATE, state_after=after)
    record = store.get(run)
    assert record["result"] == "ok" and record["changed"] is True and record["finished_at"]
    assert record["state_before"] == STATE and record["state_after"] == after


def test_a_closed_record_is_never_rewritten(store):
    run = start(store)
    store.close(run, result="refused", message="weight must be ...")
    assert store.close(run, result="ok") is False
    assert store.close_dead(run, found_by=9) is False
    with sqlite3.connect(store.path) as db, pytest.raises(sqlite3.IntegrityError, match="never rewritten"):
        db.execute("UPDATE runs SET result = 'ok' WHERE id = ?", (run,))
    assert store.get(run)["result"] == "refused"


def test_who_what_and_why_never_change_even_while_running(store):
    run = start(store)
    with sqlite3.connect(store.path) as db, pytest.raises(sqlite3.IntegrityError, match="never change"):
        db.execute("UPDATE runs SET operator = 'mallory' WHERE id = ?", (run,))


def test_records_are_never_deleted(store):
    run = start(store)
    with sqlite3.connect(store.path) as db, pytest.raises(sqlite3.IntegrityError, match="never deleted"):
        db.execute("DELETE FROM runs WHERE id = ?", (run,))
    assert store.get(run) is not None


def test_the_store_uses_write_ahead_logging(store):
    start(store)
    assert store.journal_mode() == "wal"


def test_the_state_before_is_kept_as_soon_as_it_is_known(store):
    run = start(store)
    store.note_state_before(run, STATE)
    assert store.get(run)["state_before"] == STATE and store.get(run)["result"] == "running"


def test_a_run_found_dead_is_closed_as_died_without_an_end_time(store):
    run = start(store)
    assert store.close_dead(run, found_by=run + 1)
    record = store.get(run)
    assert record["result"] == "died" and record["finished_at"] is None
    assert f"run #{run + 1}" in record["message"]


def test_closing_as_running_or_an_unknown_result_is_an_error(store):
    run = start(store)
    for bad in ("running", "great"):
        with pytest.raises(ValueError):
            store.close(run, result=bad)


def test_history_is_newest_first_and_filters_by_time_operator_and_action(store):
    start(store, started_at="2025-01-01T10:00:00.000Z")
    start(store, operator="bob", action="promote", started_at="2025-01-02T10:00:00.000Z")
    start(store, operator="bob", action="rollback", started_at="2025-01-03T10:00:00.000Z")
    assert [r["action"] for r in store.query()] == ["rollback", "promote", "canary"]
    assert [r["action"] for r in store.query(Query(operator="bob"))] == ["rollback", "promote"]
    assert [r["action"] for r in store.query(Query(actions=("canary", "promote")))] == ["promote", "canary"]
    window = Query(since="2025-01-02T00:00:00.000Z", until="2025-01-03T00:00:00.000Z")
    assert [r["action"] for r in store.query(window)] == ["promote"]
    assert len(store.query(Query(limit=1))) == 1 and len(store.query(Query(limit=None))) == 3


def test_reading_a_store_that_does_not_exist_finds_nothing_and_creates_nothing(tmp_path):
    store = AuditStore(tmp_path / "none" / "audit.db")
    assert store.query() == [] and store.find_by_artifact_dir("/x") is None
    assert not store.path.exists()


def test_a_record_is_found_by_its_runner_artifact_directory(store):
    run = start(store, artifact_dir="/var/lib/ttsctl/artifacts/artifacts/abc")
    assert store.find_by_artifact_dir("/var/lib/ttsctl/artifacts/artifacts/abc")["id"] == run


def test_the_log_is_readable_by_its_owner_only_even_one_made_world_readable_before(store, tmp_path):
    start(store)
    assert oct(store.path.stat().st_mode & 0o777) == "0o600"
    older = tmp_path / "older.db"
    older.touch(mode=0o644)
    older.chmod(0o644)
    start(AuditStore(older))
    assert oct(older.stat().st_mode & 0o777) == "0o600"


def tamper(store, *statements):
    """What root can do to the file: drop the triggers, then edit rows or the chain."""
    db = sqlite3.connect(store.path, isolation_level=None)
    for trigger in ("runs_closed_rows_are_final", "runs_who_and_what_are_final", "runs_are_never_deleted",
                    "chain_is_never_rewritten", "chain_is_never_deleted"):
        db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    for statement in statements:
        db.execute(statement)
    db.close()


@pytest.fixture
def history(store):
    first = start(store)
    store.close(first, result="ok", changed=True, state_after=STATE)
    second = start(store, reason="second")
    store.note_state_before(second, STATE)
    store.close_dead(second, found_by=3)
    start(store, reason="still running")
    return store


def test_an_intact_log_verifies_and_names_its_head(history):
    checked = history.verify()
    assert checked.intact and (checked.records, checked.entries, checked.unchained) == (3, 5, 0)
    assert len(checked.head) == 64


def test_each_record_keeps_the_account_the_run_ran_as(store):
    record = store.get(start(store, operator="declared-alice"))
    assert (record["os_user"], record["os_uid"]) == (pwd.getpwuid(os.getuid()).pw_name, os.getuid())


@pytest.mark.parametrize("statements, found", [
    (["UPDATE runs SET reason = 'nothing to see' WHERE id = 1"], "record #1 does not match its open entry"),
    (["UPDATE runs SET result = 'ok', message = NULL WHERE id = 2"], "record #2 does not match its close entry"),
    (["DELETE FROM runs WHERE id = 2"], "record #2 is in the chain but not in the log"),
    (["INSERT INTO runs (started_at, operator, action, source, playbook, controller, pid) "
      "VALUES ('2026-01-01T00:00:00.000Z', 'mallory', 'promote', 'ttsctl', 'p', 'vm', 1)"],
     "record #4 is not in the chain"),
    (["DELETE FROM chain WHERE seq = 1"], "record #1 is not in the chain"),
    (["DELETE FROM chain WHERE seq = 4"], "record #2 is closed in the log but not in the chain"),
])
def test_a_rewritten_deleted_or_inserted_record_is_found(history, statements, found):
    tamper(history, *statements)
    checked = history.verify()
    assert not checked.intact and any(found in problem for problem in checked.problems), checked.problems


def test_a_log_from_before_the_chain_is_upgraded_and_its_old_records_counted(tmp_path):
    old = tmp_path / "old.db"
    db = sqlite3.connect(old, isolation_level=None)
    db.executescript("""CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, started_at TEXT NOT NULL,
        finished_at TEXT, operator TEXT NOT NULL, action TEXT NOT NULL, parameters TEXT NOT NULL DEFAULT '{}',
        reason TEXT NOT NULL DEFAULT '', result TEXT NOT NULL DEFAULT 'running', message TEXT, changed INTEGER,
        failed_hosts TEXT NOT NULL DEFAULT '[]', state_before TEXT, state_after TEXT, artifact_dir TEXT,
        source TEXT NOT NULL, playbook TEXT NOT NULL, inventory TEXT NOT NULL DEFAULT '[]',
        controller TEXT NOT NULL, pid INTEGER NOT NULL, lock_takeover TEXT);
        INSERT INTO runs (started_at, operator, action, source, playbook, controller, pid, result)
        VALUES ('2025-01-01T00:00:00.000Z', 'alice', 'canary', 'ttsctl', 'p', 'vm', 1, 'ok');""")
    db.close()
    store = AuditStore(old)
    start(store)
    checked = store.verify()
    assert checked.intact and (checked.records, checked.unchained) == (2, 1)
