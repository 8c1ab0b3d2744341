"""The webhook receiver's own metrics, defined once. Each app gets its own registry, so tests
can build several apps in one process."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ttsctl import alerts


class WebhookMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        ns = dict(namespace="ttsctl_webhook", registry=self.registry)
        self.requests = Counter("requests", "HTTP requests to /alerts by answer status.", ["code"], **ns)
        self.alerts_received = Counter("alerts_received", "Alerts in accepted notifications.", **ns)
        self.alerts_acted = Counter("alerts_acted", "Alerts that started a rollback.", **ns)
        self.alerts_ignored = Counter("alerts_ignored", "Alerts that did nothing, by reason.", ["reason"], **ns)
        self.rollbacks_failed = Counter(
            "rollbacks_failed", "Rollbacks that did not complete (failed, refused, lock not obtained).", **ns)
        self.rollback_duration = Histogram(
            "rollback_duration_seconds", "Time from the alert to the end of a successful rollback.",
            buckets=(1, 2, 5, 10, 15, 20, 30, 45, 60, 120, 300), **ns)
        self.rollback_in_progress = Gauge("rollback_in_progress", "1 while a rollback runs.", **ns)
        self.notifications_failed = Counter(
            "notifications_failed", "Notifications to the configured URL that could not be delivered.", **ns)
        for reason in alerts.IGNORE_REASONS:  # every reason present from the start, at 0
            self.alerts_ignored.labels(reason=reason)
