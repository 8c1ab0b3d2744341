#!/usr/bin/python
"""Ansible module: set the canary split (HAProxy map) and each server's slot limit, live
through the runtime API and on disk, so a weight change never needs a reload."""
from __future__ import annotations

DOCUMENTATION = r"""
module: haproxy_split
short_description: Set HAProxy's colour split map and server maxconn, live and on disk
description:
  - The split map holds C(stable), C(candidate) (colour names) and C(weight) (the
    candidate's share of new listeners, 0-100). The frontend reads it for every request, so
    a change takes effect at once, with no reload.
  - The map file is rewritten atomically so a reload or restart keeps the split. When
    HAProxy is not running only the file is written.
  - A narrowing change (a lower weight) is applied before the routes change, a widening one
    after, so no request sees a larger candidate share than the old or the new split gives.
options:
  socket: {description: Admin runtime API socket., type: path, required: true}
  map: {description: Path of the split map as named in haproxy.cfg., type: path, required: true}
  split:
    description: "C({stable: blue, candidate: green, weight: 5})."
    type: dict
    required: true
  maxconn:
    description: "Slot limit per server, C({backend/server: n}); only servers HAProxy runs are set."
    type: dict
    default: {}
  live:
    description: Also change the running HAProxy; false writes the file only (before a reload that reads it).
    type: bool
    default: true
attributes:
  check_mode: {support: full}
"""

RETURN = r"""
changes: {description: What was changed (or would be in check mode), in words., type: list}
live: {description: Whether HAProxy answered the runtime API., type: bool}
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.haproxy_socket import command, live_map, stats

KEYS = ("candidate", "stable", "weight")


def read_file(path):
    entries = {}
    if os.path.exists(path):
        with open(path) as handle:
            for line in handle:
                parts = line.split()
                if len(parts) == 2 and not line.startswith("#"):
                    entries[parts[0]] = parts[1]
    return entries


def write_file(path, entries):
    fd, temporary = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".map.")
    with os.fdopen(fd, "w") as handle:
        handle.writelines(f"{key} {entries[key]}\n" for key in KEYS)
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)


def wanted_split(split):
    """The split as map strings, or a message saying what is wrong with it."""
    if set(split) != set(KEYS):
        return None, f"split needs exactly {', '.join(KEYS)}, got {', '.join(sorted(split))}"
    if split["stable"] not in ("blue", "green") or split["candidate"] not in ("blue", "green"):
        return None, "stable and candidate must be blue or green"
    try:
        weight = int(str(split["weight"]))
    except ValueError:
        weight = -1
    if not 0 <= weight <= 100:
        return None, f"weight must be a whole number from 0 to 100, got {split['weight']!r}"
    return {"candidate": split["candidate"], "stable": split["stable"], "weight": str(weight)}, None


def ordered(wanted, live):
    """Keys to set live, the weight first when it shrinks, last when it grows."""
    keys = [k for k in ("candidate", "stable") if live.get(k) != wanted[k]]
    if live.get("weight") != wanted["weight"]:
        shrinking = int(wanted["weight"]) < int(live.get("weight") or 100)
        keys = ["weight"] + keys if shrinking else keys + ["weight"]
    return keys


def main():
    module = AnsibleModule(
        argument_spec=dict(socket=dict(type="path", required=True), map=dict(type="path", required=True),
                           split=dict(type="dict", required=True), maxconn=dict(type="dict", default={}),
                           live=dict(type="bool", default=True)),
        supports_check_mode=True,
    )
    p = module.params
    wanted, problem = wanted_split(p["split"])
    if problem:
        module.fail_json(msg=problem)
    try:
        live = live_map(p["socket"], p["map"]) if p["live"] and os.path.exists(p["socket"]) else None
        rows = stats(p["socket"]) if live is not None else []
    except OSError:
        live, rows = None, []
    changes = []
    on_disk = read_file(p["map"])
    file_changed = on_disk != wanted
    if file_changed:
        changes.append(f"{p['map']}: " + ", ".join(f"{k} {wanted[k]}" for k in KEYS))
    live_commands = []
    if live is not None:
        for key in ordered(wanted, live):
            verb = "set" if key in live else "add"
            live_commands.append(f"{verb} map {p['map']} {key} {wanted[key]}")
            changes.append(f"live {key}: {live.get(key, 'none')} -> {wanted[key]}")
        limits = {f"{r['pxname']}/{r['svname']}": r["slim"] for r in rows}
        for server, limit in sorted(p["maxconn"].items()):
            if server in limits and str(limits[server]) != str(int(limit)):
                live_commands.append(f"set maxconn server {server} {int(limit)}")
                changes.append(f"live {server} maxconn: {limits[server] or 'none'} -> {int(limit)}")
    if not module.check_mode:
        for line in live_commands:
            answer = command(p["socket"], line).strip()
            if answer:
                module.fail_json(msg=f"HAProxy refused '{line}': {answer}", changes=changes)
        if file_changed:
            write_file(p["map"], wanted)
    module.exit_json(changed=bool(changes), changes=changes, live=live is not None)


if __name__ == "__main__":
    main()
