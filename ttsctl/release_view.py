"""The release state as the webhook receiver reads it, to tell which colour is the candidate.

The document lives on the load-balancer host. Where the control node is that host, the
receiver reads the file; elsewhere it reads the same facts from the release-state exporter
the monitoring role runs beside HAProxy (``http://<lb>:9099/metrics``). Either way the
rollback playbook, which reads the file itself under the release lock, has the last word.
"""
from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

DEFAULT_SOURCE = "/var/lib/ttsctl/release.json"
HTTP_TIMEOUT = 3.0


class StateUnreadable(Exception):
    """The release state could not be read or understood: nothing can be judged."""


def read(source: str) -> dict:
    """The release state from a file path or an exporter URL. A missing file is the empty
    state (a fresh site has no candidate)."""
    if source.startswith(("http://", "https://")):
        return _from_exporter(source)
    return _from_file(Path(source))


def _from_file(path: Path) -> dict:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise StateUnreadable(f"cannot read the release state {path}: {exc}") from exc
    if not isinstance(state, dict):
        raise StateUnreadable(f"the release state {path} is not a JSON object")
    return state


def _from_exporter(url: str) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT) as answer:  # noqa: S310 - an operator's URL
            text = answer.read().decode("utf-8")
    except (OSError, ValueError) as exc:
        raise StateUnreadable(f"cannot read the release state from {url}: {exc}") from exc
    return state_from_metrics(text, url)


def state_from_metrics(text: str, where: str = "the exporter") -> dict:
    """The parts of the release state the exporter serves (tts_release_* metrics)."""
    state: dict = {"colors": {}}
    ok = False
    try:
        samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    except ValueError as exc:
        raise StateUnreadable(f"{where} did not serve Prometheus metrics: {exc}") from exc
    for sample in samples:
        if sample.name == "tts_release_state_ok":
            ok = sample.value == 1
        elif sample.name == "tts_release_info":
            state.update(active=sample.labels.get("active") or None,
                         phase=sample.labels.get("phase") or "empty",
                         last_change={"time": sample.labels.get("epoch") or None})
        elif sample.name == "tts_release_color_version_info":
            state["colors"][sample.labels["color"]] = {"version": sample.labels.get("version"),
                                                       "image": sample.labels.get("image")}
        elif sample.name == "tts_release_candidate_weight_percent":
            state["candidate_weight"] = int(sample.value)
    if not ok:
        raise StateUnreadable(f"{where} cannot read the release state (tts_release_state_ok is not 1)")
    return state
