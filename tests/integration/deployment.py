"""The local blue/green deployment as tests drive it: playbooks, the frontend, the state.

Everything is real: ansible-playbook against inventory/local, HAProxy on 127.0.0.1:8080,
TTS containers through podman's Docker API. Tests share one deployment and put it back to
the baseline (blue 1.5 active, green 2.0 parked at weight 0) after they change it.
"""
from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FRONTEND = "http://127.0.0.1:8080"
STATE = Path("/var/lib/ttsctl/release.json")
RUNTIME_SOCKET = "/run/haproxy/admin.sock"
SPLIT_MAP = "/etc/haproxy/tts-split.map"
STABLE, CANDIDATE = "1.5", "2.0"


def run(*args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "DOCKER_HOST": "unix:///run/podman/podman.sock",
           "ANSIBLE_FORCE_COLOR": "0", "TTSCTL_OPERATOR": "pytest"}
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}")
    return result


def playbook(name: str, check: bool = True, **extra) -> subprocess.CompletedProcess:
    args = [str(BIN / "ansible-playbook"), f"playbooks/{name}.yml"]
    if extra:
        args += ["-e", json.dumps({key: str(value) for key, value in extra.items()})]
    return run(*args, check=check)


def changed(result: subprocess.CompletedProcess) -> int:
    """Tasks reported changed across the PLAY RECAP."""
    return sum(int(n) for n in re.findall(r"changed=(\d+)", result.stdout))


def state() -> dict:
    return json.loads(STATE.read_text())


def haproxy(command: str) -> str:
    sys.path.insert(0, str(ROOT / "plugins" / "module_utils"))
    from haproxy_socket import command as send  # the roles' own runtime API client

    return send(RUNTIME_SOCKET, command)


def haproxy_servers() -> dict[str, tuple[str, int]]:
    """{server: (status, slots)} of the colours' speech backends, as HAProxy sees it now."""
    sys.path.insert(0, str(ROOT / "plugins" / "module_utils"))
    from haproxy_socket import stats

    return {r["svname"]: (r["status"], int(r["slim"] or 0)) for r in stats(RUNTIME_SOCKET)
            if r["pxname"] == "tts_" + r["svname"].split("-")[0]}  # each colour's own, not its backups


def haproxy_split() -> dict[str, str]:
    """The colour split HAProxy routes by now: {stable, candidate, weight}."""
    sys.path.insert(0, str(ROOT / "plugins" / "module_utils"))
    from haproxy_socket import live_map

    return live_map(RUNTIME_SOCKET, SPLIT_MAP)


def parked() -> dict[str, str]:
    """The split with no candidate: every listener on blue."""
    return {"stable": "blue", "candidate": "blue", "weight": "0"}


def colours(n: int, **kwargs) -> collections.Counter:
    """Which colour answered each of n fresh (cookie-less) requests through the frontend."""
    seen = collections.Counter()
    with requests.Session() as session:
        for _ in range(n):
            session.cookies.clear()
            seen[session.get(f"{FRONTEND}/version", timeout=10, **kwargs).json()["color"]] += 1
    return seen


_broken: list[str] = []


def ensure_running() -> None:
    """Bring the deployment to the baseline: everything recorded running, green parked.

    A deployment that could not be brought up once is not retried for every test: the
    rest fail at once with the first error instead of each waiting out the same timeouts.
    """
    if _broken:
        raise AssertionError(f"the deployment could not be brought up earlier:\n{_broken[0]}")
    try:
        _baseline()
    except Exception as exc:
        _broken.append(str(exc))
        raise


def _baseline() -> None:
    current = state() if STATE.exists() else {}
    down = run("podman", "ps", "--filter", "status=running", "--format", "{{.Names}}").stdout.split()
    if not current or {"tts-blue-0", "tts-green-0"} - set(down) or not haproxy_running():
        playbook("site")
        if not (state()["colors"].get("green") or {}).get("version") == CANDIDATE:
            playbook("deploy", version=CANDIDATE)
    if state()["active"] == "green":
        playbook("rollback", reason="test baseline")
    if state()["candidate_weight"] != 0 or state()["phase"] != "deployed":
        playbook("canary", weight=0)


def wait_for(predicate, timeout: float = 60.0):
    """The predicate's first truthy value, polled every 0.1 s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


def haproxy_running() -> bool:
    try:
        haproxy("show info")
        return True
    except OSError:
        return False


class Load(threading.Thread):
    """Steady speech requests through the frontend, counting every failure."""

    def __init__(self, clients: int = 2, limit_s: float = 180, timeout: float = 30):
        super().__init__(daemon=True)
        self.clients, self.limit_s, self.timeout = clients, limit_s, timeout
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.failures: list[str] = []
        self.by_colour: list[tuple[float, str]] = []

    def _client(self) -> None:
        deadline = time.monotonic() + self.limit_s
        body = {"model": "tts-1", "input": "Hello there, listener.", "voice": "alloy",
                "response_format": "pcm"}
        while not self.stop_event.is_set() and time.monotonic() < deadline:
            try:
                answer = requests.post(f"{FRONTEND}/v1/audio/speech", json=body, timeout=self.timeout)
                with self.lock:
                    if answer.status_code == 200 and answer.content:
                        self.ok += 1
                        served = answer.headers.get("X-TTS-Color", "")
                        self.by_colour.append((time.monotonic(), served))
                    else:
                        self.failures.append(f"{answer.status_code}: {answer.text[:120]}")
            except requests.RequestException as exc:
                with self.lock:
                    self.failures.append(repr(exc))

    def run(self) -> None:
        threads = [threading.Thread(target=self._client, daemon=True) for _ in range(self.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def stop(self) -> "Load":
        self.stop_event.set()
        self.join(timeout=60)
        return self
