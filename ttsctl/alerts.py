"""Alertmanager's webhook payload and what the receiver makes of each alert: pure functions,
no I/O. The HTTP layer (ttsctl.webhook) reads the body and the release state and hands them
here; the rollbacks (ttsctl.rollbacks) act on the verdicts.

Only a firing alert labelled ``action="rollback"`` about the current candidate (its
``color`` and ``version`` are the release state's candidate, in phase deployed or canary)
asks for a rollback. Anything else is ignored, with the reason.
"""
from __future__ import annotations

from dataclasses import dataclass

from ttsctl import clock, free_text

PAYLOAD_VERSION = "4"
STATUSES = ("firing", "resolved")
CANDIDATE_PHASES = ("deployed", "canary")
COLORS = ("blue", "green")


# Why an alert did nothing: the values of ttsctl_webhook_alerts_ignored_total{reason}.
RESOLVED = "resolved"
NOT_ROLLBACK = "not_rollback"                # no action="rollback" label
INCOMPLETE = "incomplete_labels"             # a rollback alert without color or version
NO_CANDIDATE = "no_candidate"                # nothing deployed beside the active colour
NOT_CANDIDATE = "not_current_candidate"      # about a version or colour no longer a candidate
STALE = "stale_epoch"                        # about an earlier epoch of the candidate, or older than it
IN_PROGRESS = "rollback_in_progress"         # a rollback is running already
ALREADY_DONE = "already_rolled_back"         # this candidate was rolled back by this receiver
IGNORE_REASONS = (RESOLVED, NOT_ROLLBACK, INCOMPLETE, NO_CANDIDATE, NOT_CANDIDATE, STALE, IN_PROGRESS,
                  ALREADY_DONE)
# How far the clocks of Prometheus and of the load-balancer host (which stamps the epoch) may
# disagree before an alert that seems to have started before its epoch is taken as stale.
CLOCK_SKEW_S = 300


class PayloadError(ValueError):
    """The body is not an Alertmanager webhook payload (version 4)."""


@dataclass(frozen=True)
class Alert:
    status: str
    labels: dict
    annotations: dict
    fingerprint: str
    starts_at: str

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def wants_rollback(self) -> bool:
        return self.labels.get("action") == "rollback"

    def describe(self) -> dict:
        """What the answer and the logs say about the alert."""
        return {"alertname": self.name, "fingerprint": self.fingerprint, "status": self.status,
                **{key: self.labels[key] for key in ("color", "version", "epoch") if key in self.labels}}


@dataclass(frozen=True)
class Notification:
    receiver: str
    status: str
    group_key: str
    alerts: tuple[Alert, ...]


@dataclass(frozen=True)
class Candidate:
    """The colour under test in the release state. ``epoch`` is the time of the state's last
    change: one rollback per candidate and epoch."""
    color: str
    version: str
    phase: str
    epoch: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.color, self.version, self.epoch)

    def expected(self) -> dict:
        """What the release_state module's ``expect`` compares with the state it rolls back."""
        return {"color": self.color, "version": self.version, "epoch": self.epoch}


@dataclass(frozen=True)
class Verdict:
    alert: Alert
    act: bool
    reason: str = ""        # why it was ignored, one of IGNORE_REASONS; empty when it acts


def parse_payload(body) -> Notification:
    """The notification in a decoded JSON body, or PayloadError saying what is wrong."""
    if not isinstance(body, dict):
        raise PayloadError("the body must be a JSON object")
    if str(body.get("version")) != PAYLOAD_VERSION:
        raise PayloadError(f"unsupported payload version {body.get('version')!r}: "
                           f"Alertmanager's webhook version {PAYLOAD_VERSION} is expected")
    alerts = body.get("alerts")
    if not isinstance(alerts, list):
        raise PayloadError("'alerts' must be a list")
    return Notification(receiver=_text(body, "receiver"), status=_text(body, "status"),
                        group_key=_text(body, "groupKey"),
                        alerts=tuple(_alert(item, index) for index, item in enumerate(alerts)))


def _alert(item, index: int) -> Alert:
    where = f"alerts[{index}]"
    if not isinstance(item, dict):
        raise PayloadError(f"{where} must be an object")
    status = item.get("status")
    if status not in STATUSES:
        raise PayloadError(f"{where}.status must be one of {', '.join(STATUSES)}, not {status!r}")
    labels = _string_map(item.get("labels"), f"{where}.labels", required=True)
    annotations = _string_map(item.get("annotations"), f"{where}.annotations", required=False)
    return Alert(status=status, labels=labels, annotations=annotations,
                 fingerprint=_text(item, "fingerprint"), starts_at=_text(item, "startsAt"))


def _string_map(value, where: str, *, required: bool) -> dict:
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"{where} must be an object of strings")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise PayloadError(f"{where} must map strings to strings")
    return dict(value)


def _text(mapping: dict, key: str) -> str:
    value = mapping.get(key)
    if value is not None and not isinstance(value, str):
        raise PayloadError(f"'{key}' must be a string")
    return value or ""


def candidate_of(state: dict | None) -> Candidate | None:
    """The release state's candidate: the deployed colour beside the active one, while the
    phase is deployed or canary. None after a promote or rollback and on a fresh site."""
    state = state or {}
    active = state.get("active")
    if active not in COLORS or state.get("phase") not in CANDIDATE_PHASES:
        return None
    color = COLORS[1 - COLORS.index(active)]
    recorded = (state.get("colors") or {}).get(color)
    if not isinstance(recorded, dict) or recorded.get("version") in (None, ""):
        return None
    return Candidate(color=color, version=str(recorded["version"]), phase=state["phase"],
                     epoch=str((state.get("last_change") or {}).get("time") or ""))


def needs_state(alert: Alert) -> bool:
    """Whether judging the alert needs the release state (a firing rollback alert)."""
    return alert.status == "firing" and alert.wants_rollback


def judge(alert: Alert, candidate: Candidate | None) -> Verdict:
    """Whether the alert asks to roll back the current candidate. Deduplication (a rollback
    already running or done) is the caller's, which holds the lock that makes it exact."""
    if alert.status != "firing":
        return Verdict(alert, False, RESOLVED)
    if not alert.wants_rollback:
        return Verdict(alert, False, NOT_ROLLBACK)
    if not alert.labels.get("color") or not alert.labels.get("version"):
        return Verdict(alert, False, INCOMPLETE)
    if candidate is None:
        return Verdict(alert, False, NO_CANDIDATE)
    if (alert.labels["color"], alert.labels["version"]) != (candidate.color, candidate.version):
        return Verdict(alert, False, NOT_CANDIDATE)
    # The same colour and version may have been judged before (an earlier canary of it, a
    # replayed notification): only an alert about this epoch, started in it, may act.
    if alert.labels.get("epoch") != candidate.epoch or _started_before(alert.starts_at, candidate.epoch):
        return Verdict(alert, False, STALE)
    return Verdict(alert, True)


def _started_before(starts_at: str, epoch: str) -> bool:
    started, began = clock.parse_stamp(starts_at), clock.parse_stamp(epoch)
    if started is None or began is None:
        return False  # Alertmanager always sends startsAt; the epoch label is checked above
    return (began - started).total_seconds() > CLOCK_SKEW_S


def rollback_reason(alert: Alert) -> str:
    """The audit record's reason: alert name, summary and fingerprint, on one line."""
    summary = free_text.clean(alert.annotations.get("summary"))
    text = free_text.clean(alert.name) or "unnamed alert"
    if summary:
        text += f": {summary}"
    fingerprint = free_text.clean(alert.fingerprint, 64)
    suffix = f" (alert {fingerprint})" if fingerprint else ""
    return free_text.clean(text, free_text.REASON_LIMIT - len(suffix)) + suffix
