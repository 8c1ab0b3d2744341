"""What the operator reads: the status table, the history and the end of a run."""
from rich.console import Console
from rich.text import Text

from ttsctl import records, render

REPORT = {
    "active": "blue", "phase": "canary", "candidate_weight": 5, "haproxy_running": True,
    "last_change": {"time": "2025-11-26T06:00:00Z", "operator": "alice", "action": "canary", "reason": "try"},
    "colors": {"blue": {"version": "1.5", "image": "img:1.5", "role": "active", "share": 95},
               "green": {"version": "2.0", "image": "img:2.0", "role": "candidate", "share": 5}},
    "servers": [
        {"name": "blue-localhost-0", "color": "blue", "address": "127.0.0.1:6006", "version": "1.5",
         "reachable": True, "haproxy_status": "UP", "maxconn": 243, "expected_maxconn": 243, "sessions": 0,
         "queued": 0},
        {"name": "green-localhost-0", "color": "green", "address": "127.0.0.1:6007", "version": None,
         "reachable": False, "haproxy_status": "DOWN", "maxconn": 13, "expected_maxconn": 13, "sessions": 0,
         "queued": 0},
    ],
    "disagreements": ["green-localhost-0 does not answer /version (release state: green runs 2.0)"],
    "consistent": False,
}


def text_of(renderable, width=140):
    console = Console(record=True, width=width, color_system=None)
    console.print(renderable)
    return console.export_text()


def styles_of(text: Text, needle: str) -> set[str]:
    start = text.plain.index(needle)
    found = {str(text.style)} if text.style else set()
    return found | {str(span.style) for span in text.spans if span.start <= start < span.end}


def test_status_shows_colours_versions_roles_shares_and_every_server():
    shown = text_of(render.status(REPORT))
    for expected in ("phase canary", "active blue", "candidate weight 5 %", "alice", "try",
                     "1.5", "2.0", "candidate", "95 %", "5 %", "blue-localhost-0", "127.0.0.1:6007",
                     "UP", "DOWN", "243", "no answer"):
        assert expected in shown, expected


def test_status_lists_disagreements_in_red():
    verdict = render.status(REPORT).renderables[-1]
    assert "does not answer /version" in verdict.plain
    assert "red" in styles_of(verdict, "green-localhost-0 does not answer")


def test_status_says_so_when_everything_agrees():
    agreed = {**REPORT, "disagreements": [], "consistent": True}
    verdict = render.status(agreed).renderables[-1]
    assert "agree" in verdict.plain and "green" in str(verdict.style)


def test_status_shows_each_balancers_split_when_there_are_several():
    edge = {"stable": "blue", "candidate": "green", "weight": "5"}
    report = {**REPORT, "edge": edge, "balancers": [
        {"name": "lb1", "haproxy_running": True, "edge": edge, "consistent": True, "disagreements": []},
        {"name": "lb2", "haproxy_running": False, "edge": {}, "consistent": False, "disagreements": ["x"]}]}
    shown = text_of(render.status(report))
    assert "Balancers" in shown and "edge blue/green" not in shown
    lines = [line for line in shown.splitlines() if "lb1" in line or "lb2" in line]
    assert "blue / green at 5 %" in lines[0] and "yes" in lines[0]
    assert "not running" in lines[1] and "none" in lines[1] and "no" in lines[1]
    single = text_of(render.status({**report, "balancers": report["balancers"][:1]}))
    assert "Balancers" not in single and "edge blue/green at 5 %" in single


def test_status_of_a_fresh_site_shows_nothing_deployed():
    empty = {"active": None, "phase": "empty", "candidate_weight": 0, "last_change": None, "haproxy_running": False,
             "colors": {"blue": {"role": None, "share": 0}, "green": {"role": None, "share": 0}},
             "servers": [], "disagreements": ["HAProxy is not running"], "consistent": False}
    shown = text_of(render.status(empty))
    assert "not deployed" in shown and "HAProxy not running" in shown and "Last change  none" in shown


def record(id, result="ok", **extra):
    row = {"id": id, "started_at": "2025-11-26T06:00:00.000Z", "finished_at": "2025-11-26T06:00:03.500Z",
           "operator": "alice", "action": "canary", "parameters": {"weight": "5"}, "reason": "try it",
           "result": result, "message": None, "changed": True, "source": "ttsctl", "pid": 42,
           "lock_takeover": None}
    row.update(extra)
    return row


def test_history_keeps_the_order_given_and_shows_who_what_why_and_the_result():
    shown = text_of(render.history([record(2, action="promote", parameters={}), record(1)]))
    assert shown.index("promote") < shown.index("canary weight=5")
    assert "alice" in shown and "try it" in shown and "3.5 s" in shown and "2025-11-26 06:00:00" in shown


def test_history_says_a_running_record_whose_process_is_gone_did_not_finish():
    rows = [record(3, result="running", finished_at=None, pid=999)]
    shown = text_of(render.history(rows, alive=lambda r: False))
    assert "unfinished" in shown and "pid 999 is gone" in shown
    assert "running" in text_of(render.history(rows, alive=lambda r: True))


def test_history_shows_refusals_raw_runs_and_lock_takeovers():
    rows = [record(5, lock_takeover={"pid": 77, "action": "canary", "operator": "bob", "record_id": 4}),
            record(4, result="died", finished_at=None, message="did not finish: its process was found dead"),
            record(3, result="refused", message="weight must be ...", source="ansible-playbook", changed=False)]
    shown = text_of(render.history(rows), width=220)
    assert "took the lock over from dead pid 77" in shown and "run #4" in shown
    assert "died" in shown and "did not finish" in shown
    assert "refused" in shown and "weight must be" in shown and "via ansible-playbook" in shown


def recorder(before=None, after=None, failures=()):
    run = records.RunRecorder(state_before=before, state_after=after, finished=True)
    run.failures.extend(failures)
    return run


DEPLOYED = {"active": "blue", "candidate_weight": 0, "phase": "deployed",
            "colors": {"blue": {"version": "1.5"}, "green": {"version": "2.0"}}}
CANARY = {**DEPLOYED, "candidate_weight": 5, "phase": "canary"}


def test_state_changes_are_told_in_words():
    assert render.state_changes(DEPLOYED, CANARY) == ["candidate weight 0 → 5 %", "phase deployed → canary"]
    promoted = {**CANARY, "active": "green", "candidate_weight": 0, "phase": "promoted"}
    assert "active colour blue → green" in render.state_changes(CANARY, promoted)
    assert render.state_changes(None, CANARY) == []


def test_the_summary_of_a_change_says_what_changed_and_where_it_is_recorded():
    shown = text_of(render.summary("canary", "ok", message=None, seconds=3.2, check=False,
                                   recorder=recorder(DEPLOYED, CANARY), record={"id": 12}, artifact_dir="/a/b"))
    assert "✓ canary done" in shown and "candidate weight 0 → 5 %" in shown
    assert "green candidate 2.0 at 5 %" in shown and "audit #12" in shown and "/a/b" in shown


def test_the_summary_of_a_dry_run_says_what_would_change_and_that_nothing_did():
    shown = text_of(render.summary("canary", "ok", message=None, seconds=2.0, check=True,
                                   recorder=recorder(DEPLOYED, CANARY), record=None, artifact_dir=None))
    assert "dry run" in shown and "would change: candidate weight 0 → 5 %" in shown
    assert "nothing was changed" in shown


def test_the_summary_of_a_refusal_gives_the_reason_and_says_nothing_changed():
    shown = text_of(render.summary("promote", "refused", message="refused: no candidate to promote",
                                   seconds=1.0, check=False, recorder=recorder(DEPLOYED, DEPLOYED),
                                   record={"id": 3}, artifact_dir=None))
    assert "✗ promote refused" in shown and "no candidate to promote" in shown
    assert "nothing was changed" in shown


def test_status_warns_of_silences_that_mute_automatic_rollback_or_that_it_cannot_tell():
    muted = {**REPORT, "rollback_silences": [{"created_by": "mallory", "ends_at": "2026-12-04T06:00:00Z",
                                              "matchers": "action=rollback", "comment": "shh"}]}
    shown = text_of(render.status(muted))
    assert "automatic rollback is silenced until 2026-12-04T06:00:00Z by mallory (action=rollback): shh" in shown
    assert "Alertmanager did not answer" in text_of(render.status({**REPORT, "rollback_silences": None}))
    assert "silenced" not in text_of(render.status({**REPORT, "rollback_silences": []}))
