"""The release rules and the Alertmanager routing, rendered from the monitoring role's defaults
and checked with Prometheus's and Alertmanager's own tools.

The promtool unit tests (roles/monitoring/tests/rules/*.yml) are the specification of the
rules: a bad candidate is rolled back, a healthy or quiet one is not, and so on.
"""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import jinja2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "monitoring"
RULE_TESTS = sorted((ROLE / "tests" / "rules").glob("*.yml"))

_spec = importlib.util.spec_from_file_location("tts_filters", ROOT / "plugins" / "filter" / "tts.py")
FILTERS = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(FILTERS)

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
        "watchers", "edge_drift"}


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
