"""The audit log: one SQLite row per state-changing run, whoever started it.

A row is committed when the run starts (result ``running``) and closed once when it ends.
The database itself refuses to rewrite a closed row or delete any row (triggers), so no
code path, present or future, can edit history. Write-ahead logging lets ``history`` read
while a run writes.
"""
from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from ttsctl import clock

RUNNING = "running"
# ok: finished; failed: a task failed; refused: bad input or a transition the release state
# does not allow, nothing changed; aborted: the run ended without finishing (interrupted,
# crashed); died: found dead by the run that took its lock over (killed, host lost).
RESULTS = ("running", "ok", "failed", "refused", "aborted", "died")

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at    TEXT NOT NULL,
    finished_at   TEXT,
    operator      TEXT NOT NULL,
    action        TEXT NOT NULL,
    parameters    TEXT NOT NULL DEFAULT '{}',
    reason        TEXT NOT NULL DEFAULT '',
    result        TEXT NOT NULL DEFAULT 'running',
    message       TEXT,
    changed       INTEGER,
    failed_hosts  TEXT NOT NULL DEFAULT '[]',
    state_before  TEXT,
    state_after   TEXT,
    artifact_dir  TEXT,
    source        TEXT NOT NULL,
    playbook      TEXT NOT NULL,
    inventory     TEXT NOT NULL DEFAULT '[]',
    controller    TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    lock_takeover TEXT
);
CREATE INDEX IF NOT EXISTS runs_started_at ON runs (started_at);
CREATE TRIGGER IF NOT EXISTS runs_closed_rows_are_final BEFORE UPDATE ON runs
    WHEN OLD.result <> 'running'
BEGIN SELECT RAISE(ABORT, 'audit records are never rewritten after closing'); END;
CREATE TRIGGER IF NOT EXISTS runs_who_and_what_are_final BEFORE UPDATE ON runs
    WHEN NEW.started_at IS NOT OLD.started_at OR NEW.operator IS NOT OLD.operator
      OR NEW.action IS NOT OLD.action OR NEW.parameters IS NOT OLD.parameters
      OR NEW.reason IS NOT OLD.reason OR NEW.source IS NOT OLD.source
      OR NEW.pid IS NOT OLD.pid OR NEW.lock_takeover IS NOT OLD.lock_takeover
BEGIN SELECT RAISE(ABORT, 'who, what and why of an audit record never change'); END;
CREATE TRIGGER IF NOT EXISTS runs_are_never_deleted BEFORE DELETE ON runs
BEGIN SELECT RAISE(ABORT, 'audit records are never deleted'); END;
"""

_JSON_FIELDS = ("parameters", "failed_hosts", "state_before", "state_after", "inventory", "lock_takeover")


class AuditError(Exception):
    """The audit log could not be read or written."""


@dataclass(frozen=True)
class Query:
    since: str | None = None      # UTC stamps, inclusive
    until: str | None = None      # exclusive
    operator: str | None = None
    actions: tuple[str, ...] = ()
    limit: int | None = 20


class AuditStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def _connect(self, create: bool = True) -> sqlite3.Connection:
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _private(self.path)
        elif not self.path.exists():
            raise FileNotFoundError(self.path)
        db = sqlite3.connect(self.path, timeout=15, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA busy_timeout = 15000")
        if create:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")  # an audit row survives power loss
            db.executescript(SCHEMA)
        return db

    def open(self, *, operator: str, action: str, parameters: dict, reason: str, source: str,
             playbook: str, inventory: list, controller: str, pid: int,
             artifact_dir: str | None = None, lock_takeover: dict | None = None,
             started_at: str | None = None) -> int:
        """Commit the start of a run; returns its id."""
        row = {
            "started_at": started_at or clock.stamp(), "operator": operator, "action": action,
            "parameters": _dump(parameters or {}), "reason": reason or "", "source": source,
            "playbook": playbook, "inventory": _dump(inventory or []), "controller": controller,
            "pid": pid, "artifact_dir": artifact_dir, "lock_takeover": _dump(lock_takeover),
        }
        with closing(self._connect()) as db:
            cursor = db.execute(
                f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                tuple(row.values()))
            return cursor.lastrowid

    def note_state_before(self, run_id: int, state: dict) -> None:
        """The release state as the run found it, kept as soon as it is known, so a run that
        is killed still tells what it started from."""
        with closing(self._connect()) as db:
            db.execute("UPDATE runs SET state_before = ? WHERE id = ? AND result = 'running' "
                       "AND state_before IS NULL", (_dump(state), run_id))

    def close(self, run_id: int, *, result: str, message: str | None = None,
              changed: bool | None = None, failed_hosts: list | None = None,
              state_before: dict | None = None, state_after: dict | None = None,
              finished_at: str | None = None) -> bool:
        """Close a running record, once. False when it was already closed."""
        if result not in RESULTS or result == RUNNING:
            raise ValueError(f"cannot close a run as {result!r}")
        with closing(self._connect()) as db:
            cursor = db.execute(
                "UPDATE runs SET finished_at = ?, result = ?, message = ?, changed = ?, "
                "failed_hosts = ?, state_before = COALESCE(?, state_before), state_after = ? "
                "WHERE id = ? AND result = 'running'",
                (finished_at or clock.stamp(), result, message,
                 None if changed is None else int(changed), _dump(failed_hosts or []),
                 _dump(state_before), _dump(state_after), run_id))
            return cursor.rowcount == 1

    def close_dead(self, run_id: int, found_by: int | None, when: str | None = None) -> bool:
        """Close the record of a run whose process was found dead. Its end time is unknown,
        so ``finished_at`` stays empty; the message says who found it and when."""
        when = when or clock.stamp()
        by = f"run #{found_by}" if found_by else "a later run"
        with closing(self._connect()) as db:
            cursor = db.execute(
                "UPDATE runs SET result = 'died', message = ? WHERE id = ? AND result = 'running'",
                (f"did not finish: its process was found dead at {when} by {by}, "
                 "which took its lock over", run_id))
            return cursor.rowcount == 1

    def get(self, run_id: int) -> dict | None:
        with closing(self._connect(create=False)) as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return _record(row) if row else None

    def find_by_artifact_dir(self, artifact_dir: str) -> dict | None:
        try:
            with closing(self._connect(create=False)) as db:
                row = db.execute("SELECT * FROM runs WHERE artifact_dir = ? ORDER BY id DESC LIMIT 1",
                                 (str(artifact_dir),)).fetchone()
        except FileNotFoundError:
            return None
        return _record(row) if row else None

    def query(self, query: Query = Query()) -> list[dict]:
        """Records matching the filters, newest first."""
        where, args = [], []
        if query.since:
            where.append("started_at >= ?")
            args.append(query.since)
        if query.until:
            where.append("started_at < ?")
            args.append(query.until)
        if query.operator:
            where.append("operator = ?")
            args.append(query.operator)
        if query.actions:
            where.append(f"action IN ({', '.join('?' * len(query.actions))})")
            args.extend(query.actions)
        sql = "SELECT * FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC"
        if query.limit:
            sql += " LIMIT ?"
            args.append(int(query.limit))
        try:
            with closing(self._connect(create=False)) as db:
                return [_record(row) for row in db.execute(sql, args)]
        except FileNotFoundError:
            return []

    def journal_mode(self) -> str:
        with closing(self._connect()) as db:
            return db.execute("PRAGMA journal_mode").fetchone()[0]


def _dump(value) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def _record(row: sqlite3.Row) -> dict:
    record = dict(row)
    for field in _JSON_FIELDS:
        if record.get(field) is not None:
            record[field] = json.loads(record[field])
    if record.get("changed") is not None:
        record["changed"] = bool(record["changed"])
    return record


def _private(path: Path) -> None:
    """The log names who did what and why: readable by its owner only (sqlite gives its -wal
    and -shm files the same mode)."""
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    if path.stat().st_uid == os.getuid() and path.stat().st_mode & 0o077:
        path.chmod(0o600)
