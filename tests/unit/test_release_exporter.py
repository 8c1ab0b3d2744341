"""The release-state exporter: the release state as metrics, whatever shape the file is in."""
from __future__ import annotations

import json
from pathlib import Path

from by_path import load

exporter = load("tts_release_exporter", "roles/monitoring/files/tts_release_exporter.py")

CANARY = {
    "active": "blue", "phase": "canary", "candidate_weight": 20,
    "colors": {"blue": {"version": "1.5", "image": "img:1.5"}, "green": {"version": "2.0", "image": "img:2.0"}},
    "last_change": {"time": "2025-01-01T00:02:20Z", "operator": "alice", "reason": "try 2.0", "action": "canary"},
}


def samples(text: str) -> set[str]:
    return {line for line in text.splitlines() if line and not line.startswith("#")}


def test_a_canary_is_served_with_colours_versions_weight_and_epoch(tmp_path: Path):
    path = tmp_path / "release.json"
    path.write_text(json.dumps(CANARY))
    assert samples(exporter.exposition(str(path))) == {
        "tts_release_state_ok 1",
        'tts_release_info{active="blue",phase="canary",epoch="2025-01-01T00:02:20Z"} 1',
        'tts_release_color_version_info{color="blue",version="1.5",image="img:1.5"} 1',
        'tts_release_color_version_info{color="green",version="2.0",image="img:2.0"} 1',
        "tts_release_candidate_weight_percent 20",
        'tts_release_last_change_timestamp_seconds{action="canary",operator="alice"} 1735689740.0',
    }


def test_a_missing_file_is_the_empty_state(tmp_path: Path):
    assert samples(exporter.exposition(str(tmp_path / "absent.json"))) == {
        "tts_release_state_ok 1",
        'tts_release_info{active="",phase="empty",epoch=""} 1',
        "tts_release_candidate_weight_percent 0",
    }


def test_an_unreadable_file_says_so_and_nothing_else(tmp_path: Path):
    path = tmp_path / "release.json"
    path.write_text("{not json")
    assert samples(exporter.exposition(str(path))) == {"tts_release_state_ok 0"}


def test_label_values_are_escaped(tmp_path: Path):
    state = dict(CANARY, last_change={**CANARY["last_change"], "operator": 'a "quoted"\\name'})
    path = tmp_path / "release.json"
    path.write_text(json.dumps(state))
    assert 'operator="a \\"quoted\\"\\\\name"' in exporter.exposition(str(path))
