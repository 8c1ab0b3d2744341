"""ttsctl against the real local deployment: each command's effect at the frontend, the audit
records of ttsctl and raw playbook runs, every refusal, the lock, a SIGKILLed run, dry runs.

The deployment is shared: each test that changes it puts it back to the baseline (blue 1.5
active, green 2.0 parked at weight 0). ttsctl's own files (audit log, lock, artifacts) are
private to each test, so its assertions see only its own runs.
"""
from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import deployment
from ttsctl import lock
from ttsctl.audit import AuditStore

pytestmark = pytest.mark.integration

_SCRIPT = Path(sys.executable).with_name("ttsctl")
TTSCTL = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "ttsctl"]
ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))


@pytest.fixture(scope="module")
def baseline():
    """The deployment these tests drive; skipped where it has not been set up."""
    if not deployment.STATE.exists() or not deployment.haproxy_running():
        pytest.skip("no local deployment: run scripts/quickstart.sh first")
    recorded = deployment.state()["colors"]
    running = deployment.run("podman", "ps", "--filter", "status=running", "--format", "{{.Names}}").stdout.split()
    if not (recorded.get("blue") and recorded.get("green")) or {"tts-blue-0", "tts-green-0"} - set(running):
        pytest.skip("the deployment has not got both colours running: run scripts/quickstart.sh first")
    deployment.ensure_running()


class Control:
    """ttsctl and raw ansible-playbook runs with this test's own audit log, lock and artifacts."""

    def __init__(self, tmp_path: Path):
        self.dir = tmp_path
        self.env = {**os.environ, "TTSCTL_AUDIT_DB": str(tmp_path / "audit.db"),
                    "TTSCTL_LOCK_FILE": str(tmp_path / "release.lock"),
                    "TTSCTL_ARTIFACTS_DIR": str(tmp_path / "artifacts"),
                    "TTSCTL_OPERATOR": "pytest", "ANSIBLE_FORCE_COLOR": "0",
                    "DOCKER_HOST": "unix:///run/podman/podman.sock"}
        self.env.pop(lock.TOKEN_ENV, None)
        self.store = AuditStore(self.env["TTSCTL_AUDIT_DB"])
        self.lock = lock.ReleaseLock(self.env["TTSCTL_LOCK_FILE"])

    def ttsctl(self, *args: str, wait: bool = True, **env) -> subprocess.CompletedProcess | subprocess.Popen:
        kwargs = dict(cwd=deployment.ROOT, env={**self.env, **env}, text=True,
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if not wait:
            return subprocess.Popen([*TTSCTL, *args], **kwargs)
        return subprocess.run([*TTSCTL, *args], timeout=300, **kwargs)

    def raw(self, name: str, *extra: str, **env) -> subprocess.CompletedProcess:
        """ansible-playbook with each of ``extra`` as an extra var, or as an option (``--check``)."""
        args = [ANSIBLE_PLAYBOOK, f"playbooks/{name}.yml"]
        for item in extra:
            args += [item] if item.startswith("--") else ["-e", item]
        return subprocess.run(args, cwd=deployment.ROOT, env={**self.env, **env}, text=True,
                              capture_output=True, timeout=300)

    def records(self) -> list[dict]:
        return self.store.query()


@pytest.fixture
def control(baseline, tmp_path, monkeypatch):
    yield Control(tmp_path)
    # Back to the baseline, recorded in a log of its own rather than the test's.
    monkeypatch.setenv("TTSCTL_AUDIT_DB", str(tmp_path / "baseline-audit.db"))
    monkeypatch.setenv("TTSCTL_LOCK_FILE", str(tmp_path / "release.lock"))
    deployment.ensure_running()


def ok(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}"
    return done


def weights() -> dict[str, str]:
    return deployment.haproxy_split()


# -- each command's effect -------------------------------------------------------------------
def test_status_shows_colours_versions_weights_and_agreement(control):
    shown = ok(control.ttsctl("status")).stdout
    for expected in ("phase deployed", "active blue", "1.5", "2.0", "candidate", "blue-localhost-0",
                     "green-localhost-0", "UP", "agree"):
        assert expected in shown, expected
    report = json.loads(ok(control.ttsctl("status", "--json")).stdout)
    assert (report["active"], report["phase"], report["candidate_weight"]) == ("blue", "deployed", 0)
    assert report["colors"]["blue"]["version"] == "1.5" and report["colors"]["green"]["version"] == "2.0"
    assert report["consistent"] and control.records() == []  # status is not a change


def test_canary_gives_the_candidate_its_share_at_the_frontend_and_is_recorded(control):
    done = ok(control.ttsctl("canary", "--weight", "100", "--operator", "alice", "--reason", "all in"))
    assert "Record the candidate's share in the release state" in done.stdout  # live progress
    assert "candidate weight 0 → 100 %" in done.stdout
    assert deployment.state()["candidate_weight"] == 100
    assert deployment.colours(12) == {"green": 12}
    (record,) = control.records()
    assert (record["action"], record["operator"], record["reason"], record["result"], record["source"]) == \
        ("canary", "alice", "all in", "ok", "ttsctl")
    assert record["parameters"] == {"weight": "100"} and record["changed"] is True
    assert record["state_before"]["candidate_weight"] == 0 and record["state_after"]["candidate_weight"] == 100
    assert Path(record["artifact_dir"]).is_dir() and record["started_at"] < record["finished_at"]
    assert f"audit #{record['id']}" in done.stdout


def test_promote_makes_the_candidate_serve_everyone(control):
    ok(control.ttsctl("promote", "--reason", "canary clean", "--yes"))
    state = deployment.state()
    assert (state["active"], state["phase"]) == ("green", "promoted")
    assert deployment.colours(12) == {"green": 12}
    assert control.records()[0]["state_after"]["active"] == "green"


def test_rollback_sends_everyone_back_to_the_stable_colour(control):
    ok(control.ttsctl("canary", "--weight", "50"))
    # Both colours serve (a health check that failed on a loaded machine may hold one DOWN
    # for a second or two: HAProxy's view is in the message if it lasts).
    for _ in range(15):
        seen = set(deployment.colours(30))
        if seen == {"blue", "green"}:
            break
        time.sleep(1)
    assert seen == {"blue", "green"}, deployment.haproxy_servers()
    ok(control.ttsctl("rollback", "--reason", "latency"))
    assert deployment.colours(12) == {"blue": 12}
    assert (deployment.state()["phase"], deployment.state()["candidate_weight"]) == ("rolled_back", 0)
    rollback, canary = control.records()
    assert (rollback["action"], rollback["reason"], rollback["result"]) == ("rollback", "latency", "ok")


def test_deploy_of_the_deployed_candidate_verifies_it_and_changes_nothing(control):
    before = deployment.STATE.read_text()
    done = ok(control.ttsctl("deploy", "--version", "2.0", "--yes"))
    assert "Check the load balancer reaches the new version" in done.stdout
    assert deployment.STATE.read_text() == before
    (record,) = control.records()
    assert (record["action"], record["parameters"], record["result"]) == ("deploy", {"version": "2.0"}, "ok")


# -- the audit trail -------------------------------------------------------------------------
def test_ttsctl_and_raw_playbook_runs_are_recorded_alike(control):
    ok(control.ttsctl("canary", "--weight", "5", "--reason", "try"))
    raw = control.raw("canary", "weight=5", "reason=try")
    assert raw.returncode == 0, raw.stdout
    by_raw, by_ttsctl = control.records()
    same = ("action", "operator", "parameters", "reason", "result", "failed_hosts", "playbook")
    assert {k: by_raw[k] for k in same} == {k: by_ttsctl[k] for k in same}
    assert (by_ttsctl["source"], by_raw["source"]) == ("ttsctl", "ansible-playbook")
    assert by_ttsctl["changed"] and not by_raw["changed"]  # the second found it done already
    assert by_raw["state_before"] == by_raw["state_after"] == by_ttsctl["state_after"]
    exported = json.loads(ok(control.ttsctl("history", "--json", "--action", "canary", "--operator", "pytest")).stdout)
    assert [r["id"] for r in exported] == [by_raw["id"], by_ttsctl["id"]]
    table = ok(control.ttsctl("history", "--since", "10m")).stdout
    assert "canary weight=5" in table and "via ansible-playbook" in table


def test_a_raw_run_cannot_pass_for_the_webhook_and_its_account_is_kept(control):
    ok(control.raw("canary", "weight=0", TTSCTL_SOURCE="webhook", TTSCTL_OPERATOR="alertmanager"))
    ok(control.ttsctl("canary", "--weight", "0"))
    by_ttsctl, by_raw = control.records()
    assert (by_raw["source"], by_raw["operator"]) == ("ansible-playbook", "alertmanager")
    assert by_ttsctl["source"] == "ttsctl"
    assert by_raw["os_user"] == by_ttsctl["os_user"] == pwd.getpwuid(os.getuid()).pw_name
    verified = ok(control.ttsctl("history", "--verify"))
    assert "audit log intact: 2 records, 4 chain entries" in verified.stdout


# -- refusals: exit 2, a clear message, nothing changed, recorded as refused -----------------
@pytest.mark.parametrize("args, message", [
    (["canary", "--weight", "-1"], "whole number from 0 to 100"),
    (["canary", "--weight", "101"], "whole number from 0 to 100"),
    (["canary", "--weight", "abc"], "whole number from 0 to 100"),
    (["deploy", "--version", "9.9"], "unknown version 9.9"),
    (["promote"], "promote needs a reason"),
    (["rollback"], "rollback needs a reason"),
])
def test_refused_input_exits_2_changes_nothing_and_is_recorded(control, args, message):
    before, haproxy_before = deployment.STATE.read_text(), weights()
    done = control.ttsctl(*args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stdout and "nothing was changed" in done.stdout
    assert deployment.STATE.read_text() == before and weights() == haproxy_before
    (record,) = control.records()
    assert record["result"] == "refused" and message in record["message"]


# -- free text is data ------------------------------------------------------------------------
def injection(marker: Path) -> str:
    """Jinja that creates ``marker`` if Ansible ever renders it."""
    return "{{ lookup('ansible.builtin.pipe', 'touch " + str(marker) + "') }}"


def test_template_markup_in_a_reason_or_operator_is_recorded_as_typed_and_never_run(control):
    marker = control.dir / "owned"
    typed = f"{injection(marker)} after a \x1b[2Jbad\nday"
    ok(control.ttsctl("canary", "--weight", "5", "--reason", typed, "--operator", "{{ 7 * 7 }}"))
    assert deployment.state()["last_change"]["reason"] == f"{injection(marker)} after a [2Jbad day"
    raw = control.raw("canary", "weight=0", TTSCTL_REASON=injection(marker), TTSCTL_OPERATOR="{% raw %}")
    assert raw.returncode == 0, raw.stdout
    assert not marker.exists()
    by_raw, by_ttsctl = control.records()
    kept = f"{injection(marker)} after a [2Jbad day"
    assert (by_ttsctl["reason"], by_ttsctl["operator"]) == (kept, "{{ 7 * 7 }}")
    assert (by_raw["reason"], by_raw["operator"]) == (injection(marker), "{% raw %}")
    assert deployment.state()["last_change"]["reason"] == injection(marker)
    assert deployment.state()["last_change"]["operator"] == "{% raw %}"


@pytest.mark.parametrize("playbook, extra, message", [
    ("rollback", ["reason=INJECTION"], "'reason' holds template markup"),
    ("canary", ["weight=INJECTION"], "'weight' holds template markup"),
    ("canary", ["weight=5", '{"release_state_path": "INJECTION"}'], "'release_state_path' holds template markup"),
    ("status", ["status_output=INJECTION"], "'status_output' holds template markup"),
    ("promote", ["reason=two words"], "split at a space"),
    # Internal variables: the plan the playbook works out from the release state is its own.
    ("canary", ["weight=5", '{"haproxy_edge": {"split": {"weight": 100}}}'], "takes no extra var 'haproxy_edge'"),
    ("rollback", ["reason=x", "release_state_path=/tmp/elsewhere.json"], "takes no extra var 'release_state_path'"),
])
@pytest.mark.parametrize("check", [False, True], ids=["run", "check"])
def test_a_raw_run_whose_extra_vars_could_run_as_code_or_override_the_plan_is_refused_before_any_task(control, playbook, extra,
                                                                                 message, check):
    marker = control.dir / "owned"
    before, haproxy_before = deployment.STATE.read_text(), weights()
    extra = [item.replace("INJECTION", injection(marker)) for item in extra]
    done = control.raw(playbook, *extra, *(["--check"] if check else []))
    said = done.stdout + done.stderr
    assert done.returncode == 5, said
    assert message in said and "nothing was changed" in said and "TASK [" not in said
    assert not marker.exists()
    assert deployment.STATE.read_text() == before and weights() == haproxy_before
    assert control.records() == [] and control.lock.read_holder() is None


def test_ttsctl_refuses_template_markup_in_a_parameter_with_exit_2(control):
    marker = control.dir / "owned"
    done = control.ttsctl("canary", "--weight", injection(marker))
    assert done.returncode == 2 and "'weight' holds template markup" in done.stderr
    assert not marker.exists() and control.records() == []


# -- the lock and the audit fail closed --------------------------------------------------------
def test_a_lock_timeout_that_is_not_a_number_stops_the_run_before_any_change(control):
    before = deployment.STATE.read_text()
    raw = control.raw("canary", "weight=40", TTSCTL_LOCK_TIMEOUT="soon")
    assert raw.returncode == 1 and "TTSCTL_LOCK_TIMEOUT must be a number" in raw.stdout + raw.stderr
    done = control.ttsctl("canary", "--weight", "40", TTSCTL_LOCK_TIMEOUT="soon")
    assert done.returncode == 2 and "TTSCTL_LOCK_TIMEOUT must be a number" in done.stderr
    assert deployment.STATE.read_text() == before and control.lock.read_holder() is None


def test_a_change_whose_audit_record_cannot_be_written_is_not_run_but_a_rollback_is(control):
    unwritable = {"TTSCTL_AUDIT_DB": "/proc/ttsctl/audit.db"}
    before = deployment.STATE.read_text()
    raw = control.raw("canary", "weight=40", **unwritable)
    assert raw.returncode == 1 and "audit log /proc/ttsctl/audit.db cannot be written" in raw.stdout + raw.stderr
    assert deployment.STATE.read_text() == before and control.lock.read_holder() is None
    # Pulling a candidate does not wait for the audit log: it runs, and says it is not recorded.
    raw = control.raw("rollback", "reason=unrecorded", **unwritable)
    assert raw.returncode == 0 and "THIS ROLLBACK IS NOT RECORDED" in raw.stdout + raw.stderr
    assert deployment.state()["phase"] == "rolled_back"


def test_a_rollback_meant_for_an_earlier_candidate_is_refused_and_changes_nothing(control):
    current = deployment.state()
    meant = {"color": "green", "version": "2.0", "epoch": "2000-01-01T00:00:00Z"}
    before, haproxy_before = deployment.STATE.read_text(), weights()
    raw = control.raw("rollback", "reason=stale", TTSCTL_EXPECT_CANDIDATE=json.dumps(meant))
    assert raw.returncode == 2 and "no longer the candidate" in raw.stdout, raw.stdout
    assert deployment.STATE.read_text() == before and weights() == haproxy_before
    assert control.records()[0]["result"] == "refused"
    meant["epoch"] = current["last_change"]["time"]
    ok(control.raw("rollback", 'reason="still it"', TTSCTL_EXPECT_CANDIDATE=json.dumps(meant)))
    assert deployment.state()["phase"] == "rolled_back"


def test_promote_with_no_candidate_is_refused(control):
    ok(control.ttsctl("rollback", "--reason", "park it"))
    before = deployment.STATE.read_text()
    done = control.ttsctl("promote", "--reason", "oops")
    assert done.returncode == 2 and "no candidate to promote" in done.stdout
    assert deployment.STATE.read_text() == before
    assert control.records()[0]["result"] == "refused"


def test_canary_of_the_previous_version_after_a_promote_is_refused(control):
    ok(control.ttsctl("promote", "--reason", "go"))
    before = deployment.STATE.read_text()
    done = control.ttsctl("canary", "--weight", "5")
    assert done.returncode == 2 and "deploy a new version first" in done.stdout
    assert deployment.STATE.read_text() == before


# -- one change at a time --------------------------------------------------------------------
def test_two_concurrent_changes_one_waits_and_one_without_patience_exits_3(control):
    first = control.ttsctl("canary", "--weight", "10", "--operator", "alice", wait=False)
    deployment.wait_for(lambda: (h := control.lock.read_holder()) and h.record_id)
    impatient = control.ttsctl("canary", "--weight", "20", "--lock-timeout", "0")
    assert impatient.returncode == 3
    assert "alice (canary via ttsctl" in impatient.stderr and "since" in impatient.stderr
    raw = control.raw("canary", "weight=20", TTSCTL_LOCK_TIMEOUT="0")
    assert raw.returncode == 3 and "alice (canary via ttsctl" in raw.stdout + raw.stderr
    patient = control.ttsctl("canary", "--weight", "30", "--lock-timeout", "120")
    assert first.wait(timeout=120) == 0
    ok(patient)
    assert "waiting up to 120 s for the release lock held by alice" in patient.stdout
    assert deployment.state()["candidate_weight"] == 30
    assert [(r["parameters"]["weight"], r["result"]) for r in control.records()] == [("30", "ok"), ("10", "ok")]


def _kill_mid_playbook(control, *args):
    """Start a change and SIGKILL ttsctl and its ansible-playbook once the release state has
    changed but the run is not over."""
    run = control.ttsctl(*args, wait=False)
    holder = deployment.wait_for(lambda: (h := control.lock.read_holder()) and h.runner_pid and h)
    deployment.wait_for(lambda: (r := control.store.get(holder.record_id)) and r["state_before"] is not None)
    for pid in (run.pid, holder.runner_pid):
        os.kill(pid, signal.SIGKILL)
    run.wait()
    deployment.wait_for(lambda: not lock.process_alive(holder.runner_pid), timeout=10)
    return holder


def test_a_sigkilled_run_is_taken_over_by_the_next_which_succeeds_and_history_tells_the_truth(control):
    killed = _kill_mid_playbook(control, "canary", "--weight", "40")
    assert control.store.get(killed.record_id)["result"] == "running"
    done = ok(control.ttsctl("canary", "--weight", "0", "--reason", "after the crash"))
    assert "took the release lock over" in done.stdout
    after, dead = control.records()
    assert dead["id"] == killed.record_id and dead["result"] == "died" and dead["finished_at"] is None
    assert after["result"] == "ok" and after["lock_takeover"]["pid"] == killed.pid
    assert after["lock_takeover"]["record_id"] == dead["id"]
    shown = ok(control.ttsctl("history")).stdout
    assert "died" in shown and f"took the lock over from dead pid {killed.pid}" in shown
    assert json.loads(ok(control.ttsctl("status", "--json")).stdout)["consistent"]


def test_killing_only_ttsctl_ends_its_playbook_recorded_as_aborted_and_the_next_change_runs(control):
    run = control.ttsctl("canary", "--weight", "60", wait=False)
    holder = deployment.wait_for(lambda: (h := control.lock.read_holder()) and h.runner_pid and h)
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    # The playbook lives on (ansible-runner starts it immune to SIGHUP) until it next
    # writes to ttsctl's closed terminal; meanwhile it still holds the lock.
    done = ok(control.ttsctl("canary", "--weight", "0", "--lock-timeout", "120"))
    assert "took the release lock over" not in done.stdout
    second, first = control.records()
    assert first["id"] == holder.record_id and first["result"] == "aborted" and first["finished_at"]
    assert second["result"] == "ok" and second["lock_takeover"] is None
    assert deployment.state()["candidate_weight"] == 0


# -- dry runs and housekeeping ---------------------------------------------------------------
@pytest.mark.parametrize("args", [["canary", "--weight", "50"], ["promote", "--reason", "try"],
                                  ["rollback", "--reason", "try"]])
def test_a_dry_run_shows_what_would_change_and_changes_nothing(control, args):
    before, haproxy_before = deployment.STATE.read_text(), weights()
    done = ok(control.ttsctl("--dry-run", *args))
    assert "dry run" in done.stdout and "would change" in done.stdout and "nothing was changed" in done.stdout
    assert deployment.STATE.read_text() == before and weights() == haproxy_before
    assert control.records() == [] and control.lock.read_holder() is None


def test_only_the_last_n_artifact_directories_are_kept(control):
    for _ in range(3):
        ok(control.ttsctl("--keep-artifacts", "2", "status", "--json"))
    assert len(list((control.dir / "artifacts" / "artifacts").iterdir())) == 2
