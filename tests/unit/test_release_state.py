"""Release-state transitions: what each action may do, and what it must refuse."""
import json

import pytest

from by_path import load

release = load("release_state", "plugins/modules/release_state.py")
filters = load("tts_filters", "plugins/filter/tts.py")
EMPTY = json.loads(json.dumps(release.EMPTY))


def step(state, action, **kwargs):
    return release.transition(state, action, **kwargs)


@pytest.fixture
def deployed():
    state = step(EMPTY, "deploy", version="1.5", image="img:1.5")
    return step(state, "deploy", version="2.0", image="img:2.0")


def test_first_deploy_goes_live_on_blue():
    state = step(EMPTY, "deploy", version="1.5", image="img:1.5")
    assert state["active"] == "blue" and state["phase"] == "stable"
    assert state["colors"] == {"blue": {"version": "1.5", "image": "img:1.5", "max_concurrency": 1}, "green": None}


@pytest.mark.parametrize("bad", [0, -1, "2", 2.5, True, None])
def test_deploy_refuses_a_capacity_that_is_not_a_whole_number_of_at_least_one(bad):
    with pytest.raises(release.Refused, match="max_concurrency"):
        step(EMPTY, "deploy", version="1.5", image="i", max_concurrency=bad)


def test_second_deploy_is_a_parked_candidate_on_the_idle_colour(deployed):
    assert deployed["active"] == "blue" and deployed["phase"] == "deployed"
    assert deployed["colors"]["green"]["version"] == "2.0" and deployed["candidate_weight"] == 0


def test_canary_promote_rollback_cycle(deployed):
    canary = step(deployed, "canary", weight="5")
    assert (canary["candidate_weight"], canary["phase"]) == (5, "canary")
    promoted = step(canary, "promote")
    assert (promoted["active"], promoted["candidate_weight"], promoted["phase"]) == ("green", 0, "promoted")
    rolled = step(promoted, "rollback")
    assert (rolled["active"], rolled["candidate_weight"], rolled["phase"]) == ("blue", 0, "rolled_back")


def test_rollback_during_canary_parks_the_candidate(deployed):
    rolled = step(step(deployed, "canary", weight=50), "rollback")
    assert (rolled["active"], rolled["candidate_weight"], rolled["phase"]) == ("blue", 0, "rolled_back")


def test_a_rollback_for_one_candidate_never_rolls_back_the_next(deployed):
    canary = {**step(deployed, "canary", weight=20), "last_change": {"time": "2026-12-04T03:00:00Z"}}
    meant = {"color": "green", "version": "2.0", "epoch": "2026-12-04T03:00:00Z"}
    assert step(canary, "rollback", expect=meant)["phase"] == "rolled_back"
    for other_candidate in ({**meant, "epoch": "2026-12-04T02:00:00Z"}, {**meant, "version": "1.9"},
                            {**meant, "color": "blue"}, {}):
        with pytest.raises(release.Refused, match="no longer the candidate"):
            step(canary, "rollback", expect=other_candidate)
    promoted = step(canary, "promote")
    with pytest.raises(release.Refused):
        step(promoted, "rollback", expect=meant)


def test_repeating_an_action_changes_nothing(deployed):
    canary = step(deployed, "canary", weight=5)
    assert step(canary, "canary", weight=5) == canary
    promoted = step(canary, "promote")
    assert step(promoted, "promote") == promoted
    rolled = step(promoted, "rollback")
    assert step(rolled, "rollback") == rolled
    assert step(deployed, "deploy", version="2.0", image="img:2.0") == deployed


@pytest.mark.parametrize("weight", [-1, 101, "abc", "5.5", "", None, " 7x"])
def test_invalid_weights_are_refused(deployed, weight):
    with pytest.raises(release.Refused, match="whole number from 0 to 100"):
        step(deployed, "canary", weight=weight)


def test_transitions_without_a_candidate_are_refused():
    live = step(EMPTY, "deploy", version="1.5", image="img:1.5")
    with pytest.raises(release.Refused, match="no candidate is deployed"):
        step(live, "canary", weight=5)
    with pytest.raises(release.Refused, match="no candidate to promote"):
        step(live, "promote")
    with pytest.raises(release.Refused, match="nothing to roll back to"):
        step(live, "rollback")


def test_canary_of_the_previous_version_after_promote_is_refused(deployed):
    promoted = step(deployed, "promote")
    with pytest.raises(release.Refused, match="previous version 1.5"):
        step(promoted, "canary", weight=5)


def test_state_file_is_replaced_atomically(tmp_path):
    path = tmp_path / "state" / "release.json"
    release.save(str(path), step(EMPTY, "deploy", version="1.5", image="i"))
    assert json.loads(path.read_text())["active"] == "blue"
    assert [p.name for p in path.parent.iterdir()] == ["release.json"]  # no temporary left


SERVERS = filters.tts_servers(["gpu1", "gpu2"], {"gpu1": {"tts_stack_gpus": [0, 1]}, "gpu2": {}})


def test_servers_interleave_colour_ports_per_gpu():
    blue = [(s["host"], s["port"]) for s in SERVERS if s["color"] == "blue"]
    green = [(s["host"], s["port"]) for s in SERVERS if s["color"] == "green"]
    assert blue == [("gpu1", 6006), ("gpu1", 6008), ("gpu2", 6006)]
    assert green == [("gpu1", 6007), ("gpu1", 6009), ("gpu2", 6007)]


def test_the_edge_plan_sends_the_canary_weight_to_the_candidate_colour(deployed):
    plan = filters.tts_edge_plan(step(deployed, "canary", weight=30), SERVERS)
    assert plan["split"] == {"stable": "blue", "candidate": "green", "weight": 30}


@pytest.mark.parametrize("action", ["rollback", "promote"])
def test_without_a_candidate_under_test_forced_routing_reaches_only_the_stable_colour(deployed, action):
    state = step(step(deployed, "canary", weight=30), action, **({} if action == "promote" else {}))
    stable = state["active"]
    assert filters.tts_edge_plan(state, SERVERS)["split"] == {"stable": stable, "candidate": stable, "weight": 0}


def test_an_empty_state_plans_blue_with_no_candidate():
    assert filters.tts_edge_plan(EMPTY, SERVERS)["split"] == {"stable": "blue", "candidate": "blue", "weight": 0}


def test_each_server_gets_its_workers_times_its_versions_declared_capacity_as_slots():
    state = step(step(EMPTY, "deploy", version="1.5", image="i", max_concurrency=2),
                 "deploy", version="2.0", image="j", max_concurrency=1)
    servers = filters.tts_servers(["gpu1", "gpu2"], {"gpu1": {"tts_stack_workers": 3}, "gpu2": {}})
    assert filters.tts_edge_plan(state, servers)["maxconn"] == {
        "tts_blue/blue-gpu1-0": 6, "tts_blue/blue-gpu2-0": 2, "tts_green/green-gpu1-0": 3, "tts_green/green-gpu2-0": 1}


def test_a_state_from_before_capacities_were_recorded_gives_one_slot_per_worker(deployed):
    for colour in deployed["colors"].values():
        colour.pop("max_concurrency")
    assert set(filters.tts_edge_plan(deployed, SERVERS)["maxconn"].values()) == {1}


LOCAL = filters.tts_servers(["localhost"], {"localhost": {}})


def status_of(state, split, maxconn=1, capacity=1, versions=("1.5", "2.0")):
    haproxy = {"running": True, "split": split,
               "servers": [{"backend": f"tts_{s['color']}", "name": s["name"], "status": "UP", "maxconn": maxconn,
                            "sessions": 0, "queued": 0} for s in LOCAL]}
    answers = [{"item": s, "status": 200, "json": {"version": v, "capacity": capacity}} for s, v in zip(LOCAL, versions)]
    return filters.tts_status(state, haproxy, answers, [])


def test_status_agrees_when_the_split_and_the_slots_are_what_the_state_says(deployed):
    report = status_of(step(deployed, "canary", weight=5), {"stable": "blue", "candidate": "green", "weight": "5"})
    assert report["consistent"], report["disagreements"]
    assert report["colors"]["green"]["role"] == "candidate" and report["colors"]["green"]["share"] == 5
    assert report["colors"]["blue"]["share"] == 95


def test_status_names_a_split_a_slot_limit_and_a_capacity_that_disagree(deployed):
    report = status_of(step(deployed, "canary", weight=5), {"stable": "blue", "candidate": "green", "weight": "50"},
                       maxconn=4, capacity=2)
    problems = " | ".join(report["disagreements"])
    assert "split has weight 50, the release state gives 5" in problems
    assert "blue-localhost-0 has 4 slots in HAProxy, the release state gives 1" in problems
    assert "serves 2 speech requests at once, the release state gives it 1 slots" in problems


def test_several_balancers_make_one_report_that_names_the_one_that_disagrees(deployed):
    state = step(deployed, "canary", weight=5)
    good = status_of(state, {"stable": "blue", "candidate": "green", "weight": "5"})
    stale = status_of(state, {"stable": "blue", "candidate": "green", "weight": "0"})
    report = filters.tts_balancers({"lb1": good, "lb2": stale})
    assert not report["consistent"] and report["disagreements"] == [
        "lb2: HAProxy's split has weight 0, the release state gives 5"]
    assert [(b["name"], b["consistent"], b["edge"]["weight"]) for b in report["balancers"]] == [
        ("lb1", True, "5"), ("lb2", False, "0")]
    assert filters.tts_balancers({"lb1": good, "lb2": good})["consistent"]


def test_one_balancer_reports_as_before_and_one_that_could_not_be_asked_disagrees(deployed):
    good = status_of(step(deployed, "canary", weight=5), {"stable": "blue", "candidate": "green", "weight": "5"})
    alone = filters.tts_balancers({"lb1": good})
    assert alone["disagreements"] == [] and alone["consistent"] and len(alone["balancers"]) == 1
    lost = filters.tts_balancers({"lb0": None, "lb1": good})
    assert lost["servers"] == good["servers"] and not lost["haproxy_running"]
    assert lost["disagreements"] == ["lb0: this balancer could not be asked (unreachable, or its checks failed)"]
    with pytest.raises(ValueError):
        filters.tts_balancers({"lb0": None})


REPO = "localhost/ttsctl-speech"


def image(tag, created, labels=None, image_id=None):
    return {"Id": image_id or f"sha256:{tag}", "RepoTags": [f"{REPO}:{tag}"] if tag else None,
            "Created": created, "Labels": labels or {}}


def stage(sources, image_id, created=0):
    return {"Id": image_id, "RepoTags": None, "Created": created,
            "Labels": {"ttsctl.stage": "install", "ttsctl.repository": REPO, "ttsctl.sources": sources}}


def test_pruning_keeps_the_newest_images_and_every_one_in_use_or_recorded():
    images = [image(f"2.0-{n}", created=n) for n in range(1, 8)]
    images.append({"Id": "sha256:base", "RepoTags": ["localhost/tts-base:bookworm"], "Created": 0})
    containers = [{"Image": f"{REPO}:2.0-1", "ImageID": "sha256:2.0-1"},    # blue, running
                  {"Image": "sha256:2.0-2", "ImageID": "sha256:2.0-2"}]     # stopped, by ID
    result = filters.tts_prunable_images(images, containers, REPO, keep=3,
                                         protect=[f"{REPO}:2.0-3"])
    # 7, 6, 5 are the newest three; 1 and 2 have containers; 3 is recorded.
    assert result["tags"] == [f"{REPO}:2.0-4"]
    assert filters.tts_prunable_images(images, [], REPO, keep=0)["tags"] == sorted(
        f"{REPO}:2.0-{n}" for n in range(1, 8))


def test_pruning_keeps_only_the_newest_install_stage_of_the_current_sources():
    images = [stage("old", "sha256:a"), stage("new", "sha256:b", created=2),
              stage("new", "sha256:e", created=1),
              {"Id": "sha256:c", "RepoTags": None, "Labels": {"ttsctl.stage": "install",
               "ttsctl.repository": "other/repo", "ttsctl.sources": "old"}},
              {"Id": "sha256:d", "RepoTags": None, "Labels": None}]
    result = filters.tts_prunable_images(images, [], REPO, keep=3, sources="new")
    assert result == {"tags": [], "stages": ["sha256:a", "sha256:e"]}


def silence(*matchers, state="active"):
    return {"id": "s1", "status": {"state": state}, "createdBy": "mallory", "comment": "quiet please",
            "endsAt": "2026-12-04T06:00:00Z",
            "matchers": [{"name": n, "value": v, "isRegex": r, "isEqual": e} for n, v, r, e in matchers]}


@pytest.mark.parametrize("matchers, mutes", [
    ([("action", "rollback", False, True)], True),
    ([("action", "roll.*", True, True)], True),
    ([("alertname", "TTSCandidateDown", False, True)], True),
    ([("color", "green", False, True)], True),  # silences everything about green, rollbacks too
    ([("action", "rollback", False, False)], False),  # action!="rollback"
    ([("action", "page", False, True)], False),
    ([("alertname", "TTSStableInstanceDown", False, True)], False),
    ([("alertname", "TTSCandidate(Down", True, True)], False),  # a broken regex matches nothing
])
def test_status_names_the_silences_that_mute_automatic_rollback(matchers, mutes):
    found = filters.rollback_silences([silence(*matchers), silence(*matchers, state="expired")])
    assert bool(found) == mutes
    if mutes:
        assert found[0]["created_by"] == "mallory" and found[0]["comment"] == "quiet please"


def test_status_without_an_answer_from_alertmanager_says_it_does_not_know():
    report = filters.tts_status(json.loads(json.dumps(release.EMPTY)), {"running": False}, [], None)
    assert report["rollback_silences"] is None
