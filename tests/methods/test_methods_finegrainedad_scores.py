"""FineGrainedAD's image score and CLS level: Eq. 8 and the released rule against hand computations from a tiny
model's own maps and CLS scores, the CLS level picked by the Query Former or fixed to the image level, and the
config checks of both switches."""
from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from zsadbench.errors import ConfigError
from zsadbench.methods.finegrainedad.config import FineGrainedADConfig
from zsadbench.methods.finegrainedad.method import FineGrainedAD
from zsadbench.methods.finegrainedad.model import cls_scores
from zsadbench.types import Batch

from promptad_helpers import TINY

SIZE = 64
CATEGORY = "nut"  # the synthetic set's shipped captions: levels image, foreground, background, two components


def images(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def tiny(**overrides) -> FineGrainedAD:
    """FineGrainedAD on the tiny backbone with its initial prompts (the rules under test do not depend on training)
    and the memory of two random shots."""
    torch.manual_seed(0)
    cfg = FineGrainedADConfig(**{"backbone": TINY, "image_size": SIZE, "memory_layers": (1, 2), "map_size": SIZE,
                                 "cluster_size": 2 * SIZE, "query_heads": 2, "epochs_cls": 1, **overrides})
    method = FineGrainedAD(cfg, pretrained="none").setup()
    head = method._build_head("synthetic", CATEGORY, [], state={})  # restoring a state needs no region weights
    head.remember(method._features(images(2, seed=1), None))
    head.freeze()
    method.head_, method.fitted_ = head, True
    return method


def scores_and_prediction(method: FineGrainedAD):
    x = images(3, seed=2)
    with torch.no_grad():
        scores = method.head_.scores(method._features(x, None))
        return scores, method.predict(Batch(image=x, category=CATEGORY))


def peak(tokens: torch.Tensor, size: int) -> torch.Tensor:
    """The largest value of token scores ``[B, h·w]`` (a square grid) bilinearly upsampled to ``size`` px (0: none)."""
    side = round(tokens.shape[1] ** 0.5)
    grid = tokens.reshape(-1, 1, side, side)
    if size:
        grid = F.interpolate(grid, size=(size, size), mode="bilinear", align_corners=False)
    return grid.flatten(1).max(dim=1).values


def by_hand(cls: torch.Tensor, normal: torch.Tensor, abnormal: torch.Tensor, scale: float) -> torch.Tensor:
    """Eq. 4's abnormal probability: softmax over (normal, abnormal) of ``scale · cos`` = sigmoid of the difference."""
    return torch.sigmoid(scale * ((cls * abnormal).sum(-1) - (cls * normal).sum(-1)))


# -- image score -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [0, 400])
def test_eq8_fuses_the_pixel_maps_maximum_with_the_cls_score(size):
    scores, out = scores_and_prediction(tiny(image_score="eq8", image_score_size=size))
    pixel = 1 / (1 / scores.text + 1 / scores.visual)  # Eq. 7 on the token grid
    torch.testing.assert_close(out.pred_score, 1 / (1 / peak(pixel, size) + 1 / scores.image_text))  # Eq. 8


def test_released_rule_fuses_the_memory_maps_maximum_and_the_switch_keeps_the_maps():
    method = tiny()
    scores, released = scores_and_prediction(method)
    size = method.config.image_score_size
    torch.testing.assert_close(released.pred_score, 1 / (1 / peak(scores.visual, size) + 1 / scores.image_text))
    method.config = dataclasses.replace(method.config, image_score="eq8")
    _, eq8 = scores_and_prediction(method)
    torch.testing.assert_close(eq8.anomaly_map, released.anomaly_map, rtol=0, atol=0)
    assert (eq8.pred_score < released.pred_score).all()  # M_pix < M_v everywhere


# -- CLS level -------------------------------------------------------------------------------------------------
def test_cls_scores_take_the_level_the_query_former_picks():
    e = torch.eye(3)
    normal, abnormal, intrinsic = e, e[[1, 2, 0]], e
    cls = F.normalize(torch.tensor([[0.2, 1.0, 0.3], [1.0, 0.1, 0.5]]), dim=-1)  # nearest to levels 1 and 0
    expected = torch.stack([by_hand(cls[0], e[1], e[2], 2.0), by_hand(cls[1], e[0], e[1], 2.0)])
    torch.testing.assert_close(cls_scores(cls, normal, abnormal, intrinsic, 2.0), expected)
    # no intrinsic representations: the image level (the first) for every image
    torch.testing.assert_close(cls_scores(cls, normal, abnormal, None, 2.0), by_hand(cls, e[0], e[1], 2.0))


def test_query_former_cls_level_uses_the_classification_prompts_of_the_level_it_picks():
    method = tiny()
    head = method.head_
    with torch.no_grad():
        query = method._features(images(6, seed=3), None)
        got = head.scores(query).image_text
        levels = head.level_features(cls=True)
        normal = torch.stack([F.normalize(g.normal.mean(0), dim=-1) for g in levels.values()])
        abnormal = torch.stack([F.normalize(torch.cat([g.handcrafted, g.learned]).mean(0), dim=-1)
                                for g in levels.values()])
        intrinsic = head.query(normal, abnormal)
    assert list(levels) == head.levels  # the classification prompts cover every level
    pick = (query.cls @ F.normalize(intrinsic, dim=-1).T).argmax(dim=1)
    assert (pick != 0).all()  # here the Query Former picks another level than the image's
    torch.testing.assert_close(got, by_hand(query.cls, normal[pick], abnormal[pick], head.scale))


def test_image_cls_level_uses_the_image_level_classification_prompts():
    method = tiny(cls_level="image")
    head = method.head_
    assert list(head.level_features(cls=True)) == ["image"] and head.cls_mixer is None
    with torch.no_grad():
        query = method._features(images(3, seed=3), None)
        group = head.cls()["image"]
        got = head.scores(query).image_text
    normal = F.normalize(group.normal.mean(0), dim=-1)
    abnormal = F.normalize(torch.cat([group.handcrafted, group.learned]).mean(0), dim=-1)
    torch.testing.assert_close(got, by_hand(query.cls, normal, abnormal, head.scale))


def test_without_classification_prompts_the_cls_takes_the_tokens_levels():
    method = tiny(epochs_cls=0)
    head = method.head_
    with torch.no_grad():
        query = method._features(images(3, seed=3), None)
        got = head.scores(query).image_text
        levels = head.level_features()
        normal = torch.stack([g.normal_anchor for g in levels.values()])
        abnormal = torch.stack([g.abnormal_anchor for g in levels.values()])
        intrinsic = F.normalize(head.query(normal, abnormal), dim=-1)
    pick = (query.cls @ intrinsic.T).argmax(dim=1)
    torch.testing.assert_close(got, by_hand(query.cls, normal[pick], abnormal[pick], head.scale))


def test_the_classification_phase_trains_its_own_prompts_and_attr_moe_weights():
    head = tiny().head_
    trained = {id(p) for p in head.cls_parameters()}
    assert trained == {id(p) for p in [*head.cls.parameters(), *head.cls_mixer.parameters()]}
    assert not trained & {id(p) for p in head.trained_parameters()}


# -- config ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("field, bad, valid", [("image_score", "max", "'released', 'eq8'"),
                                               ("cls_level", "cls", "'query_former', 'image'")])
def test_bad_values_name_the_field_and_the_valid_ones(field, bad, valid):
    with pytest.raises(ConfigError, match=rf"FineGrainedADConfig\.{field} must be one of {valid}, got '{bad}'"):
        FineGrainedADConfig(**{field: bad})


def test_defaults_are_the_released_rules_which_as_shipped_requires():
    for cfg in (FineGrainedADConfig(), FineGrainedADConfig(as_shipped=True)):
        assert (cfg.image_score, cfg.cls_level) == ("released", "query_former")
    with pytest.raises(ConfigError, match=r"FineGrainedADConfig\.image_score='eq8' contradicts as_shipped=True"):
        FineGrainedADConfig(as_shipped=True, image_score="eq8")
    with pytest.raises(ConfigError, match=r"FineGrainedADConfig\.cls_level='image' contradicts as_shipped=True"):
        FineGrainedADConfig(as_shipped=True, cls_level="image")
