"""Prometheus metrics, defined once, correct under several gunicorn workers.

Each worker is its own process, so prometheus-client's multiprocess mode is used when
``PROMETHEUS_MULTIPROC_DIR`` is set (``tts-serve`` sets it before any worker starts): every
worker writes its values to files there, a scrape of any worker sums them all, and the
master's ``child_exit`` hook calls :func:`mark_process_dead` so live gauges forget dead
workers. Without the variable (tests, ``flask run``) the ordinary registry is used.
"""
from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter(
    "tts_http_requests_total", "HTTP requests answered, by route, method and status.",
    ["route", "method", "status"])
REQUEST_DURATION = Histogram(
    "tts_http_request_duration_seconds",
    "Time from request to the last byte of the response, by route.", ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
IN_FLIGHT = Gauge(
    "tts_http_requests_in_flight", "Requests being answered now.", multiprocess_mode="livesum")
AUDIO_SECONDS = Counter(
    "tts_audio_seconds_total", "Seconds of audio produced.")
REAL_TIME_FACTOR = Histogram(
    "tts_real_time_factor_ratio",
    "Synthesis time divided by the duration of the audio made; below 1 is faster than real time.",
    buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5, 10))
MODEL_INFO = Gauge(
    "tts_model_info", "The model version served (always 1).",
    ["model", "version", "color", "engine"], multiprocess_mode="livemax")
WORKERS = Gauge(
    "tts_worker_processes", "Worker processes serving.", multiprocess_mode="livesum")
GPU_MEMORY = Gauge(  # labelled so that a CPU server exports no series rather than a false 0
    "tts_gpu_memory_used_bytes", "GPU memory allocated by the workers, by device (CUDA only).",
    ["device"], multiprocess_mode="livesum")
PROCESS_MEMORY = Gauge(  # the memory rule's fallback where there is no GPU
    "tts_process_resident_memory_bytes", "Resident memory of the worker processes.",
    multiprocess_mode="livesum")


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    REQUESTS.labels(route=route, method=method, status=str(status)).inc()
    REQUEST_DURATION.labels(route=route).observe(seconds)


def observe_speech(audio_seconds: float, synthesis_seconds: float) -> None:
    AUDIO_SECONDS.inc(audio_seconds)
    if audio_seconds > 0:
        REAL_TIME_FACTOR.observe(synthesis_seconds / audio_seconds)


def worker_started(model: str, version: str, color: str, engine: str) -> None:
    MODEL_INFO.labels(model=model, version=version, color=color, engine=engine).set(1)
    WORKERS.set(1)
    PROCESS_MEMORY.set(resident_bytes())


def update_memory(device: str) -> None:
    """Set from the worker itself: multiprocess gauges cannot call back at scrape time."""
    PROCESS_MEMORY.set(resident_bytes())
    if device.startswith("cuda"):
        import torch

        GPU_MEMORY.labels(device=device).set(torch.cuda.memory_allocated(device))


def resident_bytes() -> int:
    """This process's resident set size (Linux /proc; 0 where that is missing)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def exposition() -> tuple[bytes, str]:
    """The text a scrape gets: every worker's values when in multiprocess mode."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST
