"""Filters shared by the roles and playbooks: one definition of the server list and of how a
release state becomes HAProxy weights, so the config template, the runtime API changes,
status and monitoring can never disagree."""
from __future__ import annotations

import re

COLORS = ("blue", "green")
HAPROXY_MAX_WEIGHT = 256


def tts_servers(gpu_hosts, hostvars, color=None):
    """Every TTS instance of the fleet: one per GPU (``tts_stack_gpus``) per host per colour.

    Ports interleave so both colours fit on one host: blue 6006, 6008, ...; green 6007, 6009, ...
    """
    servers = []
    for host in gpu_hosts:
        hv = hostvars[host]
        ports = hv.get("tts_stack_ports", {"blue": 6006, "green": 6007})
        gpus = hv.get("tts_stack_gpus", [0])
        for colour in COLORS if color is None else (color,):
            for index, gpu in enumerate(gpus):
                servers.append({
                    "name": f"{colour}-{host}-{index}",
                    "color": colour,
                    "host": host,
                    "address": hv.get("tts_stack_address", hv.get("ansible_host", host)),
                    "port": int(ports[colour]) + 2 * index,
                    "instance": index,
                    "gpu": gpu,
                    "container": f"tts-{colour}-{index}",
                })
    return servers


def tts_weights(state, servers, up=None):
    """HAProxy weight of each server for a release state: {server name: weight}.

    The candidate (non-active colour) gets ``candidate_weight`` percent, split evenly among
    its servers that are up (all of them when none is known to be up); 0 parks a server.
    """
    active = (state or {}).get("active")
    if not active:
        return {s["name"]: 0 for s in servers}
    share = {c: 0 for c in COLORS}
    share[active] = 100 - int(state.get("candidate_weight", 0))
    standby = [c for c in COLORS if c != active][0]
    if state.get("colors", {}).get(standby):
        share[standby] = int(state.get("candidate_weight", 0))
    else:
        share[active] = 100
    weights = {}
    for colour in COLORS:
        members = [s["name"] for s in servers if s["color"] == colour]
        live = [n for n in members if up is None or n in up] or members
        for name in members:
            raw = share[colour] * HAPROXY_MAX_WEIGHT / 100 / len(live)
            weights[name] = max(1, round(raw)) if share[colour] and name in live else 0
    return weights


# The alerts that roll a candidate back (labelled action="rollback" by the monitoring rules).
ROLLBACK_ALERTS = ("TTSCandidateErrorRatioHigh", "TTSCandidateLatencyHigh", "TTSCandidateDown",
                   "TTSCandidateMemoryHigh")


def _matches(matcher, value):
    """Whether an Alertmanager matcher ({name, value, isRegex, isEqual}) accepts the value."""
    expected = str(matcher.get("value", ""))
    if matcher.get("isRegex"):
        try:
            hit = re.fullmatch(expected, value) is not None
        except re.error:
            hit = False
    else:
        hit = expected == value
    return hit if matcher.get("isEqual", True) else not hit


def rollback_silences(silences):
    """The active Alertmanager silences that mute some automatic rollback: an ``action``
    matcher that accepts ``rollback``, an ``alertname`` matcher that accepts a rollback
    alert, or neither (it silences by other labels, such as the colour)."""
    muting = []
    for silence in silences or []:
        if (silence.get("status") or {}).get("state") != "active":
            continue
        matchers = silence.get("matchers") or []
        by_name = {m.get("name"): m for m in matchers}
        if "action" in by_name and not _matches(by_name["action"], "rollback"):
            continue
        if "alertname" in by_name and not any(_matches(by_name["alertname"], a) for a in ROLLBACK_ALERTS):
            continue
        muting.append({
            "id": silence.get("id"), "created_by": silence.get("createdBy"), "comment": silence.get("comment"),
            "ends_at": silence.get("endsAt"),
            "matchers": ", ".join(f"{m.get('name')}{'' if m.get('isEqual', True) else '!'}{'=~' if m.get('isRegex') else '='}"
                                  f"{m.get('value')}" for m in matchers),
        })
    return muting


def tts_status(state, haproxy, version_results, silences=None):
    """One report from the release state, HAProxy's view and each instance's /version.

    ``haproxy`` is the haproxy_info result, ``version_results`` the looped uri results
    (each carries its server as ``item``), ``silences`` Alertmanager's (None when it could
    not be asked). Every disagreement is listed in words.
    """
    servers = [r["item"] for r in version_results]
    seen = {s["name"]: s for s in haproxy.get("servers", [])}
    up = [n for n, s in seen.items() if s["status"] not in ("DOWN", "MAINT", "NOLB")]
    expected = tts_weights(state, servers, up)
    active = state.get("active")
    problems = []
    if not haproxy.get("running"):
        problems.append("HAProxy is not running (its runtime API does not answer)")
    report = []
    for result in version_results:
        server = result["item"]
        name, colour = server["name"], server["color"]
        recorded = (state.get("colors") or {}).get(colour) or {}
        answer = result.get("json") if result.get("status") == 200 else None
        view = seen.get(name, {})
        row = {
            "name": name, "color": colour, "address": f"{server['address']}:{server['port']}",
            "expected_weight": expected.get(name, 0),
            "haproxy_status": view.get("status"), "haproxy_weight": view.get("weight"),
            "sessions": view.get("sessions"),
            "version": answer.get("version") if answer else None,
            "reachable": answer is not None,
        }
        report.append(row)
        if recorded and not answer:
            problems.append(f"{name} does not answer /version (release state: {colour} runs {recorded['version']})")
        elif answer and recorded and str(answer.get("version")) != str(recorded["version"]):
            problems.append(f"{name} reports version {answer.get('version')}, release state says {recorded['version']}")
        if haproxy.get("running") and view:
            parked = view["status"] == "MAINT" or view["weight"] == 0
            if expected.get(name, 0) == 0 and not parked:
                problems.append(f"{name} takes traffic in HAProxy (weight {view['weight']}), release state parks it")
            elif expected.get(name, 0) > 0 and view["status"] == "MAINT":
                problems.append(f"{name} is parked in HAProxy, release state gives it weight {expected[name]}")
            elif expected.get(name, 0) > 0 and view["weight"] != expected[name]:
                problems.append(f"{name} has HAProxy weight {view['weight']}, release state expects {expected[name]}")
        elif haproxy.get("running"):
            problems.append(f"{name} is missing from HAProxy's backend")
    weight = int(state.get("candidate_weight") or 0)
    standby = next((c for c in COLORS if c != active), None) if active else None
    colours = {}
    for colour in COLORS:
        recorded = (state.get("colors") or {}).get(colour)
        role = "active" if colour == active else ("candidate" if recorded and state.get("phase") in ("deployed", "canary")
                                                   else ("previous" if recorded else None))
        share = (100 - weight if recorded and standby and state["colors"].get(standby) else 100) if colour == active else (
            weight if colour == standby and recorded else 0)
        colours[colour] = {**(recorded or {}), "role": role, "share": share}
    return {
        "active": active, "phase": state.get("phase"), "candidate_weight": weight,
        "last_change": state.get("last_change"), "colors": colours, "servers": report,
        "haproxy_running": bool(haproxy.get("running")),
        "disagreements": problems, "consistent": not problems,
        # None: Alertmanager did not answer, so whether the automation is muted is unknown.
        "rollback_silences": None if silences is None else rollback_silences(silences),
    }


def tts_prunable_images(images, containers, repository, keep, protect=(), sources=None):
    """Images of ``repository`` a host can drop: {"tags": [...], "stages": [ids]}.

    ``images`` and ``containers`` are docker_host_info's verbose lists. Kept: the ``keep``
    newest tagged images, any image a container (running or stopped) was created from, and
    the references in ``protect`` (the images the release state records, which site.yml
    recreates colours from). Install-stage images (label ttsctl.stage=install) are build
    cache for other versions of the same sources: only the newest one of ``sources`` is kept.
    """
    prefix = repository + ":"
    used = {ref for c in containers for ref in (c.get("ImageID"), c.get("Image")) if ref}
    protect = set(protect)
    tagged = [i for i in images if any(t.startswith(prefix) for t in i.get("RepoTags") or [])]
    tagged.sort(key=lambda i: i.get("Created", 0), reverse=True)
    tags = []
    for image in tagged[max(int(keep), 0):]:
        mine = [t for t in image["RepoTags"] if t.startswith(prefix)]
        if image["Id"] in used or used & set(image["RepoTags"]) or protect & set(mine):
            continue
        tags += mine
    stages = sorted((i for i in images
                     if (i.get("Labels") or {}).get("ttsctl.stage") == "install"
                     and i["Labels"].get("ttsctl.repository") == repository),
                    key=lambda i: i.get("Created", 0), reverse=True)
    current = next((i["Id"] for i in stages if i["Labels"].get("ttsctl.sources") == sources), None)
    stale = [i["Id"] for i in stages if i["Id"] not in (current, *used)]
    return {"tags": sorted(tags), "stages": sorted(stale)}


# Values shipped in examples and docs, or guessed first: never accepted as a secret.
KNOWN_SECRETS = frozenset({"change-me", "change-me-and-vault-me", "changeme", "admin", "password", "secret",
                           "molecule", "token"})
SECRET_MIN_LENGTH = 32


def tts_weak_secret(value, name):
    """Why ``value`` is no secret for ``name`` (empty when it will do): every role that takes a
    password or token asks this before changing anything."""
    text = "" if value is None else str(value)
    if not text.strip():
        return f"{name} is not set: give it a random value of at least {SECRET_MIN_LENGTH} characters (vaulted)"
    if text.strip().lower() in KNOWN_SECRETS:
        return f"{name} is a published default ({text.strip()!r}): set a random value (vaulted)"
    if len(text.encode()) < SECRET_MIN_LENGTH:
        return f"{name} is shorter than {SECRET_MIN_LENGTH} bytes: set a random value (vaulted)"
    return ""


class FilterModule:
    def filters(self):
        return {"tts_servers": tts_servers, "tts_weights": tts_weights, "tts_status": tts_status,
                "tts_prunable_images": tts_prunable_images, "tts_weak_secret": tts_weak_secret}
