"""What a run did, in audit terms: the same verdict from the callback and from runner events."""
import os
import pwd
from pathlib import Path

import pytest
import yaml

from ttsctl import records, runner

ROOT = Path(__file__).resolve().parents[2]
BEFORE = {"active": "blue", "candidate_weight": 0, "phase": "deployed"}
AFTER = {"active": "blue", "candidate_weight": 5, "phase": "canary"}


@pytest.mark.parametrize("path, action", [
    ("playbooks/canary.yml", "canary"), ("/x/playbooks/promote.yml", "promote"), ("rollback.yaml", "rollback"),
    ("deploy.yml", "deploy"), ("site.yml", "site"), ("playbooks/status.yml", None), ("other.yml", None),
    ("playbooks/monitoring.yml", "monitoring"), ("control_plane.yml", "control_plane"), ("gpu_host.yml", "gpu_host"),
])
def test_only_the_release_playbooks_are_recorded(path, action):
    assert records.action_of(path) == action


def test_a_playbook_declares_its_change_in_its_first_play():
    assert records.declared_action({"ttsctl_action": "canary", "x": 1}) == "canary"
    assert records.declared_action({}) is None and records.declared_action(None) is None
    for bogus in ("status", "{{ lookup('pipe', 'id') }}", 5, ""):
        with pytest.raises(ValueError, match="not a change ttsctl knows"):
            records.declared_action({"ttsctl_action": bogus})


@pytest.mark.parametrize("path", sorted((ROOT / "playbooks").glob("*.yml")), ids=lambda p: p.name)
def test_each_project_playbook_declares_the_change_ttsctl_runs_it_for(path):
    """ttsctl picks the action by file name, the callback by declaration: they must agree."""
    first_play = yaml.safe_load(path.read_text())[0]
    assert records.declared_action(first_play.get("vars")) == records.action_of(path)


def test_the_operator_is_worked_out_as_the_playbooks_do():
    env = {"TTSCTL_OPERATOR": "ops", "USER": "root"}
    assert records.operator_of({"operator": "alice"}, env) == "alice"
    assert records.operator_of({}, env) == "ops"
    assert records.operator_of({}, {"USER": "root"}) == "root"
    assert records.operator_of({}, {"LOGNAME": "lee"}) == "lee"
    # No name in the environment: the login of the process, as `id -un` gives the playbook.
    assert records.operator_of({}, {}) == pwd.getpwuid(os.getuid()).pw_name
    assert records.operator_of({"operator": "al\x1bice\n"}, env) == "alice"


def test_the_reason_is_the_extra_var_else_the_environment_on_one_line():
    assert records.reason_of({"reason": "why"}, {"TTSCTL_REASON": "env"}) == "why"
    assert records.reason_of({}, {"TTSCTL_REASON": "two\nlines {{ x }}"}) == "two lines {{ x }}"
    assert records.reason_of({}, {}) == ""


def test_each_release_playbook_takes_its_own_parameters_and_nothing_internal():
    assert records.parameter_problems("canary", {"weight": "5", "reason": "r", "operator": "o"}) == []
    assert records.parameter_problems("deploy", {"version": "2.0", "fault_error_rate": "0.5"}) == []
    (problem,) = records.parameter_problems("canary", {"weight": "5", "haproxy_weights": {}, "tts_servers": []})
    assert "'haproxy_weights', 'tts_servers'" in problem and "it takes weight, operator, reason" in problem
    assert records.parameter_problems("rollback", {"version": "2.0"})
    assert records.parameter_problems(None, {"status_output": "/tmp/s.json"}) == []


def test_operator_and_reason_are_columns_not_parameters():
    extra = {"weight": "5", "operator": "alice", "reason": "why"}
    assert records.parameters_of(extra) == {"weight": "5"}
    assert records.reason_of(extra, {}) == "why"


def test_a_failed_input_check_in_the_first_play_is_a_refusal():
    run = records.RunRecorder()
    run.play_started()
    run.task_result("lb", "ansible.builtin.assert", {"msg": "weight must be ...; nothing was changed"}, "failed")
    assert run.result == "refused" and run.message == "weight must be ...; nothing was changed"
    assert run.failed_hosts == ["lb"] and run.state_before is None


def test_a_transition_the_release_state_refuses_is_a_refusal_in_any_play():
    run = records.RunRecorder()
    run.play_started()
    run.play_started()
    run.task_result("lb", "release_state", {"msg": "refused: no candidate", "refused": True,
                                            "before": BEFORE, "state": BEFORE}, "failed")
    assert run.result == "refused" and run.state_before == BEFORE == run.state_after


def test_an_assert_failing_after_the_first_play_is_a_failure():
    run = records.RunRecorder()
    run.play_started()
    run.play_started()
    run.task_result("gpu", "assert", {"msg": "not ready"}, "failed")
    assert run.result == "failed"


def test_an_ignored_failure_is_not_a_failure_and_unreachable_is():
    run = records.RunRecorder()
    run.play_started()
    run.task_result("lb", "uri", {"msg": "nope"}, "failed", ignored=True)
    assert run.result == "ok"
    run.task_result("gpu1", "ping", {"msg": "ssh: no route"}, "unreachable")
    assert run.result == "failed" and run.failed_hosts == ["gpu1"] and run.message == "ssh: no route"


def test_states_before_and_after_come_from_the_release_state_results():
    run = records.RunRecorder()
    run.play_started()
    assert run.task_result("lb", "release_state", {"before": BEFORE, "state": BEFORE}, "ok") is True
    assert run.task_result("lb", "release_state", {"before": BEFORE, "state": AFTER, "changed": True}, "ok") is False
    run.task_result("lb", "release_state", {"before": AFTER, "state": AFTER}, "ok")
    fields = run.closing_fields()
    assert fields["state_before"] == BEFORE and fields["state_after"] == AFTER
    assert fields["changed"] is True and fields["result"] == "ok" and fields["failed_hosts"] == []


def test_a_loop_failure_names_its_failed_item():
    result = {"results": [{"failed": False}, {"failed": True, "msg": "Status code was -1"}]}
    assert records.failure_message(result) == "Status code was -1"


def event(kind, **data):
    return {"event": kind, "event_data": data}


def test_ttsctl_reaches_the_callbacks_verdict_from_runner_events():
    recorder, facts = records.RunRecorder(), {}
    for e in [
        event("playbook_on_play_start", play="Canary"),
        event("runner_on_ok", host="localhost", task_action="release_state", res={"before": BEFORE, "state": BEFORE}),
        event("runner_on_failed", host="localhost", task_action="release_state", ignore_errors=False,
              res={"msg": "refused: the standby colour ...", "refused": True, "before": BEFORE, "state": BEFORE}),
        event("playbook_on_stats"),
    ]:
        runner._follow(e, recorder, facts)
    assert recorder.result == "refused" and recorder.finished and recorder.state_before == BEFORE


def test_facts_a_run_sets_are_collected_from_runner_events():
    recorder, facts = records.RunRecorder(), {}
    runner._follow(event("runner_on_ok", host="lb", task_action="set_fact",
                         res={"ansible_facts": {"release_status": {"phase": "canary"}}}), recorder, facts)
    assert facts["release_status"] == {"phase": "canary"}


def test_a_run_that_never_reached_its_end_failed_whatever_its_tasks_said():
    outcome = runner.Outcome(playbook="canary", check=False, rc=-9, status="failed",
                             recorder=records.RunRecorder(), artifact_dir="/a", seconds=1.0)
    assert outcome.result == "failed" and "exit code -9" in outcome.message
