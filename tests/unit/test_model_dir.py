"""Model versions are directories whose manifest and weights every part can rely on."""
import json
import shutil
from pathlib import Path

import pytest
import torch

from tts_app.engines.builtin.weights import VERSIONS, Weights, build_version
from tts_app.model import ModelError, load_model, read_manifest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_shipped_versions_are_what_the_builder_makes(version, tmp_path):
    build_version(version, tmp_path)
    shipped = ROOT / f"models/v{version}"
    assert (tmp_path / "manifest.json").read_bytes() == (shipped / "manifest.json").read_bytes()
    built = Weights.load(tmp_path / "weights.safetensors")
    ours = Weights.load(shipped / "weights.safetensors")
    assert torch.equal(built.phonemes, ours.phonemes) and torch.equal(built.voices, ours.voices)
    assert (built.phoneme_names, built.voice_names, built.settings) == (
        ours.phoneme_names, ours.voice_names, ours.settings)


def test_manifest_has_the_contract_fields():
    manifest = read_manifest(ROOT / "models/v1.5")
    assert manifest["sample_rate"] == 44100 and manifest["token_rate"] == 6.25
    assert {"model", "version", "build_time", "engine"} <= set(manifest)


def test_broken_model_directories_are_refused_clearly(tmp_path):
    with pytest.raises(ModelError, match="cannot read"):
        load_model(tmp_path)
    shutil.copytree(ROOT / "models/v1.5", tmp_path / "m")
    manifest = json.loads((tmp_path / "m/manifest.json").read_text())
    (tmp_path / "m/manifest.json").write_text(json.dumps({**manifest, "engine": "magic"}))
    with pytest.raises(ModelError, match="unknown engine"):
        load_model(tmp_path / "m")
    del manifest["token_rate"]
    (tmp_path / "m/manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="lacks token_rate"):
        load_model(tmp_path / "m")
