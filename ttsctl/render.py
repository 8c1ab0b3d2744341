"""What ttsctl shows: the status report, the history and the end of a run, as rich renderables.
Pure: data in, renderables out, so tests can read them as text."""
from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ttsctl import clock, records

COLOUR_STYLE = {"blue": "bold blue", "green": "bold green"}
RESULT_STYLE = {"ok": "green", "failed": "bold red", "refused": "yellow", "running": "cyan",
                "aborted": "magenta", "died": "bold magenta", "unfinished": "bold magenta"}
HAPROXY_STYLE = {"UP": "green", "DOWN": "bold red", "MAINT": "dim", "DRAIN": "yellow", "NOLB": "yellow"}


def colour(name: str | None) -> Text:
    return Text(name or "-", style=COLOUR_STYLE.get(name or "", "dim"))


# -- status ----------------------------------------------------------------------------------
def status(report: dict) -> Group:
    """The status report of playbooks/status.yml as a headline, two tables and the verdict."""
    parts = [_headline(report), _colours_table(report), _servers_table(report)]
    if len(report.get("balancers") or []) > 1:
        parts.append(_balancers_table(report))
    silences = report.get("rollback_silences")
    if silences is None and "rollback_silences" in report:
        parts.append(Text("? Alertmanager did not answer: whether automatic rollback is silenced is unknown",
                          style="yellow"))
    for silence in silences or []:
        parts.append(Text(f"⚠ automatic rollback is silenced until {silence.get('ends_at')} by "
                          f"{silence.get('created_by')} ({silence.get('matchers')}): {silence.get('comment')}",
                          style="bold yellow"))
    problems = report.get("disagreements") or []
    if problems:
        verdict = Text("Disagreements:\n", style="bold red")
        for problem in problems:
            verdict.append(f"  ✗ {problem}\n", style="red")
        verdict.rstrip()
    else:
        verdict = Text("✓ release state, HAProxy and every instance agree", style="green")
    parts.append(verdict)
    return Group(*parts)


def _headline(report: dict) -> Text:
    line = Text("Release  ", style="bold")
    line.append("phase ")
    line.append(str(report.get("phase") or "?"), style="bold")
    line.append("  active ")
    line.append_text(colour(report.get("active")))
    line.append(f"  candidate weight {report.get('candidate_weight', 0)} %")
    edge = report.get("edge") or {}
    if edge and len(report.get("balancers") or []) <= 1:
        line.append(f"  edge {edge.get('stable')}/{edge.get('candidate')} at {edge.get('weight')} %", style="dim")
    if not report.get("haproxy_running"):
        line.append("  HAProxy not running", style="bold red")
    change = report.get("last_change")
    line.append("\nLast change  ", style="bold")
    if change:
        line.append(f"{change.get('time')} ({clock.age(change.get('time'))} ago)  ")
        line.append(f"{change.get('action')} by {change.get('operator')}")
        if change.get("reason"):
            line.append(f": {change['reason']}", style="italic")
    else:
        line.append("none", style="dim")
    return line


def _colours_table(report: dict) -> Table:
    table = Table(title="Colours", title_justify="left", expand=False)
    for name in ("Colour", "Role", "Version", "Share", "Image"):
        table.add_column(name, justify="right" if name == "Share" else "left")
    for name, info in (report.get("colors") or {}).items():
        deployed = bool(info.get("version"))
        role = info.get("role") or "-"
        table.add_row(colour(name),
                      Text(role, style="bold" if role == "active" else ("yellow" if role == "candidate" else "dim")),
                      Text(str(info.get("version") or "not deployed"), style=None if deployed else "dim"),
                      Text(f"{info.get('share', 0)} %", style="bold" if info.get("share") else "dim"),
                      Text(str(info.get("image") or ""), style="dim"))
    return table


def _balancers_table(report: dict) -> Table:
    """Each load balancer's split: with several, every one must carry the release state's."""
    table = Table(title="Balancers", title_justify="left", expand=False)
    for name in ("Balancer", "HAProxy", "Split", "Agrees"):
        table.add_column(name)
    for balancer in report["balancers"]:
        edge = balancer.get("edge") or {}
        split = Text()
        if edge:
            split.append_text(colour(edge.get("stable")))
            split.append(" / ")
            split.append_text(colour(edge.get("candidate")))
            split.append(f" at {edge.get('weight')} %")
        else:
            split.append("none", style="bold red")
        table.add_row(balancer.get("name", "?"),
                      Text("running", style="green") if balancer.get("haproxy_running")
                      else Text("not running", style="bold red"),
                      split,
                      Text("yes", style="green") if balancer.get("consistent") else Text("no", style="bold red"))
    return table


def _servers_table(report: dict) -> Table:
    table = Table(title="Servers", title_justify="left", expand=False)
    for name, justify in (("Server", "left"), ("Address", "left"), ("/version", "left"),
                          ("HAProxy", "left"), ("Slots", "right"), ("Expected", "right"),
                          ("Sessions", "right"), ("Queued", "right")):
        table.add_column(name, justify=justify)
    recorded = {name for name, info in (report.get("colors") or {}).items() if info.get("version")}
    for server in report.get("servers") or []:
        if server.get("reachable"):
            version = Text(str(server.get("version")), style="green")
        else:
            version = Text("no answer", style="bold red" if server.get("color") in recorded else "dim")
        state = server.get("haproxy_status") or "missing"
        table.add_row(
            Text(server.get("name", "?"), style=COLOUR_STYLE.get(server.get("color"), "")),
            server.get("address", ""), version,
            Text(state, style=HAPROXY_STYLE.get(state.split()[0], "bold red")),
            _number(server.get("maxconn")), _number(server.get("expected_maxconn")),
            _number(server.get("sessions")), _number(server.get("queued")))
    return table


def _number(value) -> str:
    return "-" if value is None else str(value)


# -- history ---------------------------------------------------------------------------------
def shown_result(record: dict, alive) -> str:
    """A running record whose process is gone did not finish, whatever the row still says."""
    if record.get("result") == "running" and not alive(record):
        return "unfinished"
    return record.get("result") or "?"


def history(rows: list[dict], alive=lambda record: True) -> Table:
    table = Table(title="History (newest first)", title_justify="left")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("Started (UTC)", no_wrap=True)
    table.add_column("Took", justify="right", no_wrap=True)
    table.add_column("Operator", no_wrap=True)
    table.add_column("Change", no_wrap=True)
    table.add_column("Result", no_wrap=True)
    table.add_column("Reason / outcome", ratio=1, min_width=20)
    for row in rows:
        result = shown_result(row, alive)
        took = clock.seconds_between(row.get("started_at"), row.get("finished_at"))
        change = Text(row.get("action") or "", style="bold")
        for key, value in (row.get("parameters") or {}).items():
            change.append(f" {key}={value}")
        if row.get("source") not in (None, "ttsctl"):
            change.append(f"\nvia {row['source']}", style="dim")
        result_text = Text(result, style=RESULT_STYLE.get(result, ""))
        if row.get("changed") is False and result == "ok":
            result_text.append("\n(no change)", style="dim")
        notes = Text(row.get("reason") or "", style="italic")
        extra = row.get("message") if result != "ok" else None
        if result == "unfinished":
            extra = f"did not finish: pid {row.get('pid')} is gone (the next change takes its lock over)"
        if extra:
            notes.append(("\n" if notes.plain else "") + str(extra), style=RESULT_STYLE.get(result, "dim"))
        takeover = row.get("lock_takeover")
        if takeover:
            notes.append(("\n" if notes.plain else "") +
                         f"took the lock over from dead pid {takeover.get('pid')} "
                         f"({takeover.get('action')} by {takeover.get('operator')}"
                         + (f", run #{takeover['record_id']}" if takeover.get("record_id") else "") + ")",
                         style="magenta")
        started = (row.get("started_at") or "").replace("T", " ")[:19]
        who = Text(row.get("operator") or "")
        if row.get("os_user") and row["os_user"] != row.get("operator"):
            who.append(f"\nas {row['os_user']}", style="dim")  # the account, beside the name declared
        table.add_row(str(row.get("id")), started, "-" if took is None else f"{took:.1f} s",
                      who, change, result_text, notes)
    return table


def verification(checked, path) -> Text:
    """What ``history --verify`` found: intact with the head digest to copy, or each problem."""
    if checked.intact:
        text = Text(f"✓ audit log intact: {checked.records} records, {checked.entries} chain entries", style="green")
        if checked.unchained:
            text.append(f" ({checked.unchained} records from before the chain began are not covered)", style="dim")
        text.append(f"\n  {path}\n  head {checked.head}  (copy it elsewhere: a later check must still find it)")
        return text
    text = Text(f"✗ audit log {path} was altered: {len(checked.problems)} problems", style="bold red")
    for problem in checked.problems:
        text.append(f"\n  - {problem}", style="red")
    return text


# -- end of a run ----------------------------------------------------------------------------
def release_line(state: dict | None) -> Text:
    """One line of a release state: who serves what share, and the phase."""
    if not state or not state.get("active"):
        return Text("release: nothing deployed yet", style="dim")
    active = state["active"]
    weight = int(state.get("candidate_weight") or 0)
    colours = state.get("colors") or {}
    standby = next((c for c in colours if c != active), None)
    line = Text("release: ")
    line.append_text(colour(active))
    line.append(f" active {colours.get(active, {}).get('version')} at {100 - weight if colours.get(standby) else 100} %")
    if standby and colours.get(standby):
        role = "candidate" if state.get("phase") in ("deployed", "canary") else "previous"
        line.append(" · ")
        line.append_text(colour(standby))
        line.append(f" {role} {colours[standby].get('version')} at {weight if role == 'candidate' else 0} %")
    line.append(f" · phase {state.get('phase')}")
    return line


def state_changes(before: dict | None, after: dict | None) -> list[str]:
    """The differences between two release states, in words."""
    if not before or not after:
        return []
    changes = []
    if before.get("active") != after.get("active"):
        changes.append(f"active colour {before.get('active')} → {after.get('active')}")
    for name in sorted(set(before.get("colors") or {}) | set(after.get("colors") or {})):
        old = ((before.get("colors") or {}).get(name) or {}).get("version")
        new = ((after.get("colors") or {}).get(name) or {}).get("version")
        if old != new:
            changes.append(f"{name} version {old or 'none'} → {new or 'none'}")
    if before.get("candidate_weight") != after.get("candidate_weight"):
        changes.append(f"candidate weight {before.get('candidate_weight')} → {after.get('candidate_weight')} %")
    if before.get("phase") != after.get("phase"):
        changes.append(f"phase {before.get('phase')} → {after.get('phase')}")
    return changes


def summary(action: str, result: str, *, message: str | None, seconds: float, check: bool,
            recorder: records.RunRecorder, record: dict | None, artifact_dir: str | None) -> Group:
    """The last lines of a change: verdict, what changed (or would), where it is recorded."""
    style = RESULT_STYLE.get(result, "")
    mark = "✓" if result == "ok" else "✗"
    head = Text(f"{mark} {action}", style=style)
    if check:
        head.append(" (dry run)", style="bold")
    head.append({"ok": " done", "refused": " refused", "failed": " failed"}.get(result, f" {result}"), style=style)
    head.append(f" in {seconds:.1f} s", style="dim")
    if recorder.failed_hosts and result == "failed":
        head.append(f" on {', '.join(recorder.failed_hosts)}", style=style)
    lines = [head]
    if message:
        lines.append(Text(f"  {message}", style=style))
    if result == "refused" and "nothing was changed" not in (message or ""):
        lines.append(Text("  nothing was changed", style=style))
    changes = state_changes(recorder.state_before, recorder.state_after)
    if result == "ok":
        if check:
            lines.append(Text("  would change: " + ("; ".join(changes) or "nothing in the release state")
                              + " (nothing was changed)", style="bold"))
        elif changes:
            lines.append(Text("  changed: " + "; ".join(changes)))
        else:
            lines.append(Text("  the release state already said so: nothing to change", style="dim"))
    if recorder.state_after and not check:
        lines.append(Text("  ").append_text(release_line(recorder.state_after)))
    where = []
    if record:
        where.append(f"audit #{record['id']}")
    if artifact_dir:
        where.append(f"artifacts {artifact_dir}")
    if where:
        lines.append(Text("  " + " · ".join(where), style="dim"))
    return Group(*lines)
