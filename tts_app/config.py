"""What one TTS service instance is told at start; ``tts-serve`` fills it from flags and env."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from .faults import FaultSettings


@dataclass(frozen=True)
class ServiceConfig:
    model_dir: Path
    color: str = "blue"
    max_chars: int = 2000
    # Speech requests one worker runs at once; None: what the model's manifest declares.
    # The load balancer queues beyond workers x this; the worker refuses more with 503.
    # Keep it below the worker's threads so /health and /ready always find a free thread.
    max_concurrency: int | None = None
    workers: int = 1  # gunicorn workers of this instance, so /version can state its capacity
    faults: FaultSettings = field(default_factory=FaultSettings)
    device: str | None = None  # None: CUDA when available, else CPU
    drain_seconds: float = 2.0  # how long /ready says 503 after SIGTERM before exiting
    max_body_bytes: int = 1024 * 1024
    retry_after_seconds: int = 1

    def __post_init__(self):
        object.__setattr__(self, "model_dir", Path(self.model_dir))
        if self.max_chars < 1:
            raise ValueError("max_chars must be at least 1")
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if self.drain_seconds < 0:
            raise ValueError("drain_seconds must not be negative")
        self.faults.validate()

    @classmethod
    def coerce(cls, config: ServiceConfig | Mapping) -> ServiceConfig:
        """Accept a plain mapping too, as Flask's factories do; unknown keys are an error."""
        if isinstance(config, cls):
            return config
        known = {f.name for f in fields(cls)}
        unknown = set(config) - known
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(sorted(unknown))}")
        values = dict(config)
        if isinstance(values.get("faults"), Mapping):
            values["faults"] = FaultSettings(**values["faults"])
        return cls(**values)
