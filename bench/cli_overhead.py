"""Benchmark what ttsctl costs on top of the playbook it runs; prints a table, saves JSON.

Measures, in the same run, against the local deployment
  1. ``ttsctl canary --weight W`` against ``ansible-playbook playbooks/canary.yml -e weight=W``
     (W the current candidate weight, so neither changes anything, yet both run every task:
     input check, release state, HAProxy runtime API, config on disk), end to end as a shell
     sees them, both under the audit callback and the release lock; rounds alternate which
     goes first; the ratio of medians is ttsctl's overhead (aim: at most 1.1);
  2. the latency of ``ttsctl status --json`` (and of ``ansible-playbook playbooks/status.yml``
     for comparison).

The runs use a scratch audit log, lock and artifacts directory, so the real audit log is not
filled with benchmark runs.

Run:  .venv/bin/python bench/cli_overhead.py [--rounds 7] [--quick]
Saves bench/results/cli_overhead.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TTSCTL = [str(BIN / "ttsctl")] if (BIN / "ttsctl").exists() else [sys.executable, "-m", "ttsctl"]
ANSIBLE_PLAYBOOK = str(BIN / "ansible-playbook")
STATE = Path("/var/lib/ttsctl/release.json")


def timed(args: list[str], env: dict) -> float:
    started = time.perf_counter()
    done = subprocess.run(args, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}")
    return elapsed


def stats(values: list[float]) -> dict:
    return {"median_s": statistics.median(values), "mean_s": statistics.fmean(values),
            "min_s": min(values), "max_s": max(values), "runs": len(values), "all_s": values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="measured rounds of each (default 7)")
    parser.add_argument("--quick", action="store_true", help="3 rounds")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "bench" / "results" / "cli_overhead.json")
    options = parser.parse_args()
    rounds = 3 if options.quick else options.rounds

    if not STATE.exists():
        raise SystemExit("no release state: set up the deployment first (scripts/quickstart.sh)")
    weight = str(json.loads(STATE.read_text())["candidate_weight"])
    scratch = Path(tempfile.mkdtemp(prefix="ttsctl-bench-"))
    env = {**os.environ, "TTSCTL_AUDIT_DB": str(scratch / "audit.db"), "TTSCTL_LOCK_FILE": str(scratch / "release.lock"),
           "TTSCTL_ARTIFACTS_DIR": str(scratch / "artifacts"), "TTSCTL_OPERATOR": "bench",
           "ANSIBLE_FORCE_COLOR": "0"}
    via_ttsctl = [*TTSCTL, "canary", "--weight", weight]
    direct = [ANSIBLE_PLAYBOOK, "playbooks/canary.yml", "-e", f"weight={weight}"]
    status_ttsctl = [*TTSCTL, "status", "--json"]
    status_direct = [ANSIBLE_PLAYBOOK, "playbooks/status.yml"]

    print(f"warming up (canary at the current weight {weight}, status) ...", flush=True)
    for args in (via_ttsctl, direct, status_ttsctl, status_direct):
        timed(args, env)
    runs = {"ttsctl_canary": [], "ansible_playbook_canary": [], "ttsctl_status": [], "ansible_playbook_status": []}
    for index in range(rounds):
        pair = [("ttsctl_canary", via_ttsctl), ("ansible_playbook_canary", direct)]
        for name, args in pair if index % 2 == 0 else reversed(pair):
            runs[name].append(timed(args, env))
        pair = [("ttsctl_status", status_ttsctl), ("ansible_playbook_status", status_direct)]
        for name, args in pair if index % 2 == 0 else reversed(pair):
            runs[name].append(timed(args, env))
        print(f"  round {index + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in runs.items()), flush=True)

    figures = {name: stats(values) for name, values in runs.items()}
    ratio = figures["ttsctl_canary"]["median_s"] / figures["ansible_playbook_canary"]["median_s"]
    status_ratio = figures["ttsctl_status"]["median_s"] / figures["ansible_playbook_status"]["median_s"]
    result = {
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "rounds": rounds, "canary_weight": weight, "figures": figures,
        "canary_ratio_ttsctl_over_ansible_playbook": ratio,
        "canary_overhead_s": figures["ttsctl_canary"]["median_s"] - figures["ansible_playbook_canary"]["median_s"],
        "status_latency_s": figures["ttsctl_status"]["median_s"],
        "status_ratio_ttsctl_over_ansible_playbook": status_ratio,
        "aim_ratio_at_most": 1.1,
    }
    print()
    print(f"{'what':<36}{'median':>9}{'min':>9}{'max':>9}")
    for name, figure in figures.items():
        print(f"{name:<36}{figure['median_s']:>8.2f}s{figure['min_s']:>8.2f}s{figure['max_s']:>8.2f}s")
    print(f"\nttsctl canary / ansible-playbook canary: {ratio:.3f}x "
          f"(+{result['canary_overhead_s']:.2f} s; aim at most 1.1x)")
    print(f"ttsctl status latency: {result['status_latency_s']:.2f} s (ratio {status_ratio:.3f}x)")
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {options.output.relative_to(REPO_ROOT) if options.output.is_relative_to(REPO_ROOT) else options.output}")


if __name__ == "__main__":
    main()
