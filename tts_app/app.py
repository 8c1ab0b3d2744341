"""The Flask application factory: one call builds one worker's service from its config."""
from __future__ import annotations

from collections.abc import Mapping

from flask import Flask

from . import metrics
from .api import info, speech, ui
from .api import metrics as metrics_api
from .config import ServiceConfig
from .engines.base import EngineError, GenerationError
from .errors import register_error_handlers
from .faults import InjectedFault
from .service import Service


def create_app(config: ServiceConfig | Mapping) -> Flask:
    """Build the app and start loading the model in the background; returns at once."""
    config = ServiceConfig.coerce(config)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.json.sort_keys = False

    service = Service(config)
    app.extensions["tts"] = service
    register_error_handlers(app, {EngineError: (400, "invalid_input"),
                                  GenerationError: (500, "generation_failed"),
                                  InjectedFault: (500, "injected_fault")})
    for blueprint in (metrics_api.bp, info.bp, speech.bp, ui.bp):
        app.register_blueprint(blueprint)

    manifest = service.manifest

    @app.after_request
    def identify(response):
        """Say which version and colour answered, so a canary split is visible to clients."""
        response.headers["X-TTS-Version"] = manifest["version"]
        if config.color:
            response.headers["X-TTS-Color"] = config.color
        return response

    metrics.worker_started(manifest["model"], manifest["version"], config.color,
                           manifest["engine"])
    service.start_loading()
    return app
