"""The VoxCPM adapter against a stand-in for the voxcpm package (its weights need a model hub).

Only the adapter's own logic is under test: loading from a manifest, voices as cloning
prompts, resampling to the manifest's rate and re-cutting into one chunk per token.
"""
import json
import sys
import types

import numpy as np
import pytest
import torch

from tts_app.engines.base import EngineError
from tts_app.model import load_model, manifest_max_concurrency


class StandInVoxCPM:
    """Answers like voxcpm.VoxCPM: 16 kHz numpy audio, streamed in uneven pieces."""

    calls: list[dict] = []

    def __init__(self, source, kwargs):
        self.source, self.kwargs = source, kwargs
        self.tts_model = types.SimpleNamespace(sample_rate=16000)

    @classmethod
    def from_pretrained(cls, source, **kwargs):
        return cls(source, kwargs)

    def generate_streaming(self, **arguments):
        StandInVoxCPM.calls.append(arguments)
        t = np.arange(16000) / 16000.0
        tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)  # one second
        for piece in np.array_split(tone, 7):
            yield piece


@pytest.fixture
def voxcpm_dir(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "voxcpm", types.SimpleNamespace(VoxCPM=StandInVoxCPM))
    (tmp_path / "weights").mkdir()
    (tmp_path / "manifest.json").write_text(json.dumps({
        "model": "voxcpm", "version": "1.5", "build_time": "2026-11-01T00:00:00Z",
        "sample_rate": 44100, "token_rate": 6.25, "engine": "voxcpm",
        "voxcpm": {"model": "weights", "inference_timesteps": 8,
                   "voices": {"narrator": {"prompt_wav": "narrator.wav", "prompt_text": "Hi."}}},
    }))
    return tmp_path


def test_loads_local_weights_and_offers_cloned_voices(voxcpm_dir):
    engine = load_model(voxcpm_dir, device="cpu").engine
    assert engine.model.source == str(voxcpm_dir / "weights")
    assert engine.model.kwargs["local_files_only"] is True
    assert engine.voices() == ["default", "narrator"]


def test_a_voxcpm_manifest_without_max_concurrency_serves_one_request_at_a_time(voxcpm_dir):
    assert manifest_max_concurrency(load_model(voxcpm_dir, device="cpu").manifest) == 1


def test_stream_is_resampled_and_cut_into_token_chunks(voxcpm_dir):
    engine = load_model(voxcpm_dir, device="cpu").engine
    chunks = list(engine.stream("Hello.", "narrator"))
    assert sum(c.shape[0] for c in chunks) == 44100
    assert all(c.shape[0] == 7056 for c in chunks[:-1])
    assert StandInVoxCPM.calls[-1]["prompt_wav_path"] == str(voxcpm_dir / "narrator.wav")
    assert StandInVoxCPM.calls[-1]["inference_timesteps"] == 8
    audio = torch.cat(chunks)
    peak_bin = int(torch.fft.rfft(audio).abs().argmax())
    assert abs(peak_bin * 44100 / audio.shape[0] - 220) < 2  # the tone survives resampling


def test_unknown_voice_and_speed_are_refused(voxcpm_dir):
    engine = load_model(voxcpm_dir, device="cpu").engine
    with pytest.raises(EngineError, match="unknown voice"):
        list(engine.stream("Hello.", "alloy"))
    with pytest.raises(EngineError, match="speed"):
        list(engine.stream("Hello.", "default", speed=1.5))


def test_missing_package_says_how_to_install_it(voxcpm_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "voxcpm", None)
    with pytest.raises(RuntimeError, match=r"ttsctl\[voxcpm\]"):
        load_model(voxcpm_dir, device="cpu")
