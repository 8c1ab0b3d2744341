"""What the server is and whether it can serve: health, readiness, version, models, voices."""
from __future__ import annotations

from datetime import datetime

from flask import Blueprint, jsonify

from ..catalog import model_aliases
from ..errors import ApiError
from ..service import LOADING_RETRY_AFTER_SECONDS, current_service

bp = Blueprint("info", __name__)


@bp.get("/health")
def health():
    """Liveness: the process answers. Says nothing about the model."""
    return "OK", 200, {"Content-Type": "text/plain; charset=utf-8"}


@bp.get("/ready")
def ready():
    """Readiness for load balancers: 503 while loading, after a failed load and when draining."""
    is_ready, code, reason = current_service().readiness()
    if not is_ready:
        raise ApiError(503, code, reason, {"Retry-After": str(LOADING_RETRY_AFTER_SECONDS)})
    return "READY", 200, {"Content-Type": "text/plain; charset=utf-8"}


@bp.get("/version")
def version():
    """What runs here, and its capacity: the load balancer's maxconn for this instance."""
    service = current_service()
    manifest = service.manifest
    return jsonify({
        "model": manifest["model"],
        "version": manifest["version"],
        "build_time": manifest["build_time"],
        "sample_rate": manifest["sample_rate"],
        "token_rate": manifest["token_rate"],
        "engine": manifest["engine"],
        "color": service.config.color,
        "device": service.describe_device(),
        "faults": service.config.faults.active(),
        "max_concurrency": service.max_concurrency,
        "workers": service.config.workers,
        "capacity": service.config.workers * service.max_concurrency,
    })


@bp.get("/v1/models")
def models():
    """OpenAI's model list: the served model, then the OpenAI names accepted as aliases."""
    manifest = current_service().manifest
    model, created = manifest["model"], _epoch(manifest["build_time"])

    def entry(name: str, alias_of: str | None = None) -> dict:
        item = {"id": name, "object": "model", "created": created, "owned_by": "tts_app"}
        if alias_of:
            item["alias_of"] = alias_of
        return item

    data = [entry(model)] + [entry(name, model) for name in model_aliases(model)]
    return jsonify({"object": "list", "data": data})


@bp.get("/v1/voices")
def voices():
    _, catalog = current_service().require_model()
    return jsonify({
        "voices": list(catalog.voices),
        "default": catalog.default_voice,
        "aliases": catalog.voice_aliases,
    })


def _epoch(timestamp: str) -> int:
    try:
        return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp())
    except (AttributeError, ValueError):
        return 0
