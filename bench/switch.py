#!/usr/bin/env python3
"""How fast and how cleanly a colour switch happens, runtime API against config reload.

On the local deployment (quickstart first), under a steady load through the frontend:
- wall time of each playbook;
- for promote (blue -> green) and rollback (green -> blue): from the command's start to the
  last answer from the old colour, and to the first answer from the new one;
- failed requests during each switch, and requests shed after the queue wait;
- the same switches done by rendering the config and reloading HAProxy (the baseline),
  measured in the same run. --speakers N sends speech from N clients at once (a colour
  here has 2 slots: 8 is four times its capacity). Prints a table, saves
  bench/results/switch.json (switch-<N>x.json with N speakers).
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

    def __init__(self, speakers: int = 1, getters: int = 2):
        super().__init__(daemon=True)
        self.speakers, self.getters = speakers, getters
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.answers: list[tuple[float, str]] = []
        self.failures: list[tuple[float, str]] = []
        self.shed: list[float] = []

    def _client(self, speaks: bool) -> None:
        """Speakers send real speech back to back (more of them than a colour has slots
        queue at the edge), the others cheap GETs for timing resolution. A 503 the edge
        gives after the queue wait (server_overloaded) is shed load, counted apart."""
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
                    elif answer.status_code == 503 and "server_overloaded" in answer.text:
                        self.shed.append(done)
                    else:
                        self.failures.append((done, str(answer.status_code)))
            except requests.RequestException as exc:
                with self.lock:
                    self.failures.append((time.monotonic(), type(exc).__name__))

    def run(self) -> None:
        workers = [threading.Thread(target=self._client, args=(n < self.speakers,), daemon=True)
                   for n in range(self.speakers + self.getters)]
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


def switch(method: str, action: str, old: str, new: str, speakers: int) -> dict:
    """One switch under load: timings relative to the command's start, failures counted."""
    probe = Probe(speakers)
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
            "requests": len(after), "failed": len(window),
            "shed": sum(1 for t in probe.shed if t >= started - 1.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--speakers", type=int, default=1,
                        help="clients sending speech back to back (a colour here has 2 slots)")
    parser.add_argument("--output", type=Path, help="default bench/results/switch.json, "
                        "switch-<N>x.json with --speakers N above 1")
    args = parser.parse_args()
    args.output = args.output or ROOT / "bench/results" / (
        "switch.json" if args.speakers == 1 else f"switch-{args.speakers}x.json")

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
            switches.append(switch(method, "promote", "blue", "green", args.speakers))
            switches.append(switch(method, "rollback", "green", "blue", args.speakers))
    ensure_running()

    print("\nplaybook wall time (s), median of", args.rounds)
    playbooks = {k: round(statistics.median(v), 2) for k, v in timings.items()}
    for label, seconds in playbooks.items():
        print(f"  {label:<24} {seconds:6.2f}")
    print(f"\n{args.speakers} speech client(s) and 2 GET clients through the frontend")
    print(f"{'method':<14} {'action':<9} {'command s':>9} {'last old s':>10} "
          f"{'first new s':>11} {'requests':>8} {'failed':>6} {'shed':>5}")
    for s in switches:
        print(f"{s['method']:<14} {s['action']:<9} {s['command_s']:>9} {s['last_old_s']:>10} "
              f"{s['first_new_s']:>11} {s['requests']:>8} {s['failed']:>6} {s['shed']:>5}")
    summary = {}
    for method in ("runtime API", "config reload"):
        mine = [s for s in switches if s["method"] == method]
        summary[method] = {
            "median_last_old_s": round(statistics.median(s["last_old_s"] for s in mine), 3),
            "median_command_s": round(statistics.median(s["command_s"] for s in mine), 3),
            "failed_total": sum(s["failed"] for s in mine), "shed_total": sum(s["shed"] for s in mine),
            "requests_total": sum(s["requests"] for s in mine)}
    ratio = summary["runtime API"]["median_last_old_s"] / max(summary["config reload"]["median_last_old_s"], 1e-9)
    print(f"\nlast old-colour answer, runtime API / config reload: {ratio:.2f}x")
    for method, figures in summary.items():
        print(f"  {method:<14} failed {figures['failed_total']} of {figures['requests_total']} requests")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "speakers": args.speakers,
        "playbook_seconds": playbooks, "switches": switches, "summary": summary,
        "runtime_over_reload_last_old": round(ratio, 3)}, indent=2) + "\n")
    print(f"saved {args.output.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
