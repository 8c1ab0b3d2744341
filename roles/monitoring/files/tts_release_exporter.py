#!/usr/bin/python3
"""Serves the release state (one JSON document on the load-balancer host) as Prometheus metrics.

The alert rules must know which colour is the candidate. Only the release state knows that
for certain (HAProxy weights cannot tell a 60 % canary from its stable colour), so this
exporter translates the document, read afresh on every scrape, and nothing more: which
colour is the candidate is worked out by the rules, in one place.

Standard library only: it runs with the host's python3, beside HAProxy.

    tts_release_exporter.py --state /var/lib/ttsctl/release.json --listen 127.0.0.1:9099
"""
from __future__ import annotations

import argparse
import json
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def label_value(value) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def sample(name: str, value, **labels) -> str:
    inner = ",".join(f'{key}="{label_value(val)}"' for key, val in labels.items() if val is not None)
    return f"{name}{{{inner}}} {value}" if inner else f"{name} {value}"


def timestamp(text) -> float | None:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def exposition(path: str) -> str:
    """The metrics text for the state at ``path``; a missing file is the empty state."""
    lines = [
        "# HELP tts_release_state_ok 1 when the release state was read and understood, else 0.",
        "# TYPE tts_release_state_ok gauge",
    ]
    try:
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
        if not isinstance(state, dict):
            raise ValueError("not a JSON object")
    except FileNotFoundError:
        state = {}
    except (OSError, ValueError):
        return "\n".join(lines + [sample("tts_release_state_ok", 0)]) + "\n"

    change = state.get("last_change") or {}
    lines += [
        sample("tts_release_state_ok", 1),
        "# HELP tts_release_info Active colour, phase and epoch (time of the last change) (always 1).",
        "# TYPE tts_release_info gauge",
        sample("tts_release_info", 1, active=state.get("active") or "", phase=state.get("phase") or "empty",
               epoch=change.get("time") or ""),
        "# HELP tts_release_color_version_info Version and image recorded for each deployed colour (always 1).",
        "# TYPE tts_release_color_version_info gauge",
    ]
    for colour, recorded in sorted((state.get("colors") or {}).items()):
        if isinstance(recorded, dict) and recorded.get("version") is not None:
            lines.append(sample("tts_release_color_version_info", 1, color=colour,
                                version=recorded["version"], image=recorded.get("image") or ""))
    lines += [
        "# HELP tts_release_candidate_weight_percent Share of traffic given to the candidate colour.",
        "# TYPE tts_release_candidate_weight_percent gauge",
        sample("tts_release_candidate_weight_percent", int(state.get("candidate_weight") or 0)),
    ]
    when = timestamp(change.get("time")) if change.get("time") else None
    if when is not None:
        lines += [
            "# HELP tts_release_last_change_timestamp_seconds When the release state last changed, by action and operator.",
            "# TYPE tts_release_last_change_timestamp_seconds gauge",
            sample("tts_release_last_change_timestamp_seconds", when,
                   action=change.get("action") or "", operator=change.get("operator") or ""),
        ]
    return "\n".join(lines) + "\n"


def handler_for(path: str):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404, "only /metrics is served")
                return
            body = exposition(path).encode()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # a scrape every few seconds is not news
            pass

    return Handler


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", default="/var/lib/ttsctl/release.json", help="release state JSON")
    parser.add_argument("--listen", default="127.0.0.1:9099", help="address:port to serve /metrics on")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    ThreadingHTTPServer((host.strip("[]") or "0.0.0.0", int(port)), handler_for(args.state)).serve_forever()


if __name__ == "__main__":
    main()
