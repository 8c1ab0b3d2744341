#!/usr/bin/python
"""Ansible module: what the running HAProxy thinks of its servers (read only)."""
from __future__ import annotations

DOCUMENTATION = r"""
module: haproxy_info
short_description: Servers, states, weights and sessions from HAProxy's runtime API
options:
  socket: {description: Admin runtime API socket., type: path, required: true}
  backend: {description: Only this backend's servers., type: str}
attributes:
  check_mode: {support: full}
"""

RETURN = r"""
running: {description: Whether HAProxy answered., type: bool}
servers: {description: "One entry per server: backend, name, status (UP, DOWN, MAINT, DRAIN...), weight, sessions.", type: list}
server_state: {description: "The 'show servers state' dump, the format of a server-state-file.", type: str}
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.haproxy_socket import command, stats


def main():
    module = AnsibleModule(
        argument_spec=dict(socket=dict(type="path", required=True), backend=dict(type="str")),
        supports_check_mode=True,
    )
    path, backend = module.params["socket"], module.params["backend"]
    if not os.path.exists(path):
        module.exit_json(changed=False, running=False, servers=[], server_state="")
    try:
        rows = stats(path)
        server_state = command(path, "show servers state")
    except OSError as exc:
        module.exit_json(changed=False, running=False, servers=[], server_state="", error=str(exc))
    servers = [
        {"backend": r["pxname"], "name": r["svname"], "status": r["status"],
         "weight": int(r["weight"] or 0), "sessions": int(r["scur"] or 0),
         "total": int(r["stot"] or 0), "check": r.get("check_status", "")}
        for r in rows
        if r["svname"] not in ("FRONTEND", "BACKEND") and (backend is None or r["pxname"] == backend)
    ]
    module.exit_json(changed=False, running=True, servers=servers, server_state=server_state)


if __name__ == "__main__":
    main()
