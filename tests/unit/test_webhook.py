"""The webhook receiver: payload parsing, the decision per alert, the HTTP layer and the
one-rollback guarantee, with a stand-in for the rollback playbook.
tests/integration/test_auto_rollback.py runs the real thing against real Alertmanager."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from ttsctl import alerts, free_text, release_view, rollbacks, runner, webhook
from ttsctl.rollbacks import RunResult

TOKEN = "s3cret-token"
BASELINE = {
    "active": "blue", "candidate_weight": 20, "phase": "canary",
    "colors": {"blue": {"version": "1.5", "image": "i:1.5"}, "green": {"version": "2.0", "image": "i:2.0"}},
    "last_change": {"action": "canary", "operator": "alice", "reason": "", "time": "2026-11-26T07:00:00.000Z"},
}


def alert(status="firing", name="TTSCandidateErrorRatioHigh", fingerprint="f00d", summary=None,
          starts_at="2026-11-26T07:00:30.123456789Z", **labels):
    labels = {"alertname": name, "action": "rollback", "color": "green", "version": "2.0",
              "epoch": BASELINE["last_change"]["time"], "severity": "critical", **labels}
    return {"status": status, "labels": {k: v for k, v in labels.items() if v is not None},
            "annotations": {"summary": summary or "Candidate green 2.0 fails 50% of speech requests"},
            "startsAt": starts_at, "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus/graph", "fingerprint": fingerprint}


def payload(*items, status="firing"):
    return {"version": "4", "groupKey": '{}/{action="rollback"}:{alertname="X"}', "truncatedAlerts": 0,
            "status": status, "receiver": "rollback", "groupLabels": {}, "commonLabels": {},
            "commonAnnotations": {}, "externalURL": "http://alertmanager", "alerts": list(items)}


# -- parsing ---------------------------------------------------------------------------------
def test_a_version_4_payload_is_parsed_alert_by_alert():
    notification = alerts.parse_payload(payload(alert(), alert("resolved", fingerprint="beef")))
    assert notification.receiver == "rollback"
    assert [(a.status, a.fingerprint) for a in notification.alerts] == [("firing", "f00d"), ("resolved", "beef")]
    assert notification.alerts[0].labels["color"] == "green"
    assert notification.alerts[0].annotations["summary"].startswith("Candidate green")


@pytest.mark.parametrize("body, message", [
    ([], "JSON object"),
    ({"alerts": []}, "unsupported payload version"),
    ({"version": "3", "alerts": []}, "unsupported payload version"),
    ({"version": "4"}, "'alerts' must be a list"),
    ({"version": "4", "alerts": {"status": "firing"}}, "'alerts' must be a list"),
    ({"version": "4", "alerts": ["firing"]}, "alerts[0] must be an object"),
    ({"version": "4", "alerts": [{"status": "firing"}]}, "alerts[0].labels"),
    ({"version": "4", "alerts": [{"status": "firing", "labels": {"a": 1}}]}, "strings to strings"),
    ({"version": "4", "alerts": [{"status": "burning", "labels": {}}]}, "alerts[0].status"),
    ({"version": "4", "alerts": [{"status": "firing", "labels": {}, "annotations": []}]}, "annotations"),
    ({"version": "4", "alerts": [{"status": "firing", "labels": {}, "fingerprint": 7}]}, "'fingerprint'"),
])
def test_malformed_payloads_are_refused_with_what_is_wrong(body, message):
    with pytest.raises(alerts.PayloadError, match=message.replace("[", r"\[").replace("]", r"\]")):
        alerts.parse_payload(body)


# -- the candidate and the decision ----------------------------------------------------------
def test_the_candidate_is_the_deployed_colour_beside_the_active_one():
    assert alerts.candidate_of(BASELINE) == alerts.Candidate("green", "2.0", "canary", "2026-11-26T07:00:00.000Z")
    assert alerts.candidate_of({**BASELINE, "phase": "deployed", "candidate_weight": 0}).color == "green"
    assert alerts.candidate_of({**BASELINE, "active": "green"}).version == "1.5"


@pytest.mark.parametrize("state", [
    {}, {**BASELINE, "phase": "promoted"}, {**BASELINE, "phase": "rolled_back"},
    {**BASELINE, "phase": "stable", "colors": {"blue": BASELINE["colors"]["blue"], "green": None}},
    {**BASELINE, "colors": {"blue": BASELINE["colors"]["blue"]}}, {**BASELINE, "active": None},
])
def test_there_is_no_candidate_after_a_promote_or_rollback_or_on_a_fresh_site(state):
    assert alerts.candidate_of(state) is None


def parsed(**kwargs) -> alerts.Alert:
    return alerts.parse_payload(payload(alert(**kwargs))).alerts[0]


@pytest.mark.parametrize("kwargs, reason", [
    ({}, ""),
    ({"status": "resolved"}, alerts.RESOLVED),
    ({"action": None}, alerts.NOT_ROLLBACK),
    ({"action": "page"}, alerts.NOT_ROLLBACK),
    ({"color": None}, alerts.INCOMPLETE),
    ({"version": None}, alerts.INCOMPLETE),
    ({"version": "1.9"}, alerts.NOT_CANDIDATE),   # a version no longer deployed
    ({"color": "blue", "version": "1.5"}, alerts.NOT_CANDIDATE),  # the stable colour
    # The same candidate judged in an earlier epoch, or an alert replayed from long ago.
    ({"epoch": "2000-01-01T00:00:00.000Z"}, alerts.STALE),
    ({"epoch": None}, alerts.STALE),
    ({"starts_at": "2000-01-01T00:00:00Z"}, alerts.STALE),
    ({"starts_at": "2026-11-26T06:59:00Z"}, ""),   # clocks a minute apart
    ({"starts_at": "not a time"}, ""),
])
def test_only_a_firing_rollback_alert_about_the_current_candidate_acts(kwargs, reason):
    verdict = alerts.judge(parsed(**kwargs), alerts.candidate_of(BASELINE))
    assert (verdict.act, verdict.reason) == (reason == "", reason)


def test_an_alert_acts_on_nothing_when_there_is_no_candidate():
    verdict = alerts.judge(parsed(), alerts.candidate_of({**BASELINE, "phase": "rolled_back"}))
    assert (verdict.act, verdict.reason) == (False, alerts.NO_CANDIDATE)


def test_the_reason_names_the_alert_its_summary_and_its_fingerprint_on_one_line():
    reason = alerts.rollback_reason(parsed(summary="Candidate green 2.0\n fails   50%", fingerprint="ab12"))
    assert reason == "TTSCandidateErrorRatioHigh: Candidate green 2.0 fails 50% (alert ab12)"
    long = alerts.rollback_reason(parsed(summary="x" * 2000, fingerprint="ab12"))
    assert len(long) == free_text.REASON_LIMIT and long.endswith("… (alert ab12)")


def test_the_reason_keeps_an_alert_s_template_markup_as_text_without_control_characters():
    hostile = parsed(summary="{{ lookup('pipe', 'id') }}\x1b[2J\x00", fingerprint="ab\n12")
    assert alerts.rollback_reason(hostile) == (
        "TTSCandidateErrorRatioHigh: {{ lookup('pipe', 'id') }}[2J (alert ab 12)")


# -- reading the release state ---------------------------------------------------------------
EXPORTER_TEXT = """\
# TYPE tts_release_state_ok gauge
tts_release_state_ok 1
# TYPE tts_release_info gauge
tts_release_info{active="blue",phase="canary",epoch="2026-11-26T07:00:00.000Z"} 1
# TYPE tts_release_color_version_info gauge
tts_release_color_version_info{color="blue",version="1.5",image="i:1.5"} 1
tts_release_color_version_info{color="green",version="2.0",image="i:2.0"} 1
# TYPE tts_release_candidate_weight_percent gauge
tts_release_candidate_weight_percent 20
"""


def test_the_exporters_metrics_give_the_same_candidate_as_the_file():
    state = release_view.state_from_metrics(EXPORTER_TEXT)
    assert alerts.candidate_of(state) == alerts.candidate_of(BASELINE)
    assert state["candidate_weight"] == 20


def test_an_exporter_that_cannot_read_the_state_makes_it_unreadable():
    with pytest.raises(release_view.StateUnreadable):
        release_view.state_from_metrics("tts_release_state_ok 0\n")


def test_a_missing_state_file_is_the_empty_state_and_a_corrupt_one_is_unreadable(tmp_path):
    assert release_view.read(str(tmp_path / "none.json")) == {}
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(release_view.StateUnreadable):
        release_view.read(str(tmp_path / "bad.json"))


# -- the HTTP layer, with a stand-in for the playbook -----------------------------------------
class FakeRollback:
    """Runs "the playbook": records the reason and, when it succeeds, writes rolled_back to the
    state file as playbooks/rollback.yml does. ``gate`` holds it until set."""

    def __init__(self, state_file):
        self.state_file = state_file
        self.reasons: list[str] = []
        self.candidates: list[alerts.Candidate] = []
        self.results: list[RunResult] = []
        self.gate = threading.Event()
        self.gate.set()
        self.finished = threading.Event()

    def __call__(self, reason: str, candidate: alerts.Candidate) -> RunResult:
        self.reasons.append(reason)
        self.candidates.append(candidate)
        self.gate.wait(10)
        result = self.results.pop(0) if self.results else RunResult("ok", None, 41)
        if result.result == "ok":
            state = json.loads(self.state_file.read_text())
            state.update(phase="rolled_back", candidate_weight=0)
            self.state_file.write_text(json.dumps(state))
        self.finished.set()
        return result


@pytest.fixture
def state_file(tmp_path):
    path = tmp_path / "release.json"
    path.write_text(json.dumps(BASELINE))
    return path


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "webhook.token"
    path.write_text(TOKEN + "\n")
    return path


@pytest.fixture
def fake(state_file):
    return FakeRollback(state_file)


@pytest.fixture
def make_app(token_file, state_file, fake):
    def make(**options):
        config = webhook.WebhookConfig(token_file=token_file, release_state=str(state_file),
                                       retry_delay=0, **options)
        return webhook.create_app(config, fake)
    return make


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


def receiver_of(app) -> webhook.Receiver:
    return app.extensions[webhook.EXTENSION]


def post(client, body, token=TOKEN, **kwargs):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post("/alerts", data=data, headers=headers,
                       content_type=kwargs.pop("content_type", "application/json"), **kwargs)


def settle(app, timeout=5):
    assert receiver_of(app).rollbacks.wait_idle(timeout)


def metric(client, name, **labels) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True)):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    raise AssertionError(f"no sample {name}{labels}")


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": "Bearer"}, {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": TOKEN},
])
def test_without_the_token_the_answer_is_401_in_json_and_nothing_happens(client, fake, headers):
    answer = client.post("/alerts", json=payload(alert()), headers=headers)
    assert answer.status_code == 401
    assert answer.json["error"]["code"] == "unauthorized"
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert fake.reasons == []


def test_the_token_file_is_read_again_when_it_changes(client, token_file, fake, state_file):
    token_file.write_text("rotated-token-that-is-longer\n")
    assert post(client, payload(alert("resolved"))).status_code == 401
    assert post(client, payload(alert("resolved")), token="rotated-token-that-is-longer").status_code == 202


@pytest.mark.parametrize("data, content_type, status, code", [
    ("{not json", "application/json", 400, "invalid_json"),
    ("", "application/json", 400, "invalid_json"),
    (json.dumps({"version": "3", "alerts": []}), "application/json", 400, "invalid_payload"),
    (json.dumps({"version": "4", "alerts": "x"}), "application/json", 400, "invalid_payload"),
    (json.dumps({"version": "4", "alerts": [{"status": "firing"}]}), "application/json", 400, "invalid_payload"),
    (json.dumps(payload(alert())), "text/plain", 415, "unsupported_media_type"),
    (json.dumps(payload(alert())), "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
])
def test_malformed_bodies_are_answered_4xx_in_json_and_change_nothing(client, fake, data, content_type, status, code):
    answer = post(client, data, content_type=content_type)
    assert answer.status_code == status, answer.get_data(as_text=True)
    assert answer.json["error"]["code"] == code and answer.json["error"]["message"]
    assert fake.reasons == []


def test_a_body_over_the_limit_is_answered_413(make_app, fake):
    client = make_app(max_body_bytes=4096).test_client()
    body = payload(*[alert(fingerprint=f"{i:04x}", summary="x" * 200) for i in range(40)])
    answer = post(client, body)
    assert answer.status_code == 413 and answer.json["error"]["code"] == "request_too_large"
    assert fake.reasons == []


def test_a_firing_alert_about_the_candidate_is_answered_202_and_rolled_back_once(app, client, fake):
    answer = post(client, payload(alert()))
    assert answer.status_code == 202
    assert answer.json["acted"] == [{"alertname": "TTSCandidateErrorRatioHigh", "fingerprint": "f00d",
                                     "status": "firing", "color": "green", "version": "2.0",
                                     "epoch": "2026-11-26T07:00:00.000Z"}]
    settle(app)
    assert fake.reasons == ["TTSCandidateErrorRatioHigh: Candidate green 2.0 fails 50% of speech requests "
                            "(alert f00d)"]
    assert fake.candidates == [alerts.candidate_of(BASELINE)]
    last = client.get("/health").json["last_rollback"]
    assert last["result"] == "ok" and last["audit_record"] == 41 and last["color"] == "green"
    assert metric(client, "ttsctl_webhook_alerts_acted_total") == 1
    assert metric(client, "ttsctl_webhook_rollback_duration_seconds_count") == 1


def test_the_answer_comes_before_the_rollback_ends(app, client, fake):
    fake.gate.clear()
    started = time.monotonic()
    answer = post(client, payload(alert()))
    assert answer.status_code == 202 and time.monotonic() - started < 1
    assert answer.json["rollback"]["result"] == "running"
    assert client.get("/health").json["rollback_in_progress"] is True
    assert metric(client, "ttsctl_webhook_rollback_in_progress") == 1
    fake.gate.set()
    settle(app)
    assert client.get("/health").json["rollback_in_progress"] is False


def test_resolved_alerts_and_other_alerts_do_nothing_and_are_counted_by_reason(app, client, fake):
    body = payload(alert("resolved"), alert(action="page"), alert(version="1.9"),
                   alert(color="blue", version="1.5"))
    answer = post(client, body)
    assert answer.status_code == 202 and answer.json["acted"] == []
    assert [i["reason"] for i in answer.json["ignored"]] == [
        "resolved", "not_rollback", "not_current_candidate", "not_current_candidate"]
    settle(app)
    assert fake.reasons == []
    assert metric(client, "ttsctl_webhook_alerts_received_total") == 4
    assert metric(client, "ttsctl_webhook_alerts_ignored_total", reason="not_current_candidate") == 2
    assert metric(client, "ttsctl_webhook_alerts_ignored_total", reason="already_rolled_back") == 0


def test_repeated_notifications_make_one_rollback(app, client, fake):
    fake.gate.clear()
    first = post(client, payload(alert()))
    again = post(client, payload(alert(), alert(name="TTSCandidateLatencyHigh", fingerprint="cafe")))
    assert first.json["acted"] and again.json["acted"] == []
    assert {i["reason"] for i in again.json["ignored"]} == {"rollback_in_progress"}
    fake.gate.set()
    settle(app)
    later = post(client, payload(alert()))  # the state now says rolled_back
    assert later.json["ignored"][0]["reason"] == "no_candidate"
    assert len(fake.reasons) == 1


def test_concurrent_notifications_make_one_rollback(app, fake):
    fake.gate.clear()
    answers, barrier = [], threading.Barrier(16)

    def send(i):
        client = app.test_client()
        barrier.wait()
        answers.append(post(client, payload(alert(fingerprint=f"{i:04x}"))))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    fake.gate.set()
    settle(app)
    assert [a.status_code for a in answers] == [202] * 16
    assert sum(len(a.json["acted"]) for a in answers) == 1
    assert len(fake.reasons) == 1


def test_a_second_alert_in_one_notification_does_not_roll_back_twice(app, client, fake):
    fake.gate.clear()
    answer = post(client, payload(alert(fingerprint="a"), alert(fingerprint="b")))
    fake.gate.set()
    settle(app)
    assert len(answer.json["acted"]) == 1 and answer.json["ignored"][0]["reason"] == "rollback_in_progress"
    assert len(fake.reasons) == 1


def test_a_candidate_rolled_back_by_this_receiver_is_not_rolled_back_again(app, client, fake, state_file):
    post(client, payload(alert()))
    settle(app)
    state_file.write_text(json.dumps(BASELINE))  # the same candidate and epoch, read again
    answer = post(client, payload(alert()))
    assert answer.json["ignored"][0]["reason"] == "already_rolled_back"
    assert len(fake.reasons) == 1


def test_a_failed_rollback_is_counted_and_a_later_notification_tries_again(make_app, fake):
    app = make_app(attempts=1)
    client = app.test_client()
    fake.results = [RunResult("failed", "haproxy did not answer", 7)]
    post(client, payload(alert()))
    settle(app)
    assert metric(client, "ttsctl_webhook_rollbacks_failed_total") == 1
    assert client.get("/health").json["last_rollback"]["result"] == "failed"
    post(client, payload(alert()))
    settle(app)
    assert len(fake.reasons) == 2 and client.get("/health").json["last_rollback"]["result"] == "ok"


def test_a_rollback_that_meets_the_lock_is_tried_again(make_app, fake):
    app = make_app(attempts=3)
    client = app.test_client()
    fake.results = [RunResult("locked", "another change holds the release lock")]
    post(client, payload(alert()))
    settle(app)
    last = client.get("/health").json["last_rollback"]
    assert (last["result"], last["attempts"]) == ("ok", 2)
    assert metric(client, "ttsctl_webhook_rollbacks_failed_total") == 0


def test_no_retry_once_someone_else_has_rolled_the_candidate_back(make_app, fake, state_file):
    app = make_app(attempts=3)
    client = app.test_client()

    def locked_while_someone_rolls_back(reason, candidate):
        fake.reasons.append(reason)
        state_file.write_text(json.dumps({**BASELINE, "phase": "rolled_back"}))
        return RunResult("locked", "held by alice")

    receiver_of(app).rollbacks._run = locked_while_someone_rolls_back
    post(client, payload(alert()))
    settle(app)
    assert len(fake.reasons) == 1 and client.get("/health").json["last_rollback"]["result"] == "skipped"


def test_an_unreadable_release_state_is_answered_503_so_alertmanager_retries(client, fake, state_file):
    state_file.write_text("{torn")
    answer = post(client, payload(alert()))
    assert answer.status_code == 503 and answer.json["error"]["code"] == "release_state_unreadable"
    assert post(client, payload(alert("resolved"))).status_code == 202  # needs no state
    assert fake.reasons == []


def test_health_and_metrics_need_no_token(client):
    assert client.get("/health").json == {"status": "ok", "rollback_in_progress": False, "last_rollback": None}
    post(client, {"version": "4"}, token=None)
    text = client.get("/metrics").get_data(as_text=True)
    for name in ("ttsctl_webhook_alerts_received_total", "ttsctl_webhook_alerts_acted_total",
                 "ttsctl_webhook_alerts_ignored_total", "ttsctl_webhook_rollbacks_failed_total",
                 "ttsctl_webhook_rollback_in_progress"):
        assert name in text
    assert 'ttsctl_webhook_requests_total{code="401"} 1.0' in text


def test_the_real_runner_rolls_back_as_alertmanager_through_the_webhook_source(monkeypatch):
    calls = []

    def run_playbook(settings, playbook, extravars, **kwargs):
        calls.append((playbook, extravars, kwargs))
        raise runner.RunFailed("no ansible here")

    monkeypatch.setattr(runner, "run_playbook", run_playbook)
    candidate = alerts.candidate_of(BASELINE)
    result = rollbacks.playbook_runner("settings", "/inv")("TTSCandidateDown: down (alert 1)", candidate)
    assert result == RunResult("failed", "no ansible here")
    # The reason is free text built from the alert: passed apart from the extra vars, as data.
    # The candidate is what the release state must still have for the rollback to change it.
    assert calls == [("rollback", {}, {"inventory": "/inv", "source": "webhook", "operator": "alertmanager",
                                       "reason": "TTSCandidateDown: down (alert 1)",
                                       "expect": {"color": "green", "version": "2.0",
                                                  "epoch": "2026-11-26T07:00:00.000Z"}})]


class Sink(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802
        Sink.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_notification_is_posted_after_the_rollback(make_app, fake):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        Sink.received = []
        app = make_app(notify_url=f"http://127.0.0.1:{server.server_address[1]}/hook")
        post(app.test_client(), payload(alert()))
        settle(app)
    finally:
        server.shutdown()
    [report] = Sink.received
    assert report["event"] == "ttsctl.rollback" and report["result"] == "ok" and report["operator"] == "alertmanager"
    assert report["version"] == "2.0" and "alert f00d" in report["reason"] and "green 2.0" in report["text"]


def test_a_notification_that_cannot_be_delivered_is_counted_and_changes_nothing_else(make_app, fake):
    app = make_app(notify_url="http://127.0.0.1:9/nowhere", notify_timeout=1)
    client = app.test_client()
    post(client, payload(alert()))
    settle(app)
    assert client.get("/health").json["last_rollback"]["result"] == "ok"
    assert metric(client, "ttsctl_webhook_notifications_failed_total") == 1


def test_the_receiver_refuses_to_start_without_a_token(tmp_path):
    empty = tmp_path / "token"
    empty.write_text("\n")
    for path in (empty, tmp_path / "missing"):
        result = CliRunner().invoke(webhook.webhook, ["serve", "--token-file", str(path)])
        assert result.exit_code == 1 and "token file" in result.output


def test_serve_documents_every_option_and_its_environment_variable():
    result = CliRunner().invoke(webhook.webhook, ["serve", "--help"])
    assert result.exit_code == 0
    for text in ("--host", "--port", "--token-file", "TTSCTL_WEBHOOK_TOKEN_FILE", "--release-state",
                 "--notify-url", "--max-body-bytes", "Exit codes"):
        assert text in result.output


def test_a_stopping_worker_waits_for_the_rollback_it_started(app, client, fake):
    from types import SimpleNamespace

    fake.gate.clear()
    post(client, payload(alert()))
    threading.Timer(0.3, fake.gate.set).start()
    webhook._wait_for_rollback(SimpleNamespace(cfg=SimpleNamespace(graceful_timeout=10)), SimpleNamespace(wsgi=app))
    assert receiver_of(app).rollbacks.running is None
    assert client.get("/health").json["last_rollback"]["result"] == "ok"
