"""The shipped inventories parse, have every group the playbooks target, and give the load
balancer the server list a site expects (the same filter the haproxy role renders)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
GROUPS = ("lb", "gpu", "monitoring", "control")


def ansible(*args: str) -> str:
    result = subprocess.run([str(BIN / args[0]), *args[1:]], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("inventory", ["local", "production.example"])
def test_every_group_the_playbooks_target_has_hosts(inventory):
    listing = json.loads(ansible("ansible-inventory", "-i", f"inventory/{inventory}", "--list"))
    for group in GROUPS:
        assert listing[group]["hosts"], f"{inventory}: group {group} is empty"


def test_production_example_server_list():
    out = ansible("ansible", "-i", "inventory/production.example", "lb1.tts.example.net",
                  "-m", "ansible.builtin.debug",
                  "-a", "msg={{ groups.gpu | tts_servers(hostvars) | to_json }}")
    servers = json.loads(json.loads(out.split("=>", 1)[1])["msg"])
    by_colour = {c: sorted((s["address"], s["port"]) for s in servers if s["color"] == c)
                 for c in ("blue", "green")}
    # Three GPU hosts, the third with two GPUs: four instances per colour.
    assert by_colour["blue"] == [("10.20.1.11", 6006), ("10.20.1.12", 6006),
                                 ("10.20.1.13", 6006), ("10.20.1.13", 6008)]
    assert by_colour["green"] == [("10.20.1.11", 6007), ("10.20.1.12", 6007),
                                  ("10.20.1.13", 6007), ("10.20.1.13", 6009)]
