"""Blue/green releases on the real local deployment: podman containers, HAProxy, playbooks.

The session starts from what quickstart leaves (blue 1.5 live, green 2.0 parked) and each
test puts it back. Traffic goes through the frontend on 127.0.0.1:8080 only.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from deployment import (BIN, CANDIDATE, FRONTEND, STABLE, Load, colours, changed, ensure_running,
                        haproxy, haproxy_servers, haproxy_split, playbook, run, state)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def deployment():
    run("scripts/podman-service.sh")
    run("scripts/bootstrap-base-image.sh")
    ensure_running()
    yield


@pytest.fixture
def baseline(deployment):
    ensure_running()
    yield
    ensure_running()


def test_baseline_serves_stable_on_blue_and_parks_the_candidate(baseline):
    assert state()["active"] == "blue" and state()["colors"]["green"]["version"] == CANDIDATE
    assert colours(50) == {"blue": 50}
    assert haproxy_split() == {"stable": "blue", "candidate": "green", "weight": "0"}
    # Each server's slots: the version's declared requests at once (2 per worker, 1 worker).
    assert haproxy_servers() == {"blue-localhost-0": ("UP", 2), "green-localhost-0": ("UP", 2)}


def test_weight_5_sends_exactly_5_of_every_100_new_listeners_to_the_candidate(baseline):
    playbook("canary", weight=5)
    assert colours(400) == {"blue": 380, "green": 20}


def test_cookie_and_header_pin_the_colour_whatever_the_weight(baseline):
    assert colours(20, cookies={"gray_test": "true"}) == {"green": 20}  # weight 0: testers only
    assert colours(20, headers={"X-Canary": "always"}) == {"green": 20}
    playbook("canary", weight=100)
    assert colours(20, headers={"X-Canary": "never"}) == {"blue": 20}


def test_a_listener_keeps_one_colour_while_weights_stand(baseline):
    playbook("canary", weight=50)
    for _ in range(5):
        with requests.Session() as listener:
            first = listener.get(f"{FRONTEND}/version", timeout=10).json()["color"]
            assert {listener.get(f"{FRONTEND}/version", timeout=10).json()["color"]
                    for _ in range(20)} == {first}


def test_promote_gives_the_candidate_everything_and_rollback_takes_it_back(baseline):
    playbook("canary", weight=20)
    playbook("promote", reason="canary clean")
    assert state()["active"] == "green" and state()["phase"] == "promoted"
    assert colours(100) == {"green": 100}
    assert haproxy_split() == {"stable": "green", "candidate": "green", "weight": "0"}  # blue parked, still up
    assert requests.get("http://127.0.0.1:6006/ready", timeout=5).status_code == 200
    playbook("rollback", reason="latency")
    assert state()["active"] == "blue" and state()["phase"] == "rolled_back"
    assert colours(100) == {"blue": 100}
    assert state()["last_change"]["reason"] == "latency"
    # The rolled-back colour is parked: forcing the candidate reaches no one but the stable.
    assert colours(20, headers={"X-Canary": "always"}) == {"blue": 20}


def test_the_sticky_cookie_holds_a_bucket_and_names_no_server(baseline):
    playbook("canary", weight=100)
    answer = requests.get(f"{FRONTEND}/version", timeout=10)
    sticky = answer.cookies.get("TTS_LISTENER")
    assert sticky and re.fullmatch(r"[0-9]{1,2}", sticky) and "localhost" not in answer.headers["Set-Cookie"]
    # A hostile cookie is no bucket: the listener gets a fresh one.
    again = requests.get(f"{FRONTEND}/version", cookies={"TTS_LISTENER": "1 or 1=1"}, timeout=10)
    assert re.fullmatch(r"[0-9]{1,2}", again.cookies.get("TTS_LISTENER", ""))


def test_at_four_times_capacity_speech_queues_keeps_the_5_percent_and_fails_nothing(baseline):
    """Eight new listeners at once against one instance of two slots per colour: HAProxy
    queues what the slots cannot take, so nothing is refused, nothing spills across colours,
    and the candidate's share of the answers is the weight's share of the listeners."""
    playbook("canary", weight=5)
    refused_before = instance_refusals()
    load = Load(clients=8, limit_s=12, timeout=60)
    load.start()
    load.join(timeout=90)
    green = sum(1 for _, colour in load.by_colour if colour == "green")
    assert load.failures == [] and load.ok > 100, (load.ok, load.failures[:5])
    assert abs(green - 0.05 * load.ok) <= 1, (green, load.ok)
    assert instance_refusals() == refused_before  # the instances never had to refuse


def instance_refusals() -> float:
    """503 answers the instances gave themselves (busy), from their own metrics."""
    total = 0.0
    for port in (6006, 6007):
        for line in requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines():
            if line.startswith("tts_http_requests_total{") and 'status="503"' in line:
                total += float(line.rsplit(" ", 1)[1])
    return total


def test_no_request_fails_under_load_through_canary_promote_rollback(baseline):
    load = Load(clients=2)
    load.start()
    time.sleep(1)
    for name, extra in (("canary", {"weight": 10}), ("canary", {"weight": 50}),
                        ("promote", {"reason": "clean"}), ("rollback", {"reason": "drill"})):
        playbook(name, **extra)
        time.sleep(0.5)
    load.stop()
    assert load.ok > 50 and load.failures == []


def test_killing_the_candidate_mid_canary_fails_no_request(baseline):
    playbook("canary", weight=50)
    load = Load(clients=2)
    load.start()
    time.sleep(1)
    run("podman", "kill", "tts-green-0")
    time.sleep(4)  # health checks take it out within 2 s; retries cover the gap
    load.stop()
    assert load.ok > 20 and load.failures == []
    assert haproxy_servers()["green-localhost-0"][0].startswith("DOWN")
    assert colours(20) == {"blue": 20}


def test_reload_and_restart_keep_the_split(baseline):
    playbook("canary", weight=5)
    before = haproxy_split()
    assert before == {"stable": "blue", "candidate": "green", "weight": "5"}
    run("pkill", "-USR2", "--pidfile", "/run/haproxy.pid")  # seamless reload
    time.sleep(1.5)
    assert haproxy_split() == before
    run("pkill", "--pidfile", "/run/haproxy.pid")  # full restart, via the role
    time.sleep(1)
    playbook("site")
    time.sleep(2.5)
    assert haproxy_split() == before
    assert colours(400) == {"blue": 380, "green": 20}


@pytest.mark.parametrize("name, extra", [
    ("canary", {"weight": 5}), ("promote", {"reason": "again"}), ("rollback", {"reason": "again"}),
    ("deploy", {"version": CANDIDATE}), ("site", {}),
])
def test_each_playbook_run_twice_changes_nothing_the_second_time(baseline, name, extra):
    playbook(name, **extra)
    assert changed(playbook(name, **extra)) == 0


@pytest.mark.parametrize("name, extra, message", [
    ("canary", {"weight": -1}, "whole number from 0 to 100"),
    ("canary", {"weight": 101}, "whole number from 0 to 100"),
    ("canary", {"weight": "abc"}, "whole number from 0 to 100"),
    ("canary", {}, "whole number from 0 to 100"),
    ("deploy", {"version": "9.9"}, "unknown version 9.9"),
    ("deploy", {}, "deploy needs a version"),
    ("promote", {}, "promote needs a reason"),
    ("rollback", {}, "rollback needs a reason"),
])
def test_bad_input_is_refused_with_a_clear_message_and_changes_nothing(baseline, name, extra, message):
    before_state, before_split = state(), haproxy_split()
    result = playbook(name, check=False, **extra)
    assert result.returncode != 0
    assert message in result.stdout
    assert state() == before_state and haproxy_split() == before_split


NONSENSE = {"haproxy_timeout_queue": "-5s", "haproxy_timeout_connect": "0", "haproxy_timeout_server": "soon",
            "haproxy_retries": "-1", "haproxy_error_limit": "0", "haproxy_retry_after": "x",
            "haproxy_global_maxconn": "many"}


def test_queue_and_retry_settings_that_make_no_sense_are_refused_before_any_change(deployment):
    """One run with every setting wrong: each is named, and HAProxy's config is untouched."""
    before = Path("/etc/haproxy/haproxy.cfg").read_bytes()
    result = run(str(BIN / "ansible-playbook"), "--check", "tests/integration/playbooks/haproxy_settings.yml",
                 "-e", json.dumps(NONSENSE), check=False)
    assert result.returncode != 0 and "nothing was changed" in result.stdout
    for setting in NONSENSE:
        assert f"{setting} must be" in result.stdout, setting
    assert Path("/etc/haproxy/haproxy.cfg").read_bytes() == before


def test_a_rolled_back_candidate_gets_no_request_at_all(baseline):
    """After a rollback no listener reaches the candidate: not by its bucket, not by forcing
    it, not for /version; HAProxy's own session counters of its servers say so."""
    playbook("canary", weight=50)
    playbook("rollback", reason="drill")
    before = candidate_sessions()
    for bucket in range(100):
        requests.get(f"{FRONTEND}/version", cookies={"TTS_LISTENER": str(bucket)}, timeout=10)
    assert colours(20, cookies={"gray_test": "true"}) == {"blue": 20}
    assert colours(20, headers={"X-Canary": "always"}) == {"blue": 20}
    assert colours(20, headers={"X-Canary": "Always"}) == {"blue": 20}  # not the documented value
    assert candidate_sessions() == before


def candidate_sessions() -> dict[str, int]:
    """Sessions HAProxy ever sent to green's server, per backend (speech and the rest)."""
    sys.path.insert(0, str(Path(__file__).parent.parent.parent / "plugins" / "module_utils"))
    from haproxy_socket import stats

    return {r["pxname"]: int(r["stot"]) for r in stats("/run/haproxy/admin.sock")
            if r["svname"] == "green-localhost-0" and r["pxname"] in ("tts_green", "tts_green_info")}


def test_refused_transitions_change_nothing(baseline):
    playbook("promote", reason="ship it")
    before = state()
    result = playbook("canary", check=False, weight=5)  # the standby is now the old version
    assert result.returncode != 0 and f"previous version {STABLE}" in result.stdout
    assert state() == before


def test_status_reports_state_haproxy_and_instances_in_agreement(baseline, tmp_path):
    playbook("canary", weight=5)
    out = tmp_path / "status.json"
    playbook("status", status_output=out)
    report = json.loads(out.read_text())
    assert report["consistent"], report["disagreements"]
    assert report["colors"]["green"] | {"share": 5, "role": "candidate", "version": CANDIDATE} == report["colors"]["green"]
    assert {s["name"]: s["version"] for s in report["servers"]} == {
        "blue-localhost-0": STABLE, "green-localhost-0": CANDIDATE}


def test_status_flags_haproxy_disagreeing_with_the_release_state(baseline, tmp_path):
    haproxy("set map /etc/haproxy/tts-split.map weight 40")  # hand edits behind the state's back
    haproxy("set maxconn server tts_green/green-localhost-0 9")
    out = tmp_path / "status.json"
    playbook("status", status_output=out)
    report = json.loads(out.read_text())
    assert not report["consistent"]
    assert report["edge"] == {"stable": "blue", "candidate": "green", "weight": "40"}
    problems = " | ".join(report["disagreements"])
    assert "split has weight 40, the release state gives 0" in problems
    assert "green-localhost-0 has 9 slots in HAProxy, the release state gives 2" in problems
    playbook("canary", weight=0)  # bringing HAProxy back in line is one playbook run
    assert haproxy_split()["weight"] == "0" and haproxy_servers()["green-localhost-0"] == ("UP", 2)
