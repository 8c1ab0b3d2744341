"""The built-in engine: real (if robotic) English speech in pure PyTorch, no downloads.

text normalisation -> pronunciation (CMU dictionary, letter rules) -> prosody tracks ->
harmonic-plus-noise vocoder at 44.1 kHz. Parameters come from the version's weights file.
"""
from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path

import torch

from ..base import Engine, EngineError
from . import text as text_mod
from . import tracks as tracks_mod
from .vocoder import NoiseBank, Renderer
from .weights import Weights

HOP = 256


class BuiltinEngine(Engine):
    def __init__(self, weights: Weights, *, sample_rate: int, token_rate: float, device: str,
                 version: str = ""):
        self.weights = weights
        self.sample_rate = sample_rate
        self.token_rate = token_rate
        self.device = device
        self.version = version
        self._voices = {name: dict(zip(("pitch_hz", "formant_scale", "rate"), row.tolist()))
                        for name, row in zip(weights.voice_names, weights.voices)}
        self.noise = NoiseBank(sample_rate, device)

    @classmethod
    def from_directory(cls, path: Path, manifest: dict, device: str) -> "BuiltinEngine":
        weights = Weights.load(Path(path) / manifest.get("weights", "weights.safetensors"))
        return cls(weights, sample_rate=int(manifest["sample_rate"]),
                   token_rate=float(manifest["token_rate"]), device=device,
                   version=str(manifest["version"]))

    def voices(self) -> list[str]:
        return list(self._voices)

    def describe(self) -> dict:
        return {"engine": "builtin", "device": self.device, "voices": self.voices()}

    def _renderer(self, text: str, voice: str, speed: float) -> Renderer:
        if voice not in self._voices:
            raise EngineError(f"unknown voice {voice!r}; this model speaks {', '.join(self._voices)}")
        settings = self.weights.settings
        spec = self._voices[voice]
        phrases = text_mod.phrases(text)
        if not phrases:
            raise EngineError("nothing to say: the text has no pronounceable words")
        tempo = settings["duration_scale"] / (spec["rate"] * speed)
        tracks = tracks_mod.build(phrases, pitch_hz=spec["pitch_hz"],
                                  formant_scale=spec["formant_scale"], tempo=tempo,
                                  frame_s=HOP / self.sample_rate, settings=settings)
        seed = zlib.crc32(f"{self.version}|{voice}|{speed}|{text}".encode())
        return Renderer(tracks, sample_rate=self.sample_rate, hop=HOP,
                        formant_scale=spec["formant_scale"], tilt=settings["spectral_tilt"],
                        vibrato=settings["vibrato"], noise=self.noise, seed=seed,
                        device=self.device)

    def stream(self, text: str, voice: str, speed: float = 1.0) -> Iterator[torch.Tensor]:
        renderer = self._renderer(text, voice, speed)
        step = self.chunk_samples
        with torch.inference_mode():
            for start in range(0, renderer.total, step):
                yield renderer.render(start, min(start + step, renderer.total))
