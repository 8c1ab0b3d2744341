"""The audit callback plugin inside real ansible-playbook runs, on stand-in playbooks that
change a scratch release state only (no HAProxy, no containers): records, refusals, the
lock's exit code 3, and a SIGKILLed run taken over by the next one."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deployment import wait_for
from ttsctl import lock
from ttsctl.audit import AuditStore

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEPLOYED = {"active": "blue", "candidate_weight": 0, "phase": "deployed", "last_change": None,
            "colors": {"blue": {"version": "1.5", "image": "img:1.5"}, "green": {"version": "2.0", "image": "img:2.0"}}}

# Declared like the release playbooks, so the callback treats them as such; same first play
# shape: an input check, then the release state module.
STAND_IN = """
- name: Stand-in {action}
  hosts: localhost
  gather_facts: false
  vars:
    {declaration}
  tasks:
    - name: Check the weight before changing anything
      ansible.builtin.assert:
        that: weight | default(0) | string is match('^[0-9]{{1,3}}$') and weight | default(0) | int <= 100
        fail_msg: "weight must be a whole number from 0 to 100; nothing was changed"
        quiet: true
    - name: Record the change in the release state
      release_state:
        path: "{{{{ state_path }}}}"
        action: {action}
        weight: "{{{{ weight | default(omit) }}}}"
        operator: "{{{{ operator | default('raw') }}}}"
    - name: Linger, so a test can kill the run here
      ansible.builtin.command: sleep {{{{ linger | default(0) }}}}
      changed_when: false
"""


@pytest.fixture
def site(tmp_path):
    """Stand-in playbooks, a scratch release state and a private audit log and lock."""
    for action in ("canary", "rollback"):
        (tmp_path / f"{action}.yml").write_text(stand_in(action))
    (tmp_path / "status.yml").write_text(stand_in("read", declared=None))
    state = tmp_path / "release.json"
    state.write_text(json.dumps(DEPLOYED))
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0",
           "TTSCTL_AUDIT_DB": str(tmp_path / "audit.db"), "TTSCTL_LOCK_FILE": str(tmp_path / "release.lock"),
           "TTSCTL_LOCK_TIMEOUT": "0", "USER": "raw-user"}
    env.pop("TTSCTL_OPERATOR", None)
    env.pop("TTSCTL_LOCK_TOKEN", None)
    yield {"dir": tmp_path, "state": state, "env": env, "store": AuditStore(tmp_path / "audit.db")}
    # Ansible's workers start sessions of their own, so a killed run's worker outlives it
    # until its task ends: end the ones this test started.
    for pid in pids_running(str(tmp_path)):
        os.kill(pid, signal.SIGKILL)


def stand_in(action: str, declared: str | None = "same") -> str:
    """A stand-in playbook changing the state by ``action``, declaring ``declared`` (the same
    action by default; None: no declaration)."""
    declared = action if declared == "same" else declared
    declaration = f"ttsctl_action: {declared}" if declared else "stand_in: true"
    return STAND_IN.format(action=action, declaration=declaration)


def pids_running(marker: str) -> list[int]:
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker.encode() in cmdline.read_bytes():
                pids.append(int(cmdline.parent.name))
        except OSError:
            continue
    return pids


def playbook(site, name, *extra, check=False, wait=True, **env):
    args = [str(BIN / "ansible-playbook"), str(site["dir"] / f"{name}.yml"), "-e", f"state_path={site['state']}"]
    for item in extra:
        args += ["-e", item]
    if check:
        args.append("--check")
    kwargs = dict(cwd=ROOT, env={**site["env"], **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if not wait:
        return subprocess.Popen(args, start_new_session=True, **kwargs)
    return subprocess.run(args, timeout=120, **kwargs)


def test_a_raw_run_is_recorded_with_who_what_why_and_the_release_state_before_and_after(site):
    done = playbook(site, "canary", "weight=5", "reason='more listeners'", "operator=alice")
    assert done.returncode == 0, done.stdout
    (record,) = site["store"].query()
    assert (record["action"], record["operator"], record["reason"], record["result"]) == \
        ("canary", "alice", "more listeners", "ok")
    assert record["parameters"] == {"weight": "5", "state_path": str(site["state"])}
    assert record["source"] == "ansible-playbook" and record["changed"] is True and record["failed_hosts"] == []
    assert record["state_before"]["candidate_weight"] == 0 and record["state_after"]["candidate_weight"] == 5
    assert record["started_at"] < record["finished_at"] and record["artifact_dir"] is None


def test_the_operator_of_a_raw_run_defaults_to_ttsctl_operator_then_the_login(site):
    playbook(site, "canary", "weight=0", TTSCTL_OPERATOR="ops")
    playbook(site, "canary", "weight=0")
    assert [r["operator"] for r in site["store"].query()] == ["raw-user", "ops"]


def test_a_bad_input_is_recorded_as_refused_and_changes_nothing(site):
    before = site["state"].read_text()
    done = playbook(site, "canary", "weight=101")
    assert done.returncode != 0
    (record,) = site["store"].query()
    assert record["result"] == "refused" and "whole number" in record["message"]
    assert site["state"].read_text() == before


def test_a_transition_the_release_state_refuses_is_recorded_as_refused(site):
    site["state"].write_text(json.dumps({**DEPLOYED, "colors": {"blue": DEPLOYED["colors"]["blue"], "green": None}}))
    playbook(site, "rollback", "reason=x")
    (record,) = site["store"].query()
    assert record["result"] == "refused" and record["message"].startswith("refused: nothing to roll back to")


def test_check_mode_and_read_only_playbooks_are_neither_locked_nor_recorded(site):
    assert playbook(site, "canary", "weight=5", check=True).returncode == 0
    assert playbook(site, "status").returncode == 0
    assert site["store"].query() == []
    assert json.loads(site["state"].read_text())["candidate_weight"] == 0


def test_a_raw_run_exits_3_naming_the_holder_when_the_lock_stays_held(site):
    holder = held_by_alice(site)
    try:
        done = playbook(site, "canary", "weight=5", TTSCTL_LOCK_TIMEOUT="0.5")
        assert done.returncode == 3
        assert "alice (promote via ttsctl" in done.stdout and "since" in done.stdout
        assert site["store"].query() == [] and json.loads(site["state"].read_text())["candidate_weight"] == 0
    finally:
        holder.kill()
        holder.wait()


def test_a_sigkilled_run_stays_unfinished_and_the_next_run_takes_its_lock_over(site):
    killed = playbook(site, "canary", "weight=5", "linger=20", wait=False)
    store = site["store"]
    # Past the release state change, inside the last task.
    wait_for(lambda: store.query() and store.query()[0]["state_before"] is not None)
    time.sleep(0.5)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    assert store.query()[0]["result"] == "running" and store.query()[0]["finished_at"] is None

    done = playbook(site, "canary", "weight=0")
    assert done.returncode == 0, done.stdout
    assert "took the release lock over" in done.stdout
    after, dead = store.query()
    assert after["result"] == "ok" and after["lock_takeover"]["pid"] == killed.pid
    assert after["lock_takeover"]["record_id"] == dead["id"]
    assert dead["result"] == "died" and dead["finished_at"] is None and f"run #{after['id']}" in dead["message"]
    assert lock.ReleaseLock(site["env"]["TTSCTL_LOCK_FILE"]).read_holder() is None


def test_a_run_past_its_timeout_is_stopped_recorded_as_aborted_and_frees_the_lock(site):
    started = time.monotonic()
    done = playbook(site, "canary", "weight=5", "linger=60", TTSCTL_RUN_TIMEOUT="3")
    assert done.returncode != 0 and time.monotonic() - started < 40
    assert "took longer than TTSCTL_RUN_TIMEOUT=3 s" in done.stdout
    (record,) = site["store"].query()
    assert record["result"] == "aborted" and "TTSCTL_RUN_TIMEOUT=3" in record["message"]
    assert lock.ReleaseLock(site["env"]["TTSCTL_LOCK_FILE"]).read_holder() is None
    assert playbook(site, "canary", "weight=0").returncode == 0  # the next change runs


def held_by_alice(site, token=None):
    """Another change holding the release lock (as ttsctl would, with ``token`` for its child)."""
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from ttsctl import lock\n"
        "l = lock.ReleaseLock(sys.argv[1])\n"
        "t = sys.argv[2] or None\n"
        "l.acquire(lock.Holder.this_process(operator='alice', action='promote', source='ttsctl', token=t), 5)\n"
        "l.annotate(record_id=1)\n"
        "print('locked', flush=True); time.sleep(60)"), site["env"]["TTSCTL_LOCK_FILE"], token or ""],
        stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert holder.stdout.readline().strip() == "locked"
    return holder


@pytest.mark.parametrize("how", ["callback turned off", "a playbook that declares no change"])
def test_the_release_state_changes_only_under_the_release_lock(site, how):
    """Without the audit callback's lock, the state's own action plugin refuses the change."""
    before = site["state"].read_text()
    if how == "callback turned off":
        done = playbook(site, "canary", "weight=5", ANSIBLE_CALLBACK_PLUGINS=str(site["dir"]))
    else:
        (site["dir"] / "quiet.yml").write_text(stand_in("canary", declared=None))
        done = playbook(site, "quiet", "weight=5")
    assert done.returncode != 0
    assert "refused: the release state changes only under the release lock" in done.stdout
    assert "no run holds the release lock" in done.stdout
    assert site["state"].read_text() == before and site["store"].query() == []


def test_a_guessed_or_copied_token_changes_nothing_while_another_change_holds_the_lock(site):
    holder = held_by_alice(site, token="alices-token")
    try:
        before = site["state"].read_text()
        for token in ("guess", "0" * 32, lock.digest("alices-token")):
            done = playbook(site, "canary", "weight=5", ANSIBLE_CALLBACK_PLUGINS=str(site["dir"]),
                            TTSCTL_LOCK_TOKEN=token)
            assert done.returncode != 0
            assert "is held by alice (promote via ttsctl" in done.stdout and "not by this run" in done.stdout
        assert site["state"].read_text() == before and site["store"].query() == []
    finally:
        holder.kill()
        holder.wait()


def test_a_renamed_copy_of_a_release_playbook_is_locked_and_recorded_as_what_it_declares(site):
    (site["dir"] / "my-tweak.yml").write_text(stand_in("canary"))
    done = playbook(site, "my-tweak", "weight=5", "reason=renamed")
    assert done.returncode == 0, done.stdout
    (record,) = site["store"].query()
    assert (record["action"], record["reason"], record["result"]) == ("canary", "renamed", "ok")
    assert record["playbook"].endswith("my-tweak.yml")
    assert json.loads(site["state"].read_text())["candidate_weight"] == 5


def test_a_declaration_that_names_no_change_is_refused_before_any_task(site):
    (site["dir"] / "odd.yml").write_text(stand_in("canary", declared="'{{ lookup(\"pipe\", \"id\") }}'"))
    before = site["state"].read_text()
    done = playbook(site, "odd", "weight=5")
    assert done.returncode == 5, done.stdout
    assert "not a change ttsctl knows" in done.stdout
    assert site["state"].read_text() == before and site["store"].query() == []
