"""Weights: the known-weights table, local files, checksums, QuickGELU selection and missing-weights messages."""
from __future__ import annotations

import hashlib
import warnings

import open_clip
import pytest
import timm
import torch

from zsadbench.backbones import KNOWN_WEIGHTS, create_clip, list_weights
from zsadbench.backbones import clip_factory, weights
from zsadbench.backbones.dinov2 import create_dinov2
from zsadbench.errors import ConfigError, WeightsError


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_table_agrees_with_pinned_libraries():
    for entry in KNOWN_WEIGHTS:
        if entry.source == "open_clip":
            assert entry.url == open_clip.get_pretrained_url(entry.arch, entry.tag)
        else:
            assert entry.url == timm.get_pretrained_cfg(f"{entry.arch}.{entry.tag}").url
        assert entry.url.endswith("/" + entry.filename)
        if entry.openai_format:  # OpenAI URLs carry the file's full sha256 as a path component
            assert entry.sha256 in entry.url.split("/") and len(entry.sha256) == 64
    assert ("ViT-B-16-plus-240", "laion400m_e31") in list_weights("ViT-B-16-plus*")
    assert weights.known_weights("ViT-L-14-336-quickgelu", "openai").filename == "ViT-L-14-336px.pt"


def test_local_state_dict_round_trip(tmp_path):
    torch.manual_seed(0)
    source = create_clip("zsad-tiny-16-240")
    path = tmp_path / "tiny.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.model.state_dict().items()}}, path)
    torch.manual_seed(1)
    loaded = create_clip("zsad-tiny-16-240", pretrained=str(path))
    for (name, a), (_, b) in zip(source.model.state_dict().items(), loaded.model.state_dict().items()):
        assert torch.equal(a, b), name
    assert loaded.weights.as_dict() == {"tag": "tiny.pt", "path": str(path), "sha256": _sha(path), "random": False}


def test_torchscript_archive_loads_and_counts_as_openai(tmp_path):
    torch.manual_seed(0)
    source = create_clip("zsad-tiny-14-336")  # a QuickGELU architecture
    path = tmp_path / "tiny-openai.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(source.model).save(str(path))
    loaded = create_clip("zsad-tiny-14-336", pretrained=str(path), image_size=518)
    assert torch.equal(loaded.visual.conv1.weight, source.visual.conv1.weight)
    assert loaded.name == "zsad-tiny-14-336" and loaded.grid_size == (37, 37)
    # the same OpenAI-format file into an architecture without a QuickGELU variant is refused
    with pytest.raises(ConfigError, match="QuickGELU"):
        create_clip("zsad-tiny-16-240", pretrained=str(path))


def test_openai_weights_select_the_quickgelu_architecture():
    assert clip_factory._quickgelu_arch("ViT-L-14-336") == "ViT-L-14-336-quickgelu"
    assert open_clip.get_model_config("ViT-L-14-336-quickgelu")["quick_gelu"] is True
    assert clip_factory._quickgelu_arch("ViT-L-14-336-quickgelu") == "ViT-L-14-336-quickgelu"
    assert clip_factory._quickgelu_arch("ViT-B-16") == "ViT-B-16-quickgelu"


def test_file_of_another_architecture_is_refused(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "other.pt"
    torch.save(create_clip("zsad-tiny-14-336").model.state_dict(), path)
    with pytest.raises(WeightsError, match="does not fit architecture zsad-tiny-16-240"):
        create_clip("zsad-tiny-16-240", pretrained=str(path))


def test_unknown_tag_or_missing_file(tmp_path):
    with pytest.raises(WeightsError, match="neither a known tag.*laion400m_e32"):
        create_clip("ViT-B-16-plus-240", pretrained=str(tmp_path / "nowhere.pt"))


def test_missing_tag_names_the_file_and_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setattr(weights, "OPENCLIP_URL_CACHE", tmp_path)
    monkeypatch.setattr(clip_factory, "OPENCLIP_URL_CACHE", tmp_path)

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(open_clip, "download_pretrained", offline)
    with pytest.raises(WeightsError) as info:
        create_clip("ViT-B-16-plus-240", pretrained="laion400m_e32")
    message = str(info.value)
    assert "vit_b_16_plus_240-laion400m_e32-699c4b84.pt" in message
    assert str(tmp_path) in message and "--pretrained /path/to/" in message and "network is unreachable" in message


def test_cached_file_with_wrong_checksum_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(clip_factory, "OPENCLIP_URL_CACHE", tmp_path)
    (tmp_path / "vit_b_16_plus_240-laion400m_e31-8fb26589.pt").write_bytes(b"not the weights")
    with pytest.raises(WeightsError, match="does not match 8fb26589"):
        create_clip("ViT-B-16-plus-240", pretrained="laion400m_e31")


def test_sha256_helpers(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(bytes(range(256)) * 1000)
    digest = _sha(path)
    assert weights.sha256_file(path) == digest
    assert weights.check_sha256(path, digest[:8], "blob") == digest
    with pytest.raises(WeightsError, match="corrupt"):
        weights.check_sha256(path, "0" * 8 if not digest.startswith("0" * 8) else "f" * 8, "blob")


def test_dinov2_local_file_and_missing_tag(tmp_path, monkeypatch):
    torch.manual_seed(0)
    source = create_dinov2("zsad-tiny-dinov2", image_size=224)
    path = tmp_path / "dino.pth"
    torch.save(source.model.state_dict(), path)
    loaded = create_dinov2("zsad-tiny-dinov2", pretrained=str(path), image_size=224)
    assert torch.equal(loaded.model.pos_embed, source.model.pos_embed)
    assert loaded.weights.sha256 == _sha(path) and not loaded.weights.random

    import huggingface_hub

    def offline(*args, **kwargs):
        raise OSError("offline")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    monkeypatch.setattr("zsadbench.backbones.dinov2.TORCH_HUB_CACHE", tmp_path)
    with pytest.raises(WeightsError, match="dinov2_vits14_reg4_pretrain.pth"):
        create_dinov2("vit_small_patch14_reg4_dinov2", pretrained="lvd142m")


def test_published_checksum_applies_only_to_the_published_file(tmp_path):
    published = tmp_path / "ViT-L-14-336px.pt"
    hub_copy = tmp_path / "open_clip_model.safetensors"
    assert clip_factory.expected_sha256("ViT-L-14-336", "openai", published).startswith("3035c92b")
    assert clip_factory.expected_sha256("ViT-L-14-336", "openai", hub_copy) is None
    assert clip_factory.expected_sha256("zsad-tiny-16-240", "openai", published) is None
