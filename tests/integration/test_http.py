"""The TTS HTTP service as a load balancer, Prometheus and clients see it: a real gunicorn."""
from __future__ import annotations

import http.client
import signal
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

pytestmark = pytest.mark.integration

OPENAI_VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage",
                 "shimmer", "verse")
SHORT = "Hello from the test suite."


def parse_wav(body: bytes) -> tuple[int, bytes]:
    """(sample rate, PCM data) of a mono 16-bit WAV; checks the header as a player would."""
    assert body[:4] == b"RIFF" and body[8:12] == b"WAVE" and body[12:16] == b"fmt "
    _, audio_format, channels, rate, byte_rate, align, bits = struct.unpack("<IHHIIHH", body[16:36])
    assert (audio_format, channels, bits, align, byte_rate) == (1, 1, 16, 2, rate * 2)
    assert body[36:40] == b"data"
    return rate, body[44:]


def samples(pcm: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(pcm) // 2}h", pcm))


def assert_error(response: requests.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code"}
    assert error["code"] == code
    assert error["message"] and "Traceback" not in error["message"]


# Endpoints


def test_health_answers_ok_as_text(tts_server):
    response = tts_server.get("/health")
    assert response.status_code == 200
    assert response.text == "OK"
    assert response.headers["Content-Type"].startswith("text/plain")


def test_ready_is_200_once_the_model_is_loaded_and_warmed(tts_server):
    assert tts_server.get("/ready").status_code == 200


def test_version_reports_the_manifest_colour_and_device(tts_server, manifest):
    info = tts_server.get("/version").json()
    for key in ("model", "version", "build_time", "sample_rate", "token_rate", "engine"):
        assert info[key] == manifest[key]
    assert info["color"] == "green"
    assert info["device"] in ("cpu", "cuda") or info["device"].startswith("cuda:")
    assert info["faults"] == {}


def test_every_answer_names_the_version_and_colour_that_served_it(tts_server, manifest):
    for path in ("/health", "/version", "/no-such-page"):
        headers = requests.get(f"{tts_server.url}{path}", timeout=10).headers
        assert headers["X-TTS-Version"] == manifest["version"]
        assert headers["X-TTS-Color"] == "green"


def test_models_lists_the_served_model_and_the_openai_aliases(tts_server, manifest):
    listing = tts_server.get("/v1/models").json()
    ids = [model["id"] for model in listing["data"]]
    assert listing["object"] == "list"
    assert ids[0] == manifest["model"]
    assert {"tts-1", "tts-1-hd", "gpt-4o-mini-tts"} <= set(ids)


def test_voices_lists_engine_voices_and_maps_every_openai_voice_onto_one(tts_server):
    catalog = tts_server.get("/v1/voices").json()
    assert catalog["voices"] and catalog["default"] == catalog["voices"][0]
    for name in OPENAI_VOICES:
        assert name in catalog["voices"] or catalog["aliases"][name] in catalog["voices"]


def test_the_web_page_is_served_at_the_root(tts_server):
    response = tts_server.get("/")
    assert response.status_code == 200
    assert "text/html" in response.headers["Content-Type"]
    assert "/v1/audio/speech" in tts_server.get("/static/app.js").text


# Speech


def test_speech_is_a_wav_at_the_model_sample_rate_by_default(tts_server, manifest):
    response = tts_server.speech(model=manifest["model"], input=SHORT)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "audio/wav"
    rate, pcm = parse_wav(response.content)
    assert rate == manifest["sample_rate"]
    assert 0.3 < len(pcm) / 2 / rate < 30
    assert any(samples(pcm)), "the audio is all silence"


def test_speech_as_pcm_is_raw_16_bit_samples(tts_server):
    response = tts_server.speech(model="tts-1", input=SHORT, response_format="pcm")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "audio/pcm"
    assert not response.content.startswith(b"RIFF")
    assert len(response.content) % 2 == 0 and any(samples(response.content))


@pytest.mark.parametrize("model", ["tts-1", "tts-1-hd", "gpt-4o-mini-tts"])
def test_openai_model_names_are_accepted(tts_server, model):
    assert tts_server.speech(model=model, input="Hi.", voice="alloy").status_code == 200


def test_every_engine_voice_and_openai_voice_speaks(tts_server):
    voices = tts_server.get("/v1/voices").json()["voices"]
    for voice in [*voices, "alloy", "shimmer", "verse"]:
        response = tts_server.speech(input="Hi.", voice=voice, response_format="pcm")
        assert response.status_code == 200, (voice, response.text)


def test_a_faster_speed_gives_shorter_audio(tts_server):
    text = "The quick brown fox jumps over the lazy dog."
    slow = tts_server.speech(input=text, speed=0.5, response_format="pcm").content
    fast = tts_server.speech(input=text, speed=2.0, response_format="pcm").content
    assert len(fast) < len(slow)


# Refusals: each answers the JSON error shape and leaves the server ready.

BAD_REQUESTS = {
    "empty input": ({"input": ""}, 400, "invalid_input"),
    "whitespace input": ({"input": "  \n\t "}, 400, "invalid_input"),
    "missing input": ({"voice": "alloy"}, 400, "invalid_input"),
    "input not a string": ({"input": 42}, 400, "invalid_input"),
    "input a list": ({"input": ["Hello"]}, 400, "invalid_input"),
    "speed too low": ({"input": SHORT, "speed": 0.1}, 400, "invalid_speed"),
    "speed too high": ({"input": SHORT, "speed": 4.5}, 400, "invalid_speed"),
    "speed a string": ({"input": SHORT, "speed": "fast"}, 400, "invalid_speed"),
    "speed a boolean": ({"input": SHORT, "speed": True}, 400, "invalid_speed"),
    "mp3": ({"input": SHORT, "response_format": "mp3"}, 400, "unsupported_response_format"),
    "opus": ({"input": SHORT, "response_format": "opus"}, 400, "unsupported_response_format"),
    "aac": ({"input": SHORT, "response_format": "aac"}, 400, "unsupported_response_format"),
    "flac": ({"input": SHORT, "response_format": "flac"}, 400, "unsupported_response_format"),
    "unknown format": ({"input": SHORT, "response_format": "ogg"}, 400,
                       "unsupported_response_format"),
    "unknown voice": ({"input": SHORT, "voice": "nobody"}, 400, "voice_not_found"),
    "voice not a string": ({"input": SHORT, "voice": 7}, 400, "voice_not_found"),
    "unknown model": ({"input": SHORT, "model": "whisper-1"}, 400, "model_not_found"),
    "stream not a boolean": ({"input": SHORT, "stream": "yes"}, 400, "invalid_stream"),
    "input over max_chars": ({"input": "a" * 2001}, 413, "input_too_long"),
    "nothing pronounceable": ({"input": "!!!"}, 400, "invalid_input"),
    "nothing pronounceable, streamed": ({"input": "...", "stream": True}, 400, "invalid_input"),
}


@pytest.mark.parametrize("body, status, code", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_bad_speech_requests_get_a_json_error_and_the_server_stays_ready(
        tts_server, body, status, code):
    assert_error(tts_server.speech(**body), status, code)
    assert tts_server.is_ready()


def test_a_body_that_is_not_json_is_415(tts_server):
    response = tts_server.post("/v1/audio/speech", data="input=Hello",
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_error(response, 415, "unsupported_media_type")
    assert tts_server.is_ready()


def test_malformed_json_is_400(tts_server):
    response = tts_server.post("/v1/audio/speech", data="{not json",
                               headers={"Content-Type": "application/json"})
    assert_error(response, 400, "invalid_json")
    assert tts_server.is_ready()


def test_a_json_body_that_is_not_an_object_is_400(tts_server):
    assert_error(tts_server.post("/v1/audio/speech", json=["Hello"]), 400, "invalid_request")


def test_an_unknown_path_is_404_json(tts_server):
    assert_error(tts_server.get("/v1/nothing-here"), 404, "not_found")
    assert tts_server.is_ready()


def test_a_wrong_method_is_405_json_naming_the_allowed_ones(tts_server):
    response = tts_server.get("/v1/audio/speech")
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]
    assert tts_server.is_ready()


# Streaming


def open_stream(server, **body) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    import json

    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    connection.request("POST", "/v1/audio/speech", body=json.dumps({"stream": True, **body}),
                       headers={"Content-Type": "application/json"})
    return connection, connection.getresponse()


def test_a_wav_stream_is_chunked_and_starts_with_an_open_ended_header(tts_server, manifest):
    connection, response = open_stream(tts_server, input=SHORT)
    try:
        assert response.status == 200
        assert response.getheader("Transfer-Encoding") == "chunked"
        assert response.getheader("Content-Length") is None
        assert response.getheader("Content-Type") == "audio/wav"
        first = response.read1()
        rate, _ = parse_wav(first)
        assert rate == manifest["sample_rate"]
        assert struct.unpack("<I", first[4:8])[0] == 0xFFFFFFFF  # RIFF size unknown
        assert struct.unpack("<I", first[40:44])[0] == 0xFFFFFFFF  # data size unknown
        rest = response.read()
    finally:
        connection.close()
    pcm = first[44:] + rest
    assert len(pcm) % 2 == 0 and any(samples(pcm))


def test_a_stream_sends_its_first_chunk_before_the_audio_is_finished(tts_server):
    text = " ".join(["This sentence is long enough to be spoken over several seconds."] * 4)
    started = time.perf_counter()
    connection, response = open_stream(tts_server, input=text, response_format="pcm")
    try:
        first = response.read1()
        first_at = time.perf_counter() - started
        rest = response.read()
        done_at = time.perf_counter() - started
    finally:
        connection.close()
    assert response.getheader("Content-Type") == "audio/pcm"
    assert 0 < len(first) < len(first) + len(rest)
    assert first_at < done_at / 2, f"first chunk at {first_at:.3f}s of {done_at:.3f}s"


def test_a_stream_holds_the_same_audio_as_a_whole_response(tts_server):
    whole = tts_server.speech(input=SHORT, voice="alloy", response_format="pcm").content
    streamed = tts_server.speech(input=SHORT, voice="alloy", response_format="pcm",
                                 stream=True).content
    assert len(streamed) == len(whole)


# Metrics


def count(samples_: dict, name: str, **labels) -> float:
    return sum(value for (sample, sample_labels), value in samples_.items()
               if sample == name and labels.items() <= dict(sample_labels).items())


def test_metrics_add_up_across_two_workers(tts_server):
    before = tts_server.metric_samples()
    log_start = tts_server.log_path.stat().st_size
    sent = 0
    # Pairs in parallel (each worker takes two at once) until the access log shows both
    # workers answered speech: usually the first pair does.
    with ThreadPoolExecutor(2) as pool:
        while len(tts_server.pids_serving("POST /v1/audio/speech", log_start)) < 2:
            assert sent < 40, "the requests never reached the second worker"
            statuses = pool.map(lambda i: tts_server.speech(input=f"Request {i}.").status_code,
                                range(sent, sent + 2))
            assert list(statuses) == [200, 200]
            sent += 2

    ok = dict(name="tts_http_requests_total", route="/v1/audio/speech", status="200")
    expected = count(before, **ok) + sent
    deadline = time.monotonic() + 5  # counted on close, just after the client has its bytes
    while count(tts_server.metric_samples(), **ok) < expected and time.monotonic() < deadline:
        time.sleep(0.1)
    for _ in range(6):  # each scrape lands on either worker and must see both
        after = tts_server.metric_samples()
        assert count(after, **ok) == expected
        assert count(after, "tts_worker_processes") == 2
        assert count(after, "tts_real_time_factor_ratio_count") == \
            count(before, "tts_real_time_factor_ratio_count") + sent
        assert count(after, "tts_audio_seconds_total") > count(before, "tts_audio_seconds_total")


def test_metrics_expose_every_series_with_tts_names(tts_server, manifest):
    tts_server.speech(input=SHORT)
    scraped = tts_server.metric_samples()
    names = {name for name, _ in scraped}
    assert {"tts_http_requests_total", "tts_http_request_duration_seconds_count",
            "tts_http_requests_in_flight", "tts_audio_seconds_total",
            "tts_real_time_factor_ratio_count", "tts_model_info",
            "tts_worker_processes", "tts_process_resident_memory_bytes"} <= names
    assert count(scraped, "tts_process_resident_memory_bytes") > 50e6  # torch alone is more
    assert count(scraped, "tts_model_info", model=manifest["model"], version=manifest["version"],
                 color="green", engine=manifest["engine"]) == 1
    on_gpu = tts_server.get("/version").json()["device"].startswith("cuda")
    assert ("tts_gpu_memory_used_bytes" in names) == on_gpu


# Concurrency, faults and shutdown: servers of their own.


@pytest.fixture(scope="module")
def slow_server(start_server):
    """One worker, one request at a time, with the latency, silence and memory faults on."""
    return start_server("slow", workers=1, max_concurrency=1,
                        faults={"latency_ms": 700, "silence": 1, "memory_growth_mb": 16})


def test_switched_on_faults_are_listed_in_version(slow_server):
    assert slow_server.get("/version").json()["faults"] == {
        "latency_ms": 700, "silence": True, "memory_growth_mb": 16}


def test_the_latency_fault_delays_speech(slow_server):
    started = time.perf_counter()
    assert slow_server.speech(input="Hi.").status_code == 200
    assert time.perf_counter() - started >= 0.7


def test_the_silence_fault_returns_zeros_of_the_normal_length(slow_server, tts_server):
    silent = slow_server.speech(input=SHORT, voice="alloy", response_format="pcm").content
    normal = tts_server.speech(input=SHORT, voice="alloy", response_format="pcm").content
    assert len(silent) == len(normal) > 0
    assert not any(silent)


def test_the_memory_growth_fault_keeps_what_each_request_allocates(slow_server):
    """GPU memory on CUDA (seen in the metric), host memory of the worker otherwise."""
    (worker,) = slow_server.worker_pids()
    on_gpu = slow_server.get("/version").json()["device"].startswith("cuda")

    def used_mb() -> float:
        if on_gpu:
            return count(slow_server.metric_samples(), "tts_gpu_memory_used_bytes") / 2**20
        for line in open(f"/proc/{worker}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    before = used_mb()
    for _ in range(3):
        assert slow_server.speech(input="Hi.", response_format="pcm").status_code == 200
    assert used_mb() - before >= 3 * 16 * 0.75  # RSS also moves with the allocator


def test_a_full_worker_answers_503_with_retry_after_at_once(slow_server):
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(slow_server.speech, input="Hi.")
        time.sleep(0.3)  # the first request now holds the only slot for its 0.7 s of latency
        started = time.perf_counter()
        refused = slow_server.speech(input="Hi.")
        assert time.perf_counter() - started < 0.5, "refused requests must not wait"
        assert_error(refused, 503, "server_busy")
        assert int(refused.headers["Retry-After"]) >= 1
        assert first.result().status_code == 200
    assert slow_server.is_ready()
    assert slow_server.speech(input="Hi.").status_code == 200


def test_back_to_back_requests_never_find_their_own_last_one_still_counted(start_server):
    """A one-slot worker frees the slot when the audio is made, before the last byte goes
    out: a client's next request must not race the previous one's clean-up into a 503."""
    server = start_server("one-slot", workers=1, max_concurrency=1)
    answers = [server.speech(input="Hi.", response_format="pcm", stream=stream).status_code
               for _ in range(40) for stream in (False, True)]
    assert answers == [200] * 80


def test_the_error_rate_fault_answers_500_json_and_the_server_stays_ready(start_server):
    server = start_server("failing", workers=1, faults={"error_rate": 1})
    assert server.get("/version").json()["faults"] == {"error_rate": 1.0}
    for _ in range(3):
        assert_error(server.speech(input=SHORT), 500, "injected_fault")
    assert server.is_ready()
    assert server.get("/health").status_code == 200


def test_sigterm_drains_ready_503_while_in_flight_requests_finish_then_exits_0(start_server):
    server = start_server("draining", workers=1, drain_seconds=2, faults={"latency_ms": 1500})
    result = {}
    in_flight = threading.Thread(
        target=lambda: result.update(response=server.speech(input=SHORT)))
    in_flight.start()
    time.sleep(0.3)
    server.process.send_signal(signal.SIGTERM)

    deadline = time.monotonic() + 1.0
    while server.get("/ready").status_code != 503:
        assert time.monotonic() < deadline, "/ready did not turn 503 after SIGTERM"
        time.sleep(0.05)
    assert in_flight.is_alive(), "the request should still be in flight while draining"
    assert server.get("/health").status_code == 200

    in_flight.join(timeout=30)
    assert result["response"].status_code == 200
    parse_wav(result["response"].content)
    assert server.process.wait(timeout=30) == 0
