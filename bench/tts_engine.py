"""Benchmark the TTS engine and its HTTP service; prints a table, saves JSON.

Measures
  1. real-time factor (synthesis time / audio duration) of the engine in-process, for a
     short (~5 words), medium (~20) and long (~100) text: median of several runs;
  2. throughput with 1, 2 and 4 concurrent clients through a real ``tts-serve`` (gunicorn)
     on loopback: requests/s and audio-seconds/s;
  3. time to the first streamed chunk over HTTP (median and p95).

Run:  .venv/bin/python bench/tts_engine.py [--quick] [--model-dir models/v1.5]
Saves bench/results/tts_engine.json.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tts_app.model import load_model  # noqa: E402

SHORT = "Hello, welcome to the show."
MEDIUM = ("The release goes to a small share of listeners first, and we watch its error rate "
          "before anyone else hears it.")
LONG = " ".join([
    "A new model version must reach users without an outage.",
    "It is deployed beside the live one and receives a small share of traffic,",
    "or only the testers who ask for it, while its error rate, latency and memory are watched.",
    "If the alerts stay quiet it is promoted to every listener;",
    "if they fire it is rolled back in seconds, automatically,",
    "and the previous colour keeps serving as if nothing happened.",
    "Every change is recorded: who made it, when, why, and what followed,",
    "so that the next operator can read the story of each release",
    "without asking anyone who was there at the time it happened.",
])
TEXTS = {"short": SHORT, "medium": MEDIUM, "long": LONG}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# 1. Engine real-time factor


def engine_rtf(model_dir: Path, device: str | None, runs: int) -> dict:
    model = load_model(model_dir, device)
    engine = model.engine
    engine.warmup()
    voice = engine.voices()[0]
    results = {}
    for name, text in TEXTS.items():
        factors, durations = [], []
        for _ in range(runs):
            started = time.perf_counter()
            audio = engine.synthesize(text, voice)
            elapsed = time.perf_counter() - started
            seconds = audio.numel() / engine.sample_rate
            factors.append(elapsed / seconds)
            durations.append(seconds)
        results[name] = {"words": len(text.split()), "audio_seconds": statistics.median(durations),
                         "rtf_median": statistics.median(factors), "runs": runs}
    return {"model": model.name, "version": model.version,
            "device": str(engine.describe().get("device", device)), "texts": results}


# 2 and 3. Through a real server


class Server:
    """A ``tts-serve`` on a free loopback port, for the duration of a ``with`` block."""

    def __init__(self, model_dir: Path, workers: int, max_concurrency: int, device: str | None):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        script = Path(sys.executable).with_name("tts-serve")
        command = [str(script)] if script.exists() else [sys.executable, "-m", "tts_app.serve"]
        self.args = [*command, "--host", "127.0.0.1",
                     "--port", str(self.port), "--model-dir", str(model_dir),
                     "--workers", str(workers), "--max-concurrency", str(max_concurrency),
                     "--drain-seconds", "0", "--log-level", "warning"]
        if device:
            self.args += ["--device", device]

    def __enter__(self) -> Server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TTS_FAULT_")}
        env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="tts-bench-metrics-")
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(self.args, env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise SystemExit(f"tts-serve exited:\n{self.log.read().decode()[-3000:]}")
            try:
                if self.request("GET", "/ready")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit("tts-serve did not become ready")

    def __exit__(self, *exc) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)
        self.log.close()

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            connection.request(method, path, body=json.dumps(body) if body else None,
                               headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def first_chunk_seconds(self, text: str) -> float:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            started = time.perf_counter()
            connection.request("POST", "/v1/audio/speech",
                               body=json.dumps({"input": text, "stream": True}),
                               headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read1()
            first = time.perf_counter() - started
            response.read()
            return first
        finally:
            connection.close()


def throughput(server: Server, clients: int, seconds: float, sample_rate: int) -> dict:
    """Each client sends the medium text back to back for ``seconds``."""
    done, audio_seconds, refused = [0], [0.0], [0]
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def client():
        while time.perf_counter() < stop_at:
            status, body = server.request("POST", "/v1/audio/speech",
                                          {"input": MEDIUM, "response_format": "pcm"})
            with lock:
                if status == 200:
                    done[0] += 1
                    audio_seconds[0] += len(body) / 2 / sample_rate
                else:
                    refused[0] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {"clients": clients, "requests_per_second": done[0] / elapsed,
            "audio_seconds_per_second": audio_seconds[0] / elapsed,
            "requests": done[0], "refused": refused[0], "seconds": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=REPO_ROOT / "models" / "v1.5")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if present)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers for the HTTP runs")
    parser.add_argument("--quick", action="store_true", help="fewer runs, shorter windows")
    parser.add_argument("--output", type=Path,
                        default=REPO_ROOT / "bench" / "results" / "tts_engine.json")
    args = parser.parse_args()
    runs, window, streams = (3, 2.0, 10) if args.quick else (7, 8.0, 40)

    engine = engine_rtf(args.model_dir, args.device, runs)
    sample_rate = json.loads((args.model_dir / "manifest.json").read_text())["sample_rate"]
    # Room for four clients in total, so throughput measures work, not refusals.
    with Server(args.model_dir, args.workers, 4, args.device) as server:
        server.request("POST", "/v1/audio/speech", {"input": SHORT})  # every worker is warm
        loads = [throughput(server, clients, window, sample_rate) for clients in (1, 2, 4)]
        firsts = [server.first_chunk_seconds(LONG) for _ in range(streams)]
    first_chunk = {"median_seconds": statistics.median(firsts),
                   "p95_seconds": percentile(firsts, 0.95), "streams": streams}

    result = {
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
        "quick": args.quick, "workers": args.workers,
        "engine": engine, "throughput": loads, "first_chunk": first_chunk,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    print(f"\nsaved {args.output}")


def print_table(result: dict) -> None:
    engine = result["engine"]
    print(f"TTS engine: {engine['model']} {engine['version']} on {engine['device']}, "
          f"{result['machine']['cpus']} CPUs, {result['workers']} workers"
          f"{' (quick)' if result['quick'] else ''}")
    print(f"\n{'text':<8}{'words':>7}{'audio s':>10}{'RTF (median)':>15}")
    for name, row in engine["texts"].items():
        print(f"{name:<8}{row['words']:>7}{row['audio_seconds']:>10.2f}{row['rtf_median']:>15.4f}")
    print(f"\n{'clients':<8}{'req/s':>10}{'audio s/s':>12}{'refused':>9}")
    for row in result["throughput"]:
        print(f"{row['clients']:<8}{row['requests_per_second']:>10.2f}"
              f"{row['audio_seconds_per_second']:>12.1f}{row['refused']:>9}")
    first = result["first_chunk"]
    print(f"\nfirst streamed chunk over HTTP: median {first['median_seconds'] * 1000:.1f} ms, "
          f"p95 {first['p95_seconds'] * 1000:.1f} ms ({first['streams']} streams, long text)")


if __name__ == "__main__":
    main()
