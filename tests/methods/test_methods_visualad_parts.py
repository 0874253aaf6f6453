"""VisualAD's parts against hand-computed cases: SCA, SAF, the map and score rules, each loss, the config."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from scipy.special import erf
from torchvision.ops import sigmoid_focal_loss

from zsadbench.errors import ConfigError
from zsadbench.methods.visualad.config import VisualADConfig
from zsadbench.maps import smooth, topk_mean, upsample
from zsadbench.methods.visualad.losses import LossParams, image_loss, token_hinge_loss, visualad_loss
from zsadbench.methods.visualad.maps import layer_map
from zsadbench.methods.visualad.saf import SelfAlignment
from zsadbench.methods.visualad.sca import SpatialCrossAttention
from zsadbench.training import dice_loss, focal_loss


# -- SCA -------------------------------------------------------------------------------------------
def identity_sca(width: int, anchors: int, res_scale: float) -> SpatialCrossAttention:
    """An SCA whose value and output projections are the identity, gate weights the identity, bias zero."""
    sca = SpatialCrossAttention(width, num_anchors=anchors, dropout=0.0, max_patches=16, res_scale_init=res_scale)
    with torch.no_grad():
        sca.v_proj.weight.copy_(torch.eye(width))
        sca.out_proj.weight.copy_(torch.eye(width))
        sca.out_proj.bias.zero_()
        sca.gate.weight.copy_(torch.eye(anchors, width))
        sca.gate.bias.zero_()
    return sca.eval()


def test_sca_shapes_and_attention_rows_are_distributions_over_patches():
    torch.manual_seed(0)
    sca = SpatialCrossAttention(8, num_anchors=4, dropout=0.1, max_patches=32).eval()
    tokens, patches = torch.randn(3, 2, 8), torch.randn(3, 20, 8)
    out = sca(tokens, patches)
    attn, values = sca.attention(patches)
    assert out.shape == (3, 2, 8)
    assert attn.shape == (3, 4, 20) and values.shape == (3, 20, 8)
    assert torch.allclose(attn.sum(-1), torch.ones(3, 4), atol=1e-6) and (attn >= 0).all()


def test_sca_with_identical_patches_adds_gate_sum_times_patch():
    # Identical patches make the attention irrelevant: every anchor reads p. With identity projections the
    # output is t + s * sum_a sigmoid(t_a) * p (gate weights = identity on the first 4 channels).
    width, anchors, s = 6, 4, 0.01
    sca = identity_sca(width, anchors, s)
    t = torch.tensor([[0.5, -1.0, 2.0, 0.0, 3.0, -2.0]])
    p = torch.tensor([1.0, 2.0, -1.0, 0.5, 0.0, 4.0])
    patches = p.expand(1, 5, width).clone()
    gate_sum = sum(1.0 / (1.0 + math.exp(-v)) for v in (0.5, -1.0, 2.0, 0.0))
    expected = t + s * gate_sum * p
    out = sca(t.unsqueeze(1), patches)[:, 0]
    assert torch.allclose(out, expected, atol=1e-6)


def test_sca_gate_is_the_only_token_dependence():
    # Two tokens, same patches: the anchors' read-outs are shared, so with a gate bias saturating anchor 0 and
    # zero gate weights both tokens receive exactly the same increment.
    torch.manual_seed(1)
    sca = SpatialCrossAttention(8, num_anchors=4, dropout=0.0, max_patches=32).eval()
    with torch.no_grad():
        sca.gate.weight.zero_()
        sca.gate.bias.copy_(torch.tensor([50.0, -50.0, -50.0, -50.0]))
    patches = torch.randn(2, 12, 8)
    tokens = torch.randn(2, 2, 8)
    out = sca(tokens, patches)
    delta = out - tokens
    assert torch.allclose(delta[:, 0], delta[:, 1], atol=1e-6)
    attn, values = sca.attention(patches)
    read0 = torch.einsum("bn,bnc->bc", attn[:, 0], values)
    assert torch.allclose(delta[:, 0], sca.res_scale * sca.out_proj(read0), atol=1e-5)


def test_sca_residual_scale_zero_returns_the_token_and_init_value_is_used():
    torch.manual_seed(2)
    sca = SpatialCrossAttention(8, num_anchors=4, res_scale_init=0.01, max_patches=16).eval()
    assert sca.res_scale.item() == pytest.approx(0.01)
    with torch.no_grad():
        sca.res_scale.zero_()
    tokens = torch.randn(2, 2, 8)
    assert torch.equal(sca(tokens, torch.randn(2, 9, 8)), tokens)


def test_sca_attention_is_permutation_equivariant_without_positional_encoding():
    torch.manual_seed(3)
    sca = SpatialCrossAttention(8, num_anchors=4, max_patches=16).eval()
    with torch.no_grad():
        sca.pos_encoding.zero_()
    patches = torch.randn(1, 10, 8)
    perm = torch.randperm(10)
    attn, _ = sca.attention(patches)
    attn_perm, _ = sca.attention(patches[:, perm])
    assert torch.allclose(attn_perm, attn[:, :, perm], atol=1e-6)


def test_sca_dropout_acts_in_training_only_and_too_many_patches_raise():
    torch.manual_seed(4)
    sca = SpatialCrossAttention(8, num_anchors=4, dropout=0.5, max_patches=16)
    tokens, patches = torch.randn(2, 2, 8), torch.randn(2, 9, 8)
    sca.train()
    assert not torch.equal(sca(tokens, patches), sca(tokens, patches))
    sca.eval()
    assert torch.equal(sca(tokens, patches), sca(tokens, patches))
    with pytest.raises(ConfigError, match="max_patches=16"):
        sca(tokens, torch.randn(2, 17, 8))


def test_sca_parameter_count_matches_the_reference_shapes():
    # 4 anchors·C + 1536·C encoding + 3·C² (q, k, v) + 2·2C (norms) + (C·4 + 4) gate + (C² + C) out + 1 scale
    width = 1024
    sca = SpatialCrossAttention(width, num_anchors=4, max_patches=1536)
    expected = 4 * width + 1536 * width + 3 * width**2 + 4 * width + (4 * width + 4) + (width**2 + width) + 1
    assert sum(p.numel() for p in sca.parameters()) == expected == 5_780_485


# -- SAF -------------------------------------------------------------------------------------------
def test_saf_is_a_two_layer_gelu_mlp_without_residual():
    torch.manual_seed(5)
    saf = SelfAlignment(6, hidden_ratio=1.5, dropout=0.1).eval()
    first, second = saf.mlp[0], saf.mlp[3]
    assert first.weight.shape == (9, 6) and second.weight.shape == (6, 9)
    assert torch.count_nonzero(first.bias) == 0 and torch.count_nonzero(second.bias) == 0
    bound = math.sqrt(6.0 / (6 + 9))  # xavier-uniform
    assert first.weight.abs().max() <= bound and second.weight.abs().max() <= bound
    with torch.no_grad():
        first.bias.uniform_(-1, 1)
        second.bias.uniform_(-1, 1)
    x = torch.randn(4, 3, 6)
    w1, b1 = first.weight.detach().double().numpy(), first.bias.detach().double().numpy()
    w2, b2 = second.weight.detach().double().numpy(), second.bias.detach().double().numpy()
    h = x.double().numpy() @ w1.T + b1
    expected = (0.5 * h * (1.0 + erf(h / math.sqrt(2.0)))) @ w2.T + b2
    assert np.allclose(saf(x).detach().numpy(), expected, atol=1e-5)
    with torch.no_grad():
        second.weight.zero_()
        second.bias.zero_()
    assert torch.count_nonzero(saf(x)) == 0  # no residual: a zero last layer gives zero, not x


def test_saf_dropout_only_in_training():
    torch.manual_seed(6)
    saf = SelfAlignment(16, dropout=0.5)
    x = torch.randn(64, 16)
    assert torch.equal(saf.eval()(x), saf(x))
    assert (saf.train()(x) == 0).float().mean() > 0.2


# -- maps and scores -------------------------------------------------------------------------------
def test_layer_map_is_cosine_to_anomaly_minus_cosine_to_normal_row_major():
    anomaly, normal = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 3.0]])
    patches = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [5.0, 0.0], [-1.0, 0.0], [1.0, -1.0]]])
    r = 1 / math.sqrt(2)
    expected = torch.tensor([[[1.0, -1.0, 0.0], [1.0, -1.0, 2 * r]]])
    assert torch.allclose(layer_map(patches, anomaly, normal, (2, 3)), expected, atol=1e-6)


def test_upsample_is_bilinear_without_aligned_corners():
    grid = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
    out = upsample(grid, 4)
    # output pixel centres map to source x = -0.25, 0.25, 0.75, 1.25, clamped to the edge values
    assert torch.allclose(out[0, 0, 0], torch.tensor([0.0, 0.25, 0.75, 1.0]))
    assert torch.allclose(out[0, 0], out[0, 0, :1].expand(4, 4))


def test_topk_mean_takes_the_ceil_of_one_percent_of_the_pixels():
    side = 518
    maps = torch.arange(side * side, dtype=torch.float64).reshape(1, side, side)
    k = math.ceil(0.01 * side * side)
    assert k == 2684
    assert topk_mean(maps, 0.01).item() == pytest.approx(side * side - 1 - (k - 1) / 2)
    rng = np.random.default_rng(0)
    small = rng.normal(size=(3, 10, 10))
    expected = np.sort(small.reshape(3, -1), axis=1)[:, ::-1][:, :5].mean(1)
    assert np.allclose(topk_mean(torch.from_numpy(small), 0.05).numpy(), expected)
    assert np.allclose(topk_mean(torch.from_numpy(small), 0.01).numpy(), small.reshape(3, -1).max(1))


def test_smooth_is_scipy_gaussian_per_image_without_cross_talk():
    maps = torch.zeros(2, 40, 40)
    maps[0, 20, 20] = 1.0
    maps[0, 0, 5] = 2.0
    out = smooth(maps, 4.0)
    assert out.dtype == torch.float32
    assert np.allclose(out[0].numpy(), gaussian_filter(maps[0].numpy(), sigma=4), atol=1e-7)
    assert torch.count_nonzero(out[1]) == 0
    assert out[0].sum().item() == pytest.approx(3.0, rel=1e-5)  # 'reflect' keeps the mass at the border
    assert torch.equal(smooth(maps, 0.0), maps)


# -- losses ----------------------------------------------------------------------------------------
def test_focal_loss_without_smoothing_equals_torchvision_sigmoid_focal_loss():
    torch.manual_seed(7)
    logits = torch.randn(2, 8, 8) * 3
    target = (torch.rand(2, 8, 8) > 0.7).float()
    ours = focal_loss(torch.sigmoid(logits), target, gamma=2.0, alpha=1.0, smooth=0.0)
    reference = sigmoid_focal_loss(logits, target, alpha=-1, gamma=2.0, reduction="mean")
    assert ours.item() == pytest.approx(reference.item(), rel=1e-5)


def test_focal_loss_with_the_reference_smoothing_on_a_hand_case():
    prob = torch.tensor([0.5, 0.9, 0.2])
    target = torch.tensor([1.0, 0.0, 0.0])
    s = 1e-5
    p_t = [0.5 * (1 - s) + 0.5 * s + s, 0.1 * (1 - s) + 0.9 * s + s, 0.8 * (1 - s) + 0.2 * s + s]
    expected = np.mean([-((1 - p) ** 2) * math.log(p) for p in p_t])
    assert focal_loss(prob, target).item() == pytest.approx(expected, rel=1e-5)
    assert focal_loss(prob, target, alpha=3.0).item() == pytest.approx(3 * expected, rel=1e-5)


def test_dice_loss_per_image_then_batch_mean():
    target = torch.zeros(2, 4, 4)
    target[0, :2, :2] = 1  # 4 pixels
    target[1, 0, :3] = 1  # 3 pixels
    assert dice_loss(target.clone(), target).item() == pytest.approx(0.0, abs=1e-7)
    prob = torch.zeros(2, 4, 4)
    prob[0] = target[0]  # perfect -> dice 1;  image 1 predicts nothing -> dice (0+1)/(0+3+1)
    assert dice_loss(prob, target).item() == pytest.approx(1 - (1.0 + 0.25) / 2)
    half = torch.full((1, 2, 2), 0.5)
    gt = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    assert dice_loss(half, gt).item() == pytest.approx(1 - (2 * 0.5 + 1) / (2.0 + 1.0 + 1))


def test_image_loss_is_bce_of_the_top_k_mean():
    maps = torch.zeros(2, 10, 10)
    maps[0, 0, 0] = 2.0  # top-1% (k = 1) of image 0 is 2.0, of image 1 is -1.0
    maps[1] = -3.0
    maps[1, 5, 5] = -1.0
    labels = torch.tensor([1, 0])
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    expected = -(math.log(sig(2.0)) + math.log(1 - sig(-1.0))) / 2
    assert image_loss(maps, labels, topk_ratio=0.01).item() == pytest.approx(expected, rel=1e-6)


def test_token_hinge_on_orthogonal_equal_and_opposite_tokens():
    a = torch.tensor([[1.0, 0.0], [2.0, 1.0], [0.0, 1.0]])
    n = torch.tensor([[0.0, 4.0], [2.0, 1.0], [0.0, -1.0]])
    # cos = 0, 1, -1 -> relu(cos + 0.5) = 0.5, 1.5, 0
    assert token_hinge_loss(a, n, margin=0.5).item() == pytest.approx(2.0 / 3.0)


def test_total_loss_sums_focal_and_dice_over_layers_plus_image_and_hinge():
    torch.manual_seed(8)
    layer = torch.randn(2, 1, 16, 16)
    maps = layer.repeat(1, 3, 1, 1)
    masks = torch.zeros(2, 16, 16, dtype=torch.bool)
    masks[0, 4:8, 4:8] = True
    labels = torch.tensor([1, 0])
    a, n = torch.randn(2, 5), torch.randn(2, 5)
    parts = visualad_loss(maps, masks, labels, a, n, LossParams())
    prob = torch.sigmoid(layer[:, 0])
    one_layer = focal_loss(prob, masks.float()) + dice_loss(prob, masks.float())
    assert parts["seg"].item() == pytest.approx(3 * one_layer.item(), rel=1e-5)
    assert parts["img"].item() == pytest.approx(image_loss(maps.sum(1), labels).item(), rel=1e-6)
    assert parts["con"].item() == pytest.approx(token_hinge_loss(a, n).item(), rel=1e-6)
    assert parts["total"].item() == pytest.approx(sum(parts[k].item() for k in ("seg", "img", "con")), rel=1e-6)


# -- config ----------------------------------------------------------------------------------------
def test_config_defaults_are_the_reference_values_and_round_trip():
    cfg = VisualADConfig()
    assert (cfg.backbone, cfg.image_size, cfg.layers) == ("ViT-L-14-336-quickgelu", 518, (6, 12, 18, 24))
    assert (cfg.num_anchors, cfg.sca_dropout, cfg.res_scale_init, cfg.max_patches) == (4, 0.1, 0.01, 1536)
    assert (cfg.lr_tokens, cfg.lr_other, cfg.weight_decay, cfg.betas, cfg.eta_min) == (1e-3, 1e-4, 0.01, (0.9, 0.999), 1e-4)
    assert (cfg.epochs, cfg.batch_size, cfg.sigma, cfg.topk_ratio, cfg.hinge_margin) == (2, 8, 4.0, 0.01, 0.5)
    assert VisualADConfig.from_json(cfg.to_json()) == cfg
    assert cfg.replace(layers="1,2,3,4").layers == (1, 2, 3, 4)
    assert not cfg.is_dinov2 and cfg.replace(backbone="vit_large_patch14_dinov2").is_dinov2


@pytest.mark.parametrize(
    "override, field",
    [({"layers": (12, 6)}, "layers"), ({"topk_ratio": 0.0}, "topk_ratio"), ({"sca_dropout": 1.0}, "sca_dropout"),
     ({"epochs": 0}, "epochs"), ({"betas": (0.9,)}, "betas"), ({"sigma": -1.0}, "sigma")],
)
def test_config_rejects_bad_values_naming_the_field(override, field):
    with pytest.raises(ConfigError, match=f"VisualADConfig.{field}"):
        VisualADConfig(**override)
