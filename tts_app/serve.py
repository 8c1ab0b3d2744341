"""``tts-serve``: run the TTS service under gunicorn, in-process, with draining shutdown.

Exit codes: 0 after a clean shutdown (SIGTERM or SIGINT), 1 when the server cannot start
(unreadable model directory, bad fault settings, port in use), 2 for a usage error.
"""
from __future__ import annotations

import atexit
import functools
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path

import click
from gunicorn.app.base import BaseApplication

from .config import ServiceConfig
from .faults import FaultSettings
from .model import ModelError, read_manifest

# How long in-flight requests may run on after the drain period before workers are killed.
REQUEST_GRACE_SECONDS = 30
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# gunicorn's default plus the time taken and the worker's pid, to tell workers apart.
ACCESS_LOG_FORMAT = '%(h)s %(t)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s" pid=%(p)s'


class TTSServer(BaseApplication):
    """gunicorn configured from our options rather than its command line."""

    def __init__(self, config: ServiceConfig, options: dict):
        self.service_config = config
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)
        # gunicorn 25+ opens a control socket at one fixed path per user: two colours on one
        # host would fight over it, and nothing here uses it.
        if "control_socket_disable" in self.cfg.settings:
            self.cfg.set("control_socket_disable", True)

    def load(self):
        # Imported here, in the worker: the model and metrics belong to each worker process.
        from .app import create_app

        return create_app(self.service_config)


def child_exit(server, worker):
    """Let live gauges forget a worker that exited (prometheus multiprocess mode)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def prepare_metrics_dir() -> None:
    """A clean multiprocess directory before any worker writes: stale files would add up."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
        for stale in Path(path).glob("*.db"):
            stale.unlink()
    else:
        path = tempfile.mkdtemp(prefix="tts-metrics-")
        os.environ[MULTIPROC_ENV] = path
        master = os.getpid()
        # Workers inherit atexit handlers; only the master may remove the shared directory.
        atexit.register(lambda: os.getpid() == master and shutil.rmtree(path, True))


# Every option can come from the environment, as a container's start parameters do.
option = functools.partial(click.option, show_envvar=True)


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
               epilog="Exit codes: 0 after a clean shutdown, 1 when the server cannot start, "
                      "2 for a usage error.")
@option("--host", envvar="TTS_HOST", default="0.0.0.0", help="Address to listen on.")
@option("--port", envvar="TTS_PORT", type=click.IntRange(1, 65535), default=6006,
        help="Port to listen on.")
@option("--model-dir", envvar="TTS_MODEL_DIR", type=click.Path(file_okay=False),
        default="models/v1.5", help="Model version directory (manifest.json and weights).")
@option("--workers", envvar="TTS_WORKERS", type=click.IntRange(min=1), default=1,
        help="Worker processes; each loads its own copy of the model.")
@option("--threads", envvar="TTS_THREADS", type=click.IntRange(min=1), default=8,
        help="Threads per worker; keep above --max-concurrency so probes always answer.")
@option("--color", envvar="TTS_COLOR", default="blue", type=click.Choice(["blue", "green"]),
        help="Deployment colour of this instance, shown in /version and metrics.")
@option("--max-chars", envvar="TTS_MAX_CHARS", type=click.IntRange(min=1), default=2000,
        help="Longest input accepted; longer is refused with 413.")
@option("--max-concurrency", envvar="TTS_MAX_CONCURRENCY", type=click.IntRange(min=1),
        default=None, show_default="the manifest's max_concurrency, else 1",
        help="Speech requests per worker at once; the load balancer queues beyond "
             "workers x this, and a worker refuses more with 503 + Retry-After.")
@option("--drain-seconds", envvar="TTS_DRAIN_SECONDS", type=click.FloatRange(min=0),
        default=2.0, help="After SIGTERM, how long /ready says 503 before workers stop.")
@option("--device", envvar="TTS_DEVICE", default=None,
        help="Torch device for the model (default: cuda when available, else cpu).")
@option("--log-level", envvar="TTS_LOG_LEVEL", default="info",
        type=click.Choice(["debug", "info", "warning", "error"]), help="Log level.")
def main(host, port, model_dir, workers, threads, color, max_chars, max_concurrency,
         drain_seconds, device, log_level):
    """Serve text-to-speech over HTTP: OpenAI's /v1/audio/speech plus health, readiness,
    version, metrics and a web page at /.

    Faults for rehearsing a bad release are set by environment only: TTS_FAULT_ERROR_RATE,
    TTS_FAULT_LATENCY_MS, TTS_FAULT_SILENCE, TTS_FAULT_MEMORY_GROWTH_MB.
    """
    try:
        read_manifest(model_dir)
        config = ServiceConfig(
            model_dir=Path(model_dir), color=color, max_chars=max_chars,
            max_concurrency=max_concurrency, workers=workers, faults=FaultSettings.from_env(),
            device=device, drain_seconds=drain_seconds)
    except (ModelError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc

    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s")
    prepare_metrics_dir()
    TTSServer(config, {
        "bind": bind_address(host, port),
        "workers": workers,
        "threads": threads,
        "worker_class": "tts_app.worker.DrainingThreadWorker",
        "graceful_timeout": math.ceil(drain_seconds) + REQUEST_GRACE_SECONDS,
        "child_exit": child_exit,
        "loglevel": log_level,
        "accesslog": "-",
        "access_log_format": ACCESS_LOG_FORMAT,
        "proc_name": f"tts-serve-{color}",
    }).run()


if __name__ == "__main__":
    main()
