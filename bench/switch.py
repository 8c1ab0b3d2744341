#!/usr/bin/env python3
"""How fast and how cleanly a colour switch happens, runtime API against config reload.

On the local deployment (quickstart first), under a steady load through the frontend:
- wall time of each playbook;
- for promote (blue -> green) and rollback (green -> blue): from the command's start to the
  last answer from the old colour, and to the first answer from the new one;
- failed requests during each switch;
- the same switches done by rendering the config and reloading HAProxy (the baseline),
  measured in the same run. Prints a table, saves bench/results/switch.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from deployment import BIN, FRONTEND, ensure_running, playbook, run, state  # noqa: E402


class Probe(threading.Thread):
    """Cheap requests back to back (no cookies), noting who answered and when."""

    def __init__(self, clients: int = 3):
        super().__init__(daemon=True)
        self.clients = clients
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.answers: list[tuple[float, str]] = []
        self.failures: list[tuple[float, str]] = []

    def _client(self, speaks: bool) -> None:
        """One client sends real speech (one at a time: the service's concurrency limit would
        shed more with 503, by design), the others cheap GETs for timing resolution."""
        speech = {"model": "tts-1", "input": "Switch.", "voice": "alloy", "response_format": "pcm"}
        while not self.stop_event.is_set():
            try:
                if speaks:
                    answer = requests.post(f"{FRONTEND}/v1/audio/speech", json=speech, timeout=30)
                else:
                    answer = requests.get(f"{FRONTEND}/version", timeout=30)
                done = time.monotonic()
                with self.lock:
                    if answer.status_code == 200:
                        self.answers.append((done, answer.headers.get("X-TTS-Color", "?")))
                    else:
                        self.failures.append((done, str(answer.status_code)))
            except requests.RequestException as exc:
                with self.lock:
                    self.failures.append((time.monotonic(), type(exc).__name__))

    def run(self) -> None:
        workers = [threading.Thread(target=self._client, args=(n == 0,), daemon=True)
                   for n in range(self.clients)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=60)


def timed(name: str, **extra) -> float:
    started = time.monotonic()
    playbook(name, **extra)
    return time.monotonic() - started


def switch(method: str, action: str, old: str, new: str) -> dict:
    """One switch under load: timings relative to the command's start, failures counted."""
    probe = Probe()
    probe.start()
    time.sleep(1.0)
    started = time.monotonic()
    if method == "runtime API":
        playbook(action, reason="bench")
    else:
        run(str(BIN / "ansible-playbook"), f"bench/playbooks/{action}_by_reload.yml", "-e", "reason=bench")
    command_s = time.monotonic() - started
    time.sleep(3.0)
    probe.stop()
    after = [(t - started, colour) for t, colour in probe.answers if t >= started]
    last_old = max((t for t, c in after if c == old), default=0.0)
    first_new = min((t for t, c in after if c == new), default=float("nan"))
    window = [f for f in probe.failures if f[0] >= started - 1.0]
    return {"method": method, "action": action, "command_s": round(command_s, 3),
            "last_old_s": round(last_old, 3), "first_new_s": round(first_new, 3),
            "requests": len(after), "failed": len(window)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, default=ROOT / "bench/results/switch.json")
    args = parser.parse_args()

    ensure_running()
    timings: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for name, extra in (("status", {}), ("canary", {"weight": 5}), ("canary", {"weight": 0}),
                            ("deploy", {"version": state()["colors"]["green"]["version"]})):
            label = f"{name} {' '.join(f'{k}={v}' for k, v in extra.items())}".strip()
            timings.setdefault(label, []).append(timed(name, **extra))

    switches = []
    for _ in range(args.rounds):
        for method in ("runtime API", "config reload"):
            ensure_running()
            switches.append(switch(method, "promote", "blue", "green"))
            switches.append(switch(method, "rollback", "green", "blue"))
    ensure_running()

    print("\nplaybook wall time (s), median of", args.rounds)
    playbooks = {k: round(statistics.median(v), 2) for k, v in timings.items()}
    for label, seconds in playbooks.items():
        print(f"  {label:<24} {seconds:6.2f}")
    print(f"\n{'method':<14} {'action':<9} {'command s':>9} {'last old s':>10} "
          f"{'first new s':>11} {'requests':>8} {'failed':>6}")
    for s in switches:
        print(f"{s['method']:<14} {s['action']:<9} {s['command_s']:>9} {s['last_old_s']:>10} "
              f"{s['first_new_s']:>11} {s['requests']:>8} {s['failed']:>6}")
    summary = {}
    for method in ("runtime API", "config reload"):
        mine = [s for s in switches if s["method"] == method]
        summary[method] = {
            "median_last_old_s": round(statistics.median(s["last_old_s"] for s in mine), 3),
            "median_command_s": round(statistics.median(s["command_s"] for s in mine), 3),
            "failed_total": sum(s["failed"] for s in mine), "requests_total": sum(s["requests"] for s in mine)}
    ratio = summary["runtime API"]["median_last_old_s"] / max(summary["config reload"]["median_last_old_s"], 1e-9)
    print(f"\nlast old-colour answer, runtime API / config reload: {ratio:.2f}x")
    for method, figures in summary.items():
        print(f"  {method:<14} failed {figures['failed_total']} of {figures['requests_total']} requests")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "playbook_seconds": playbooks, "switches": switches, "summary": summary,
        "runtime_over_reload_last_old": round(ratio, 3)}, indent=2) + "\n")
    print(f"saved {args.output.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
