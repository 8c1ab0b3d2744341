"""Model versions are directories whose manifest and weights every part can rely on."""
import json
import shutil
from pathlib import Path

import pytest
import torch

from tts_app.engines.builtin.weights import VERSIONS, Weights, build_version
from tts_app.model import ModelError, load_model, manifest_max_concurrency, read_manifest

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


def write_manifest(directory: Path, **changes) -> Path:
    """A copy of v1.5's manifest with keys changed (None removes one)."""
    manifest = json.loads((ROOT / "models/v1.5/manifest.json").read_text())
    manifest.update(changes)
    manifest = {key: value for key, value in manifest.items() if value is not None}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


def test_the_shipped_versions_declare_two_requests_per_worker():
    for version in VERSIONS:
        assert manifest_max_concurrency(read_manifest(ROOT / f"models/v{version}")) == 2


def test_a_manifest_without_max_concurrency_serves_one_request_at_a_time(tmp_path):
    manifest = read_manifest(write_manifest(tmp_path, max_concurrency=None))
    assert "max_concurrency" not in manifest
    assert manifest_max_concurrency(manifest) == 1
    assert manifest_max_concurrency(read_manifest(write_manifest(tmp_path, max_concurrency=7))) \
        == 7


@pytest.mark.parametrize("value", [0, -1, "2", 2.5, 2.0, True, None, [2]],
                         ids=repr)
def test_a_wrong_max_concurrency_is_refused_at_load_with_the_value(tmp_path, value):
    manifest = json.loads((ROOT / "models/v1.5/manifest.json").read_text())
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "max_concurrency": value}))
    with pytest.raises(ModelError, match=r"manifest\.json: max_concurrency must be an integer"):
        read_manifest(tmp_path)
    with pytest.raises(ModelError, match=r"max_concurrency"):
        load_model(tmp_path)
