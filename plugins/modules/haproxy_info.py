#!/usr/bin/python
"""Ansible module: what the running HAProxy thinks of its servers and split (read only)."""
from __future__ import annotations

DOCUMENTATION = r"""
module: haproxy_info
short_description: Servers, slots, queues and the colour split from HAProxy's runtime API
options:
  socket: {description: Admin runtime API socket., type: path, required: true}
  backends: {description: Only these backends' servers (all when omitted)., type: list, elements: str}
  map: {description: The split map to read (omit to skip)., type: path}
attributes:
  check_mode: {support: full}
"""

RETURN = r"""
running: {description: Whether HAProxy answered., type: bool}
servers:
  description: "One entry per server: backend, name, status (UP, DOWN, MAINT...), maxconn, sessions, queued, total."
  type: list
split: {description: "The split map as HAProxy holds it: {stable, candidate, weight}; empty when not asked.", type: dict}
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.haproxy_socket import live_map, stats


def number(value):
    return int(value) if str(value or "").isdigit() else None


def main():
    module = AnsibleModule(
        argument_spec=dict(socket=dict(type="path", required=True),
                           backends=dict(type="list", elements="str"), map=dict(type="path")),
        supports_check_mode=True,
    )
    path, backends, map_path = module.params["socket"], module.params["backends"], module.params["map"]
    if not os.path.exists(path):
        module.exit_json(changed=False, running=False, servers=[], split={})
    try:
        rows = stats(path)
        split = live_map(path, map_path) if map_path else {}
    except OSError as exc:
        module.exit_json(changed=False, running=False, servers=[], split={}, error=str(exc))
    servers = [
        {"backend": r["pxname"], "name": r["svname"], "status": r["status"],
         "maxconn": number(r["slim"]), "sessions": number(r["scur"]) or 0,
         "queued": number(r["qcur"]) or 0, "total": number(r["stot"]) or 0, "check": r.get("check_status", "")}
        for r in rows
        if r["svname"] not in ("FRONTEND", "BACKEND") and (not backends or r["pxname"] in backends)
    ]
    module.exit_json(changed=False, running=True, servers=servers, split=split)


if __name__ == "__main__":
    main()
