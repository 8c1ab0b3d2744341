"""One worker's serving state: the model being loaded, readiness, limits and faults.

The model loads and warms in a background thread so the process answers /health at once;
/ready turns 200 only when the first real request will not pay for loading or warm-up.
"""
from __future__ import annotations

import logging
import threading
import time

from flask import current_app

from .catalog import Catalog
from .config import ServiceConfig
from .errors import ApiError
from .faults import FaultInjector
from .limits import ConcurrencyLimit
from .model import (ModelVersion, default_device, load_model, manifest_max_concurrency,
                    read_manifest)

log = logging.getLogger(__name__)

LOADING_RETRY_AFTER_SECONDS = 5


class Service:
    def __init__(self, config: ServiceConfig):
        self.config = config
        # Read now, not in the thread: a wrong model dir should stop the worker at once.
        self.manifest = read_manifest(config.model_dir)
        self.device = config.device or default_device()
        # An operator's --max-concurrency wins; otherwise the model says what it can take.
        self.max_concurrency = config.max_concurrency or manifest_max_concurrency(self.manifest)
        self.limiter = ConcurrencyLimit(self.max_concurrency)
        self.faults = FaultInjector(config.faults, self.device)
        self.draining = threading.Event()
        self._model: ModelVersion | None = None
        self._catalog: Catalog | None = None
        self._load_error: str | None = None

    def start_loading(self) -> threading.Thread:
        thread = threading.Thread(target=self._load, name="model-loader", daemon=True)
        thread.start()
        return thread

    def _load(self) -> None:
        started = time.perf_counter()
        try:
            model = load_model(self.config.model_dir, self.device)
            loaded = time.perf_counter()
            model.engine.warmup()
            catalog = Catalog.build(model.name, model.engine.voices())
        except Exception as exc:  # noqa: BLE001 - any failure leaves the worker unready
            log.exception("model %s failed to load", self.config.model_dir)
            self._load_error = f"{type(exc).__name__}: {exc}"
            return
        self._catalog = catalog
        self._model = model  # set last: its presence is what "ready" means
        log.info("model %s %s loaded in %.1fs, warmed in %.1fs", model.name, model.version,
                 loaded - started, time.perf_counter() - loaded)

    @property
    def model(self) -> ModelVersion | None:
        return self._model

    def readiness(self) -> tuple[bool, str, str]:
        """(ready, code, reason): ready only when loaded, warmed and not draining."""
        if self.draining.is_set():
            return False, "draining", "the server is shutting down"
        if self._load_error:
            return False, "model_failed", f"the model failed to load: {self._load_error}"
        if self._model is None:
            return False, "model_loading", "the model is loading"
        return True, "ready", "ready"

    def require_model(self) -> tuple[ModelVersion, Catalog]:
        """The loaded model, or a 503 telling the client to come back."""
        if self._model is None:
            _, code, reason = self.readiness()
            raise ApiError(503, code, reason,
                           {"Retry-After": str(LOADING_RETRY_AFTER_SECONDS)})
        return self._model, self._catalog

    def begin_drain(self) -> None:
        log.info("draining: /ready answers 503 from now on")
        self.draining.set()

    def describe_device(self) -> str:
        if self._model is not None:
            return str(self._model.engine.describe().get("device", self.device))
        return self.device


def current_service() -> Service:
    return current_app.extensions["tts"]
