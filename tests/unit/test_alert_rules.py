"""The release rules and the Alertmanager routing, rendered from the monitoring role's defaults
and checked with Prometheus's and Alertmanager's own tools.

The promtool unit tests (roles/monitoring/tests/rules/*.yml) are the specification of the
rules: a bad candidate is rolled back, a healthy or quiet one is not, and so on.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
from pathlib import Path

import jinja2
import pytest
import yaml
from by_path import load

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "monitoring"
RULE_TESTS = sorted((ROLE / "tests" / "rules").glob("*.yml"))

FILTERS = load("tts_filters", "plugins/filter/tts.py")

needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool is not installed (apt-get install prometheus)")
needs_amtool = pytest.mark.skipif(
    shutil.which("amtool") is None,
    reason="amtool is not installed (apt-get install prometheus-alertmanager)")


def render(template: str, **overrides) -> str:
    """A role template with the role defaults, as the template module renders it
    (trim_blocks); these templates use plain Jinja2 only, for this reason."""
    values = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    values.update(overrides)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROLE / "templates"), trim_blocks=True,
                             keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    return env.get_template(template).render(**values)


def run(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    (tmp_path / "tts_release.rules.yml").write_text(render("tts_release.rules.yml.j2"))
    for test in RULE_TESTS:
        shutil.copy(test, tmp_path / test.name)
    return tmp_path


@needs_promtool
def test_rules_pass_promtool_check(rules_dir: Path):
    result = run("promtool", "check", "rules", str(rules_dir / "tts_release.rules.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_behaviour_has_unit_tests():
    assert {t.stem for t in RULE_TESTS} >= {
        "bad_candidate", "healthy_canary", "quiet_canary", "latency", "down", "memory", "release_state",
        "watchers", "edge_drift", "shedding", "overload"}


@needs_promtool
@pytest.mark.parametrize("test_file", RULE_TESTS, ids=[t.stem for t in RULE_TESTS])
def test_rules_behave_as_specified(rules_dir: Path, test_file: Path):
    result = run("promtool", "test", "rules", test_file.name, cwd=rules_dir)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rollback_alerts_carry_action_colour_and_version():
    rules = yaml.safe_load(render("tts_release.rules.yml.j2"))["groups"][0]["rules"]
    alerts = {r["alert"]: r for r in rules if "alert" in r}
    rollback = {name for name, r in alerts.items() if r["labels"].get("action") == "rollback"}
    assert rollback == {"TTSCandidateErrorRatioHigh", "TTSCandidateLatencyHigh",
                        "TTSCandidateDown", "TTSCandidateMemoryHigh"}
    assert rollback == set(FILTERS.ROLLBACK_ALERTS)  # what ttsctl status counts as muting them
    assert "action" not in alerts["TTSCanaryInsufficientTraffic"]["labels"]
    # colour and version come from the expression (tts:candidate:*), not from static labels
    for name in rollback:
        assert "tts:candidate:" in alerts[name]["expr"], name


def test_thresholds_and_durations_come_from_the_role_variables():
    rendered = yaml.safe_load(render(
        "tts_release.rules.yml.j2", monitoring_error_ratio_threshold=0.2, monitoring_error_for=45,
        monitoring_min_requests=7, monitoring_verdict_window=120))
    alert = next(r for r in rendered["groups"][0]["rules"] if r.get("alert") == "TTSCandidateErrorRatioHigh")
    assert alert["expr"].strip().endswith("> 0.2") and alert["for"] == "45s"
    text = yaml.safe_dump(rendered)
    assert ">= 7" in text and "[120s]" in text


def test_shedding_is_a_warning_from_the_role_variables_not_a_rollback():
    rendered = yaml.safe_load(render(
        "tts_release.rules.yml.j2", monitoring_shed_ratio_threshold=0.03, monitoring_shed_window=600,
        monitoring_shed_for=120))
    rules = rendered["groups"][0]["rules"]
    alert = next(r for r in rules if r.get("alert") == "TTSEdgeShedding")
    assert alert["expr"].strip().endswith("> 0.03") and alert["for"] == "120s"
    assert alert["labels"] == {"severity": "warning"}
    records = {r["record"]: r["expr"] for r in rules if "record" in r}
    # HAProxy's own 503s (queue wait ran out, no server up) of the speech backends only
    shed = records["color:tts_edge_shed_requests:rate"]
    assert "haproxy_backend_connection_errors_total" in shed and "[600s]" in shed
    assert 'proxy=~"tts_blue|tts_green"' in shed


def test_edge_rules_read_the_split_and_the_per_colour_backends():
    text = render("tts_release.rules.yml.j2")
    assert 'proxy="tts"' not in text and "haproxy_server_weight" not in text
    assert "server:tts_edge_weight:effective" not in text
    rules = yaml.safe_load(text)["groups"][0]["rules"]
    records = {r["record"]: r["expr"] for r in rules if "record" in r}
    assert 'proxy=~"tts_blue|tts_green", state="DOWN"' in records["server:tts_down:bool"]
    assert "tts_edge_split_weight_percent" in records["tts:edge:standby_share_percent"]


def render_prometheus_config(**overrides) -> str:
    """prometheus.yml.j2 with the role defaults and stand-ins for the Ansible pieces it uses."""
    values = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    values.update(ansible_managed="Ansible managed", groups={"lb": ["lb1", "lb2"], "gpu": []},
                  hostvars={"lb1": {"ansible_host": "10.0.0.1"}, "lb2": {}},
                  monitoring_release_state_host="lb1")  # what its default gives for this group
    values.update(overrides)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROLE / "templates"), trim_blocks=True,
                             keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    env.filters.update(
        to_json=json.dumps, tts_servers=FILTERS.tts_servers,
        urlsplit=lambda url, part: getattr(urllib.parse.urlsplit(url), part),
        to_nice_yaml=lambda data, indent=2: yaml.safe_dump(data, indent=indent, default_flow_style=False))
    return env.get_template("prometheus.yml.j2").render(**values)


def test_prometheus_scrapes_the_split_where_it_scrapes_haproxy():
    jobs = {job["job_name"]: job for job in yaml.safe_load(render_prometheus_config())["scrape_configs"]}
    split = jobs["haproxy_split"]
    assert split["metrics_path"] == "/split"
    assert split["static_configs"] == jobs["haproxy"]["static_configs"] == [
        {"targets": ["10.0.0.1:8404", "lb2:8404"]}]
    assert "metrics_path" not in jobs["haproxy"]


def test_prometheus_reads_the_release_state_from_the_one_balancer_that_keeps_it():
    jobs = {job["job_name"]: job for job in yaml.safe_load(render_prometheus_config())["scrape_configs"]}
    assert jobs["tts_release"]["static_configs"] == [{"targets": ["10.0.0.1:9099"]}]
    other = yaml.safe_load(render_prometheus_config(monitoring_release_state_host="lb2"))["scrape_configs"]
    assert next(j for j in other if j["job_name"] == "tts_release")["static_configs"] == [{"targets": ["lb2:9099"]}]


@needs_promtool
def test_prometheus_config_passes_promtool_check(tmp_path: Path):
    path = tmp_path / "prometheus.yml"
    path.write_text(render_prometheus_config(monitoring_prometheus_rules_dir=str(tmp_path)))
    result = run("promtool", "check", "config", "--syntax-only", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def alertmanager_config(tmp_path: Path) -> Path:
    path = tmp_path / "alertmanager.yml"
    path.write_text(render("alertmanager.yml.j2"))
    return path


@needs_amtool
def test_alertmanager_config_passes_amtool_check(alertmanager_config: Path):
    result = run("amtool", "check-config", str(alertmanager_config))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_amtool
@pytest.mark.parametrize("labels, receiver", [
    (["alertname=TTSCandidateErrorRatioHigh", "action=rollback", "color=green", "version=2.0"], "rollback"),
    (["alertname=TTSCandidateDown", "action=rollback", "color=green", "version=2.0"], "rollback"),
    (["alertname=TTSCanaryInsufficientTraffic", "verdict=no_verdict", "color=green"], "default"),
    (["alertname=TTSReleaseStateUnknown", "severity=warning"], "default"),
    (["alertname=TTSWatchdog", "severity=none"], "watchdog"),
    (["alertname=TTSRollbackReceiverDown", "severity=critical"], "default"),
    (["alertname=TTSEdgeShedding", "severity=warning", "color=green"], "default"),
    (["alertname=TTSEdgeDisagreesWithRelease", "severity=critical", "reason=weight"], "default"),
])
def test_rollback_alerts_route_to_the_webhook_and_others_to_the_default(alertmanager_config, labels, receiver):
    result = run("amtool", "config", "routes", "test", f"--config.file={alertmanager_config}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == [receiver]


def test_webhook_is_called_with_the_bearer_token_fast():
    config = yaml.safe_load(render("alertmanager.yml.j2"))
    rollback = next(r for r in config["route"]["routes"] if r["receiver"] == "rollback")
    assert rollback["matchers"] == ['action="rollback"'] and rollback["group_wait"] == "0s"
    hook = next(r for r in config["receivers"] if r["name"] == "rollback")["webhook_configs"][0]
    assert hook["url"] == "http://127.0.0.1:9095/alerts"
    assert hook["http_config"]["authorization"] == {
        "type": "Bearer", "credentials_file": "/etc/prometheus/webhook.token"}
