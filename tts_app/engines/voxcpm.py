"""Adapter for VoxCPM (``pip install 'ttsctl[voxcpm]'``, voxcpm 2.0.3), the reference model
this service deploys.

Imported only when a manifest says ``"engine": "voxcpm"``. Its weights come from a model hub
or a local copy, so it cannot run on a machine without them; the built-in engine covers the
default path. The manifest's ``voxcpm`` section configures it::

    "voxcpm": {"model": "weights",            # local directory (or hub id) for from_pretrained
               "cfg_value": 2.0, "inference_timesteps": 10,
               "max_seconds_per_char": 0.3,   # the runaway guard (below)
               "voices": {"narrator": {"prompt_wav": "voices/narrator.wav",
                                       "prompt_text": "Transcript of the prompt."}}}

A voice is a cloning prompt (reference audio and its transcript); ``default`` has none.

How it is served, and why (voxcpm 2.0.3; OpenBMB/VoxCPM issues #97, #107, #133, #208):
- The device is passed explicitly (voxcpm would pick CUDA device 0 by itself) and
  ``optimize=False``: the service loads and warms the model on one thread and serves from
  others, and CUDA graphs captured on one thread fail when replayed on another.
- One generation at a time per loaded model (its KV cache has batch size 1): a manifest
  may not declare ``max_concurrency`` above 1, and a lock serialises generations anyway.
- Streaming turns voxcpm's own bad-case retry off, so a guard stops a generation that runs
  away (longer than ``max_seconds_per_char`` times the text's length, at least 4 s) or
  stays silent, as a GenerationError (HTTP 500, counted against the version).
- Audio is resampled from the model's native rate to the manifest's with soxr's streaming
  resampler (one filter state across chunks, so no clicks at chunk edges), only when the two
  differ, then re-cut into one chunk per token.
"""
from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from ..model import ModelError, manifest_max_concurrency
from .base import Engine, EngineError, GenerationError

# Below this peak (about -60 dBFS) a stretch of audio counts as silence.
SILENCE_PEAK = 1e-3


class GenerationGuard:
    """Judges a generation as it streams: too long for its text, or silent."""

    def __init__(self, text: str, sample_rate: int, *, max_seconds_per_char: float,
                 min_seconds: float = 4.0, silent_after_seconds: float = 2.0):
        self.sample_rate = sample_rate
        self.characters = len(text)
        self.limit_seconds = max(min_seconds, self.characters * max_seconds_per_char)
        self._limit = math.ceil(self.limit_seconds * sample_rate)
        self._silent_after = round(silent_after_seconds * sample_rate)
        self.samples = 0
        self.peak = 0.0

    def check(self, piece: np.ndarray) -> None:
        self.samples += piece.shape[0]
        if piece.shape[0]:
            self.peak = max(self.peak, float(np.abs(piece).max()))
        if self.samples > self._limit:
            raise GenerationError(f"runaway generation: more than {self.limit_seconds:.1f} s of audio for "
                                  f"{self.characters} characters of text")
        if self.samples >= self._silent_after and self.peak < SILENCE_PEAK:
            raise GenerationError(f"silent generation: {self.samples / self.sample_rate:.1f} s of audio "
                                  "without a sound")

    def finish(self) -> None:
        if self.peak < SILENCE_PEAK:
            raise GenerationError("silent generation: the model made no sound for the text")


class NativeRate:
    """Passes audio through: the model already speaks at the manifest's rate."""

    def __call__(self, piece: np.ndarray, last: bool = False) -> np.ndarray:
        return piece


class StreamResampler:
    """soxr's streaming resampler: one filter state for the whole utterance."""

    def __init__(self, source_rate: int, target_rate: int):
        import soxr

        self._stream = soxr.ResampleStream(source_rate, target_rate, 1, dtype="float32", quality="HQ")

    def __call__(self, piece: np.ndarray, last: bool = False) -> np.ndarray:
        return self._stream.resample_chunk(piece, last=last)


class VoxCPMEngine(Engine):
    def __init__(self, model, *, sample_rate: int, token_rate: float, device: str,
                 voices: dict[str, dict], cfg_value: float, inference_timesteps: int,
                 max_seconds_per_char: float = 0.3):
        self.model = model
        self.sample_rate = sample_rate
        self.token_rate = token_rate
        self.device = device
        self._voices = {"default": {}, **voices}
        self.cfg_value = cfg_value
        self.inference_timesteps = inference_timesteps
        self.max_seconds_per_char = max_seconds_per_char
        self.native_rate = int(model.tts_model.sample_rate)
        self._one_at_a_time = threading.Lock()

    @classmethod
    def from_directory(cls, path: Path, manifest: dict, device: str) -> "VoxCPMEngine":
        if manifest_max_concurrency(manifest) != 1:
            raise ModelError("a VoxCPM model generates one utterance at a time (its KV cache has batch "
                             f"size 1): max_concurrency must be 1, not {manifest['max_concurrency']!r}")
        try:
            from voxcpm import VoxCPM
        except ImportError as exc:  # pragma: no cover - depends on the optional extra
            raise RuntimeError("engine 'voxcpm' needs the voxcpm package: pip install 'ttsctl[voxcpm]'") from exc
        settings = manifest.get("voxcpm", {})
        source = settings.get("model", "weights")
        local = Path(path) / source
        voices = {name: {"prompt_wav_path": str(Path(path) / spec["prompt_wav"]),
                         "prompt_text": spec["prompt_text"]}
                  for name, spec in settings.get("voices", {}).items()}
        missing = [v["prompt_wav_path"] for v in voices.values() if not Path(v["prompt_wav_path"]).is_file()]
        if missing:  # found at load, not as a 500 on the first request with that voice
            raise ModelError(f"voice prompt audio not found: {', '.join(missing)}")
        model = VoxCPM.from_pretrained(str(local) if local.exists() else source, load_denoiser=False,
                                       local_files_only=local.exists(), optimize=False, device=device)
        return cls(model, sample_rate=int(manifest["sample_rate"]),
                   token_rate=float(manifest["token_rate"]), device=device, voices=voices,
                   cfg_value=float(settings.get("cfg_value", 2.0)),
                   inference_timesteps=int(settings.get("inference_timesteps", 10)),
                   max_seconds_per_char=float(settings.get("max_seconds_per_char", 0.3)))

    def voices(self) -> list[str]:
        return list(self._voices)

    def describe(self) -> dict:
        return {"engine": "voxcpm", "device": self.device, "voices": self.voices(),
                "native_sample_rate": self.native_rate}

    def _arguments(self, text: str, voice: str, speed: float, guard: GenerationGuard) -> dict:
        if voice not in self._voices:
            raise EngineError(f"unknown voice {voice!r}; this model speaks {', '.join(self._voices)}")
        if speed != 1.0:
            raise EngineError("this model speaks at its natural rate: speed must be 1.0")
        prompt = self._voices[voice]
        return {"text": text, "prompt_wav_path": prompt.get("prompt_wav_path"),
                "prompt_text": prompt.get("prompt_text"), "cfg_value": self.cfg_value,
                "inference_timesteps": self.inference_timesteps, "normalize": True,
                "denoise": False,
                # The model stops itself one token past the guard's limit, so a runaway is
                # both cut short and reported.
                "max_len": math.ceil(guard.limit_seconds * self.token_rate) + 1}

    def stream(self, text: str, voice: str, speed: float = 1.0) -> Iterator[torch.Tensor]:
        guard = GenerationGuard(text, self.native_rate, max_seconds_per_char=self.max_seconds_per_char)
        arguments = self._arguments(text, voice, speed, guard)
        with self._one_at_a_time:
            pending = np.zeros(0, dtype=np.float32)
            for audio in self._generated(arguments, guard):
                pending = np.concatenate([pending, audio])
                while pending.shape[0] >= self.chunk_samples:
                    yield torch.from_numpy(pending[:self.chunk_samples].copy())
                    pending = pending[self.chunk_samples:]
            if pending.shape[0]:
                yield torch.from_numpy(pending.copy())

    def _generated(self, arguments: dict, guard: GenerationGuard) -> Iterator[np.ndarray]:
        """The model's pieces, judged by the guard, at the manifest's rate."""
        resample = NativeRate() if self.native_rate == self.sample_rate else \
            StreamResampler(self.native_rate, self.sample_rate)
        for piece in self.model.generate_streaming(**arguments):
            piece = np.asarray(piece, dtype=np.float32).reshape(-1)
            guard.check(piece)
            yield resample(piece)
        guard.finish()
        yield resample(np.zeros(0, dtype=np.float32), last=True)
