"""Filters shared by the roles and playbooks: one definition of the server list and of how a
release state becomes HAProxy's split and slot limits, so the config template, the runtime
API changes and status can never disagree."""
from __future__ import annotations

import re

COLORS = ("blue", "green")


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
                    "workers": int(hv.get("tts_stack_workers", 1)),
                })
    return servers


def tts_edge_plan(state, servers):
    """What HAProxy should do for a release state: {split: {stable, candidate, weight}, maxconn}.

    ``candidate`` is the colour under test, or the stable colour when none is (a rolled-back
    or promoted-away colour is never reached, even by forced routing); ``weight`` is its share
    of new listeners. ``maxconn`` gives each speech server (``tts_<colour>/<name>``) its slots:
    its workers times the requests one worker of its colour's version serves at once, as the
    release state recorded it at deploy (1 when not recorded: never more than it can take).
    """
    state = state or {}
    recorded = state.get("colors") or {}
    stable = state.get("active") or "blue"
    standby = COLORS[1 - COLORS.index(stable)]
    under_test = bool(state.get("active") and recorded.get(standby) and state.get("phase") in ("deployed", "canary"))
    return {
        "split": {"stable": stable, "candidate": standby if under_test else stable,
                  "weight": int(state.get("candidate_weight") or 0) if under_test else 0},
        "maxconn": {f"tts_{s['color']}/{s['name']}":
                    int(s.get("workers", 1)) * int((recorded.get(s["color"]) or {}).get("max_concurrency") or 1)
                    for s in servers},
    }


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

    ``haproxy`` is the haproxy_info result (servers and split), ``version_results`` the looped
    uri results (each carries its server as ``item``), ``silences`` Alertmanager's (None when
    it could not be asked). Every disagreement is listed in words.
    """
    servers = [r["item"] for r in version_results]
    plan = tts_edge_plan(state, servers)
    split = plan["split"]
    running = bool(haproxy.get("running"))
    seen = {(s["backend"], s["name"]): s for s in haproxy.get("servers", [])}
    problems = []
    if not running:
        problems.append("HAProxy is not running (its runtime API does not answer)")
    else:
        live = haproxy.get("split") or {}
        for key in ("stable", "candidate", "weight"):
            if str(live.get(key)) != str(split[key]):
                problems.append(f"HAProxy's split has {key} {live.get(key, 'missing')}, the release state gives {split[key]}")
    report = []
    for result in version_results:
        server = result["item"]
        name, colour = server["name"], server["color"]
        recorded = (state.get("colors") or {}).get(colour) or {}
        answer = result.get("json") if result.get("status") == 200 else None
        view = seen.get((f"tts_{colour}", name), {})
        slots = plan["maxconn"][f"tts_{colour}/{name}"]
        row = {
            "name": name, "color": colour, "address": f"{server['address']}:{server['port']}",
            "version": answer.get("version") if answer else None, "reachable": answer is not None,
            "capacity": answer.get("capacity") if answer else None, "expected_maxconn": slots,
            "haproxy_status": view.get("status"), "maxconn": view.get("maxconn"),
            "sessions": view.get("sessions"), "queued": view.get("queued"),
        }
        report.append(row)
        if recorded and not answer:
            problems.append(f"{name} does not answer /version (release state: {colour} runs {recorded['version']})")
        elif answer and recorded and str(answer.get("version")) != str(recorded["version"]):
            problems.append(f"{name} reports version {answer.get('version')}, release state says {recorded['version']}")
        if recorded and answer and answer.get("capacity") not in (None, slots):
            problems.append(f"{name} serves {answer['capacity']} speech requests at once, "
                            f"the release state gives it {slots} slots at the edge")
        if running and not view:
            problems.append(f"{name} is missing from HAProxy's backend tts_{colour}")
        elif running and view.get("maxconn") != slots:
            problems.append(f"{name} has {view.get('maxconn')} slots in HAProxy, the release state gives {slots}")
    colours = {}
    for colour in COLORS:
        recorded = (state.get("colors") or {}).get(colour)
        role = ("active" if colour == state.get("active") else
                "candidate" if colour == split["candidate"] != split["stable"] else "previous" if recorded else None)
        share = 100 - split["weight"] if colour == split["stable"] else split["weight"] if role == "candidate" else 0
        colours[colour] = {**(recorded or {}), "role": role, "share": share if state.get("active") else 0}
    return {
        "active": state.get("active"), "phase": state.get("phase"), "candidate_weight": split["weight"],
        "last_change": state.get("last_change"), "colors": colours, "servers": report,
        "haproxy_running": running, "edge": haproxy.get("split") or {},
        "disagreements": problems, "consistent": not problems,
        # None: Alertmanager did not answer, so whether the automation is muted is unknown.
        "rollback_silences": None if silences is None else rollback_silences(silences),
    }


def tts_balancers(reports):
    """One report for the whole edge from each balancer's tts_status report, ``{host: report}``.

    The release state and the instances are the same for all; each balancer has its own
    HAProxy. The first balancer's report is the base (its servers table); ``balancers`` lists
    each one's split and verdict, and with more than one, each disagreement names its
    balancer. Consistent only when every balancer is.
    """
    if not any(reports.values()):
        raise ValueError("no balancer reported")
    unanswered = {"haproxy_running": False, "edge": {}, "consistent": False,
                  "disagreements": ["this balancer could not be asked (unreachable, or its checks failed)"]}
    reports = {name: report or unanswered for name, report in reports.items()}
    names = sorted(reports, key=lambda name: reports[name] is unanswered)
    several = len(names) > 1
    merged = dict(reports[names[0]])
    merged["balancers"] = [{"name": name, "haproxy_running": reports[name]["haproxy_running"],
                            "edge": reports[name]["edge"], "consistent": reports[name]["consistent"],
                            "disagreements": reports[name]["disagreements"]} for name in names]
    merged["disagreements"] = [f"{name}: {problem}" if several else problem
                               for name in names for problem in reports[name]["disagreements"]]
    merged["consistent"] = not merged["disagreements"]
    merged["haproxy_running"] = all(reports[name]["haproxy_running"] for name in names)
    return merged


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
        return {"tts_servers": tts_servers, "tts_edge_plan": tts_edge_plan, "tts_status": tts_status,
                "tts_balancers": tts_balancers, "tts_prunable_images": tts_prunable_images, "tts_weak_secret": tts_weak_secret}
