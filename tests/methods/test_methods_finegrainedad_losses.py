"""FineGrainedAD's loss terms against values computed here from the paper's formulas (Eq. 2, Eq. 3, the Query
Former's cosine objective) in plain torch, first on small fixed tensors, then composed on a tiny model: the
segmentation loss is the sum of the levels' CLIP, triplet and mean losses plus the weighted regularisation and
Query Former losses, the classification loss the sum of its levels' losses on the CLS features."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from zsadbench.errors import ConfigError
from zsadbench.methods.finegrainedad.config import FineGrainedADConfig
from zsadbench.methods.finegrainedad.method import FineGrainedAD
from zsadbench.methods.finegrainedad.model import regularisation_loss
from zsadbench.methods.finegrainedad.queryformer import query_loss
from zsadbench.methods.promptad import (
    GroupFeatures,
    mean_alignment_loss,
    token_summed_triplet_loss,
    triplet_loss,
    v2t_loss,
)

from promptad_helpers import TINY

SIZE = 64
LAMBDAS = {"lambda_align": 0.05, "lambda_reg": 0.7, "lambda_query": 0.3}  # all visible in the totals


# -- the formulas, by hand ---------------------------------------------------------------------------------------
def unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def weighted_mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    return values.mean() if weights is None else (values * weights).mean()


def clip_by_hand(z, normal, abnormal, scale, weights=None):
    """ℓ_clip = −log(exp(t⟨z, p_n⟩) / (exp(t⟨z, p_n⟩) + Σ_{p ∈ Λ} exp(t⟨z, p⟩))) per token."""
    positive = torch.exp(scale * (z @ normal))
    negative = torch.exp(scale * (z @ abnormal.T)).sum(-1)
    return weighted_mean(-torch.log(positive / (positive + negative)), weights)


def triplet_by_hand(z, normal, abnormal, margin, weights=None, squared=False):
    """ℓ_trip = max(d(z, p̄_n) − d(z, p̄_a) + ε, 0) per token, d Euclidean (or its square)."""
    near, far = ((z - normal) ** 2).sum(-1), ((z - abnormal) ** 2).sum(-1)
    if not squared:
        near, far = near.sqrt(), far.sqrt()
    return weighted_mean(torch.clamp(near - far + margin, min=0), weights)


def mean_by_hand(handcrafted, learned):
    """ℓ_mean = ‖mean(p_a^h / ‖p_a^h‖) − mean(p_a^l / ‖p_a^l‖)‖²."""
    return ((unit(handcrafted).mean(0) - unit(learned).mean(0)) ** 2).sum()


def reg_by_hand(levels, components, shipped=False):
    """ℓ_reg / λ_reg = ‖(p_a,img − Σ_i p_a,c_i) − p_b‖, each p the normalised mean of its prompts; the released code
    normalises prompt by prompt and sums the components' prompts before."""
    if shipped:
        summed = sum(levels[c].learned for c in components)
        gap = unit(levels["image"].learned).mean(0) - unit(summed).mean(0) - unit(levels["background"].normal).mean(0)
    else:
        parts = sum(unit(levels[c].learned.mean(0)) for c in components)
        gap = unit(levels["image"].learned.mean(0)) - parts - unit(levels["background"].normal.mean(0))
    return gap.norm()


def query_by_hand(intrinsic, normal, abnormal):
    """mean over levels of (1 − cos(q_l, n_l)) + (1 − cos(q_l, a_l))."""
    q, n, a = unit(intrinsic), unit(normal), unit(abnormal)
    return ((1 - (q * n).sum(-1)) + (1 - (q * a).sum(-1))).mean()


def anchors(group: GroupFeatures) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """p̄_n, Λ (every abnormal prompt, normalised) and p̄_a of one level."""
    abnormal = torch.cat([group.handcrafted, group.learned])
    return unit(group.normal.mean(0)), unit(abnormal), unit(abnormal.mean(0))


# -- single terms on fixed tensors ---------------------------------------------------------------------------------
E = torch.eye(3)


def test_clip_loss_by_hand():
    z = torch.stack([E[0], unit(E[0] + E[1])])
    abnormal = torch.stack([E[1], -E[0]])
    # token 0: logits (1, 0, −1); token 1: (1/√2, 1/√2, −1/√2)
    first = -math.log(math.e / (math.e + 1 + math.exp(-1)))
    r = 1 / math.sqrt(2)
    second = -math.log(math.exp(r) / (2 * math.exp(r) + math.exp(-r)))
    torch.testing.assert_close(v2t_loss(z, E[0], abnormal, 1.0), torch.tensor((first + second) / 2))
    weights = torch.tensor([2.0, 0.5])
    torch.testing.assert_close(v2t_loss(z, E[0], abnormal, 1.0, weights), torch.tensor((2 * first + 0.5 * second) / 2))
    z3 = F.normalize(torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(0)), dim=-1)
    w3 = torch.rand(2, 4, generator=torch.Generator().manual_seed(1)) + 1
    torch.testing.assert_close(v2t_loss(z3, E[0], abnormal, 2.5, w3), clip_by_hand(z3, E[0], abnormal, 2.5, w3))


def test_triplet_loss_by_hand():
    z = torch.tensor([[1.0, 0.0], [0.0, -1.0]])
    normal, abnormal = torch.tensor([0.0, 1.0]), torch.tensor([-1.0, 0.0])
    # Euclidean: relu(√2 − 2 + 1) = √2 − 1 and relu(2 − √2 + 1) = 3 − √2; squared: relu(2 − 4 + 1) = 0, relu(4 − 2 + 1) = 3
    root = math.sqrt(2)
    torch.testing.assert_close(triplet_loss(z, normal, abnormal, 1.0, squared=False), torch.tensor(1.0))
    torch.testing.assert_close(triplet_loss(z, normal, abnormal, 1.0), torch.tensor(1.5))
    weights = torch.tensor([2.0, 0.5])
    torch.testing.assert_close(triplet_loss(z, normal, abnormal, 1.0, squared=False, weights=weights),
                               torch.tensor((2 * (root - 1) + 0.5 * (3 - root)) / 2))
    z3 = F.normalize(torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(2)), dim=-1)
    w3 = torch.rand(2, 5, generator=torch.Generator().manual_seed(3)) + 1
    torch.testing.assert_close(triplet_loss(z3, E[0], E[1], 1.0, squared=False, weights=w3),
                               triplet_by_hand(z3, E[0], E[1], 1.0, w3))


def test_released_margin_loss_sums_over_the_tokens():
    z = torch.tensor([[[1.0, 0.0], [0.0, -1.0]]])  # one shot, two tokens
    normal, abnormal = torch.tensor([0.0, 1.0]), torch.tensor([-1.0, 0.0])
    # per channel, summed over the tokens: near (1, 1 + 4), far (4 + 1, 1) -> relu(−3), relu(5) -> mean 2.5
    torch.testing.assert_close(token_summed_triplet_loss(z, normal, abnormal, 1.0), torch.tensor(2.5))


def test_mean_loss_by_hand():
    handcrafted = torch.tensor([[2.0, 0.0], [0.0, 3.0]])  # normalised mean (0.5, 0.5)
    learned = torch.tensor([[4.0, 0.0]])  # (1, 0)
    torch.testing.assert_close(mean_alignment_loss(handcrafted, learned), torch.tensor(0.5))


def test_regularisation_loss_by_hand_as_in_the_paper_and_as_released():
    def group(normal, learned):
        return GroupFeatures(normal, torch.zeros(1, 3), learned)

    levels = {"image": group(E[:1], torch.stack([2 * E[0], 2 * E[1]])),
              "background": group(3 * E[2:], E[:2]),
              "component:0": group(E[:1], torch.stack([E[0], E[0]])),
              "component:1": group(E[:1], torch.stack([E[2], E[1]]))}
    components = ["component:0", "component:1"]
    # paper: image (1, 1, 0)/√2, components e0 + (0, 1, 1)/√2, background e2 -> |(1/√2 − 1, 0, −1/√2 − 1)| = √3
    torch.testing.assert_close(regularisation_loss(levels, components, shipped=False), torch.tensor(math.sqrt(3)))
    # released: image (½, ½, 0), components' prompts summed (1, 0, 1), (1, 1, 0) -> (1, ½, ½)/√2, background e2
    r = 1 / math.sqrt(2)
    gap = torch.tensor([0.5 - r, 0.5 - r / 2, -r / 2 - 1])
    torch.testing.assert_close(regularisation_loss(levels, components, shipped=True), gap.norm())
    torch.testing.assert_close(regularisation_loss(levels, components, shipped=True),
                               reg_by_hand(levels, components, shipped=True))


def test_query_former_loss_by_hand_and_its_fixed_targets():
    intrinsic = torch.tensor([[1.0, 0.0], [1.0, 1.0]], requires_grad=True)
    normal = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    abnormal = torch.tensor([[0.0, 1.0], [0.0, -1.0]])
    # level 0: (1 − 1) + (1 − 0); level 1: (1 − 1/√2) + (1 + 1/√2)
    loss = query_loss(intrinsic, normal, abnormal)
    torch.testing.assert_close(loss, torch.tensor(1.5))
    loss.backward()
    assert intrinsic.grad is not None and normal.grad is None  # the prompts are targets, not trained by it


# -- composition on a tiny model -----------------------------------------------------------------------------------
def tiny_head(**overrides):
    """A FineGrainedAD head on the tiny backbone with its initial prompts, random region weights and the features
    of two random shots."""
    torch.manual_seed(0)
    cfg = FineGrainedADConfig(**{"backbone": TINY, "image_size": SIZE, "memory_layers": (1, 2),
                                 "cluster_size": 2 * SIZE, "query_heads": 2, "epochs_cls": 1, **LAMBDAS, **overrides})
    method = FineGrainedAD(cfg, pretrained="none").setup()
    head = method._build_head("synthetic", "nut", [], state={})
    generator = torch.Generator().manual_seed(1)
    shots = method._features(torch.rand(2, 3, SIZE, SIZE, generator=generator), None)
    head.weights = 1 + 1.5 * torch.rand(len(head.levels), 2, shots.patches.shape[1], generator=generator)
    return head, shots


def summed_by_hand(z, normal, abnormal, margin):
    """The released margin loss: squared differences summed over the tokens, max(· + ε, 0) per channel, mean."""
    near, far = ((z - normal) ** 2).sum(dim=1), ((z - abnormal) ** 2).sum(dim=1)
    return torch.clamp(near - far + margin, min=0).mean()


@pytest.mark.parametrize("shipped,form", [(False, "euclidean"), (False, "squared"), (False, "token_summed"),
                                          (True, "euclidean"), (True, "token_summed")])
def test_segmentation_loss_is_the_weighted_sum_of_its_terms(shipped, form):
    head, shots = tiny_head(as_shipped=shipped, margin_form=form)
    cfg = head.cfg
    with torch.no_grad():
        losses = head.seg_loss(shots)
        levels = head.level_features()
        expected_levels = 0.0
        for i, (name, group) in enumerate(levels.items()):
            weights = None if name == "image" else head.weights[i]
            normal, abnormal, abnormal_mean = anchors(group)
            align = cfg.lambda_align * mean_by_hand(group.handcrafted, group.learned)
            z = shots.patches if weights is None else shots.patches * weights[..., None]
            if shipped:  # region weights scale the features; the margin loss sums over the tokens
                expected_levels += (clip_by_hand(z, normal, abnormal, head.scale)
                                    + summed_by_hand(z, normal, abnormal_mean, cfg.eam_margin) + align)
            else:
                margin = (summed_by_hand(z, normal, abnormal_mean, cfg.eam_margin) if form == "token_summed" else
                          triplet_by_hand(shots.patches, normal, abnormal_mean, cfg.eam_margin, weights,
                                          squared=form == "squared"))
                expected_levels += clip_by_hand(shots.patches, normal, abnormal, head.scale, weights) + margin + align
        reg = cfg.lambda_reg * reg_by_hand(levels, head.components, shipped=shipped)
        total = expected_levels + reg
        if not shipped:
            normal = torch.stack([anchors(g)[0] for g in levels.values()])
            abnormal = torch.stack([anchors(g)[2] for g in levels.values()])
            query = cfg.lambda_query * query_by_hand(head.query(normal, abnormal), normal, abnormal)
            torch.testing.assert_close(losses["query"], query)
            total = total + query
    assert set(losses) == ({"levels", "reg", "total"} if shipped else {"levels", "reg", "query", "total"})
    torch.testing.assert_close(losses["levels"], expected_levels)
    torch.testing.assert_close(losses["reg"], reg)
    torch.testing.assert_close(losses["total"], total)


def test_as_shipped_refuses_a_per_token_squared_margin():
    with pytest.raises(ConfigError, match="margin_form='squared' contradicts as_shipped=True"):
        FineGrainedADConfig(as_shipped=True, margin_form="squared")
    assert FineGrainedADConfig().margin_form == "euclidean"


@pytest.mark.parametrize("overrides", [{}, {"cls_level": "image"}, {"as_shipped": True}])
def test_classification_loss_sums_its_levels_losses_on_the_cls_features(overrides):
    head, shots = tiny_head(**overrides)
    cfg = head.cfg
    with torch.no_grad():
        got = head.cls_loss(shots)["total"]
        levels = head.level_features(cls=True)
        expected = 0.0
        for group in levels.values():
            normal, abnormal, abnormal_mean = anchors(group)
            expected += (clip_by_hand(shots.cls, normal, abnormal, head.scale)
                         + triplet_by_hand(shots.cls, normal, abnormal_mean, cfg.eam_margin, squared=cfg.as_shipped)
                         + cfg.lambda_align * mean_by_hand(group.handcrafted, group.learned))
    assert list(levels) == (["image"] if cfg.cls_level == "image" else head.levels)
    torch.testing.assert_close(got, expected)
