"""A gthread worker that drains before it stops, so a load balancer moves traffic first.

On SIGTERM gunicorn's worker stops accepting at once; a load balancer still sending it
requests would see refused connections. This worker first turns /ready to 503 and keeps
serving for the drain period (long enough for the balancer's health check to notice),
then stops like gthread: in-flight requests finish within gunicorn's graceful timeout.
"""
from __future__ import annotations

import threading

from gunicorn.workers.gthread import ThreadWorker


class DrainingThreadWorker(ThreadWorker):
    _draining = False

    def handle_exit(self, sig, frame):
        if self._draining:
            return
        self._draining = True
        app = getattr(self, "wsgi", None)  # absent while the worker is still booting
        service = getattr(app, "extensions", {}).get("tts")
        if service is None:
            return super().handle_exit(sig, frame)
        service.begin_drain()
        delay = service.config.drain_seconds
        if delay <= 0:
            return super().handle_exit(sig, frame)
        # A timer, not a sleep: the signal arrives on the thread that accepts connections.
        stop = threading.Timer(delay, super().handle_exit, (sig, frame))
        stop.daemon = True
        stop.start()
