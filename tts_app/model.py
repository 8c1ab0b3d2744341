"""Model versions are directories: manifest.json plus the engine's weights."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from .engines.base import Engine

REQUIRED_KEYS = ("model", "version", "build_time", "sample_rate", "token_rate", "engine")
# A model that does not say otherwise serves one request at a time (VoxCPM's case).
DEFAULT_MAX_CONCURRENCY = 1


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


def manifest_max_concurrency(manifest: dict) -> int:
    """Speech requests one worker serves at once, as the model declares: the one place that
    reads ``max_concurrency``, so tts-serve, /version and the load balancer agree."""
    value = manifest.get("max_concurrency", DEFAULT_MAX_CONCURRENCY)
    # bool is an int in Python; `true` in a manifest is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelError(f"max_concurrency must be an integer of at least 1, not {value!r}")
    return value


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
    try:
        manifest_max_concurrency(manifest)
    except ModelError as exc:
        raise ModelError(f"{manifest_path}: {exc}") from None
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
