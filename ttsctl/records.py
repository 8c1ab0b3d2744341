"""What a playbook run did, in audit-record terms: pure functions over the task results that
Ansible reports. The audit callback plugin feeds it from inside ansible-playbook and ttsctl
feeds it from ansible-runner's events, so both reach the same verdict on every run."""
from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from pathlib import Path

from ttsctl import free_text

# Playbooks that change the system; every run of one is recorded and takes the lock. The
# first five change the release; the others its watchers and hosts (thresholds, routes,
# tokens, drivers), which deserve the same record.
STATE_CHANGING = ("deploy", "canary", "promote", "rollback", "site", "monitoring", "control_plane", "gpu_host")
# Extra vars that are columns of their own rather than parameters.
_OWN_COLUMNS = ("operator", "reason")
# The extra vars each release playbook of the project takes, beside operator and reason.
# Anything else would override what the playbooks work out (the weights, the servers, the
# state's path) behind the release state's back, so it is refused before any task.
PARAMETERS = {
    "deploy": ("version", "fault_error_rate", "fault_latency_ms", "fault_silence", "fault_memory_growth_mb"),
    "canary": ("weight",),
    "promote": (),
    "rollback": (),
    "site": (),
}


# The play variable by which a playbook declares the change it makes, in its first play.
DECLARATION = "ttsctl_action"


def declared_action(first_play_vars: dict | None) -> str | None:
    """The change a playbook declares (``vars: {ttsctl_action: canary}`` in its first play),
    None when it declares none. The declaration, not the file name, is what the audit
    callback locks and records, so a renamed copy of a release playbook is still one.
    Raises ValueError for a declaration that names no known change."""
    declared = (first_play_vars or {}).get(DECLARATION)
    if declared is None:
        return None
    if declared not in STATE_CHANGING:
        raise ValueError(f"the playbook declares {DECLARATION}: {str(declared)[:60]!r}, which is not a change "
                         f"ttsctl knows (one of {', '.join(STATE_CHANGING)})")
    return declared


def action_of(playbook_path: str) -> str | None:
    """The release action of one of the project's playbooks, by its name (how ttsctl runs
    them; each declares the same action, tests/unit/test_records.py checks it)."""
    name = Path(str(playbook_path)).name
    for suffix in (".yml", ".yaml"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name if name in STATE_CHANGING else None


def operator_of(extra_vars: dict, environ=None) -> str:
    """Who acts, as playbooks/vars/release.yml works it out for the release state:
    the ``operator`` extra var, else $TTSCTL_OPERATOR, else the login name."""
    env = os.environ if environ is None else environ
    named = (extra_vars.get("operator") or env.get(free_text.OPERATOR_ENV) or env.get("USER")
             or env.get("LOGNAME") or getpass.getuser())
    return free_text.clean(named, free_text.OPERATOR_LIMIT) or "unknown"


def reason_of(extra_vars: dict, environ=None) -> str:
    """Why, as playbooks/vars/release.yml has it: the ``reason`` extra var, else $TTSCTL_REASON."""
    env = os.environ if environ is None else environ
    return free_text.clean(extra_vars.get("reason") or env.get(free_text.REASON_ENV) or "")


def parameter_problems(action: str | None, extra_vars: dict) -> list[str]:
    """Why a release playbook of the project cannot take these extra vars (empty when it can)."""
    if action not in PARAMETERS:
        return []
    allowed = set(PARAMETERS[action]) | set(_OWN_COLUMNS)
    unknown = sorted(str(key) for key in extra_vars if key not in allowed)
    if not unknown:
        return []
    takes = ", ".join(PARAMETERS[action] + _OWN_COLUMNS)
    return [f"{action} takes no extra var {', '.join(repr(k) for k in unknown)} (it takes {takes}): settings "
            "belong in the inventory, where every run sees them"]


def parameters_of(extra_vars: dict) -> dict:
    return {key: value for key, value in sorted(extra_vars.items()) if key not in _OWN_COLUMNS}


def short_action(action: str | None) -> str:
    """``ansible.builtin.assert`` -> ``assert``; local modules have no collection prefix."""
    return str(action or "").rsplit(".", 1)[-1]


@dataclass(frozen=True)
class Failure:
    play: int           # 1 for the first play of the playbook
    host: str
    action: str
    message: str
    refused: bool


@dataclass
class RunRecorder:
    """Follows one playbook run, result by result."""
    play: int = 0
    state_before: dict | None = None
    state_after: dict | None = None
    failures: list[Failure] = field(default_factory=list)
    failed_hosts: list[str] = field(default_factory=list)
    changed: bool = False
    finished: bool = False

    def play_started(self) -> None:
        self.play += 1

    def task_result(self, host: str, action: str | None, result: dict, status: str,
                    ignored: bool = False) -> bool:
        """Take one host's result of one task; ``status`` is ok, failed or unreachable.
        Returns True when the release state became known for the first time."""
        result = result or {}
        first_state = False
        if short_action(action) == "release_state":
            if self.state_before is None and isinstance(result.get("before"), dict):
                self.state_before = result["before"]
                first_state = True
            if isinstance(result.get("state"), dict):
                self.state_after = result["state"]
        if result.get("changed") and status == "ok":
            self.changed = True
        if status == "failed" and ignored:
            return first_state
        if status in ("failed", "unreachable"):
            self.failures.append(Failure(
                play=self.play, host=host, action=short_action(action),
                message=failure_message(result, status),
                refused=status == "failed" and is_refusal(self.play, action, result)))
            if host not in self.failed_hosts:
                self.failed_hosts.append(host)
        return first_state

    @property
    def result(self) -> str:
        if any(f.refused for f in self.failures):
            return "refused"
        return "failed" if self.failures else "ok"

    @property
    def message(self) -> str | None:
        chosen = next((f for f in self.failures if f.refused), None) or (self.failures[0] if self.failures else None)
        return chosen.message if chosen else None

    def closing_fields(self) -> dict:
        """The columns that close the run's audit record."""
        return {"result": self.result, "message": self.message, "changed": self.changed,
                "failed_hosts": list(self.failed_hosts), "state_before": self.state_before,
                "state_after": self.state_after}


def is_refusal(play: int, action: str | None, result: dict) -> bool:
    """Refused input: an input check of the first play (nothing has changed yet), or a
    transition the release state module refuses."""
    if short_action(action) == "release_state" and result.get("refused"):
        return True
    return play <= 1 and short_action(action) in ("assert", "fail")


def failure_message(result: dict, status: str = "failed") -> str:
    message = result.get("msg") or result.get("message") or result.get("stderr") or ""
    if not message and isinstance(result.get("results"), list):  # a loop: first failed item
        for item in result["results"]:
            if isinstance(item, dict) and item.get("failed"):
                message = item.get("msg") or ""
                break
    if isinstance(message, list):
        message = "; ".join(str(m) for m in message)
    message = str(message).strip() or ("host unreachable" if status == "unreachable" else "task failed")
    return message
