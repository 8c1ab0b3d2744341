#!/usr/bin/python
"""Ansible module: read and change the release state (one JSON document on the LB host)."""
from __future__ import annotations

DOCUMENTATION = r"""
module: release_state
short_description: Read or change the blue/green release state, atomically
description:
  - The release state says which colour is active, which version and image each colour runs,
    the candidate's share of traffic, the phase and the last change (when, who, why).
  - Every state change goes through this module so canary, promote, rollback and deploy
    share one format and one set of rules. Refused transitions fail and change nothing.
  - The file is replaced atomically (written beside it, then renamed).
options:
  path: {description: Where the state lives on the load-balancer host., type: path, required: true}
  action:
    description: What to do.
    type: str
    required: true
    choices: [read, deploy, canary, promote, rollback]
  version: {description: Version being deployed (deploy)., type: str}
  image: {description: Image of that version (deploy)., type: str}
  max_concurrency:
    description: Speech requests one worker of that version serves at once, from its manifest (deploy); HAProxy gives each server this many slots per worker.
    type: int
    default: 1
  weight: {description: Candidate share of traffic, 0-100 (canary)., type: raw}
  operator: {description: Who asked., type: str, default: unknown}
  reason: {description: Why., type: str, default: ""}
  time: {description: UTC ISO 8601 time stamp of the change; now when omitted., type: str}
  expect:
    description:
      - "Rollback only: the candidate it is meant for, C({color, version, epoch}), epoch being the
        time of the state's last change. Refused when the state no longer has that candidate, so
        a rollback asked for one candidate never rolls back the next (compare and set)."
    type: dict
attributes:
  check_mode: {support: full}
"""

RETURN = r"""
state: {description: The state after the action (what it would be, in check mode)., type: dict}
before: {description: The state before the action., type: dict}
colors: {description: "{active, standby}: colour names, standby null when none is deployed.", type: dict}
"""

import json
import os
import tempfile
from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule

COLORS = ("blue", "green")
EMPTY = {"active": None, "colors": {"blue": None, "green": None}, "candidate_weight": 0,
         "phase": "empty", "last_change": None}


class Refused(Exception):
    """A transition the current state does not allow."""


def other(colour):
    return COLORS[1 - COLORS.index(colour)]


def parse_weight(value):
    try:
        weight = int(str(value).strip())
        if str(value).strip() != str(weight):
            raise ValueError
    except (TypeError, ValueError):
        raise Refused(f"weight must be a whole number from 0 to 100, got {value!r}") from None
    if not 0 <= weight <= 100:
        raise Refused(f"weight must be a whole number from 0 to 100, got {weight}")
    return weight


def candidate(state):
    """{color, version, epoch} of the colour under test, None when there is none."""
    active = state["active"]
    standby = other(active) if active else None
    if not standby or not state["colors"].get(standby) or state["phase"] not in ("deployed", "canary"):
        return None
    return {"color": standby, "version": str(state["colors"][standby]["version"]),
            "epoch": str((state.get("last_change") or {}).get("time") or "")}


def transition(state, action, version=None, image=None, weight=None, expect=None, max_concurrency=1):
    """The next state for an action, or Refused. Pure: no I/O, no time stamps."""
    if action == "rollback" and expect is not None:
        wanted = {key: str(expect.get(key) or "") for key in ("color", "version", "epoch")}
        if candidate(state) != wanted:
            raise Refused(f"the rollback was asked for {wanted['color']} {wanted['version']} of epoch "
                          f"{wanted['epoch']}, which is no longer the candidate")
    new = json.loads(json.dumps(state))
    active = state["active"]
    standby = other(active) if active else None
    has_standby = bool(active and state["colors"].get(standby))
    if action == "deploy":
        if not version or not image:
            raise Refused("deploy needs a version and its image")
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise Refused(f"max_concurrency must be a whole number of at least 1, got {max_concurrency!r}")
        target = standby or "blue"
        new["colors"][target] = {"version": str(version), "image": image, "max_concurrency": max_concurrency}
        if active is None:
            new.update(active=target, candidate_weight=0, phase="stable")
        elif state["colors"].get(target) != new["colors"][target] or state["phase"] not in ("deployed", "canary"):
            new.update(candidate_weight=0, phase="deployed")
    elif action == "canary":
        weight = parse_weight(weight)
        if not has_standby:
            raise Refused("no candidate is deployed: run deploy with a version first")
        if state["phase"] == "promoted":
            raise Refused(f"the standby colour {standby} holds the previous version "
                          f"{state['colors'][standby]['version']}: deploy a new version first")
        if weight != state["candidate_weight"] or state["phase"] not in ("deployed", "canary"):
            new.update(candidate_weight=weight, phase="canary" if weight else "deployed")
    elif action == "promote":
        if state["phase"] == "promoted":
            return new
        if not has_standby or state["phase"] not in ("deployed", "canary"):
            raise Refused("no candidate to promote: deploy a version (and canary it) first")
        new.update(active=standby, candidate_weight=0, phase="promoted")
    elif action == "rollback":
        if not has_standby:
            raise Refused("nothing to roll back to: only one colour has ever been deployed")
        if state["phase"] == "promoted":
            new.update(active=standby, candidate_weight=0, phase="rolled_back")
        elif state["phase"] in ("deployed", "canary"):
            new.update(candidate_weight=0, phase="rolled_back")
    return new


def load(path):
    try:
        with open(path) as handle:
            state = json.load(handle)
    except FileNotFoundError:
        return json.loads(json.dumps(EMPTY))
    for key, value in EMPTY.items():
        state.setdefault(key, value)
    return state


def save(path, state):
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".release.")
    with os.fdopen(fd, "w") as handle:
        json.dump(state, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)


def colours(state):
    active = state["active"]
    standby = other(active) if active else None
    return {"active": active, "standby": standby if standby and state["colors"].get(standby) else None}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            action=dict(type="str", required=True,
                        choices=["read", "deploy", "canary", "promote", "rollback"]),
            version=dict(type="str"), image=dict(type="str"), weight=dict(type="raw"),
            max_concurrency=dict(type="int", default=1),
            operator=dict(type="str", default="unknown"), reason=dict(type="str", default=""),
            time=dict(type="str"), expect=dict(type="dict"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        before = load(p["path"])
    except (OSError, ValueError) as exc:
        module.fail_json(msg=f"cannot read the release state {p['path']}: {exc}")
    if p["action"] == "read":
        module.exit_json(changed=False, state=before, before=before, colors=colours(before))
    try:
        after = transition(before, p["action"], p["version"], p["image"], p["weight"], p["expect"],
                           p["max_concurrency"])
    except Refused as exc:
        module.fail_json(msg=f"refused: {exc}", refused=True, state=before, before=before)
    changed = after != before
    if changed:
        after["last_change"] = {
            "time": p["time"] or datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "operator": p["operator"], "reason": p["reason"], "action": p["action"],
        }
        if not module.check_mode:
            save(p["path"], after)
    module.exit_json(changed=changed, state=after, before=before, colors=colours(after))


if __name__ == "__main__":
    main()
