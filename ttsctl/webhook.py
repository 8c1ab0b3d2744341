"""``ttsctl webhook serve``: the Alertmanager webhook receiver that rolls a bad candidate back.

POST /alerts takes Alertmanager's webhook payload (version 4) with a bearer token, judges each
alert (ttsctl.alerts), answers 202 at once and runs the rollback in the background
(ttsctl.rollbacks) through the same runner path, lock and audit log as ``ttsctl rollback``,
as operator ``alertmanager``. GET /health and GET /metrics (ttsctl_webhook_*) need no token.

Served by gunicorn with ONE worker process and a few threads: the record of running and
finished rollbacks lives in that process.

Exit codes: 0 after a clean stop (SIGTERM, SIGINT; a running rollback is waited for), 1 when
the receiver cannot start (token file missing or empty, port in use), 2 usage error.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import click
from flask import Blueprint, Flask, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tts_app.errors import ApiError, register_error_handlers

from ttsctl import alerts, release_view, webhook_worker
from ttsctl.rollbacks import OPERATOR, Rollbacks, RunRollback, playbook_runner
from ttsctl.settings import Settings
from ttsctl.webhook_metrics import WebhookMetrics

log = logging.getLogger("ttsctl.webhook")

DEFAULT_TOKEN_FILE = "/etc/ttsctl/webhook.token"
DEFAULT_MAX_BODY = 256 * 1024
EXTENSION = "ttsctl_webhook"


@dataclass(frozen=True)
class WebhookConfig:
    token_file: Path
    release_state: str = release_view.DEFAULT_SOURCE   # a file path or the exporter's URL
    max_body_bytes: int = DEFAULT_MAX_BODY
    notify_url: str | None = None
    notify_timeout: float = 5.0
    attempts: int = 3                                  # tries of a rollback that failed or met the lock
    retry_delay: float = 5.0


# -- the bearer token ------------------------------------------------------------------------
class TokenError(Exception):
    """The token file cannot be used."""


class TokenFile:
    """The expected bearer token, read again when the file changes, so rotating it needs no
    restart. A file that turns unreadable keeps the last good token (and is logged)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._digest = b""
        self._load()

    def _load(self) -> None:
        try:
            info = self.path.stat()
            stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
            if stamp == self._stamp:
                return
            token = self.path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise TokenError(f"cannot read the token file {self.path}: {exc.strerror or exc}") from exc
        if not token:
            raise TokenError(f"the token file {self.path} is empty")
        self._digest, self._stamp = _digest(token), stamp

    def matches(self, authorization: str | None) -> bool:
        """Whether an Authorization header carries the token (compared in constant time)."""
        with self._lock:
            try:
                self._load()
            except TokenError as exc:
                log.error("%s; keeping the token read before", exc)
            expected = self._digest
        scheme, _, given = (authorization or "").strip().partition(" ")
        # Digests are compared, so neither the token nor its length leaks through timing.
        same = hmac.compare_digest(_digest(given.strip()), expected)
        return scheme.lower() == "bearer" and bool(given.strip()) and same


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


# -- the receiver ----------------------------------------------------------------------------
class Receiver:
    """Judges notifications and starts rollbacks; one per app."""

    def __init__(self, config: WebhookConfig, run_rollback: RunRollback, metrics: WebhookMetrics):
        self.config = config
        self.metrics = metrics
        self.token = TokenFile(config.token_file)
        self.rollbacks = Rollbacks(
            run_rollback, current_candidate=self.current_candidate, metrics=metrics,
            notify=notifier(config.notify_url, metrics, config.notify_timeout) if config.notify_url else None,
            attempts=config.attempts, retry_delay=config.retry_delay)

    def current_candidate(self) -> alerts.Candidate | None:
        return alerts.candidate_of(release_view.read(self.config.release_state))

    def handle(self, notification: alerts.Notification) -> dict:
        """Judge every alert, start at most one rollback; the summary the answer carries.
        Raises release_view.StateUnreadable when a rollback alert cannot be judged."""
        candidate = None
        if any(alerts.needs_state(alert) for alert in notification.alerts):
            candidate = self.current_candidate()
        self.metrics.alerts_received.inc(len(notification.alerts))
        acted, ignored = [], []
        for alert in notification.alerts:
            verdict = alerts.judge(alert, candidate)
            reason = self.rollbacks.start(candidate, alert) if verdict.act else verdict.reason
            if reason:
                self.metrics.alerts_ignored.labels(reason=reason).inc()
                ignored.append({**alert.describe(), "reason": reason})
                log.info("ignored %s %s: %s", alert.status, alert.name or "alert", reason)
            else:
                self.metrics.alerts_acted.inc()
                acted.append(alert.describe())
        running = self.rollbacks.running
        return {"status": "accepted", "received": len(notification.alerts), "acted": acted,
                "ignored": ignored, "rollback": running.report() if running else None}


def notifier(url: str, metrics: WebhookMetrics, timeout: float):
    """POST a JSON report to ``url`` after each rollback; failures are logged, never fatal."""

    def notify(report: dict) -> None:
        text = (f"ttsctl: rollback of {report['color']} {report['version']} {report['result']}"
                f" ({report['reason']})")
        body = json.dumps({"event": "ttsctl.rollback", "operator": OPERATOR, "text": text, **report})
        post = urllib.request.Request(url, data=body.encode(), method="POST",
                                      headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(post, timeout=timeout) as answer:  # noqa: S310 - an operator's URL
                answer.read()
        except (OSError, ValueError) as exc:
            metrics.notifications_failed.inc()
            log.warning("could not notify %s: %s", url, exc)

    return notify


# -- HTTP ------------------------------------------------------------------------------------
routes = Blueprint("webhook", __name__)


def _receiver() -> Receiver:
    return current_app.extensions[EXTENSION]


@routes.post("/alerts")
def receive_alerts():
    receiver = _receiver()
    if not receiver.token.matches(request.headers.get("Authorization")):
        raise ApiError(401, "unauthorized", "a valid bearer token is required",
                       {"WWW-Authenticate": 'Bearer realm="ttsctl-webhook"'})
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", "the body must be JSON (Content-Type: application/json)")
    limit = receiver.config.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "request_too_large", f"the body is larger than {limit} bytes")
    try:
        body = json.loads(request.get_data(cache=False))  # werkzeug stops reading past the limit
    except ValueError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    try:
        notification = alerts.parse_payload(body)
    except alerts.PayloadError as exc:
        raise ApiError(400, "invalid_payload", str(exc)) from None
    try:
        summary = receiver.handle(notification)
    except release_view.StateUnreadable as exc:
        log.error("cannot judge the alerts: %s", exc)
        # Alertmanager retries a 5xx: the alerts are judged once the state can be read.
        raise ApiError(503, "release_state_unreadable", str(exc)) from None
    return jsonify(summary), 202


@routes.get("/health")
def health():
    rollbacks = _receiver().rollbacks
    running, last = rollbacks.running, rollbacks.last
    return jsonify({"status": "ok", "rollback_in_progress": running is not None,
                    "last_rollback": last.report() if last else None})


@routes.get("/metrics")
def metrics():
    return Response(generate_latest(_receiver().metrics.registry), content_type=CONTENT_TYPE_LATEST)


def create_app(config: WebhookConfig, run_rollback: RunRollback) -> Flask:
    """The receiver's Flask app; ``run_rollback`` runs the rollback playbook once
    (ttsctl.rollbacks.playbook_runner in production). Raises TokenError without a token."""
    app = Flask("ttsctl.webhook")
    # Werkzeug answers 413 once a body (chunked ones too) grows past this.
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    metrics_ = WebhookMetrics()
    app.extensions[EXTENSION] = Receiver(config, run_rollback, metrics_)

    @app.after_request
    def count(response: Response) -> Response:
        if request.path == "/alerts":
            metrics_.requests.labels(code=str(response.status_code)).inc()
        return response

    app.register_blueprint(routes)
    register_error_handlers(app)
    return app


# -- gunicorn --------------------------------------------------------------------------------
def _gunicorn_application(factory, options: dict):
    from gunicorn.app.base import BaseApplication

    class WebhookServer(BaseApplication):
        def load_config(self):
            for key, value in options.items():
                self.cfg.set(key, value)
            if "control_socket_disable" in self.cfg.settings:  # gunicorn 25+: one path per user
                self.cfg.set("control_socket_disable", True)

        def load(self):
            return factory()

    return WebhookServer()


def _wait_for_rollback(server, worker) -> None:
    """gunicorn's worker_exit hook: a stopping worker finishes the rollback it started."""
    receiver = getattr(getattr(worker, "wsgi", None), "extensions", {}).get(EXTENSION)
    if receiver is not None and receiver.rollbacks.running is not None:
        log.info("waiting for the running rollback before stopping")
        receiver.rollbacks.wait_idle(server.cfg.graceful_timeout)


def _bind(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _inventory_path(inventory: str | None, settings: Settings) -> str | None:
    """Absolute, as ansible-runner needs: from the current directory, else the project's."""
    if not inventory:
        return None
    path = Path(inventory).expanduser()
    if not path.is_absolute() and not path.exists():
        path = settings.project_dir / path
    return str(path.resolve())


# -- command line ----------------------------------------------------------------------------
@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def webhook():
    """The Alertmanager webhook receiver that rolls a failing candidate back."""


@webhook.command(context_settings={"show_default": True},
                 epilog="Exit codes: 0 after a clean stop, 1 when it cannot start, 2 usage error.")
@click.option("--host", envvar="TTSCTL_WEBHOOK_HOST", show_envvar=True, default="127.0.0.1",
              help="Address to listen on.")
@click.option("--port", envvar="TTSCTL_WEBHOOK_PORT", show_envvar=True, type=click.IntRange(1, 65535),
              default=9095, help="Port to listen on.")
@click.option("--token-file", envvar="TTSCTL_WEBHOOK_TOKEN_FILE", show_envvar=True,
              type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_TOKEN_FILE,
              help="File holding the bearer token Alertmanager sends; re-read when it changes.")
@click.option("--release-state", envvar="TTSCTL_RELEASE_STATE", show_envvar=True,
              default=release_view.DEFAULT_SOURCE,
              help="Release state to judge alerts against: its file, or the URL of the release-state "
                   "exporter (http://LB:9099/metrics) where this is not the load-balancer host.")
@click.option("-i", "--inventory", envvar="TTSCTL_INVENTORY", show_envvar=True, metavar="PATH",
              help="Inventory the rollback acts on (default: ansible.cfg's).")
@click.option("--notify-url", envvar="TTSCTL_WEBHOOK_NOTIFY_URL", show_envvar=True, metavar="URL",
              help="POST a JSON report here after each rollback (failures are logged, never fatal).")
@click.option("--max-body-bytes", envvar="TTSCTL_WEBHOOK_MAX_BODY_BYTES", show_envvar=True,
              type=click.IntRange(min=1024), default=DEFAULT_MAX_BODY, help="Larger bodies are answered 413.")
@click.option("--attempts", envvar="TTSCTL_WEBHOOK_ATTEMPTS", show_envvar=True, type=click.IntRange(min=1),
              default=3, help="Tries of a rollback that failed or did not get the release lock.")
@click.option("--retry-delay", envvar="TTSCTL_WEBHOOK_RETRY_DELAY", show_envvar=True,
              type=click.FloatRange(min=0), default=5.0, help="Seconds between tries.")
@click.option("--threads", envvar="TTSCTL_WEBHOOK_THREADS", show_envvar=True, type=click.IntRange(1, 64),
              default=4, help="Request threads of the one worker process.")
@click.option("--read-timeout", envvar="TTSCTL_WEBHOOK_READ_TIMEOUT", show_envvar=True,
              type=click.FloatRange(min=0.1), default=webhook_worker.READ_TIMEOUT_S,
              help="Seconds a client may take over each read or write: a stalled one is dropped.")
@click.option("--log-level", envvar="TTSCTL_WEBHOOK_LOG_LEVEL", show_envvar=True, default="info",
              type=click.Choice(["debug", "info", "warning", "error"]), help="Log level.")
def serve(host, port, token_file, release_state, inventory, notify_url, max_body_bytes, attempts,
          retry_delay, threads, read_timeout, log_level):
    """Receive Alertmanager's notifications on POST /alerts and roll back the candidate a
    firing rollback alert names.

    \b
    Acts only on firing alerts labelled action="rollback" whose color and version are the
    release state's candidate (phase deployed or canary); repeated and concurrent
    notifications make one rollback. The rollback runs playbooks/rollback.yml as operator
    "alertmanager" under the release lock; the audit log records it with the alert's name,
    summary and fingerprint as the reason. The audit log, lock and artifacts are the CLI's
    (TTSCTL_AUDIT_DB, TTSCTL_LOCK_FILE, TTSCTL_ARTIFACTS_DIR, TTSCTL_LOCK_TIMEOUT).
    """
    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s")
    settings = Settings.from_env()
    config = WebhookConfig(token_file=token_file, release_state=release_state, notify_url=notify_url,
                           max_body_bytes=max_body_bytes, attempts=attempts, retry_delay=retry_delay)
    try:
        TokenFile(token_file)  # refuse to start without a token rather than answer 401 forever
    except TokenError as exc:
        raise click.ClickException(str(exc)) from None
    run = playbook_runner(settings, _inventory_path(inventory, settings))
    webhook_worker.READ_TIMEOUT_S = read_timeout  # the worker is forked from this process
    _gunicorn_application(lambda: create_app(config, run), {
        "bind": _bind(host, port),
        "workers": 1,            # the record of rollbacks lives in this one process
        "threads": threads,
        "worker_class": "ttsctl.webhook_worker.BoundedThreadWorker",
        # A stopping worker waits for its rollback: the lock wait plus a playbook run.
        "graceful_timeout": int(settings.lock_timeout) + 300,
        "worker_exit": _wait_for_rollback,
        "loglevel": log_level,
        "accesslog": "-",
        "proc_name": "ttsctl-webhook",
    }).run()


if __name__ == "__main__":
    webhook(prog_name="ttsctl webhook")
