"""Real ``tts-serve`` processes on free loopback ports, serving a real model directory.

Servers are session-scoped and shared: loading a model costs seconds, so each distinct
configuration starts once. ``TTS_TEST_MODEL_DIR`` points the suite at another version.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = Path(os.environ.get("TTS_TEST_MODEL_DIR", REPO_ROOT / "models" / "v1.5"))
STARTUP_TIMEOUT = float(os.environ.get("TTS_TEST_STARTUP_TIMEOUT", "180"))
# The console script when the project is installed, else the same entry point as a module.
_SCRIPT = Path(sys.executable).with_name("tts-serve")
TTS_SERVE = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "tts_app.serve"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TtsServer:
    """One ``tts-serve`` process and the HTTP calls tests make to it."""

    def __init__(self, workdir: Path, *, workers: int = 1, max_concurrency: int = 2,
                 drain_seconds: float = 0, max_chars: int = 2000, faults: dict | None = None):
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.metrics_dir = workdir / "metrics"
        self.log_path = workdir / "server.log"
        self.args = [
            *TTS_SERVE, "--host", "127.0.0.1", "--port", str(self.port),
            "--model-dir", str(MODEL_DIR), "--workers", str(workers), "--threads", "6",
            "--max-concurrency", str(max_concurrency), "--max-chars", str(max_chars),
            "--drain-seconds", str(drain_seconds), "--color", "green",
        ]
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("TTS_") and k != "PROMETHEUS_MULTIPROC_DIR"}
        env["PROMETHEUS_MULTIPROC_DIR"] = str(self.metrics_dir)
        for name, value in (faults or {}).items():
            env[f"TTS_FAULT_{name.upper()}"] = str(value)
        self.env = env
        self.process: subprocess.Popen | None = None

    def start(self) -> TtsServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.args, env=self.env, cwd=REPO_ROOT,
                                            stdout=log, stderr=subprocess.STDOUT)
        return self

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> TtsServer:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"tts-serve exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                response = requests.get(f"{self.url}/ready", timeout=2)
            except requests.ConnectionError:
                response = None
            if response is not None and response.status_code == 200 and self._all_workers_ready():
                return self
            if response is not None and "model_failed" in response.text:
                pytest.fail(f"the model failed to load: {response.json()['error']['message']}")
            time.sleep(0.2)
        pytest.fail(f"tts-serve not ready within {timeout:.0f}s:\n{self.log_tail()}")

    def _all_workers_ready(self) -> bool:
        """Each worker loads its own model: wait until every one has answered /ready 200."""
        with open(self.log_path, "rb") as log:
            lines = log.read().decode(errors="replace").splitlines()
        ready = {line.rsplit("pid=", 1)[1] for line in lines
                 if '"GET /ready ' in line and '" 200 ' in line and "pid=" in line}
        return len(ready) >= len(self.worker_pids())

    def terminate(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait_stopped(self) -> None:
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def pids_serving(self, request_line: str, log_offset: int = 0) -> set[str]:
        """Worker pids the access log shows answering ``request_line`` (e.g. "GET /ready")."""
        with open(self.log_path, "rb") as log:
            log.seek(log_offset)
            lines = log.read().decode(errors="replace").splitlines()
        return {line.rsplit("pid=", 1)[1] for line in lines
                if f'"{request_line} ' in line and "pid=" in line}

    def worker_pids(self) -> list[int]:
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # a process that ended while we looked
            if int(fields[1]) == self.process.pid:
                pids.append(int(stat.parent.name))
        return pids

    # HTTP helpers
    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(self.url + path, timeout=30, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return requests.post(self.url + path, timeout=120, **kwargs)

    def speech(self, **body) -> requests.Response:
        return self.post("/v1/audio/speech", json=body)

    def is_ready(self) -> bool:
        return self.get("/ready").status_code == 200

    def metric_samples(self) -> dict[tuple, float]:
        """Every sample of the scrape, keyed by (name, sorted labels)."""
        text = self.get("/metrics").text
        return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples}


@pytest.fixture(scope="session")
def model_dir() -> Path:
    if not (MODEL_DIR / "manifest.json").is_file():
        pytest.skip(f"no model version at {MODEL_DIR} yet: the integration tests serve a real "
                    "model directory (set TTS_TEST_MODEL_DIR to use another)")
    return MODEL_DIR


@pytest.fixture(scope="session")
def manifest(model_dir) -> dict:
    return json.loads((model_dir / "manifest.json").read_text())


@pytest.fixture(scope="session")
def start_server(tmp_path_factory, model_dir):
    """Start a server with the given options and wait until it is ready; all stop at the end."""
    started: list[TtsServer] = []

    def start(name: str, **options) -> TtsServer:
        server = TtsServer(tmp_path_factory.mktemp(name), **options).start()
        started.append(server)
        return server.wait_ready()

    yield start
    for server in started:  # all at once: each takes a second or two to wind down
        server.terminate()
    for server in started:
        server.wait_stopped()


@pytest.fixture(scope="session")
def tts_server(start_server) -> TtsServer:
    """The ordinary server most tests share: two workers, no faults."""
    return start_server("main", workers=2, max_concurrency=2)
