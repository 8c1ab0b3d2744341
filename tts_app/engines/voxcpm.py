"""Adapter for VoxCPM (``pip install voxcpm``), the reference model this service deploys.

Imported only when a manifest says ``"engine": "voxcpm"``. Its weights come from a model hub
or a local copy, so it cannot run on a machine without them; the built-in engine covers the
default path. The manifest's ``voxcpm`` section configures it::

    "voxcpm": {"model": "weights",            # local directory (or hub id) for from_pretrained
               "cfg_value": 2.0, "inference_timesteps": 10,
               "voices": {"narrator": {"prompt_wav": "voices/narrator.wav",
                                       "prompt_text": "Transcript of the prompt."}}}

A voice is a cloning prompt (reference audio and its transcript); ``default`` has none.
A VoxCPM model serves one request at a time, so its manifest leaves out ``max_concurrency``
(top level, default 1) unless a site has measured that its device takes more.
Audio is resampled to the manifest's sample rate and re-cut into one chunk per token.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch

from ..audio import resample
from .base import Engine, EngineError


class VoxCPMEngine(Engine):
    def __init__(self, model, *, sample_rate: int, token_rate: float, device: str,
                 voices: dict[str, dict], cfg_value: float, inference_timesteps: int):
        self.model = model
        self.sample_rate = sample_rate
        self.token_rate = token_rate
        self.device = device
        self._voices = {"default": {}, **voices}
        self.cfg_value = cfg_value
        self.inference_timesteps = inference_timesteps
        self.native_rate = int(model.tts_model.sample_rate)

    @classmethod
    def from_directory(cls, path: Path, manifest: dict, device: str) -> "VoxCPMEngine":
        try:
            from voxcpm import VoxCPM
        except ImportError as exc:  # pragma: no cover - depends on the optional extra
            raise RuntimeError("engine 'voxcpm' needs the voxcpm package: pip install 'ttsctl[voxcpm]'") from exc
        settings = manifest.get("voxcpm", {})
        source = settings.get("model", "weights")
        local = Path(path) / source
        model = VoxCPM.from_pretrained(str(local) if local.exists() else source,
                                       load_denoiser=False, local_files_only=local.exists())
        voices = {name: {"prompt_wav_path": str(Path(path) / spec["prompt_wav"]),
                         "prompt_text": spec["prompt_text"]}
                  for name, spec in settings.get("voices", {}).items()}
        return cls(model, sample_rate=int(manifest["sample_rate"]),
                   token_rate=float(manifest["token_rate"]), device=device, voices=voices,
                   cfg_value=float(settings.get("cfg_value", 2.0)),
                   inference_timesteps=int(settings.get("inference_timesteps", 10)))

    def voices(self) -> list[str]:
        return list(self._voices)

    def describe(self) -> dict:
        return {"engine": "voxcpm", "device": self.device, "voices": self.voices(),
                "native_sample_rate": self.native_rate}

    def _arguments(self, text: str, voice: str, speed: float) -> dict:
        if voice not in self._voices:
            raise EngineError(f"unknown voice {voice!r}; this model speaks {', '.join(self._voices)}")
        if speed != 1.0:
            raise EngineError("this model speaks at its natural rate: speed must be 1.0")
        prompt = self._voices[voice]
        return {"text": text, "prompt_wav_path": prompt.get("prompt_wav_path"),
                "prompt_text": prompt.get("prompt_text"), "cfg_value": self.cfg_value,
                "inference_timesteps": self.inference_timesteps, "normalize": True,
                "denoise": False}

    def stream(self, text: str, voice: str, speed: float = 1.0) -> Iterator[torch.Tensor]:
        arguments = self._arguments(text, voice, speed)
        pending = torch.zeros(0)
        step = self.chunk_samples
        heard = produced = 0  # native samples received, output samples made: no drift
        for piece in self.model.generate_streaming(**arguments):
            piece = torch.as_tensor(piece, dtype=torch.float32).flatten()
            heard += piece.shape[0]
            length = round(heard * self.sample_rate / self.native_rate) - produced
            audio = resample(piece, self.native_rate, self.sample_rate, length)
            produced += audio.shape[0]
            pending = torch.cat([pending, audio])
            while pending.shape[0] >= step:
                yield pending[:step]
                pending = pending[step:]
        if pending.shape[0]:
            yield pending
