"""Free text is data: what is cleaned, what is refused, and that a refusal runs nothing."""
import pytest
from click.testing import CliRunner

from ttsctl import cli, free_text, runner
from ttsctl.settings import Settings

INJECTION = "{{ lookup('ansible.builtin.pipe', 'touch /tmp/owned') }}"


@pytest.mark.parametrize("typed, kept", [
    ("latency regression", "latency regression"),
    ("two\nlines\tand\r\ntabs", "two lines and tabs"),
    ("bell\x07 escape\x1b[2J nul\x00", "bell escape[2J nul"),
    ("right\u202eto-left override", "rightto-left override"),
    ("  padded   out  ", "padded out"),
    ("Grüße, 声音 ✓", "Grüße, 声音 ✓"),
    (INJECTION, INJECTION),
    (None, ""),
])
def test_clean_keeps_printable_text_on_one_line(typed, kept):
    assert free_text.clean(typed) == kept


def test_clean_cuts_long_text_and_says_so():
    cut = free_text.clean("x" * 1000, 10)
    assert cut == "x" * 9 + "…" and len(cut) == 10


@pytest.mark.parametrize("value", [INJECTION, "{% if true %}x{% endif %}", "{# note #}", ["ok", "{{ x }}"],
                                   {"nested": {"deeper": "{{ x }}"}}, {"{{ key }}": 1}])
def test_template_markup_is_found_anywhere_in_a_value(value):
    assert free_text.holds_template(value)


@pytest.mark.parametrize("value", ["5", 5, None, "braces { and } alone", ["a", {"b": "c"}], "{ {"])
def test_plain_values_hold_no_template(value):
    assert not free_text.holds_template(value)


def test_problems_name_each_bad_extra_var_and_what_to_type_instead():
    found = free_text.problems({"weight": "5", "version": INJECTION, "reason": "quickstart:",
                                "_raw_params": "stable version"})
    assert len(found) == 2
    assert any("'version' holds template markup" in problem for problem in found)
    assert any("split at a space" in problem and "'stable version'" in problem for problem in found)


def test_problems_refuse_control_characters_in_free_text_from_a_raw_run():
    assert free_text.problems({"reason": "two\nlines"})
    assert free_text.problems({"operator": "x" * 65})
    assert free_text.problems({}, {"TTSCTL_REASON": "a\x1b[31m"})
    assert free_text.problems({"reason": "one line, Grüße"}, {"TTSCTL_REASON": INJECTION}) == []


def test_plain_extra_vars_pass():
    assert free_text.problems({"weight": "5", "version": "2.0", "reason": "canary clean"}) == []


@pytest.fixture
def no_ansible(monkeypatch, tmp_path):
    """ansible-runner must never be reached: a refusal happens before the lock and the run."""
    def forbidden(**kwargs):
        raise AssertionError("ansible-runner was called")
    monkeypatch.setattr(runner.ansible_runner, "run", forbidden)
    for name in ("TTSCTL_AUDIT_DB", "TTSCTL_LOCK_FILE", "TTSCTL_ARTIFACTS_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    return tmp_path


def test_the_runner_refuses_template_markup_in_extra_vars_before_taking_the_lock(no_ansible):
    with pytest.raises(free_text.Rejected, match="'weight' holds template markup"):
        runner.run_playbook(Settings.from_env(), "canary", {"weight": INJECTION})
    assert not (no_ansible / "ttsctl_lock_file").exists()


@pytest.mark.parametrize("args", [["canary", "--weight", INJECTION], ["deploy", "--version", "{% raw %}2.0"]])
def test_the_cli_exits_2_on_template_markup_and_runs_nothing(no_ansible, args):
    outcome = CliRunner().invoke(cli.main, args)
    assert outcome.exit_code == 2 and "template markup" in outcome.output
    assert not (no_ansible / "ttsctl_audit_db").exists()


def test_the_child_gets_free_text_and_the_expected_candidate_in_its_environment_only(no_ansible, monkeypatch):
    """A value left in the caller's environment must not speak for this run."""
    seen = {}

    def capture(**kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop here")

    monkeypatch.setattr(runner.ansible_runner, "run", capture)
    monkeypatch.setenv("TTSCTL_EXPECT_CANDIDATE", '{"color": "green"}')
    monkeypatch.setenv("TTSCTL_REASON", "stale")
    with pytest.raises(runner.RunFailed):
        runner.run_playbook(Settings.from_env(), "status", {}, operator="al\nice", reason=INJECTION)
    env = seen["envvars"]
    assert (env["TTSCTL_OPERATOR"], env["TTSCTL_REASON"], env["TTSCTL_EXPECT_CANDIDATE"]) == ("al ice", INJECTION, "")
    assert seen["extravars"] == {}
