"""Live progress: each play, each host's result of each task, as ansible-runner reports them."""
from rich.console import Console

from ttsctl.progress import Progress


def follow(*events):
    console = Console(record=True, width=200, color_system=None, force_terminal=False)
    progress = Progress(console, "canary")
    for kind, data in events:
        progress({"event": kind, "event_data": data})
    progress.close()
    return console.export_text()


def test_plays_and_host_results_are_shown_task_by_task():
    shown = follow(
        ("playbook_on_play_start", {"play": "Canary the candidate colour"}),
        ("playbook_on_task_start", {"task": "Read the release state"}),
        ("runner_on_ok", {"host": "lb1", "task": "Read the release state", "res": {"changed": False}}),
        ("playbook_on_task_start", {"task": "Record the candidate's share"}),
        ("runner_on_ok", {"host": "lb1", "task": "Record the candidate's share", "res": {"changed": True}}),
        ("runner_on_skipped", {"host": "lb1", "task": "Check /ready", "res": {}}),
    )
    lines = shown.splitlines()
    assert lines[0] == "Canary the candidate colour"
    assert "✓ ok" in lines[1] and "lb1" in lines[1] and "Read the release state" in lines[1]
    assert "● changed" in lines[2] and "Record the candidate's share" in lines[2]
    assert "- skipped" in lines[3]


def test_a_failure_shows_its_message_and_loop_items_their_label():
    shown = follow(
        ("runner_item_on_ok", {"host": "lb1", "res": {"_ansible_item_label": "blue-localhost-0"}}),
        ("runner_item_on_failed", {"host": "lb1", "res": {"_ansible_item_label": {"name": "green-localhost-0"},
                                                            "msg": "Status code was 503"}}),
        ("runner_on_failed", {"host": "lb1", "task": "Check /ready", "res": {"msg": "One or more items failed"}}),
    )
    assert "✓ ok       lb1  blue-localhost-0" in shown
    assert "✗ failed   lb1  green-localhost-0: Status code was 503" in shown
    assert "✗ failed   lb1  Check /ready: One or more items failed" in shown


def test_what_the_audit_callback_says_is_shown():
    shown = follow(("verbose", {}),)
    assert shown == ""
    console = Console(record=True, width=200, color_system=None)
    Progress(console, "canary")({"event": "verbose", "stdout": "\x1b[1;35m[WARNING]: ttsctl: took the release lock over\x1b[0m"})
    assert "ttsctl: took the release lock over" in console.export_text()
