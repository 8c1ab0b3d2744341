#!/usr/bin/env python3
"""The edge under load: answered, failed and shed requests and the candidate's share.

On the local deployment (quickstart first): for each weight, request kind (whole answers,
streams) and number of clients, N clients send short speech requests (WAV) back to back
through the frontend for a while, each as a new listener (no cookies), and every answer is
counted by status and by the colour that spoke it. One client is the baseline, measured in
the same run: the other rows give their throughput as a ratio of it. Prints a table, saves
bench/results/load.json.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from deployment import FRONTEND, ensure_running, playbook  # noqa: E402

BODY = {"model": "tts-1", "input": "Hello there, how are you today?", "voice": "alloy", "response_format": "wav"}


def hammer(clients: int, seconds: float, stream: bool = False) -> dict:
    """N clients back to back for ``seconds``: counts by outcome, latencies, queue waits."""
    body = {**BODY, "stream": stream}
    counts: collections.Counter = collections.Counter()
    latencies: list[float] = []
    queued: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client() -> None:
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                answer = requests.post(f"{FRONTEND}/v1/audio/speech", json=body, timeout=120)
            except requests.RequestException as exc:
                with lock:
                    counts[f"error {type(exc).__name__}"] += 1
                continue
            took = time.monotonic() - started
            with lock:
                if answer.status_code == 200 and answer.content:
                    counts[answer.headers.get("X-TTS-Color", "?")] += 1
                    latencies.append(took)
                    queued.append(float(answer.headers.get("X-TTS-Queued-Ms") or 0))
                elif answer.status_code == 503 and "server_overloaded" in answer.text:
                    counts["shed"] += 1
                else:
                    counts[f"failed {answer.status_code}"] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    answered = counts["blue"] + counts["green"]
    failed = sum(n for key, n in counts.items() if key.startswith(("failed", "error")))
    quantiles = statistics.quantiles(latencies, n=20) if len(latencies) >= 2 else [float("nan")] * 19
    return {"clients": clients, "answered": answered, "failed": failed, "shed": counts["shed"],
            "candidate_share_percent": round(100 * counts["green"] / answered, 2) if answered else None,
            "answers_per_s": round(answered / seconds, 2),
            "p50_s": round(statistics.median(latencies), 3) if latencies else None,
            "p95_s": round(quantiles[18], 3),
            "p99_s": round(statistics.quantiles(latencies, n=100)[98], 3) if len(latencies) >= 2 else None,
            "mean_queued_ms": round(statistics.fmean(queued), 1) if queued else None,
            "outcomes": dict(counts)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=25)
    parser.add_argument("--clients", default="1,4,16,64")
    parser.add_argument("--weights", default="0,5,50")
    parser.add_argument("--kinds", default="whole,stream", help="whole answers, streams, or both")
    parser.add_argument("--output", type=Path, default=ROOT / "bench/results/load.json")
    args = parser.parse_args()

    ensure_running()
    rows = []
    for weight in (int(w) for w in args.weights.split(",")):
        playbook("canary", weight=weight)
        for kind in args.kinds.split(","):
            baseline = None
            for clients in (int(c) for c in args.clients.split(",")):
                row = {"weight": weight, "kind": kind, **hammer(clients, args.seconds, stream=kind == "stream")}
                baseline = baseline or row["answers_per_s"]
                row["throughput_vs_1_client"] = round(row["answers_per_s"] / baseline, 2) if baseline else None
                share = row["candidate_share_percent"]
                row["share_error_pp"] = None if share is None else round(share - weight, 2)
                rows.append(row)
                print(f"weight {weight:>3} {kind:<6} clients {clients:>2}  answered {row['answered']:>5}  "
                      f"failed {row['failed']:>4}  shed {row['shed']:>4}  candidate {share} % "
                      f"({row['share_error_pp']} pp)  p50 {row['p50_s']} s  p95 {row['p95_s']} s  "
                      f"p99 {row['p99_s']} s  queued {row['mean_queued_ms']} ms  x{row['throughput_vs_1_client']}",
                      flush=True)
    ensure_running()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "seconds_per_row": args.seconds, "rows": rows}, indent=2) + "\n")
    print(f"saved {args.output.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
