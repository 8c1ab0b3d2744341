"""The audit log: one SQLite row per state-changing run, whoever started it.

A row is committed when the run starts (result ``running``) and closed once when it ends.
The database itself refuses to rewrite a closed row or delete any row (triggers), so no
code path, present or future, can edit history. Write-ahead logging lets ``history`` read
while a run writes.

Triggers stop mistakes, not root: whoever can drop them can edit rows. So each opening and
each closing also appends an entry to a hash chain (``chain``: the SHA-256 of the previous
entry and of the row's fields as written), and ``verify`` tells a rewritten, deleted or
inserted row from an intact log. The head digest, copied elsewhere, pins the whole history.
"""
from __future__ import annotations

import hashlib
import json
import os
import pwd
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
    lock_takeover TEXT,
    os_user       TEXT,
    os_uid        INTEGER
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
CREATE TABLE IF NOT EXISTS chain (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id  INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    digest  TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS chain_is_never_rewritten BEFORE UPDATE ON chain
BEGIN SELECT RAISE(ABORT, 'the audit chain is never rewritten'); END;
CREATE TRIGGER IF NOT EXISTS chain_is_never_deleted BEFORE DELETE ON chain
BEGIN SELECT RAISE(ABORT, 'the audit chain is never deleted'); END;
"""
# Columns added after the first release: added to an older log when it is opened.
_ADDED_COLUMNS = {"os_user": "TEXT", "os_uid": "INTEGER"}
# What each chain entry covers: the fields of the row as the opening and the closing wrote them.
OPENING_FIELDS = ("id", "started_at", "operator", "action", "parameters", "reason", "source", "playbook",
                  "inventory", "controller", "pid", "artifact_dir", "lock_takeover", "os_user", "os_uid")
CLOSING_FIELDS = ("id", "finished_at", "result", "message", "changed", "failed_hosts", "state_before",
                  "state_after")
GENESIS = "0" * 64

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
            present = {row["name"] for row in db.execute("PRAGMA table_info(runs)")}
            for column, kind in _ADDED_COLUMNS.items():
                if column not in present:
                    db.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
        return db

    def _write(self, db: sqlite3.Connection, sql: str, args: tuple, kind: str, run_id: int | None = None):
        """One change of a row and its chain entry, in one transaction (so two writers never
        chain onto the same entry). Returns the row's id, None when the change matched no row."""
        db.execute("BEGIN IMMEDIATE")
        try:
            cursor = db.execute(sql, args)
            if cursor.rowcount != 1:
                db.execute("ROLLBACK")
                return None
            run_id = run_id if run_id is not None else cursor.lastrowid
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
            previous = db.execute("SELECT digest FROM chain ORDER BY seq DESC LIMIT 1").fetchone()
            digest = chain_digest(previous["digest"] if previous else GENESIS, kind, row)
            db.execute("INSERT INTO chain (run_id, kind, digest) VALUES (?, ?, ?)", (run_id, kind, digest))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return run_id

    def open(self, *, operator: str, action: str, parameters: dict, reason: str, source: str,
             playbook: str, inventory: list, controller: str, pid: int,
             artifact_dir: str | None = None, lock_takeover: dict | None = None,
             started_at: str | None = None) -> int:
        """Commit the start of a run; returns its id. Beside the operator it declares, the
        record keeps the account the run really runs as."""
        row = {
            "started_at": started_at or clock.stamp(), "operator": operator, "action": action,
            "parameters": _dump(parameters or {}), "reason": reason or "", "source": source,
            "playbook": playbook, "inventory": _dump(inventory or []), "controller": controller,
            "pid": pid, "artifact_dir": artifact_dir, "lock_takeover": _dump(lock_takeover),
            "os_user": _login(), "os_uid": os.getuid(),
        }
        with closing(self._connect()) as db:
            return self._write(db, f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                               tuple(row.values()), "open")

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
            return self._write(
                db, "UPDATE runs SET finished_at = ?, result = ?, message = ?, changed = ?, "
                "failed_hosts = ?, state_before = COALESCE(?, state_before), state_after = ? "
                "WHERE id = ? AND result = 'running'",
                (finished_at or clock.stamp(), result, message,
                 None if changed is None else int(changed), _dump(failed_hosts or []),
                 _dump(state_before), _dump(state_after), run_id), "close", run_id) is not None

    def close_dead(self, run_id: int, found_by: int | None, when: str | None = None) -> bool:
        """Close the record of a run whose process was found dead. Its end time is unknown,
        so ``finished_at`` stays empty; the message says who found it and when."""
        when = when or clock.stamp()
        by = f"run #{found_by}" if found_by else "a later run"
        with closing(self._connect()) as db:
            return self._write(
                db, "UPDATE runs SET result = 'died', message = ? WHERE id = ? AND result = 'running'",
                (f"did not finish: its process was found dead at {when} by {by}, "
                 "which took its lock over", run_id), "close", run_id) is not None

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

    def verify(self) -> Verification:
        """Walk the chain and the rows: every entry must follow the one before it and match
        its row as it stands; every row written since the chain began must be in it."""
        problems: list[str] = []
        with closing(self._connect(create=False)) as db:
            entries = db.execute("SELECT * FROM chain ORDER BY seq").fetchall()
            rows = {row["id"]: row for row in db.execute("SELECT * FROM runs")}
        previous, seen = GENESIS, {}
        for entry in entries:
            row = rows.get(entry["run_id"])
            if row is None:
                problems.append(f"record #{entry['run_id']} is in the chain but not in the log (deleted)")
            elif chain_digest(previous, entry["kind"], row) != entry["digest"]:
                problems.append(f"record #{entry['run_id']} does not match its {entry['kind']} entry "
                                f"#{entry['seq']} (rewritten, or the chain was)")
            seen.setdefault(entry["run_id"], set()).add(entry["kind"])
            previous = entry["digest"]
        first = min(seen, default=None)
        unchained = sorted(i for i in rows if first is None or i < first)
        for run_id, row in sorted(rows.items()):
            if first is not None and run_id >= first:
                kinds = seen.get(run_id, set())
                if "open" not in kinds:
                    problems.append(f"record #{run_id} is not in the chain (inserted, or its entry was deleted)")
                elif row["result"] != RUNNING and "close" not in kinds:
                    problems.append(f"record #{run_id} is closed in the log but not in the chain")
        return Verification(records=len(rows), entries=len(entries), head=previous,
                            unchained=len(unchained), problems=tuple(problems))

    def journal_mode(self) -> str:
        with closing(self._connect()) as db:
            return db.execute("PRAGMA journal_mode").fetchone()[0]


@dataclass(frozen=True)
class Verification:
    records: int
    entries: int
    head: str                  # digest of the last entry: copy it elsewhere to pin the history
    unchained: int             # rows written before this log had a chain
    problems: tuple[str, ...]

    @property
    def intact(self) -> bool:
        return not self.problems


def chain_digest(previous: str, kind: str, row) -> str:
    """SHA-256 of the previous entry's digest and the row's fields the entry covers."""
    fields = OPENING_FIELDS if kind == "open" else CLOSING_FIELDS
    covered = json.dumps({"kind": kind, **{name: row[name] for name in fields}}, sort_keys=True, default=str)
    return hashlib.sha256(f"{previous}\n{covered}".encode()).hexdigest()


def _login() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


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
