"""The automatic-rollback path as tests and bench/mttr.py watch it: Prometheus's alerts, the
webhook receiver, the audit log, and a probe of who answers at the frontend.

Everything is real: Prometheus (:9090) and Alertmanager (:9093) from playbooks/monitoring.yml,
the receiver (:9095) from playbooks/control_plane.yml, HAProxy and the TTS containers.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from deployment import CANDIDATE, FRONTEND, ROOT, playbook, run, state

PROMETHEUS = "http://127.0.0.1:9090"
ALERTMANAGER = "http://127.0.0.1:9093"
RECEIVER = "http://127.0.0.1:9095"
TOKEN_FILE = Path("/etc/ttsctl/webhook.token")
AUDIT_DB = Path("/var/lib/ttsctl/audit.db")


def start_monitoring_and_receiver() -> None:
    """Prometheus, Alertmanager and the release exporter with the shipped settings, and the
    receiver, as their playbooks leave them (each changes nothing when already so)."""
    playbook("monitoring")
    playbook("control_plane")


def token() -> str:
    return TOKEN_FILE.read_text().strip()


def post_alerts(body, token_value: str | None = None, **kwargs) -> requests.Response:
    headers = kwargs.pop("headers", {})
    if token_value is not None:
        headers["Authorization"] = f"Bearer {token_value}"
    if isinstance(body, (dict, list)):
        kwargs["json"] = body
    else:
        kwargs["data"] = body
    return requests.post(f"{RECEIVER}/alerts", headers=headers, timeout=10, **kwargs)


def receiver_health() -> dict:
    return requests.get(f"{RECEIVER}/health", timeout=5).json()


def receiver_metric(name: str, **labels) -> float:
    text = requests.get(f"{RECEIVER}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def firing_alerts(alertname: str | None = None, **labels) -> list[dict]:
    """Prometheus's active alerts (pending and firing) matching the labels."""
    answer = requests.get(f"{PROMETHEUS}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    wanted = {**labels, **({"alertname": alertname} if alertname else {})}
    return [a for a in answer if all(a["labels"].get(k) == v for k, v in wanted.items())]


def rollback_records(since: str) -> list[dict]:
    """Audit records of rollbacks started at or after ``since`` (UTC stamp), newest first."""
    import sys

    sys.path.insert(0, str(ROOT))
    from ttsctl.audit import AuditStore, Query

    return AuditStore(AUDIT_DB).query(Query(since=since, actions=("rollback",), limit=None))


def candidate_faults() -> dict:
    """The faults the candidate instance says it runs with ({} when healthy, None when down)."""
    try:
        return requests.get("http://127.0.0.1:6007/version", timeout=5).json().get("faults") or {}
    except requests.RequestException:
        return None


def deploy_candidate(**faults) -> None:
    """(Re)create green with the version under test and these faults, parked at weight 0."""
    playbook("deploy", version=CANDIDATE, **faults)


def wait_for(condition, timeout: float, interval: float = 0.5, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def wait_for_rollback_by_webhook(since_received: str, timeout: float) -> dict:
    """The receiver's rollback received after ``since_received``, once it has finished."""
    def finished():
        last = receiver_health()["last_rollback"]
        if last and last["received_at"] >= since_received and last["result"] != "running":
            return last
        return None
    return wait_for(finished, timeout, interval=0.25, what="the webhook's rollback")


class Probe(threading.Thread):
    """Fresh (cookie-less) GET /version through the frontend back to back, noting who
    answered and when (wall clock): the frontend as a new listener sees it."""

    def __init__(self, interval: float = 0.05):
        super().__init__(daemon=True)
        self.interval = interval
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.answers: list[tuple[float, str]] = []

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                colour = requests.get(f"{FRONTEND}/version", timeout=5).json()["color"]
            except (requests.RequestException, ValueError, KeyError):
                colour = "error"
            with self.lock:
                self.answers.append((time.time(), colour))
            self.stop_event.wait(self.interval)

    def stop(self) -> Probe:
        self.stop_event.set()
        self.join(timeout=10)
        return self

    def first(self, colour: str, after: float = 0.0) -> float | None:
        with self.lock:
            return next((t for t, c in self.answers if c == colour and t >= after), None)

    def stable_since(self, stable: str = "blue") -> float | None:
        """When the answers became only ``stable`` for good: the first stable answer after
        the last other one. None while the last answer is not stable."""
        with self.lock:
            answers = list(self.answers)
        if not answers or answers[-1][1] != stable:
            return None
        last_other = max((t for t, c in answers if c != stable), default=0.0)
        return next(t for t, c in answers if c == stable and t > last_other)

    def shares(self, after: float) -> dict:
        with self.lock:
            seen = [c for t, c in self.answers if t >= after]
        return {c: seen.count(c) for c in set(seen)}


def podman(*args: str, check: bool = True):
    return run("podman", *args, check=check)


def release_epoch() -> str:
    return (state().get("last_change") or {}).get("time") or ""
