"""The built-in engine's parameters as a safetensors file, and the shipped model versions.

A version is data, not code: the phoneme table, the voices and the global prosody and
timbre settings. ``scripts/build_models.py`` rewrites the shipped versions byte for byte.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from safetensors import safe_open

from . import phonetics

FORMAT = "ttsctl-builtin/1"
# Global settings, in order.
SETTINGS = (
    "spectral_tilt",       # source roll-off per harmonic number (higher: darker voice)
    "accent",              # pitch rise on stressed syllables, fraction of the base pitch
    "declination",         # pitch fall across a phrase, fraction of the base pitch
    "final_lengthening",   # how much longer a phrase's last syllable is
    "bandwidth_scale",     # formant bandwidths (lower: clearer, more resonant)
    "noise_gain",          # frication and burst level
    "breathiness",         # aspiration mixed into voicing
    "vibrato",             # slow pitch wobble depth, fraction of pitch
    "duration_scale",      # overall speaking time
    "formant_shift",       # all formants, before a voice scales them
)
# Voice columns: base pitch (Hz), formant scale (shorter tract: higher), speaking rate.
VOICE_COLUMNS = ("pitch_hz", "formant_scale", "rate")


@dataclass(frozen=True)
class Weights:
    phonemes: torch.Tensor          # [phonemes, len(phonetics.COLUMNS)]
    phoneme_names: tuple[str, ...]
    voices: torch.Tensor            # [voices, len(VOICE_COLUMNS)]
    voice_names: tuple[str, ...]
    settings: dict[str, float]

    def save(self, path: Path) -> None:
        tensors = {"phonemes": self.phonemes.contiguous(), "voices": self.voices.contiguous(),
                   "settings": torch.tensor([self.settings[k] for k in SETTINGS], dtype=torch.float32)}
        metadata = {"format": FORMAT, "phonemes": json.dumps(self.phoneme_names),
                    "phoneme_columns": json.dumps(phonetics.COLUMNS),
                    "voices": json.dumps(self.voice_names), "settings": json.dumps(SETTINGS)}
        save_file(tensors, str(path), metadata=metadata)

    @classmethod
    def load(cls, path: Path) -> "Weights":
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        if metadata.get("format") != FORMAT:
            raise ValueError(f"{path}: not a {FORMAT} weights file")
        tensors = load_file(str(path))
        names = json.loads(metadata["settings"])
        settings = dict(zip(names, tensors["settings"].tolist()))
        missing = set(SETTINGS) - set(settings)
        if missing or json.loads(metadata["phoneme_columns"]) != list(phonetics.COLUMNS):
            raise ValueError(f"{path}: weights layout does not match this engine")
        return cls(tensors["phonemes"], tuple(json.loads(metadata["phonemes"])),
                   tensors["voices"], tuple(json.loads(metadata["voices"])), settings)


# The two shipped versions: v2.0 is brighter, clearer, more animated and a little quicker.
VERSIONS = {
    "1.5": {
        "build_time": "2026-11-02T09:00:00Z",
        "settings": dict(spectral_tilt=0.8, accent=0.16, declination=0.16, final_lengthening=1.35,
                         bandwidth_scale=1.15, noise_gain=1.0, breathiness=0.05, vibrato=0.006,
                         duration_scale=1.0, formant_shift=1.0),
        "voices": {"ada": (205, 1.16, 1.0), "bram": (112, 1.0, 1.0), "cora": (175, 1.1, 1.12),
                   "dov": (88, 0.94, 0.9)},
    },
    "2.0": {
        "build_time": "2026-11-20T09:00:00Z",
        "settings": dict(spectral_tilt=0.5, accent=0.28, declination=0.12, final_lengthening=1.45,
                         bandwidth_scale=0.85, noise_gain=1.2, breathiness=0.03, vibrato=0.01,
                         duration_scale=0.92, formant_shift=1.03),
        "voices": {"ada": (215, 1.17, 1.0), "bram": (118, 1.0, 1.0), "cora": (185, 1.1, 1.12),
                   "dov": (92, 0.94, 0.9), "elin": (240, 1.22, 1.05)},
    },
}


def build_version(version: str, directory: Path) -> Path:
    """Write a shipped version's directory: manifest.json and weights.safetensors."""
    spec = VERSIONS[version]
    directory.mkdir(parents=True, exist_ok=True)
    voices = spec["voices"]
    Weights(phonetics.default_table(), phonetics.NAMES,
            torch.tensor(list(voices.values()), dtype=torch.float32), tuple(voices),
            spec["settings"]).save(directory / "weights.safetensors")
    manifest = {"model": "ttsctl-speech", "version": version, "build_time": spec["build_time"],
                "sample_rate": 44100, "token_rate": 6.25, "engine": "builtin",
                "weights": "weights.safetensors", "language": "en", "max_concurrency": 2}
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return directory

