"""Model versions are directories: manifest.json plus the engine's weights."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from .engines.base import Engine

REQUIRED_KEYS = ("model", "version", "build_time", "sample_rate", "token_rate", "engine")


class ModelError(RuntimeError):
    """A model directory that cannot be served."""


@dataclass(frozen=True)
class ModelVersion:
    manifest: dict
    engine: Engine
    path: Path

    @property
    def name(self) -> str:
        return self.manifest["model"]

    @property
    def version(self) -> str:
        return self.manifest["version"]


def read_manifest(path: str | Path) -> dict:
    """The manifest of a model directory, checked for the keys every part relies on."""
    manifest_path = Path(path) / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read {manifest_path}: {exc}") from exc
    missing = [key for key in REQUIRED_KEYS if key not in manifest]
    if missing:
        raise ModelError(f"{manifest_path} lacks {', '.join(missing)}")
    return manifest


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(path: str | Path, device: str | None = None) -> ModelVersion:
    """Load the engine a manifest names; optional engines are imported only when named."""
    path = Path(path)
    manifest = read_manifest(path)
    device = device or default_device()
    kind = manifest["engine"]
    if kind == "builtin":
        from .engines.builtin import BuiltinEngine

        engine: Engine = BuiltinEngine.from_directory(path, manifest, device)
    elif kind == "voxcpm":
        from .engines.voxcpm import VoxCPMEngine

        engine = VoxCPMEngine.from_directory(path, manifest, device)
    else:
        raise ModelError(f"{path}: unknown engine {kind!r} (builtin or voxcpm)")
    return ModelVersion(manifest=manifest, engine=engine, path=path)
