"""Automatic rollback on the real local deployment: Prometheus and Alertmanager judge the
canary with the shipped settings, the webhook receiver (run by the control_plane role) rolls
it back through playbooks/rollback.yml, HAProxy moves the traffic.

Each test starts from the baseline (blue 1.5 live, green 2.0 parked at weight 0 without
faults) and puts it back, re-deploying green without faults where a test injected some.
Run under the deployment lock:  flock /tmp/deployment.lock .venv/bin/python -m pytest
tests/integration/test_auto_rollback.py
"""
from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from alerting import (ALERTMANAGER, PROMETHEUS, RECEIVER, Probe, candidate_faults, deploy_candidate,
                      firing_alerts, podman, post_alerts, receiver_health, receiver_metric, release_epoch, rollback_records,
                      start_monitoring_and_receiver, token, wait_for, wait_for_rollback_by_webhook)
from deployment import (BIN, CANDIDATE, STABLE, Load, changed, colours, ensure_running, haproxy_servers,
                        haproxy_split, parked, playbook, run, state)

pytestmark = pytest.mark.integration

# With the shipped settings a failing canary is rolled back within about 40 s (errors: 20
# requests, 15 s `for:`, a scrape and an evaluation; latency: 30 s `for:`). A healthy one is
# held longer than the slowest rule needs to fire.
ROLLBACK_TIMEOUT = 120
HEALTHY_HOLD = 45


def utc_stamp() -> str:
    from ttsctl import clock

    return clock.stamp()


def restore() -> None:
    if candidate_faults() != {}:  # injected faults, or the instance is down
        deploy_candidate()
    ensure_running()


@pytest.fixture(scope="module")
def automation():
    run("scripts/podman-service.sh")
    run("scripts/bootstrap-base-image.sh")
    ensure_running()
    start_monitoring_and_receiver()
    yield


@pytest.fixture
def baseline(automation):
    restore()
    yield
    restore()


class Traffic:
    """Steady speech load plus a probe of who answers new listeners, for one test."""

    def __init__(self, clients: int = 2):
        self.load, self.probe = Load(clients=clients, limit_s=240, timeout=60), Probe()

    def __enter__(self) -> Traffic:
        self.load.start()
        self.probe.start()
        return self

    def __exit__(self, *exc) -> None:
        self.load.stop()
        self.probe.stop()


def assert_rolled_back_by_the_webhook(since: str, rollback: dict, alertname: str) -> None:
    """The state, HAProxy, the frontend and the audit log all say the webhook rolled back."""
    assert rollback["result"] == "ok", rollback
    assert rollback["alert"]["alertname"] == alertname, rollback
    current = state()
    assert (current["active"], current["phase"], current["candidate_weight"]) == ("blue", "rolled_back", 0)
    assert current["last_change"]["operator"] == "alertmanager"
    assert haproxy_split() == parked()
    assert colours(100) == {"blue": 100}
    [record] = rollback_records(since)
    assert (record["operator"], record["source"], record["result"]) == ("alertmanager", "webhook", "ok")
    assert record["reason"].startswith(f"{alertname}: ") and f"green {CANDIDATE}" in record["reason"]
    assert record["reason"].endswith(f"(alert {rollback['alert']['fingerprint']})")
    # The operator's view of the same record.
    history = json.loads(run(str(BIN / "python"), "-m", "ttsctl", "history", "--json", "--operator",
                             "alertmanager", "--since", since).stdout)
    assert [(h["id"], h["action"], h["reason"]) for h in history] == [(record["id"], "rollback", record["reason"])]


def test_a_canary_failing_half_its_requests_is_rolled_back_automatically(baseline):
    deploy_candidate(fault_error_rate=0.5)
    since = utc_stamp()
    with Traffic() as traffic:
        playbook("canary", weight=20)
        rollback = wait_for_rollback_by_webhook(since, ROLLBACK_TIMEOUT)
        settled = wait_for(traffic.probe.stable_since, 10, what="only blue answering")
        time.sleep(2)
    assert_rolled_back_by_the_webhook(since, rollback, "TTSCandidateErrorRatioHigh")
    assert set(traffic.probe.shares(after=settled)) == {"blue"}  # 100 % stable from then on


def test_a_healthy_canary_held_as_long_under_three_times_capacity_is_not_rolled_back(baseline):
    """Six speech clients against two slots per colour: the edge queues what the slots cannot
    take, so the candidate never refuses a request, and nothing looks like a failure of it."""
    since = utc_stamp()
    with Traffic(clients=6) as traffic:
        playbook("canary", weight=20)
        epoch = release_epoch()
        time.sleep(HEALTHY_HOLD)
        verdict = requests.get(f"{PROMETHEUS}/api/v1/query", params={"query": "tts:candidate:verdict"},
                               timeout=5).json()["data"]["result"]
    assert state()["phase"] == "canary" and state()["candidate_weight"] == 20
    assert rollback_records(since) == []
    assert firing_alerts(action="rollback", color="green") == []
    assert [v["metric"]["verdict"] for v in verdict if v["metric"].get("epoch") == epoch] == ["pass"]
    assert traffic.load.failures == [] and traffic.load.ok > 100
    assert receiver_health()["last_rollback"] is None or receiver_health()["last_rollback"]["received_at"] < since


def test_a_candidate_with_added_latency_trips_the_latency_rule(baseline):
    deploy_candidate(fault_latency_ms=700)
    since = utc_stamp()
    with Traffic():
        playbook("canary", weight=20)
        rollback = wait_for_rollback_by_webhook(since, ROLLBACK_TIMEOUT)
    assert_rolled_back_by_the_webhook(since, rollback, "TTSCandidateLatencyHigh")


def test_a_killed_candidate_loses_its_traffic_at_once_and_the_alert_completes_the_rollback(baseline):
    since = utc_stamp()
    with Traffic() as traffic:
        playbook("canary", weight=20)
        wait_for(lambda: traffic.probe.first("green"), 10, what="the canary answering")
        podman("kill", "tts-green-0")
        killed = time.time()
        # HAProxy's health checks (1 s, fall 2) take it out; retries cover the gap.
        wait_for(lambda: haproxy_servers()["green-localhost-0"][0].startswith("DOWN"), 5, 0.1,
                 "HAProxy marking the candidate down")
        out_after = time.time() - killed
        assert state()["phase"] == "canary"  # the health checks moved the traffic, not a rollback
        rollback = wait_for_rollback_by_webhook(since, ROLLBACK_TIMEOUT)
    assert out_after < 4
    assert traffic.probe.first("green", after=killed + 0.5) is None  # none once the kill is done
    # Only answers cut off mid-body by the kill can fail (one per client at most): HAProxy
    # retries refused connections on the stable colour.
    assert len(traffic.load.failures) <= traffic.load.clients, traffic.load.failures
    assert_rolled_back_by_the_webhook(since, rollback, "TTSCandidateDown")


# -- the receiver, sent payloads directly ----------------------------------------------------
def alert(status="firing", color="green", version=CANDIDATE, fingerprint="5eed", summary=None,
          starts_at=None, **labels) -> dict:
    return {"status": status,
            "labels": {"alertname": "TTSCandidateErrorRatioHigh", "action": "rollback", "severity": "critical",
                       "color": color, "version": version, "epoch": release_epoch(), **labels},
            "annotations": {"summary": summary or f"Candidate {color} {version} fails 50% of speech requests"},
            "startsAt": starts_at or utc_stamp(), "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://127.0.0.1:9090/graph", "fingerprint": fingerprint}


def payload(*alerts) -> dict:
    return {"version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": "firing",
            "receiver": "rollback", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
            "externalURL": "http://127.0.0.1:9093", "alerts": list(alerts)}


def test_the_receiver_refuses_unauthenticated_payloads(automation):
    before = state()
    for token_value in (None, "wrong", token() + "x"):
        answer = post_alerts(payload(alert()), token_value)
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "unauthorized"
    answer = post_alerts(payload(alert()), None, headers={"Authorization": f"Basic {token()}"})
    assert answer.status_code == 401
    assert state() == before


@pytest.mark.parametrize("body, content_type, status", [
    ("{not json", "application/json", 400),
    (json.dumps({"version": "3", "alerts": []}), "application/json", 400),
    (json.dumps({"version": "4", "alerts": {"0": {}}}), "application/json", 400),
    (json.dumps({"version": "4", "alerts": [{"status": "firing"}]}), "application/json", 400),
    (json.dumps({"version": "4", "alerts": []}), "text/plain", 415),
    (json.dumps({"version": "4", "alerts": [], "pad": "x" * 300_000}), "application/json", 413),
])
def test_the_receiver_refuses_malformed_payloads(automation, body, content_type, status):
    before = state()
    answer = post_alerts(body, token(), headers={"Content-Type": content_type})
    assert answer.status_code == status
    assert set(answer.json()["error"]) == {"message", "type", "code"}
    assert state() == before


def test_clients_that_send_half_a_request_and_stall_do_not_silence_the_receiver(automation):
    """Four times its threads in stalled clients, half in the headers, half in the body:
    each is dropped after the read timeout, so /health and Alertmanager get a thread."""
    wait_for(answers_health, 30, what="the receiver")  # a receiver restarted just now binds late
    stalled = []
    for number in range(16):
        client = socket.create_connection(("127.0.0.1", 9095))
        partial = b"POST /alerts HTTP/1.1\r\nHost: x\r\n"
        if number % 2:
            partial += b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        client.sendall(partial)
        stalled.append(client)
    try:
        assert requests.get(f"{RECEIVER}/health", timeout=60).json()["status"] == "ok"
        for client in stalled:  # answered 4xx or dropped by the receiver, not left waiting
            client.settimeout(30)
            answer = client.recv(4096)
            assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer
    finally:
        for client in stalled:
            client.close()


def answers_health() -> bool:
    try:
        return receiver_health()["status"] == "ok"
    except requests.RequestException:
        return False


def test_status_shows_a_silence_that_mutes_automatic_rollback(automation):
    """Anyone who reaches Alertmanager can mute the automation: the operator must see it."""
    ends = clock_in(minutes=10)
    made = requests.post(f"{ALERTMANAGER}/api/v2/silences", timeout=10, json={
        "matchers": [{"name": "action", "value": "rollback", "isRegex": False, "isEqual": True}],
        "startsAt": utc_stamp(), "endsAt": ends, "createdBy": "mallory", "comment": "{{ 7 * 7 }} shh"})
    assert made.status_code == 200, made.text
    try:
        shown = run(str(BIN / "python"), "-m", "ttsctl", "status").stdout
        assert "automatic rollback is silenced" in shown and "mallory" in shown and "{{ 7 * 7 }} shh" in shown
        report = json.loads(run(str(BIN / "python"), "-m", "ttsctl", "status", "--json").stdout)
        assert [(s["created_by"], s["matchers"]) for s in report["rollback_silences"]] == [("mallory", "action=rollback")]
    finally:
        requests.delete(f"{ALERTMANAGER}/api/v2/silence/{made.json()['silenceID']}", timeout=10)
    report = json.loads(run(str(BIN / "python"), "-m", "ttsctl", "status", "--json").stdout)
    assert report["rollback_silences"] == []


def clock_in(minutes: float) -> str:
    from datetime import timedelta

    from ttsctl import clock

    return clock.stamp(clock.utc_now() + timedelta(minutes=minutes))


def test_resolved_and_stale_alerts_change_nothing(baseline):
    playbook("canary", weight=20)
    before, since = state(), utc_stamp()
    answer = post_alerts(payload(alert("resolved"), alert(version="1.9", fingerprint="01d"),
                                 alert(color="blue", version=STABLE, fingerprint="b1e"),
                                 alert(fingerprint="e90c", epoch="2000-01-01T00:00:00.000Z"),
                                 alert(fingerprint="01d5", starts_at="2000-01-01T00:00:00Z")), token())
    assert answer.status_code == 202 and answer.json()["acted"] == []
    assert [i["reason"] for i in answer.json()["ignored"]] == [
        "resolved", "not_current_candidate", "not_current_candidate", "stale_epoch", "stale_epoch"]
    time.sleep(1)
    assert state() == before and rollback_records(since) == []


def test_an_alert_posted_to_alertmanager_with_template_markup_rolls_back_with_its_text_as_data(baseline, tmp_path):
    """Anyone who reaches Alertmanager can post an alert, and Alertmanager hands it to the
    receiver with the real token: its text must end in the audit log as typed, never run."""
    marker = tmp_path / "owned"
    markup = "{{ lookup('ansible.builtin.pipe', 'touch " + str(marker) + "') }}"
    playbook("canary", weight=20)
    since = utc_stamp()
    hostile = {"labels": {"alertname": f"TTSForged{markup}", "action": "rollback", "severity": "critical",
                          "color": "green", "version": CANDIDATE, "epoch": release_epoch()},
               "annotations": {"summary": f"{markup}\x1b[2J\nsecond line"}, "startsAt": utc_stamp()}
    answer = requests.post(f"{ALERTMANAGER}/api/v2/alerts", json=[hostile], timeout=10)
    assert answer.status_code == 200, answer.text
    try:
        rollback = wait_for_rollback_by_webhook(since, 60)
    finally:  # resolve it, so Alertmanager does not repeat it to later tests
        requests.post(f"{ALERTMANAGER}/api/v2/alerts", json=[{**hostile, "endsAt": utc_stamp()}], timeout=10)
    assert rollback["result"] == "ok" and state()["phase"] == "rolled_back"
    assert not marker.exists()
    [record] = rollback_records(since)
    assert record["reason"].startswith(f"TTSForged{markup}: {markup}[2J second line (alert ")
    assert state()["last_change"]["reason"] == record["reason"]


def test_duplicate_and_concurrent_payloads_roll_back_once(baseline):
    playbook("canary", weight=20)
    since = utc_stamp()
    acted_before = receiver_metric("ttsctl_webhook_alerts_acted_total")
    answers, barrier = [], threading.Barrier(12)

    def send(i):
        barrier.wait()
        answers.append(post_alerts(payload(alert(fingerprint=f"c{i:03d}")), token()))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [202] * 12
    assert sum(len(a.json()["acted"]) for a in answers) == 1
    rollback = wait_for_rollback_by_webhook(since, 60)
    for _ in range(3):  # Alertmanager repeating itself after the rollback
        again = post_alerts(payload(alert(fingerprint="c000")), token())
        assert again.status_code == 202 and again.json()["ignored"][0]["reason"] in (
            "no_candidate", "already_rolled_back")
    assert rollback["result"] == "ok" and state()["phase"] == "rolled_back"
    assert len(rollback_records(since)) == 1
    assert receiver_metric("ttsctl_webhook_alerts_acted_total") == acted_before + 1


@pytest.mark.parametrize("weak, why", [("change-me", "published default"), ("s3cret", "shorter than 32 bytes")])
def test_the_receiver_and_alertmanager_refuse_a_default_or_short_token_before_any_change(automation, weak, why):
    tokens = [Path("/etc/ttsctl/webhook.token"), Path("/etc/prometheus/webhook.token")]
    before = [path.read_bytes() for path in tokens]
    for name in ("control_plane", "monitoring"):
        done = run(str(BIN / "ansible-playbook"), f"playbooks/{name}.yml", "-e", f"ttsctl_webhook_token={weak}",
                   check=False)
        assert done.returncode == 2 and why in done.stdout and "nothing was changed" in done.stdout, done.stdout
        assert changed(done) == 0
    assert [path.read_bytes() for path in tokens] == before
    assert receiver_health()["status"] == "ok"


def test_the_control_plane_role_changes_nothing_the_second_time(automation):
    assert changed(playbook("control_plane")) == 0
    assert changed(run(str(BIN / "ansible-playbook"), "playbooks/control_plane.yml", "--check")) == 0
    assert receiver_health()["status"] == "ok"
