"""No working default secret: the rule every role applies to a token or password."""
from pathlib import Path

import pytest
import yaml
from by_path import load

ROOT = Path(__file__).resolve().parents[2]
filters = load("tts_filters", "plugins/filter/tts.py")


@pytest.mark.parametrize("value, why", [
    ("", "is not set"), (None, "is not set"), ("   ", "is not set"),
    ("change-me", "published default"), ("CHANGE-ME", "published default"),
    ("change-me-and-vault-me", "published default"), ("molecule", "published default"),
    ("x" * 31, "shorter than 32 bytes"),
])
def test_defaults_empty_and_short_values_are_no_secret(value, why):
    assert why in filters.tts_weak_secret(value, "the token")


def test_a_long_random_value_will_do():
    assert filters.tts_weak_secret("Zq8" * 11, "the token") == ""


def test_the_shipped_role_defaults_hold_no_working_secret():
    for path, name in (("roles/haproxy/defaults/main.yml", "haproxy_stats_password"),
                       ("roles/control_plane/defaults/main.yml", "control_plane_webhook_token"),
                       ("roles/monitoring/defaults/main.yml", "monitoring_webhook_token")):
        value = yaml.safe_load((ROOT / path).read_text())[name]
        assert value in ("", "{{ ttsctl_webhook_token | default('') }}"), (path, value)


def test_the_example_inventory_takes_its_secrets_from_the_vault():
    for path, name in (("group_vars/all.yml", "ttsctl_webhook_token"), ("group_vars/lb.yml", "haproxy_stats_password")):
        value = yaml.safe_load((ROOT / "inventory/production.example" / path).read_text())[name]
        assert value == "{{ vault_" + name + " }}"
