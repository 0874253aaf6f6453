"""Feature cache (identical tensors back, invalidation on every key part) and the speed helpers."""
from __future__ import annotations

import pytest
import torch

from zsadbench.backbones import create_clip
from zsadbench.backbones.feature_cache import FeatureCache, backbone_namespace, cached_taps, image_digest
from zsadbench.backbones.runtime import as_channels_last, autocast, in_batches, prepare_for_inference
from zsadbench.errors import ConfigError


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return create_clip("zsad-tiny-16-240")


@pytest.fixture(scope="module")
def images():
    return torch.rand(3, 3, 240, 240, generator=torch.Generator().manual_seed(1))


class Counter:
    """A fake frozen computation that records how many images it was asked for."""

    def __init__(self):
        self.calls: list[int] = []

    def __call__(self, batch):
        self.calls.append(batch.shape[0])
        return {"mean": batch.mean(dim=(1, 2, 3)), "first": batch[:, :, :2, :2].clone()}


def test_identical_tensors_from_memory_and_disk(tmp_path, images):
    namespace = {"backbone": "b", "weights": "w", "image_size": 240, "layers": [1], "flags": {}}
    compute = Counter()
    cache = FeatureCache(tmp_path)
    first = cache.batch(images, namespace, compute)
    second = cache.batch(images, namespace, compute)
    assert compute.calls == [3]
    for name in first:
        assert torch.equal(first[name], second[name])
    reopened = FeatureCache(tmp_path)  # a new process: disk only
    third = reopened.batch(images, namespace, compute)
    assert compute.calls == [3] and reopened.hits == 3
    for name in first:
        assert torch.equal(first[name], third[name]) and third[name].dtype == first[name].dtype
    assert torch.equal(third["mean"], images.mean(dim=(1, 2, 3)))


def test_only_missing_images_are_computed_in_order(images):
    namespace = {"backbone": "b"}
    compute = Counter()
    cache = FeatureCache(None)
    cache.batch(images[1:2], namespace, compute)
    out = cache.batch(images, namespace, compute)
    assert compute.calls == [1, 2]
    assert torch.equal(out["mean"], images.mean(dim=(1, 2, 3)))  # stacked back in input order


def test_every_key_part_invalidates(tiny, images):
    other_weights = create_clip("zsad-tiny-16-240")  # the same random init as ``tiny``: change one weight
    with torch.no_grad():
        next(other_weights.parameters()).view(-1)[0] += 1e-3
    bigger = create_clip("zsad-tiny-14-336")
    bigger_518 = create_clip("zsad-tiny-14-336", image_size=518)
    base = backbone_namespace(tiny, [2, 3], vv_last=0, norm=True)
    variants = [
        backbone_namespace(bigger, [2, 3], vv_last=0, norm=True),  # backbone
        backbone_namespace(other_weights, [2, 3], vv_last=0, norm=True),  # weights
        backbone_namespace(bigger_518, [2, 3], vv_last=0, norm=True) | {"backbone": bigger.name},  # size only
        backbone_namespace(tiny, [3], vv_last=0, norm=True),  # layers
        backbone_namespace(tiny, [2, 3], vv_last=1, norm=True),  # flags
    ]
    assert backbone_namespace(bigger, 1)["weights"] != backbone_namespace(bigger_518, 1)["weights"]
    cache = FeatureCache(None)
    compute = Counter()
    cache.batch(images[:1], base, compute)
    for namespace in variants:
        cache.batch(images[:1], namespace, compute)
    changed = images[:1].clone()
    changed[0, 0, 0, 0] += 1e-3  # image content
    cache.batch(changed, base, compute)
    assert compute.calls == [1] * 7
    cache.batch(images[:1], dict(base), compute)  # an equal namespace hits
    assert compute.calls == [1] * 7


def test_weights_key_uses_checksum_or_content(tiny):
    namespace = backbone_namespace(tiny, 1)
    assert namespace["weights"].startswith("random:") and len(namespace["weights"]) == len("random:") + 64
    assert namespace["image_size"] == 240 and namespace["backbone"] == "zsad-tiny-16-240"


def test_image_digest_sees_dtype_shape_and_bytes():
    image = torch.zeros(3, 4, 4)
    assert image_digest(image) == image_digest(image.clone())
    assert image_digest(image) != image_digest(image.double())
    assert image_digest(image) != image_digest(image.reshape(3, 2, 8))


def test_cached_taps_equal_direct(tmp_path, tiny, images):
    normalised = tiny.normalize(images)
    direct = tiny.forward_intermediates(normalised, [1, 3], vv_last=1, norm=True, project=True)
    cache = FeatureCache(tmp_path)
    for _ in range(2):
        cached = cached_taps(cache, tiny, normalised, [1, 3], vv_last=1, norm=True, project=True)
        assert cached.indices == (1, 3)
        for a, b in zip(cached.patches + cached.ordinary, direct.patches + direct.ordinary):
            assert torch.equal(a, b)
        assert torch.equal(cached.cls, direct.cls)
    assert cache.hits == 3 and cache.misses == 3



def test_cached_taps_without_final_patches_have_their_own_key(tmp_path, tiny, images):
    normalised = tiny.normalize(images)
    direct = tiny.forward_intermediates(normalised, [1, 3], vv_last=1, final_patches=False)
    cache = FeatureCache(tmp_path)
    cached_taps(cache, tiny, normalised, [1, 3], vv_last=1)  # the whole pass, stored first
    trimmed = cached_taps(cache, tiny, normalised, [1, 3], vv_last=1, final_patches=False)
    assert cache.hits == 0 and cache.misses == 2 * len(images)  # not served from the whole pass's entries
    assert trimmed.ordinary == [] and torch.equal(trimmed.cls, direct.cls)
    assert all(torch.equal(a, b) for a, b in zip(trimmed.patches, direct.patches))
    again = cached_taps(FeatureCache(tmp_path), tiny, normalised, [1, 3], vv_last=1, final_patches=False)
    assert torch.equal(again.cls, direct.cls) and again.ordinary == []

def test_memory_level_is_bounded(images):
    cache = FeatureCache(None, memory_bytes=3 * 4 * (1 + 12) + 1)  # room for 3 entries of (1 + 3*2*2) floats
    compute = Counter()
    cache.batch(images, {"k": 1}, compute)
    cache.batch(images[:1] + 1, {"k": 1}, compute)  # a fourth entry evicts the oldest
    cache.batch(images[1:], {"k": 1}, compute)
    cache.batch(images[:1], {"k": 1}, compute)
    assert compute.calls == [3, 1, 1]


def test_autocast_bf16_close_to_fp32(tiny, images):
    normalised = tiny.normalize(images)
    full = tiny.forward_intermediates(normalised, 1, norm=True, project=True)
    with autocast("cpu", "bf16"):
        half = tiny.forward_intermediates(normalised, 1, norm=True, project=True)
    assert half.patches[0].dtype == torch.bfloat16
    cos = torch.nn.functional.cosine_similarity(half.patches[0].float(), full.patches[0], dim=-1)
    assert cos.min() > 0.99
    with pytest.raises(ConfigError, match="GPU"):
        autocast("cpu", "fp16")
    with pytest.raises(ConfigError, match="precision"):
        autocast("cpu", "int8")


def test_batching_and_channels_last_do_not_change_results(tiny, images):
    normalised = tiny.normalize(images)
    whole = tiny.encode_image(normalised)
    torch.testing.assert_close(in_batches(tiny.encode_image, normalised, 2), whole, rtol=1e-5, atol=1e-5)
    torch.manual_seed(0)
    other = prepare_for_inference(create_clip("zsad-tiny-16-240"))
    assert other.visual.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(other.encode_image(as_channels_last(normalised)), whole, rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError):
        in_batches(tiny.encode_image, normalised, 0)
