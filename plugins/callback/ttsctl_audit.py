"""Ansible callback plugin: the one audit writer and the one lock taker of every release run.

Every path to a change (ttsctl, a raw ansible-playbook, the webhook) runs a playbook, so
doing both here covers them all alike.
"""
from __future__ import annotations

DOCUMENTATION = r"""
name: ttsctl_audit
type: notification
short_description: Record every state-changing release run and hold the release lock during it
description:
  - For the playbooks that declare a change in their first play's vars, as C(ttsctl_action)
    (deploy, canary, promote, rollback, site, monitoring, control_plane or gpu_host), at
    playbook start it takes the release lock (waiting up to C(TTSCTL_LOCK_TIMEOUT) seconds,
    else it ends ansible-playbook with exit code 3 and says who holds the lock since when)
    and commits an audit record; at the end it closes the record with the result
    (ok, failed, refused), failed hosts and the release state before and after.
  - A lock left by a process that died is taken over; the takeover is recorded and the dead
    run's record is closed as C(died).
  - Check mode (C(--check)) changes nothing, so it is neither locked nor recorded.
  - Before any task of any playbook, check mode too, it ends ansible-playbook with exit code
    5 when an extra var holds template markup, was split at a space, carries control
    characters in free text, or (for the project's release playbooks) is not one the
    playbook takes. It ends it with exit code 1 when the lock or the audit record cannot be
    set up, except for a rollback, which runs and says it is not recorded.
  - A run still going after C(TTSCTL_RUN_TIMEOUT) seconds (3600) is interrupted, its record
    closed as C(aborted) and the lock freed.
  - Settings come from the environment, shared with ttsctl
    (C(TTSCTL_AUDIT_DB), C(TTSCTL_LOCK_FILE), C(TTSCTL_LOCK_TIMEOUT), C(TTSCTL_RUN_TIMEOUT));
    see docs/cli.md.
requirements:
  - enabled in ansible.cfg (callbacks_enabled = ttsctl_audit)
"""

import atexit
import os
import signal
import socket
import sys
import threading
from pathlib import Path

from ansible import context
from ansible.plugins.callback import CallbackBase
from ansible.utils.display import Display
from ansible.utils.vars import load_extra_vars

try:
    from ttsctl import audit, free_text, lock, records
    from ttsctl.settings import Settings
except ImportError:  # run from a checkout whose project is not installed: it sits two levels up
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from ttsctl import audit, free_text, lock, records
    from ttsctl.settings import Settings

display = Display()
LOCK_HELD_EXIT_CODE = 3
BAD_INPUT_EXIT_CODE = 5  # ansible-playbook's own code for bad or incomplete options
NOT_STARTED_EXIT_CODE = 1


def _host(result):
    host = getattr(result, "host", None) or result._host
    return host.get_name()


def _action(result):
    return (getattr(result, "task", None) or result._task).action


def _data(result):
    return getattr(result, "result", None) or result._result


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "ttsctl_audit"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._store = None
        self._lock = None
        self._run_id = None
        self._recorder = None
        self._timer = None
        self._timed_out = None
        atexit.register(self._end_unfinished)

    # -- start -----------------------------------------------------------------------------
    def v2_playbook_on_start(self, playbook):
        self._close("aborted", "a second playbook started before this one finished")
        # Before any task renders anything, dry run or not: extra vars are rendered as
        # trusted templates, so free text in them would run as code.
        extra_vars = dict(load_extra_vars(playbook._loader))
        found = free_text.problems(extra_vars, os.environ)
        try:
            action = records.declared_action(_first_play_vars(playbook))
        except ValueError as exc:
            action, found = None, [*found, str(exc)]
        if _project_playbook(playbook._file_name):
            found += records.parameter_problems(action, extra_vars)
        if found:
            for problem in found:
                display.error(f"ttsctl: {problem}", wrap_text=False)
            display.error("ttsctl: refused before any task ran; nothing was changed", wrap_text=False)
            raise SystemExit(BAD_INPUT_EXIT_CODE)
        if action is None or self._dry():
            return
        try:
            self._begin(playbook, action, extra_vars)
        except SystemExit:
            raise
        except Exception as exc:  # noqa: BLE001 - Ansible would only warn and run the change unlocked
            display.error(f"ttsctl: could not take the release lock and open the audit record: {exc}; "
                          "nothing was changed", wrap_text=False)
            self._recorder = None
            if self._lock is not None and self._lock.owned:
                self._lock.release()
            raise SystemExit(NOT_STARTED_EXIT_CODE) from exc

    def _begin(self, playbook, action, extra_vars):
        """Take the lock and open the record, or end ansible-playbook before any task runs."""
        settings = Settings.from_env()
        operator = records.operator_of(extra_vars)
        self._lock = lock.ReleaseLock(settings.lock_file)
        # A token of this run's own, for when it takes the lock itself: its workers show it
        # to the release state's action plugin, which writes nothing for anyone else.
        own_token = lock.new_token()
        wanted = lock.Holder.this_process(operator=operator, action=action, source="ansible-playbook",
                                          token=own_token)
        try:
            grant = self._lock.acquire(wanted, settings.lock_timeout, token=os.environ.get(lock.TOKEN_ENV),
                                       on_wait=self._say_waiting)
        except lock.LockHeld as held:
            display.error(f"{held}; waited {held.waited:.0f} s (TTSCTL_LOCK_TIMEOUT={settings.lock_timeout:g}); "
                          "nothing was changed", wrap_text=False)
            raise SystemExit(LOCK_HELD_EXIT_CODE)
        # The source is not the caller's word: a run is ttsctl's or the webhook's only when
        # that process took the lock and handed this run its token.
        source = grant.holder.source if not grant.owned else "ansible-playbook"
        if grant.owned:
            os.environ[lock.TOKEN_ENV] = own_token  # inherited by the workers, forked later
        took_over = grant.took_over or self._took_over_by_parent(grant)
        self._store = audit.AuditStore(settings.audit_db)
        self._recorder = records.RunRecorder()
        try:
            self._run_id = self._store.open(
                operator=operator, action=action, parameters=records.parameters_of(extra_vars),
                reason=records.reason_of(extra_vars), source=source,
                playbook=str(Path(playbook._file_name).resolve()),
                inventory=[str(i) for i in context.CLIARGS.get("inventory") or ()],
                controller=socket.gethostname(), pid=os.getpid(),
                artifact_dir=os.environ.get("AWX_ISOLATED_DATA_DIR"),
                lock_takeover=_as_dict(took_over))
        except Exception as exc:  # noqa: BLE001 - sqlite and the file system raise many kinds
            if action != "rollback":
                raise RuntimeError(f"the audit log {settings.audit_db} cannot be written ({exc})") from exc
            # Pulling a bad candidate must not wait for a repaired audit log: the rollback
            # runs, under the lock, and says loudly that it is not recorded.
            display.error(f"ttsctl audit: THIS ROLLBACK IS NOT RECORDED: {settings.audit_db} cannot be "
                          f"written ({exc}); the rollback goes on, record it by hand", wrap_text=False)
            self._store = None
            self._start_timer(settings.run_timeout)
            return
        self._start_timer(settings.run_timeout)
        mine = {"record_id": self._run_id, "audit_db": str(settings.audit_db)}
        if not grant.owned:
            mine.update(runner_pid=os.getpid(), runner_pid_start=lock.process_start(os.getpid()))
        self._lock.annotate(**mine)
        if took_over is not None:
            if took_over.record_id and took_over.audit_db == str(settings.audit_db):
                self._store.close_dead(took_over.record_id, found_by=self._run_id)
            display.warning(f"ttsctl: took the release lock over from a holder that died: {took_over.describe()}")

    def _start_timer(self, seconds):
        """A hung run must not hold the lock for ever: past the timeout it is interrupted
        (as Ctrl-C would), which ends its tasks, closes its record and frees the lock."""
        if seconds:
            self._timer = threading.Timer(seconds, self._time_out, args=(seconds,))
            self._timer.daemon = True
            self._timer.start()

    def _time_out(self, seconds):
        self._timed_out = seconds
        display.error(f"ttsctl: the run took longer than TTSCTL_RUN_TIMEOUT={seconds:g} s: stopping it",
                      wrap_text=False)
        os.kill(os.getpid(), signal.SIGINT)

    def _took_over_by_parent(self, grant):
        """ttsctl took the lock for this run; a takeover it made is noted in the holder file."""
        if grant.owned or not grant.holder.took_over:
            return None
        previous = grant.holder.took_over
        return lock.Holder(**{k: v for k, v in previous.items() if k in lock.Holder.__dataclass_fields__})

    @staticmethod
    def _dry():
        args = context.CLIARGS
        return bool(args.get("check") or args.get("syntax") or args.get("listhosts")
                    or args.get("listtasks") or args.get("listtags"))

    @staticmethod
    def _say_waiting(holder):
        who = holder.describe() if holder else "another process"
        display.display(f"ttsctl: waiting for the release lock held by {who}", stderr=True)

    # -- results ---------------------------------------------------------------------------
    def v2_playbook_on_play_start(self, play):
        if self._recorder:
            self._recorder.play_started()

    def _take(self, result, status, ignored=False):
        if not self._recorder:
            return
        first = self._recorder.task_result(_host(result), _action(result), _data(result), status, ignored)
        if first and self._store and self._run_id:
            try:
                self._store.note_state_before(self._run_id, self._recorder.state_before)
            except Exception as exc:  # noqa: BLE001
                display.warning(f"ttsctl audit: {exc}")

    def v2_runner_on_ok(self, result):
        self._take(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._take(result, "failed", ignored=ignore_errors)

    def v2_runner_on_unreachable(self, result):
        self._take(result, "unreachable")

    # -- end -------------------------------------------------------------------------------
    def v2_playbook_on_stats(self, stats):
        if self._recorder:
            self._recorder.finished = True
            self._close(**self._recorder.closing_fields())

    def _close(self, result, message=None, **fields):
        if self._recorder is None:
            return
        recorder, self._recorder = self._recorder, None
        if self._timer is not None:
            self._timer.cancel()
        if self._store and self._run_id:
            if result == "aborted":
                fields = {**recorder.closing_fields(), "result": "aborted", "message": message}
            else:
                fields = {**fields, "result": result, "message": message}
            try:
                self._store.close(self._run_id, **fields)
            except Exception as exc:  # noqa: BLE001
                display.warning(f"ttsctl audit: could not close record #{self._run_id}: {exc}")
        if self._lock is not None:
            if self._lock.owned:
                self._lock.release()
            else:
                self._lock.release_orphaned(os.environ.get(lock.TOKEN_ENV))
        self._run_id = None

    def _end_unfinished(self):
        """ansible-playbook is exiting without having reached the end (Ctrl-C, an error)."""
        if self._timed_out:
            self._close("aborted", f"stopped after TTSCTL_RUN_TIMEOUT={self._timed_out:g} s: the run took too long")
        else:
            self._close("aborted", "the run ended before it finished (interrupted or an error)")


def _first_play_vars(playbook):
    """The ``vars`` of the playbook's first play (imported playbooks' plays included)."""
    plays = playbook.get_plays()
    return plays[0].vars if plays else None


def _project_playbook(path):
    """One of this project's playbooks (stand-ins elsewhere, as in tests, take what they like)."""
    try:
        return Path(path).resolve().parent == Settings.from_env().playbooks_dir.resolve()
    except (OSError, ValueError):
        return True


def _as_dict(holder):
    if holder is None:
        return None
    from dataclasses import asdict
    data = asdict(holder)
    data.pop("took_over", None)
    data.pop("token", None)
    return data
