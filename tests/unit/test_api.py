"""What the API accepts and refuses, and how it answers, without loading any model."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from tts_app import serve
from tts_app.app import create_app
from tts_app.catalog import OPENAI_VOICES, Catalog
from tts_app.config import ServiceConfig
from tts_app.errors import ApiError
from tts_app.faults import FaultInjector, FaultSettings, InjectedFault
from tts_app.limits import ConcurrencyLimit
from tts_app.model import ModelError
from tts_app.speech_request import parse_speech_request

CATALOG = Catalog.build("voxlite", ["ava", "ben", "cleo"])
V15 = str(Path(__file__).resolve().parents[2] / "models/v1.5")


def parse(**body):
    return parse_speech_request(body, CATALOG, max_chars=40)


def refusal(**body) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse(**body)
    return caught.value


# The speech request body


def test_a_bare_input_gets_wav_the_default_voice_normal_speed_and_no_stream():
    request = parse(input="Hello.")
    assert (request.text, request.voice, request.response_format, request.speed, request.stream) \
        == ("Hello.", "ava", "wav", 1.0, False)


@pytest.mark.parametrize("model", ["voxlite", "tts-1", "tts-1-hd", "gpt-4o-mini-tts"])
def test_the_served_model_and_openai_model_names_are_accepted(model):
    assert parse(input="Hi", model=model).text == "Hi"


def test_openai_voices_are_dealt_round_robin_onto_engine_voices_in_openai_order():
    assert [CATALOG.voice_aliases[name] for name in OPENAI_VOICES[:4]] == \
        ["ava", "ben", "cleo", "ava"]
    assert set(CATALOG.voice_aliases) == set(OPENAI_VOICES)
    assert parse(input="Hi", voice="ash").voice == "ben"


def test_an_engine_voice_sharing_an_openai_name_keeps_it():
    catalog = Catalog.build("m", ["nova", "ava"])
    assert catalog.resolve_voice("nova") == "nova"
    assert "nova" not in catalog.voice_aliases


def test_a_custom_voice_object_names_the_voice_by_id():
    assert parse(input="Hi", voice={"id": "cleo"}).voice == "cleo"


@pytest.mark.parametrize("speed", [0.25, 4.0, 1, 2.5])
def test_speeds_from_a_quarter_to_four_are_accepted(speed):
    assert parse(input="Hi", speed=speed).speed == float(speed)


def test_stream_format_audio_asks_for_a_stream():
    assert parse(input="Hi", stream_format="audio").stream is True
    assert parse(input="Hi", stream=True).stream is True


REFUSALS = {
    "no input": ({}, 400, "invalid_input"),
    "empty": ({"input": ""}, 400, "invalid_input"),
    "blank": ({"input": " \n\t"}, 400, "invalid_input"),
    "number input": ({"input": 3}, 400, "invalid_input"),
    "null input": ({"input": None}, 400, "invalid_input"),
    "too long": ({"input": "a" * 41}, 413, "input_too_long"),
    "unknown model": ({"input": "Hi", "model": "whisper-1"}, 400, "model_not_found"),
    "model not a string": ({"input": "Hi", "model": 1}, 400, "model_not_found"),
    "unknown voice": ({"input": "Hi", "voice": "zed"}, 400, "voice_not_found"),
    "voice a list": ({"input": "Hi", "voice": ["ava"]}, 400, "voice_not_found"),
    "mp3": ({"input": "Hi", "response_format": "mp3"}, 400, "unsupported_response_format"),
    "opus": ({"input": "Hi", "response_format": "opus"}, 400, "unsupported_response_format"),
    "aac": ({"input": "Hi", "response_format": "aac"}, 400, "unsupported_response_format"),
    "flac": ({"input": "Hi", "response_format": "flac"}, 400, "unsupported_response_format"),
    "made-up format": ({"input": "Hi", "response_format": "ogg"}, 400,
                       "unsupported_response_format"),
    "speed below": ({"input": "Hi", "speed": 0.24}, 400, "invalid_speed"),
    "speed above": ({"input": "Hi", "speed": 4.01}, 400, "invalid_speed"),
    "speed text": ({"input": "Hi", "speed": "1.0"}, 400, "invalid_speed"),
    "speed boolean": ({"input": "Hi", "speed": False}, 400, "invalid_speed"),
    "speed NaN": ({"input": "Hi", "speed": float("nan")}, 400, "invalid_speed"),
    "stream text": ({"input": "Hi", "stream": "true"}, 400, "invalid_stream"),
    "sse stream": ({"input": "Hi", "stream_format": "sse"}, 400, "unsupported_stream_format"),
}


@pytest.mark.parametrize("body, status, code", REFUSALS.values(), ids=REFUSALS.keys())
def test_bad_bodies_are_refused_with_status_and_code(body, status, code):
    error = refusal(**body)
    assert (error.status, error.code) == (status, code)
    assert error.message


def test_a_body_that_is_not_an_object_is_refused():
    with pytest.raises(ApiError) as caught:
        parse_speech_request(["Hi"], CATALOG, max_chars=40)
    assert caught.value.code == "invalid_request"


# Faults


def test_faults_are_off_by_default():
    assert FaultSettings.from_env({}).active() == {}


def test_fault_variables_are_read_and_only_those_switched_on_are_listed():
    settings = FaultSettings.from_env({"TTS_FAULT_ERROR_RATE": "0.25", "TTS_FAULT_SILENCE": "1",
                                       "TTS_FAULT_LATENCY_MS": "0"})
    assert settings.active() == {"error_rate": 0.25, "silence": True}


@pytest.mark.parametrize("name, value", [("ERROR_RATE", "1.5"), ("ERROR_RATE", "lots"),
                                         ("LATENCY_MS", "-1"), ("SILENCE", "maybe"),
                                         ("MEMORY_GROWTH_MB", "1.5")])
def test_a_malformed_fault_variable_is_an_error_not_silently_off(name, value):
    with pytest.raises(ValueError, match=f"TTS_FAULT_{name}"):
        FaultSettings.from_env({f"TTS_FAULT_{name}": value})


@pytest.mark.parametrize("rate, failures", [(0.0, 0), (0.1, 2), (0.25, 5), (0.5, 10), (1.0, 20)])
def test_the_error_rate_fails_exactly_that_fraction_of_requests(rate, failures):
    injector = FaultInjector(FaultSettings(error_rate=rate))
    failed = 0
    for _ in range(20):
        try:
            injector.before_speech()
        except InjectedFault:
            failed += 1
    assert failed == failures


def test_silence_keeps_the_length_and_zeroes_the_samples():
    audio = torch.rand(100)
    assert torch.equal(FaultInjector(FaultSettings(silence=True)).shape(audio), torch.zeros(100))
    assert FaultInjector(FaultSettings()).shape(audio) is audio


def test_memory_growth_keeps_every_allocation():
    injector = FaultInjector(FaultSettings(memory_growth_mb=1))
    for _ in range(3):
        injector.before_speech()
    assert injector.held_bytes == 3 * 1024 * 1024


def test_latency_delays_each_request():
    started = time.perf_counter()
    FaultInjector(FaultSettings(latency_ms=50)).before_speech()
    assert time.perf_counter() - started >= 0.05


# Admission


def test_the_concurrency_limit_refuses_without_waiting_and_frees_a_slot_once():
    limit = ConcurrencyLimit(1)
    lease = limit.try_acquire()
    assert lease is not None
    assert limit.try_acquire() is None
    lease.release()
    lease.release()  # a second release must not create a second slot
    assert limit.try_acquire() is not None
    assert limit.try_acquire() is None


# The Flask app, with a model directory whose engine cannot load


@pytest.fixture
def app(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({
        "model": "voxlite", "version": "9.9", "build_time": "2026-01-01T00:00:00Z",
        "sample_rate": 44100, "token_rate": 12.5, "engine": "not-an-engine"}))
    app = create_app({"model_dir": tmp_path, "color": "green", "max_body_bytes": 4096})

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    return app


@pytest.fixture
def client(app):
    return app.test_client()


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response.is_json
    error = response.get_json()["error"]
    assert set(error) == {"message", "type", "code"} and error["code"] == code
    return error


def wait_for_load_attempt(client) -> None:
    deadline = time.monotonic() + 10
    while client.get("/ready").get_json()["error"]["code"] == "model_loading":
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_health_answers_while_the_model_is_not_loaded(client):
    response = client.get("/health")
    assert (response.status_code, response.text) == (200, "OK")


def test_ready_is_503_json_with_the_reason_when_the_model_cannot_load(client):
    wait_for_load_attempt(client)
    response = client.get("/ready")
    error = assert_error(response, 503, "model_failed")
    assert "not-an-engine" in error["message"]
    assert response.headers["Retry-After"]


def test_version_answers_from_the_manifest_before_the_model_loads(client):
    info = client.get("/version").get_json()
    assert (info["model"], info["version"], info["color"], info["faults"]) == \
        ("voxlite", "9.9", "green", {})


def test_speech_is_503_with_retry_after_while_no_model_is_loaded(client):
    response = client.post("/v1/audio/speech", json={"input": "Hello"})
    assert_error(response, 503, response.get_json()["error"]["code"])
    assert response.headers["Retry-After"]


def test_a_body_that_is_not_json_is_415(client):
    assert_error(client.post("/v1/audio/speech", data="input=Hello"), 415,
                 "unsupported_media_type")


def test_malformed_json_is_400(client):
    assert_error(client.post("/v1/audio/speech", data="{", content_type="application/json"),
                 400, "invalid_json")


def test_an_oversized_body_is_413_json(client):
    assert_error(client.post("/v1/audio/speech", json={"input": "a" * 5000}), 413,
                 "request_too_large")


def test_unknown_paths_and_wrong_methods_answer_json(client):
    assert_error(client.get("/nowhere"), 404, "not_found")
    response = client.delete("/health")
    assert_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


def test_an_unexpected_error_is_500_json_without_a_traceback(client, caplog):
    response = client.get("/boom")
    error = assert_error(response, 500, "internal_error")
    assert "secret internals" not in response.text and "Traceback" not in response.text
    assert error["type"] == "server_error"
    assert "secret internals" in caplog.text  # the traceback is logged instead


def test_the_config_refuses_unknown_keys_and_nonsense_limits(tmp_path):
    with pytest.raises(ValueError, match="colour"):
        ServiceConfig.coerce({"model_dir": tmp_path, "colour": "blue"})
    with pytest.raises(ValueError, match="max_concurrency"):
        ServiceConfig(model_dir=tmp_path, max_concurrency=0)


# Capacity: what one worker and the whole instance serve at once


def capacity_app(tmp_path, manifest_extra: dict, **config):
    (tmp_path / "manifest.json").write_text(json.dumps({
        "model": "voxlite", "version": "9.9", "build_time": "2026-01-01T00:00:00Z",
        "sample_rate": 44100, "token_rate": 12.5, "engine": "not-an-engine", **manifest_extra}))
    return create_app({"model_dir": tmp_path, **config})


def capacity(app) -> tuple[int, int, int, int]:
    info = app.test_client().get("/version").get_json()
    return (info["max_concurrency"], info["workers"], info["capacity"],
            app.extensions["tts"].limiter.limit)


def test_version_states_one_request_per_worker_when_the_manifest_says_nothing(client):
    info = client.get("/version").get_json()
    assert (info["max_concurrency"], info["workers"], info["capacity"]) == (1, 1, 1)


def test_capacity_is_workers_times_what_the_manifest_declares(tmp_path):
    app = capacity_app(tmp_path, {"max_concurrency": 2}, workers=3)
    assert capacity(app) == (2, 3, 6, 2)


def test_an_operators_max_concurrency_overrides_the_manifest(tmp_path):
    app = capacity_app(tmp_path, {"max_concurrency": 2}, workers=2, max_concurrency=5)
    assert capacity(app) == (5, 2, 10, 5)


def test_a_wrong_max_concurrency_in_the_manifest_stops_the_app(tmp_path):
    with pytest.raises(ModelError, match="max_concurrency must be an integer"):
        capacity_app(tmp_path, {"max_concurrency": "2"})


def test_the_config_refuses_nonsense_workers(tmp_path):
    with pytest.raises(ValueError, match="workers"):
        ServiceConfig(model_dir=tmp_path, workers=0)
    assert ServiceConfig(model_dir=tmp_path).max_concurrency is None  # the manifest decides


@pytest.fixture
def started(monkeypatch):
    """tts-serve's configs, captured instead of starting gunicorn."""
    configs: list[ServiceConfig] = []

    class FakeServer:
        def __init__(self, config, options):
            configs.append(config)
            assert options["workers"] == config.workers

        def run(self):
            pass

    monkeypatch.setattr(serve, "TTSServer", FakeServer)
    monkeypatch.setattr(serve, "prepare_metrics_dir", lambda: None)
    monkeypatch.delenv("TTS_MAX_CONCURRENCY", raising=False)
    monkeypatch.delenv("TTS_WORKERS", raising=False)
    return configs


def test_tts_serve_leaves_max_concurrency_to_the_manifest_and_passes_workers(started):
    result = CliRunner().invoke(serve.main, ["--model-dir", V15, "--workers", "3"])
    assert result.exit_code == 0, result.output
    assert (started[0].max_concurrency, started[0].workers) == (None, 3)


def test_tts_serve_max_concurrency_flag_and_env_override_the_manifest(started, monkeypatch):
    result = CliRunner().invoke(serve.main, ["--model-dir", V15,
                                             "--max-concurrency", "4"])
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("TTS_MAX_CONCURRENCY", "6")
    result = CliRunner().invoke(serve.main, ["--model-dir", V15])
    assert result.exit_code == 0, result.output
    assert [config.max_concurrency for config in started] == [4, 6]
    result = CliRunner().invoke(serve.main, ["--model-dir", V15,
                                             "--max-concurrency", "0"])
    assert result.exit_code == 2


def test_tts_serve_refuses_a_wrong_manifest_max_concurrency_in_one_line(started, tmp_path):
    manifest = json.loads(Path(V15, "manifest.json").read_text())
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "max_concurrency": 0}))
    result = CliRunner().invoke(serve.main, ["--model-dir", str(tmp_path)])
    assert result.exit_code == 1 and not started
    assert "max_concurrency must be an integer of at least 1, not 0" in result.output
    assert "Traceback" not in result.output
