"""Run a release playbook through ansible-runner: the one path from ttsctl (and the webhook)
to a change. It takes the release lock, hands it to the ansible-playbook child, streams
events to whoever watches, and says what happened in audit-record terms."""
from __future__ import annotations

import json
import os
import re
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import ansible_runner

from ttsctl import clock, free_text, lock, records
from ttsctl.audit import AuditStore
from ttsctl.settings import Settings

EventHandler = Callable[[dict], None]
EXPECT_ENV = "TTSCTL_EXPECT_CANDIDATE"  # read by playbooks/rollback.yml


@dataclass
class Outcome:
    playbook: str
    check: bool
    rc: int
    status: str                      # ansible-runner's: successful, failed, canceled, timeout
    recorder: records.RunRecorder
    artifact_dir: str
    seconds: float
    facts: dict = field(default_factory=dict)
    record: dict | None = None       # the audit record of the run, when it has one

    @property
    def result(self) -> str:
        """ok, failed or refused; a run that did not reach its end failed."""
        verdict = self.recorder.result
        if verdict == "ok" and (self.rc != 0 or not self.recorder.finished):
            return "failed"
        return verdict

    @property
    def message(self) -> str | None:
        if self.recorder.message:
            return self.recorder.message
        if self.result == "failed":
            said = _last_words(Path(self.artifact_dir) / "stdout")
            return f"ansible-playbook ended with exit code {self.rc} ({self.status})" + (f":\n{said}" if said else "")
        return None


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _last_words(stdout: Path, lines: int = 8) -> str:
    """The end of what ansible-playbook printed: why a run failed outside any task
    (a syntax error, a missing role)."""
    try:
        text = _ANSI.sub("", stdout.read_text(errors="replace"))
    except OSError:
        return ""
    kept = [line.rstrip() for line in text.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


class RunFailed(Exception):
    """ansible-runner could not start or follow the playbook."""


def run_playbook(settings: Settings, playbook: str, extravars: dict, *, check: bool = False,
                 inventory: str | None = None, on_event: EventHandler | None = None,
                 source: str = "ttsctl", operator: str = "unknown", reason: str | None = None,
                 expect: dict | None = None, on_lock_wait: Callable[[lock.Holder | None], None] | None = None) -> Outcome:
    """Run ``playbooks/<playbook>.yml``. State-changing playbooks run under the release lock
    (raises lock.LockHeld when it stays held past ``settings.lock_timeout``); check mode and
    read-only playbooks take no lock.

    ``operator`` and ``reason`` are free text: they reach the playbook through the
    environment, as data, never as extra vars. Extra vars that Ansible would run as code
    raise free_text.Rejected before anything runs. ``expect`` (a rollback's candidate) makes
    the release state refuse the change unless it still has that candidate."""
    free_text.refuse_unsafe(extravars)
    operator = free_text.clean(operator, free_text.OPERATOR_LIMIT) or "unknown"
    action = records.action_of(playbook)
    release_lock = None
    envvars = _child_environment(settings)
    envvars[free_text.OPERATOR_ENV] = operator
    envvars[free_text.REASON_ENV] = free_text.clean(reason)
    # Always set, so a value left in the caller's environment never judges another rollback.
    envvars[EXPECT_ENV] = json.dumps(expect) if expect is not None else ""
    if action and not check:
        token = lock.new_token()
        release_lock = lock.ReleaseLock(settings.lock_file)
        holder = lock.Holder.this_process(operator=operator, action=action, source=source, token=token)
        release_lock.acquire(holder, settings.lock_timeout, on_wait=on_lock_wait)
        envvars[lock.TOKEN_ENV] = token
    recorder = records.RunRecorder()
    try:
        outcome = _run(settings, playbook, extravars, check=check, inventory=inventory,
                       envvars=envvars, recorder=recorder, on_event=on_event)
    finally:
        if release_lock is not None:
            # A child that did not reach its end left its record open: keep the holder file,
            # so the next run finds a dead holder, closes that record and says so.
            holder = release_lock.read_holder()
            release_lock.release(keep_holder=not recorder.finished and bool(holder and holder.record_id))
    if action and not check:
        try:
            outcome.record = AuditStore(settings.audit_db).find_by_artifact_dir(outcome.artifact_dir)
        except Exception:  # noqa: BLE001 - an unreadable log: the run itself said why
            outcome.record = None
    return outcome


def _child_environment(settings: Settings) -> dict[str, str]:
    env = settings.environ()
    # ansible-playbook from the same installation as ttsctl, activated or not.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    # The project's ansible.cfg, wherever ttsctl was started from.
    env["ANSIBLE_CONFIG"] = str(settings.project_dir / "ansible.cfg")
    # ansible-runner sets ANSIBLE_CALLBACK_PLUGINS for its own event callback, which hides
    # ansible.cfg's callback_plugins: name the project's (the audit writer) explicitly.
    env["ANSIBLE_CALLBACK_PLUGINS"] = str(settings.project_dir / "plugins" / "callback")
    enabled = os.environ.get("ANSIBLE_CALLBACKS_ENABLED")
    if enabled and "ttsctl_audit" not in enabled.split(","):
        env["ANSIBLE_CALLBACKS_ENABLED"] = f"{enabled},ttsctl_audit"
    return env


def _run(settings, playbook, extravars, *, check, inventory, envvars, recorder, on_event) -> Outcome:
    path = settings.playbooks_dir / f"{playbook}.yml"
    if not path.is_file():
        raise RunFailed(f"no playbook {path}")
    private = Path(settings.artifacts_dir)
    private.mkdir(mode=0o700, parents=True, exist_ok=True)  # a run's output may name hosts and reasons
    ident = f"{clock.utc_now():%Y%m%dT%H%M%S}Z-{playbook}-{secrets.token_hex(3)}"
    facts: dict = {}

    def handle(event: dict) -> bool:
        _follow(event, recorder, facts)
        if on_event:
            on_event(event)
        return True

    started = time.monotonic()
    try:
        run = ansible_runner.run(
            private_data_dir=str(private),
            project_dir=str(settings.project_dir),
            playbook=str(path),
            inventory=inventory,
            extravars={k: v for k, v in extravars.items() if v is not None},
            cmdline="--check --diff" if check else None,
            envvars=envvars,
            ident=ident,
            event_handler=handle,
            quiet=True,
            # Concurrent runs share the private data dir: keep everything in memory rather
            # than in env/ files that a later run would pick up.
            suppress_env_files=True,
            rotate_artifacts=settings.keep_artifacts,
        )
    except Exception as exc:  # noqa: BLE001 - ansible-runner raises many kinds
        raise RunFailed(f"ansible-runner could not run {path.name}: {exc}") from exc
    return Outcome(playbook=playbook, check=check, rc=run.rc if run.rc is not None else -1,
                   status=run.status, recorder=recorder, artifact_dir=str(private / "artifacts" / ident),
                   seconds=time.monotonic() - started, facts=facts)


_RESULT_EVENTS = {"runner_on_ok": "ok", "runner_on_failed": "failed", "runner_on_unreachable": "unreachable"}


def _follow(event: dict, recorder: records.RunRecorder, facts: dict) -> None:
    """Feed ansible-runner's events to the recorder, as the audit callback does inside."""
    kind = event.get("event")
    data = event.get("event_data") or {}
    if kind == "playbook_on_play_start":
        recorder.play_started()
    elif kind in _RESULT_EVENTS:
        result = data.get("res") or {}
        recorder.task_result(data.get("host", "?"), data.get("task_action"), result,
                             _RESULT_EVENTS[kind], ignored=bool(data.get("ignore_errors")))
        if isinstance(result.get("ansible_facts"), dict) and kind == "runner_on_ok":
            facts.update(result["ansible_facts"])
    elif kind == "playbook_on_stats":
        recorder.finished = True
