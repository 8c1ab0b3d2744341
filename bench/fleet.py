#!/usr/bin/env python3
"""Does a release step slow down as the fleet grows? 2, 20 and 200 servers per colour.

For each size, a scratch HAProxy of its own (config, sockets, split map, ports, all under a
temporary directory), configured by the real haproxy role, sits in front of stand-in TTS
servers (one process answering every server's port). The real playbooks/canary.yml and
playbooks/rollback.yml run against an inventory of that many GPU hosts, with the release
lock and the audit log in the scratch directory too. Measured per step and size (median of
--rounds): the playbook's wall time, and when HAProxy's split map changed, read from its
runtime API every 10 ms (the moment listeners are switched). The machine's own deployment
is not touched. Prints a table, saves bench/results/fleet.json.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FRONTEND_PORT, STATS_PORT, FIRST_SERVER_PORT = 18380, 18504, 30000


def answer_ready(ports: list[int], ready: threading.Event) -> None:
    """Stand-in TTS servers: 200 to every request on every port (health checks only)."""
    async def reply(reader, writer):
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 18\r\n"
                         b"Connection: close\r\n\r\n{\"status\":\"ready\"}")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def main():
        for port in ports:
            await asyncio.start_server(reply, "127.0.0.1", port, reuse_address=True)
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def inventory(scratch: Path, servers: int) -> Path:
    lb = {
        "haproxy_use_systemd": False,
        "haproxy_bind_address": "127.0.0.1", "haproxy_port": FRONTEND_PORT, "haproxy_stats_port": STATS_PORT,
        "haproxy_stats_password": secrets.token_hex(20),
        "haproxy_config_path": str(scratch / "haproxy.cfg"),
        "haproxy_runtime_socket": str(scratch / "run" / "admin.sock"),
        "haproxy_master_socket": str(scratch / "run" / "master.sock"),
        "haproxy_pid_file": str(scratch / "run" / "haproxy.pid"),
        "haproxy_split_map": str(scratch / "tts-split.map"),
        "haproxy_split_metrics_path": str(scratch / "tts-split.lf"),
    }
    gpu = {f"fleet-gpu-{i:03d}": {"tts_stack_address": "127.0.0.1", "tts_stack_ports": {
        "blue": FIRST_SERVER_PORT + 2 * i, "green": FIRST_SERVER_PORT + 2 * i + 1}} for i in range(servers)}
    data = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                 "ttsctl_release_state_path": str(scratch / "release.json")},
        "children": {"lb": {"hosts": {"localhost": lb}}, "gpu": {"hosts": gpu}}}}
    path = scratch / "inventory.json"
    path.write_text(json.dumps(data, indent=1))
    return path


def runtime(sock: str, command: str) -> str:
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(2)
        conn.connect(sock)
        conn.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


class SplitWatch(threading.Thread):
    """Reads the split map from HAProxy's runtime API until stopped; notes each change."""

    def __init__(self, sock: str, map_path: str):
        super().__init__(daemon=True)
        self.sock, self.map_path, self.changes, self.stopped = sock, map_path, [], threading.Event()

    def run(self):
        last = None
        while not self.stopped.is_set():
            try:
                now = runtime(self.sock, f"show map {self.map_path}")
            except OSError:
                now = last
            if last is not None and now != last:
                self.changes.append(time.monotonic())
            last = now
            time.sleep(0.01)


def playbook(env: dict, inv: Path, path: str, *extra: str) -> None:
    args = [str(BIN / "ansible-playbook"), "-i", str(inv), path]
    for item in extra:
        args += ["-e", item]
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode:
        sys.exit(f"{path} failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}")


def step(env, inv, lb, path, *extra) -> dict:
    watch = SplitWatch(lb["haproxy_runtime_socket"], lb["haproxy_split_map"])
    watch.start()
    started = time.monotonic()
    playbook(env, inv, path, *extra)
    wall = time.monotonic() - started
    watch.stopped.set()
    watch.join()
    switched = watch.changes[0] - started if watch.changes else float("nan")
    return {"wall_s": wall, "split_changed_s": switched}


def measure(size: int, rounds: int) -> dict:
    scratch = Path(tempfile.mkdtemp(prefix="ttsctl-fleet-"))
    (scratch / "run").mkdir()
    inv = inventory(scratch, size)
    lb = json.loads(inv.read_text())["all"]["children"]["lb"]["hosts"]["localhost"]
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "TTSCTL_AUDIT_DB": str(scratch / "audit.db"), "TTSCTL_LOCK_FILE": str(scratch / "release.lock"),
           "TTSCTL_OPERATOR": "bench"}
    env.pop("TTSCTL_LOCK_TOKEN", None)
    try:
        started = time.monotonic()
        playbook(env, inv, "bench/playbooks/fleet_setup.yml")
        setup_s = time.monotonic() - started
        steps = {"canary 0 -> 5": [], "rollback": []}
        for index in range(rounds):
            if index:
                playbook(env, inv, "bench/playbooks/fleet_setup.yml", "fleet_first=false")
            steps["canary 0 -> 5"].append(step(env, inv, lb, "playbooks/canary.yml", "weight=5"))
            steps["rollback"].append(step(env, inv, lb, "playbooks/rollback.yml", "reason=fleet-bench"))
        rows = runtime(lb["haproxy_runtime_socket"], "show servers state tts_blue").splitlines()[1:]
        servers = sum(1 for row in rows if row.strip() and not row.startswith("#"))
        # tts_blue holds blue's servers and, as backups, green's: twice the colour's size.
        return {"servers_per_colour": size, "servers_in_backend_tts_blue": servers, "setup_s": round(setup_s, 2),
                "steps": {name: {"wall_s": round(statistics.median(r["wall_s"] for r in runs), 2),
                                 "split_changed_s": round(statistics.median(r["split_changed_s"] for r in runs), 2),
                                 "runs": runs}
                          for name, runs in steps.items()}}
    finally:
        pid_file = Path(lb["haproxy_pid_file"])
        if pid_file.exists():
            subprocess.run(["kill", pid_file.read_text().strip()], check=False)
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2,20,200", help="servers per colour, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "fleet.json")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    ready = threading.Event()
    ports = [FIRST_SERVER_PORT + p for p in range(2 * max(sizes))]
    threading.Thread(target=answer_ready, args=(ports, ready), daemon=True).start()
    if not ready.wait(30):
        sys.exit("the stand-in servers did not start")
    results = [measure(size, args.rounds) for size in sizes]
    base = results[0]["steps"]
    print(f"{'servers/colour':>14}  {'step':<14} {'playbook s':>10} {'x':>5} {'split changed at s':>18} {'x':>5}")
    for result in results:
        for name, figures in result["steps"].items():
            print(f"{result['servers_per_colour']:>14}  {name:<14} {figures['wall_s']:>10.2f} "
                  f"{figures['wall_s'] / base[name]['wall_s']:>5.2f} {figures['split_changed_s']:>18.2f} "
                  f"{figures['split_changed_s'] / base[name]['split_changed_s']:>5.2f}")
    args.out.write_text(json.dumps({"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                                    "rounds": args.rounds, "results": results}, indent=2) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
