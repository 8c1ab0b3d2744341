"""The split module's rules: what a split may hold, and in which order it changes live."""
import sys

import pytest

from by_path import load

sys.modules.setdefault("ansible.module_utils.haproxy_socket",
                       load("haproxy_socket", "plugins/module_utils/haproxy_socket.py"))
split = load("haproxy_split", "plugins/modules/haproxy_split.py")


def test_a_split_becomes_map_strings():
    wanted, problem = split.wanted_split({"stable": "blue", "candidate": "green", "weight": 5})
    assert problem is None and wanted == {"candidate": "green", "stable": "blue", "weight": "5"}


@pytest.mark.parametrize("bad, message", [
    ({"stable": "blue", "candidate": "green"}, "needs exactly"),
    ({"stable": "blue", "candidate": "green", "weight": 5, "extra": 1}, "needs exactly"),
    ({"stable": "red", "candidate": "green", "weight": 5}, "blue or green"),
    ({"stable": "blue", "candidate": "green", "weight": 101}, "0 to 100"),
    ({"stable": "blue", "candidate": "green", "weight": "5; show map"}, "0 to 100"),
])
def test_a_wrong_split_is_refused_before_haproxy_hears_of_it(bad, message):
    wanted, problem = split.wanted_split(bad)
    assert wanted is None and message in problem


def test_a_shrinking_weight_changes_before_the_routes_and_a_growing_one_after():
    live = {"candidate": "green", "stable": "blue", "weight": "50"}
    rollback = {"candidate": "blue", "stable": "blue", "weight": "0"}
    assert split.ordered(rollback, live) == ["weight", "candidate"]
    canary = {"candidate": "green", "stable": "blue", "weight": "5"}
    assert split.ordered(canary, rollback) == ["candidate", "weight"]
    assert split.ordered(canary, canary) == []


def test_a_missing_live_weight_counts_as_the_widest_split():
    assert split.ordered({"candidate": "green", "stable": "blue", "weight": "5"}, {}) == ["weight", "candidate", "stable"]
