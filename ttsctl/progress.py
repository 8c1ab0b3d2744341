"""Live progress of a playbook run from ansible-runner's events: each play, each task as it
starts (a spinner on a terminal) and each host's result as it comes."""
from __future__ import annotations

from rich.console import Console
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from ttsctl import records

# event -> (mark, word, style)
_RESULTS = {
    "runner_on_ok": ("✓", "ok", "green"),
    "runner_on_failed": ("✗", "failed", "bold red"),
    "runner_on_unreachable": ("✗", "unreachable", "bold red"),
    "runner_on_skipped": ("-", "skipped", "dim"),
    "runner_item_on_ok": ("✓", "ok", "green"),
    "runner_item_on_failed": ("✗", "failed", "bold red"),
    "runner_item_on_skipped": ("-", "skipped", "dim"),
}


class Progress:
    """An ansible-runner event handler that prints as the run goes."""

    def __init__(self, console: Console, title: str):
        self.console = console
        self.title = title
        self.task: str | None = None
        self._live: Live | None = None

    # The spinner only makes sense where a terminal redraws it.
    def _spin(self, text: str) -> None:
        if not self.console.is_terminal:
            return
        spinner = Spinner("dots", Text(text, style="cyan"))
        if self._live is None:
            self._live = Live(spinner, console=self.console, refresh_per_second=12, transient=True)
            self._live.start()
        else:
            self._live.update(spinner)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def __call__(self, event: dict) -> None:
        kind = event.get("event")
        data = event.get("event_data") or {}
        if kind == "playbook_on_start":
            self._spin(f"{self.title}: starting")
        elif kind == "playbook_on_play_start":
            self.console.print(Text(data.get("play") or data.get("name") or "play", style="bold"))
        elif kind in ("playbook_on_task_start", "playbook_on_handler_task_start"):
            self.task = data.get("task") or data.get("name") or "task"
            self._spin(self.task)
        elif kind in _RESULTS:
            self.console.print(self.result_line(kind, data))
        elif kind == "playbook_on_stats":
            self.close()
        elif kind == "verbose" and "ttsctl" in (event.get("stdout") or ""):
            # The audit callback speaks (lock waits, takeovers): show it.
            self.console.print(Text.from_ansi(event["stdout"].strip(), style="yellow"))
        elif kind == "warning":
            self.console.print(Text.from_ansi(event.get("stdout", "").strip(), style="yellow"))

    def result_line(self, kind: str, data: dict) -> Text:
        mark, word, style = _RESULTS[kind]
        result = data.get("res") or {}
        if word == "ok" and result.get("changed"):
            mark, word, style = "●", "changed", "yellow"
        item = kind.startswith("runner_item")
        line = Text("      " if item else "  ")
        line.append(f"{mark} {word:<8}", style=style)
        line.append(f" {data.get('host', '?')}", style="dim" if word == "skipped" else None)
        if item:
            label = _item_label(result)
            if label:
                line.append(f"  {label}")
        else:
            line.append(f"  {data.get('task') or self.task or ''}", style="dim" if word == "skipped" else None)
        if word in ("failed", "unreachable"):
            line.append(f": {records.failure_message(result, word)}", style=style)
        return line


def _item_label(result: dict) -> str:
    label = result.get("_ansible_item_label", result.get("item"))
    if isinstance(label, dict):
        label = label.get("name") or label.get("key") or ""
    return str(label) if label is not None else ""
