"""``GET /metrics`` and the request accounting behind it, applied to every route."""
from __future__ import annotations

import time

from flask import Blueprint, Response, g, request

from .. import metrics
from ..service import current_service

bp = Blueprint("metrics", __name__)


@bp.before_app_request
def start_request():
    g.request_started = time.perf_counter()
    metrics.IN_FLIGHT.inc()


@bp.after_app_request
def account_request(response: Response) -> Response:
    started = g.pop("request_started", None)
    if started is None:
        return response
    # The rule, not the path: unknown paths must not create a series each.
    route = request.url_rule.rule if request.url_rule else "unmatched"
    method, status = request.method, response.status_code

    def finished():  # on close, so a streamed response counts until its last byte
        metrics.observe_request(route, method, status, time.perf_counter() - started)
        metrics.IN_FLIGHT.dec()

    response.call_on_close(finished)
    return response


@bp.get("/metrics")
def scrape():
    metrics.update_memory(current_service().device)
    body, content_type = metrics.exposition()
    return Response(body, content_type=content_type)
