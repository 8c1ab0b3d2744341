#!/usr/bin/python
"""Ansible module: set one key of an HAProxy map, live and on disk, so reloads keep it."""
from __future__ import annotations

DOCUMENTATION = r"""
module: haproxy_map
short_description: Set a key of an HAProxy map through the runtime API and in its file
description:
  - Changes take effect at once (runtime API, no reload) and are written to the map file
    atomically, so a reload or restart keeps them.
  - When HAProxy is not running only the file is written.
options:
  socket: {description: Admin runtime API socket., type: path, required: true}
  map: {description: Path of the map file as named in haproxy.cfg., type: path, required: true}
  key: {description: Key to set., type: str, required: true}
  value: {description: Value for the key., type: str, required: true}
attributes:
  check_mode: {support: full}
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.haproxy_socket import command


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
        handle.writelines(f"{k} {v}\n" for k, v in sorted(entries.items()))
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)


def live_value(socket_path, map_path, key):
    """The key's value in the running HAProxy, or None when HAProxy is not running."""
    if not os.path.exists(socket_path):
        return None
    try:
        answer = command(socket_path, f"show map {map_path}")
    except OSError:
        return None
    for line in answer.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == key:
            return parts[2]
    return ""


def main():
    module = AnsibleModule(
        argument_spec=dict(socket=dict(type="path", required=True), map=dict(type="path", required=True),
                           key=dict(type="str", required=True, no_log=False), value=dict(type="str", required=True)),
        supports_check_mode=True,
    )
    p = module.params
    entries = read_file(p["map"])
    live = live_value(p["socket"], p["map"], p["key"])
    file_changed = entries.get(p["key"]) != p["value"]
    live_changed = live is not None and live != p["value"]
    if not module.check_mode:
        if live_changed:
            verb = "set" if live else "add"
            answer = command(p["socket"], f"{verb} map {p['map']} {p['key']} {p['value']}").strip()
            if answer:
                module.fail_json(msg=f"HAProxy refused '{verb} map': {answer}")
        if file_changed:
            entries[p["key"]] = p["value"]
            write_file(p["map"], entries)
    module.exit_json(changed=file_changed or live_changed, live=live is not None)


if __name__ == "__main__":
    main()
