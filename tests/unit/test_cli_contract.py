"""The CLI's contract with scripts: what it passes to the playbooks and its exit codes.
Playbook runs are replaced by canned outcomes here; tests/integration/test_cli.py runs them."""
import json
import sqlite3

import pytest
from click.testing import CliRunner

from ttsctl import cli, lock, records, runner
from ttsctl.audit import AuditStore


class FakeRuns:
    def __init__(self):
        self.calls = []
        self.result = "ok"
        self.raise_error = None
        self.facts = {}

    def __call__(self, settings, playbook, extravars, **kwargs):
        self.calls.append({"settings": settings, "playbook": playbook, "extravars": extravars, **kwargs})
        if self.raise_error:
            raise self.raise_error
        recorder = records.RunRecorder(finished=True)
        if self.result != "ok":
            recorder.play_started()
            action = "assert" if self.result == "refused" else "uri"
            recorder.task_result("localhost", action, {"msg": f"it was {self.result}"}, "failed")
        return runner.Outcome(playbook=playbook, check=kwargs.get("check", False), rc=0 if self.result == "ok" else 2,
                              status="successful", recorder=recorder, artifact_dir="/tmp/a", seconds=0.1,
                              facts=self.facts, record={"id": 1})


@pytest.fixture
def runs(monkeypatch, tmp_path):
    fake = FakeRuns()
    monkeypatch.setattr(runner, "run_playbook", fake)
    monkeypatch.setenv("TTSCTL_AUDIT_DB", str(tmp_path / "audit.db"))
    monkeypatch.delenv("TTSCTL_OPERATOR", raising=False)
    return fake


def ttsctl(*args, env=None):
    return CliRunner().invoke(cli.main, list(args), env=env)


@pytest.mark.parametrize("result, code", [("ok", 0), ("failed", 1), ("refused", 2)])
def test_exit_code_says_done_failed_or_refused(runs, result, code):
    runs.result = result
    outcome = ttsctl("canary", "--weight", "5")
    assert outcome.exit_code == code, outcome.output


def test_a_held_lock_exits_3_naming_the_holder_and_since_when(runs):
    holder = lock.Holder(operator="alice", action="promote", source="ttsctl", pid=4242, pid_start=None,
                         host="vm", since="2025-11-26T06:00:00.000Z")
    runs.raise_error = lock.LockHeld(holder, 30.0)
    outcome = ttsctl("rollback", "--reason", "latency")
    assert outcome.exit_code == 3
    assert "alice" in outcome.output and "pid 4242" in outcome.output and "since 2025-11-26T06:00:00" in outcome.output


@pytest.mark.parametrize("args", [["canary"], ["deploy"], ["frobnicate"], ["canary", "--weight", "5", "--bogus"],
                                  ["history", "--since", "yesterday-ish"], ["history", "--action", "status"]])
def test_usage_errors_exit_2_and_run_nothing(runs, args):
    outcome = ttsctl(*args)
    assert outcome.exit_code == 2 and runs.calls == []


def test_the_weight_goes_to_the_playbook_as_typed_so_it_judges_and_records_it(runs):
    ttsctl("canary", "--weight", "abc")
    assert runs.calls[0]["playbook"] == "canary" and runs.calls[0]["extravars"]["weight"] == "abc"


def test_the_operator_comes_from_the_option_else_the_environment_else_the_login(runs, monkeypatch):
    ttsctl("canary", "--weight", "5", "--operator", "alice")
    ttsctl("canary", "--weight", "5", env={"TTSCTL_OPERATOR": "ops"})
    monkeypatch.setattr(cli.getpass, "getuser", lambda: "login")
    ttsctl("canary", "--weight", "5")
    assert [c["operator"] for c in runs.calls] == ["alice", "ops", "login"]
    assert all("operator" not in c["extravars"] for c in runs.calls)


def test_global_options_work_before_or_after_the_command(runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "inv").mkdir()
    ttsctl("--dry-run", "--reason", "r1", "-i", "inv", "canary", "--weight", "5")
    ttsctl("canary", "--weight", "5", "--dry-run", "--reason", "r2", "--inventory", "inventory/local")
    first, second = runs.calls
    assert first["check"] and second["check"]
    assert (first["reason"], first["inventory"]) == ("r1", str(tmp_path / "inv"))
    # ansible-runner reads a relative path as inventory text: it gets absolute paths,
    # from the current directory where they exist, else from the project's.
    assert second["reason"] == "r2"
    assert second["inventory"] == str(second["settings"].project_dir / "inventory" / "local")


def test_promote_without_a_reason_off_a_terminal_lets_the_playbook_refuse_and_record_it(runs):
    runs.result = "refused"
    outcome = ttsctl("promote")
    assert outcome.exit_code == 2 and runs.calls[0]["reason"] is None


def test_free_text_is_passed_apart_from_the_extra_vars_as_typed_on_one_line(runs):
    ttsctl("rollback", "--reason", "{{ lookup('pipe', 'id') }}\nsecond\x1b[31m line", "--operator", "al\x00ice")
    call = runs.calls[0]
    assert call["extravars"] == {}
    assert (call["reason"], call["operator"]) == ("{{ lookup('pipe', 'id') }} second[31m line", "alice")


def test_a_reason_of_only_control_characters_is_no_reason(runs):
    runs.result = "refused"
    ttsctl("rollback", "--reason", "\x1b\x07 \n")
    assert runs.calls[0]["reason"] is None


def test_a_setting_that_is_not_a_number_is_a_usage_error_and_runs_nothing(runs):
    outcome = ttsctl("canary", "--weight", "5", env={"TTSCTL_LOCK_TIMEOUT": "soon"})
    assert outcome.exit_code == 2 and "TTSCTL_LOCK_TIMEOUT" in outcome.output and runs.calls == []


def test_deploy_passes_the_version_and_the_lock_timeout(runs):
    ttsctl("deploy", "--version", "2.0", "--lock-timeout", "5")
    assert runs.calls[0]["extravars"]["version"] == "2.0"
    assert runs.calls[0]["settings"].lock_timeout == 5


def test_status_json_prints_the_report_of_the_status_playbook(runs):
    runs.facts = {"release_status": {"active": "blue", "phase": "deployed", "candidate_weight": 0,
                                     "colors": {"blue": {"version": "1.5"}, "green": {"version": "2.0"}}}}
    outcome = ttsctl("status", "--json")
    assert outcome.exit_code == 0 and runs.calls[0]["playbook"] == "status"
    assert json.loads(outcome.stdout)["colors"]["green"]["version"] == "2.0"


def test_status_fails_with_1_when_the_status_playbook_fails(runs):
    runs.result = "failed"
    assert ttsctl("status").exit_code == 1


def test_history_json_exports_the_filtered_records_newest_first(runs, tmp_path):
    store = AuditStore(tmp_path / "audit.db")
    common = dict(parameters={}, reason="", source="ttsctl", playbook="p", inventory=[], controller="vm", pid=1)
    store.open(operator="alice", action="canary", started_at="2025-01-01T00:00:00.000Z", **common)
    store.open(operator="bob", action="rollback", started_at="2025-01-02T00:00:00.000Z", **common)
    store.open(operator="alice", action="promote", started_at="2025-01-03T00:00:00.000Z", **common)
    exported = json.loads(ttsctl("history", "--json", "--operator", "alice").stdout)
    assert [r["action"] for r in exported] == ["promote", "canary"]
    exported = json.loads(ttsctl("history", "--json", "--since", "2025-01-02", "--limit", "1").stdout)
    assert [r["action"] for r in exported] == ["promote"]
    assert "rollback" in ttsctl("history", "--action", "rollback").stdout


@pytest.fixture
def at_a_terminal(monkeypatch):
    monkeypatch.setattr(cli, "_interactive", lambda: True)


def test_on_a_terminal_promote_asks_first_and_a_no_changes_nothing(runs, at_a_terminal):
    outcome = CliRunner().invoke(cli.main, ["promote", "--reason", "clean"], input="n\n")
    assert outcome.exit_code == 2 and "not confirmed" in outcome.output and runs.calls == []
    outcome = CliRunner().invoke(cli.main, ["promote", "--reason", "clean"], input="y\n")
    assert outcome.exit_code == 0 and len(runs.calls) == 1


def test_yes_and_dry_run_skip_the_question(runs, at_a_terminal):
    assert ttsctl("deploy", "--version", "2.0", "--yes").exit_code == 0
    assert ttsctl("promote", "--reason", "r", "--dry-run").exit_code == 0
    assert len(runs.calls) == 2


def test_on_a_terminal_a_missing_reason_is_asked_for(runs, at_a_terminal):
    outcome = CliRunner().invoke(cli.main, ["rollback"], input="latency spike\n")
    assert outcome.exit_code == 0 and runs.calls[0]["reason"] == "latency spike"


def test_rollback_never_asks_for_confirmation(runs, at_a_terminal):
    outcome = CliRunner().invoke(cli.main, ["rollback", "--reason", "now"], input="")
    assert outcome.exit_code == 0 and len(runs.calls) == 1


def test_history_verify_exits_0_on_an_intact_log_and_1_naming_each_problem(runs, tmp_path):
    store = AuditStore(tmp_path / "audit.db")
    common = dict(parameters={}, reason="", source="ttsctl", playbook="p", inventory=[], controller="vm", pid=1)
    store.close(store.open(operator="alice", action="canary", **common), result="ok")
    intact = ttsctl("history", "--verify")
    assert intact.exit_code == 0 and "audit log intact: 1 records, 2 chain entries" in intact.stdout
    assert json.loads(ttsctl("history", "--verify", "--json").stdout)["head"] in intact.stdout
    db = sqlite3.connect(store.path, isolation_level=None)
    db.execute("DROP TRIGGER runs_closed_rows_are_final")
    db.execute("DROP TRIGGER runs_who_and_what_are_final")
    db.execute("UPDATE runs SET operator = 'mallory'")
    db.close()
    altered = ttsctl("history", "--verify")
    assert altered.exit_code == 1 and "record #1 does not match its open entry" in altered.stdout
