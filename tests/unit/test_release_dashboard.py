"""The Grafana release dashboard shipped by the monitoring role: it shows what the spec asks
for, and every query is PromQL that Prometheus accepts, naming only series that exist."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from test_alert_rules import render

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = json.loads((ROOT / "roles/monitoring/files/grafana/release.json").read_text())


def queries():
    for panel in DASHBOARD["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
    for annotation in DASHBOARD["annotations"]["list"]:
        if "expr" in annotation:
            yield annotation["name"], annotation["expr"]


def test_dashboard_shows_the_release_view():
    titles = {panel["title"] for panel in DASHBOARD["panels"]}
    assert {"Traffic share per colour", "5xx ratio", "p95 latency", "Memory per colour",
            "Candidate verdict"} <= titles
    annotations = {a["name"]: a for a in DASHBOARD["annotations"]["list"]}
    assert annotations["Rollbacks"]["enable"] and 'action="rollback"' in annotations["Rollbacks"]["expr"]


def test_dashboard_picks_its_prometheus_data_source():
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    for panel in DASHBOARD["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_recorded_series_the_dashboard_uses_are_recorded():
    rules = yaml.safe_load(render("tts_release.rules.yml.j2"))["groups"][0]["rules"]
    recorded = {r["record"] for r in rules if "record" in r}
    for title, expr in queries():
        for name in re.findall(r"\b[a-z_]+:[a-z0-9_]+:[a-z0-9_]+\b", expr):
            assert name in recorded, f"{title}: {name} is not recorded by the rules"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (apt-get install prometheus)")
def test_every_query_is_valid_promql(tmp_path: Path):
    grafana = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}
    rules = []
    for index, (title, expr) in enumerate(queries()):
        for variable, value in grafana.items():
            expr = expr.replace(variable, value)
        rules.append({"record": f"dashboard:query:{index}", "expr": expr})
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
