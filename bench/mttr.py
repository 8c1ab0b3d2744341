#!/usr/bin/env python3
"""Mean time to recovery of the automatic rollback, stage by stage, with the shipped settings.

On the local deployment (quickstart first), each run:
1. deploys green 2.0 with a fault (default: half its speech requests fail), parked;
2. under a steady speech load plus a probe of new listeners, starts a 20 % canary;
3. waits until the webhook receiver has rolled it back and new listeners get only blue;
4. puts the baseline back (green re-deployed without the fault, weight 0).

Stages, from the fault start (the first answer from the candidate at the frontend):
  pending   Prometheus's rule first holds (enough requests judged; a scrape, an evaluation)
  firing    the alert fires (the rule's `for:`)
  received  Alertmanager's notification reaches the receiver
  stable    every new listener is answered by the stable colour (HAProxy weight 0)
  done      the rollback playbook has finished (audit record closed)
MTTR is fault start -> stable. Pending and firing are Prometheus's own evaluation times
(raw samples of its ALERTS series); received and done are the receiver's time stamps;
fault start and stable are seen by the probe. Everything runs on this machine's clock.

monitoring.yml and control_plane.yml are run first, so the SHIPPED role defaults are
measured; the settings found live in Prometheus and Alertmanager are saved with the
figures. Prints a table, saves bench/results/mttr.json.

    flock /tmp/deployment.lock .venv/bin/python bench/mttr.py [--runs 5]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

import requests
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT))
from alerting import (ALERTMANAGER, PROMETHEUS, Probe, candidate_faults, deploy_candidate,  # noqa: E402
                      release_epoch, rollback_records, start_monitoring_and_receiver,
                      wait_for, wait_for_rollback_by_webhook)
from deployment import Load, ensure_running, playbook, run, state  # noqa: E402

from ttsctl import clock  # noqa: E402

STAGES = ("pending", "firing", "received", "stable", "done")
FLOOR_S = 60.0


def epoch_seconds(stamp: str | None) -> float | None:
    """A UTC ISO stamp (ours, or Prometheus's RFC 3339 with nanoseconds) as Unix seconds."""
    if not stamp:
        return None
    text = stamp.replace("Z", "+00:00")
    if "." in text:  # Python parses at most microseconds
        head, rest = text.split(".", 1)
        digits = "".join(ch for ch in rest if ch.isdigit())
        text = f"{head}.{digits[:6]}{rest[len(digits):]}"
    return datetime.fromisoformat(text).timestamp()


def alert_times(alertname: str, epoch: str) -> dict:
    """When Prometheus first evaluated the alert pending and firing (raw ALERTS samples)."""
    times = {}
    for alertstate in ("pending", "firing"):
        query = f'ALERTS{{alertname="{alertname}",alertstate="{alertstate}",epoch="{epoch}"}}[15m]'
        result = requests.get(f"{PROMETHEUS}/api/v1/query", params={"query": query}, timeout=10).json()
        samples = [float(t) for series in result["data"]["result"] for t, _ in series["values"]]
        times[alertstate] = min(samples) if samples else None
    return times


def restore() -> None:
    if candidate_faults() != {}:
        deploy_candidate()
    ensure_running()


def one_run(number: int, weight: int, error_rate: float, timeout: float) -> dict:
    restore()
    deploy_candidate(fault_error_rate=error_rate)
    since = clock.stamp()
    load, probe = Load(clients=2, limit_s=timeout + 60), Probe()
    load.start()
    probe.start()
    try:
        time.sleep(1)
        command = time.time()
        playbook("canary", weight=weight)
        epoch = release_epoch()
        rollback = wait_for_rollback_by_webhook(since, timeout)
        stable = wait_for(probe.stable_since, 15, 0.2, "only stable answers")
        time.sleep(1)
    finally:
        load.stop()
        probe.stop()
    fault = probe.first("green", after=command)
    alertname = rollback["alert"]["alertname"]
    prometheus = alert_times(alertname, epoch)
    [record] = [r for r in rollback_records(since) if r["id"] == rollback["audit_record"]] or [None]
    moments = {"pending": prometheus["pending"], "firing": prometheus["firing"],
               "received": epoch_seconds(rollback["received_at"]), "stable": stable,
               "done": epoch_seconds(rollback["finished_at"])}
    result = {
        "run": number, "alert": alertname, "result": rollback["result"], "epoch": epoch,
        "fault_start": datetime.fromtimestamp(fault).isoformat() if fault else None,
        "since_fault_s": {k: round(v - fault, 2) if v and fault else None for k, v in moments.items()},
        "playbook_s": rollback["seconds"],
        "failed_requests": len(load.failures), "ok_requests": load.ok,
        "audit": {"id": record and record["id"], "operator": record and record["operator"],
                  "reason": record and record["reason"]},
    }
    result["mttr_s"] = result["since_fault_s"]["stable"]
    previous = 0.0
    result["stage_s"] = {}
    for stage in STAGES:  # each stage's own length, in the order they happen
        value = result["since_fault_s"][stage]
        result["stage_s"][stage] = round(value - previous, 2) if value is not None else None
        previous = value if value is not None else previous
    return result


def live_settings() -> dict:
    """The settings the measured runs used, as Prometheus and Alertmanager report them."""
    config = yaml.safe_load(requests.get(f"{PROMETHEUS}/api/v1/status/config", timeout=5).json()["data"]["yaml"])
    rules = requests.get(f"{PROMETHEUS}/api/v1/rules", timeout=5).json()["data"]["groups"]
    alerting = {r["name"]: r["duration"] for g in rules for r in g["rules"]
                if r["type"] == "alerting" and r.get("labels", {}).get("action") == "rollback"}
    expressions = {r["name"]: r["query"] for g in rules for r in g["rules"] if r["type"] == "alerting"}
    am = yaml.safe_load(requests.get(f"{ALERTMANAGER}/api/v2/status", timeout=5).json()["config"]["original"])
    rollback_route = next(r for r in am["route"]["routes"] if r["receiver"] == "rollback")
    defaults = yaml.safe_load((ROOT / "roles" / "monitoring" / "defaults" / "main.yml").read_text())
    return {
        "scrape_interval": config["global"]["scrape_interval"],
        "evaluation_interval": config["global"]["evaluation_interval"],
        "rollback_alerts_for_s": alerting,
        "error_ratio_expr": expressions.get("TTSCandidateErrorRatioHigh"),
        "alertmanager_rollback_route": {k: rollback_route.get(k) for k in ("group_wait", "group_interval",
                                                                             "repeat_interval")},
        "role_defaults": {k: defaults[k] for k in (
            "monitoring_scrape_interval", "monitoring_evaluation_interval", "monitoring_verdict_window",
            "monitoring_min_requests", "monitoring_error_ratio_threshold", "monitoring_error_for",
            "monitoring_latency_for", "monitoring_down_for", "monitoring_rollback_group_wait")},
    }


def median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 2) if values else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs (default 5)")
    parser.add_argument("--weight", type=int, default=20, help="canary weight (default 20)")
    parser.add_argument("--error-rate", type=float, default=0.5, help="candidate's failing share (default 0.5)")
    parser.add_argument("--timeout", type=float, default=180, help="seconds a run may take to roll back")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "mttr.json")
    args = parser.parse_args()

    run("scripts/podman-service.sh")
    ensure_running()
    start_monitoring_and_receiver()
    settings = live_settings()
    runs = []
    try:
        for number in range(1, args.runs + 1):
            result = one_run(number, args.weight, args.error_rate, args.timeout)
            runs.append(result)
            print(f"run {number}: MTTR {result['mttr_s']} s  stages {result['stage_s']}  "
                  f"({result['alert']}, {result['failed_requests']} failed requests)", flush=True)
    finally:
        restore()

    medians = {stage: median([r["since_fault_s"][stage] for r in runs]) for stage in STAGES}
    stage_medians = {stage: median([r["stage_s"][stage] for r in runs]) for stage in STAGES}
    mttr = median([r["mttr_s"] for r in runs])
    report = {
        "benchmark": "mttr", "measured_at": clock.stamp(), "runs_count": len(runs),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": len(__import__("os").sched_getaffinity(0))},
        "scenario": {"canary_weight": args.weight, "fault_error_rate": args.error_rate, "load_clients": 2},
        "settings": settings,
        "median_since_fault_s": medians, "median_stage_s": stage_medians, "median_mttr_s": mttr,
        "floor_s": FLOOR_S, "meets_floor": mttr is not None and mttr < FLOOR_S,
        "runs": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")

    print()
    print(f"{'milestone (s since fault)':<28}" + "".join(f"{'run ' + str(r['run']):>9}" for r in runs) + f"{'median':>9}")
    for stage in STAGES:
        cells = "".join(f"{r['since_fault_s'][stage]!s:>9}" for r in runs)
        print(f"{stage:<28}{cells}{medians[stage]!s:>9}")
    print()
    print(f"{'stage (s)':<28}{'median':>9}{'share':>9}")
    total = medians["done"] or 1
    for stage in STAGES:
        share = f"{100 * stage_medians[stage] / total:.0f} %" if stage_medians[stage] is not None else "?"
        print(f"{stage:<28}{stage_medians[stage]!s:>9}{share:>9}")
    print(f"\nmedian MTTR (fault -> 100 % stable): {mttr} s  (floor {FLOOR_S:.0f} s: "
          f"{'met' if report['meets_floor'] else 'NOT met'}); saved {args.output}")
    current = state()
    assert current["phase"] == "deployed" and current["candidate_weight"] == 0, current
    return 0 if report["meets_floor"] else 1


if __name__ == "__main__":
    sys.exit(main())
