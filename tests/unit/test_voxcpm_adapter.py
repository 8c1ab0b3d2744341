"""The VoxCPM adapter against a stand-in for the voxcpm 2.0.3 package (its weights need a
model hub).

Only the adapter's own logic is under test: loading from a manifest (device passed, no CUDA
graphs), voices as cloning prompts checked at load, one generation at a time, the guard
against runaway and silent generations, soxr's streaming resampler and the re-cut into one
chunk per token. The stand-in speaks at VoxCPM 1.5's native 44.1 kHz unless a test says
otherwise (VoxCPM2 speaks at 48 kHz).
"""
import json
import sys
import threading
import time
import types

import numpy as np
import pytest
import soxr
import torch

from tts_app.app import create_app
from tts_app.engines.base import EngineError, GenerationError
from tts_app.model import ModelError, load_model, manifest_max_concurrency


def tone(seconds, rate, amplitude=0.3, frequency=220.0):
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


class StandInVoxCPM:
    """Answers like voxcpm.VoxCPM: 1-D float32 numpy audio, streamed in 160 ms patches."""

    native_rate = 44100
    audio = None            # what the next generation says; a second of 220 Hz by default
    calls: list[dict] = []
    running = 0
    most_at_once = 0

    def __init__(self, source, kwargs):
        self.source, self.kwargs = source, kwargs
        self.tts_model = types.SimpleNamespace(sample_rate=StandInVoxCPM.native_rate)

    @classmethod
    def from_pretrained(cls, source, **kwargs):
        return cls(source, kwargs)

    def generate_streaming(self, **arguments):
        cls = StandInVoxCPM
        cls.calls.append(arguments)
        cls.running += 1
        cls.most_at_once = max(cls.most_at_once, cls.running)
        try:
            rate = self.tts_model.sample_rate
            audio = tone(1.0, rate) if cls.audio is None else cls.audio(rate)
            patch = round(rate * 0.16)
            for start in range(0, audio.shape[0], patch):
                time.sleep(0.001)
                yield audio[start:start + patch]
        finally:
            cls.running -= 1


@pytest.fixture
def voxcpm_dir(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "voxcpm", types.SimpleNamespace(VoxCPM=StandInVoxCPM))
    monkeypatch.setattr(StandInVoxCPM, "native_rate", 44100)
    monkeypatch.setattr(StandInVoxCPM, "audio", None)
    monkeypatch.setattr(StandInVoxCPM, "most_at_once", 0)
    monkeypatch.setattr(StandInVoxCPM, "calls", [])
    (tmp_path / "weights").mkdir()
    (tmp_path / "narrator.wav").write_bytes(b"RIFF")
    write_manifest(tmp_path)
    return tmp_path


def write_manifest(path, **extra):
    (path / "manifest.json").write_text(json.dumps({
        "model": "voxcpm", "version": "1.5", "build_time": "2026-11-01T00:00:00Z",
        "sample_rate": 44100, "token_rate": 6.25, "engine": "voxcpm",
        "voxcpm": {"model": "weights", "inference_timesteps": 8,
                   "voices": {"narrator": {"prompt_wav": "narrator.wav", "prompt_text": "Hi."}}},
        **extra}))


def test_loads_local_weights_on_the_given_device_without_cuda_graphs(voxcpm_dir):
    engine = load_model(voxcpm_dir, device="cuda:1").engine
    assert engine.model.source == str(voxcpm_dir / "weights")
    assert engine.model.kwargs == {"load_denoiser": False, "local_files_only": True, "optimize": False,
                                   "device": "cuda:1"}
    assert engine.voices() == ["default", "narrator"]


def test_a_voxcpm_model_serves_one_request_at_a_time(voxcpm_dir):
    assert manifest_max_concurrency(load_model(voxcpm_dir, device="cpu").manifest) == 1
    write_manifest(voxcpm_dir, max_concurrency=2)
    with pytest.raises(ModelError, match="one utterance at a time"):
        load_model(voxcpm_dir, device="cpu")


def test_generations_never_overlap_even_when_more_are_admitted(voxcpm_dir):
    engine = load_model(voxcpm_dir, device="cpu").engine
    threads = [threading.Thread(target=lambda: list(engine.stream("Hello there.", "default"))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert StandInVoxCPM.most_at_once == 1 and len(StandInVoxCPM.calls) == 4


def test_a_missing_voice_prompt_is_found_at_load(voxcpm_dir):
    (voxcpm_dir / "narrator.wav").unlink()
    with pytest.raises(ModelError, match="voice prompt audio not found"):
        load_model(voxcpm_dir, device="cpu")


def test_at_the_native_rate_audio_passes_untouched_in_token_chunks(voxcpm_dir):
    engine = load_model(voxcpm_dir, device="cpu").engine
    chunks = list(engine.stream("Hello.", "narrator"))
    assert all(c.shape[0] == 7056 for c in chunks[:-1]) and 0 < chunks[-1].shape[0] <= 7056
    assert torch.equal(torch.cat(chunks), torch.from_numpy(tone(1.0, 44100)))
    call = StandInVoxCPM.calls[-1]
    assert call["prompt_wav_path"] == str(voxcpm_dir / "narrator.wav") and call["inference_timesteps"] == 8


def test_another_native_rate_goes_through_one_streaming_resampler(voxcpm_dir, monkeypatch):
    """VoxCPM2 speaks at 48 kHz: resampled as one stream, the patches' edges leave no trace."""
    monkeypatch.setattr(StandInVoxCPM, "native_rate", 48000)
    engine = load_model(voxcpm_dir, device="cpu").engine
    streamed = torch.cat(list(engine.stream("Hello.", "narrator"))).numpy()
    whole = soxr.resample(tone(1.0, 48000), 48000, 44100, quality="HQ")
    assert abs(streamed.shape[0] - 44100) <= 2
    assert np.abs(streamed[:whole.shape[0]] - whole[:streamed.shape[0]]).max() < 1e-4
    peak_bin = int(np.abs(np.fft.rfft(streamed)).argmax())
    assert abs(peak_bin * 44100 / streamed.shape[0] - 220) < 2


def test_a_runaway_generation_is_stopped_and_reported(voxcpm_dir, monkeypatch):
    monkeypatch.setattr(StandInVoxCPM, "audio", lambda rate: tone(60.0, rate))
    engine = load_model(voxcpm_dir, device="cpu").engine
    heard = []
    with pytest.raises(GenerationError, match=r"runaway generation: more than 4.0 s of audio for 3 characters"):
        for chunk in engine.stream("Hi.", "default"):
            heard.append(chunk)
    assert sum(c.shape[0] for c in heard) <= 4 * 44100
    assert StandInVoxCPM.calls[-1]["max_len"] == 26  # 4 s at 6.25 tokens/s, and one more


def test_the_runaway_limit_grows_with_the_text(voxcpm_dir, monkeypatch):
    monkeypatch.setattr(StandInVoxCPM, "audio", lambda rate: tone(20.0, rate))
    engine = load_model(voxcpm_dir, device="cpu").engine
    assert engine.synthesize("word " * 20, "default").shape[0] == 20 * 44100  # 100 characters: 30 s allowed
    with pytest.raises(GenerationError, match="runaway"):
        engine.synthesize("word " * 10, "default")  # 50 characters: 15 s allowed


@pytest.mark.parametrize("seconds", [0.5, 8.0])
def test_a_silent_generation_is_reported(voxcpm_dir, monkeypatch, seconds):
    monkeypatch.setattr(StandInVoxCPM, "audio", lambda rate: np.zeros(round(seconds * rate), np.float32))
    engine = load_model(voxcpm_dir, device="cpu").engine
    with pytest.raises(GenerationError, match="silent generation"):
        engine.synthesize("Hello there, how are you today?", "default")


def test_a_quiet_start_is_not_silence(voxcpm_dir, monkeypatch):
    monkeypatch.setattr(StandInVoxCPM, "audio", lambda rate: np.concatenate(
        [np.zeros(round(0.8 * rate), np.float32), tone(1.0, rate)]))
    engine = load_model(voxcpm_dir, device="cpu").engine
    assert engine.synthesize("Hello.", "default").shape[0] == round(1.8 * 44100)


def test_unknown_voice_and_speed_are_refused(voxcpm_dir):
    engine = load_model(voxcpm_dir, device="cpu").engine
    with pytest.raises(EngineError, match="unknown voice"):
        list(engine.stream("Hello.", "alloy"))
    with pytest.raises(EngineError, match="speed"):
        list(engine.stream("Hello.", "default", speed=1.5))


def test_a_failed_generation_answers_500_as_the_versions_fault(voxcpm_dir, monkeypatch):
    client = create_app({"model_dir": voxcpm_dir, "color": "green"}).test_client()
    deadline = time.monotonic() + 10
    while client.get("/ready").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    monkeypatch.setattr(StandInVoxCPM, "audio", lambda rate: tone(60.0, rate))  # warmed up, then it breaks
    answer = client.post("/v1/audio/speech", json={"input": "Hi.", "voice": "default"})
    assert answer.status_code == 500
    assert answer.get_json()["error"]["code"] == "generation_failed"
    assert "runaway generation" in answer.get_json()["error"]["message"]
