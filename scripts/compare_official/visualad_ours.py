"""zsadbench's side of the VisualAD comparison with the official code: the tiny model, the fixed inputs and every
stage of the computation, written with zsadbench's own functions.

Shared by ``visualad.py`` (which runs the official code beside it and stores the official stages) and by
``tests/methods/test_official_visualad.py`` (which checks these stages against the stored ones).

The backbone is ``zsad-official-tiny-14-336`` (the JSON file next to this module, shared with the AnomalyCLIP
comparison): a ViT with heads of width 64, because the official ``build_model`` derives the number of heads as
``width // 64``. Its 24×24 positional grid is resized to the 8×8 grid of the 112 px input by both codes. The
head (tokens, ``ln_post``, SCA, SAF) is drawn from a seed and then moved away from its initial values, so that
no stage passes because a bias is zero, a norm is the identity or the SCA residual is small.
"""
from __future__ import annotations


import numpy as np
import torch

from zsadbench.backbones.clip import ClipBackbone
from zsadbench.maps import smooth, topk_mean, upsample
from zsadbench.methods.visualad.config import VisualADConfig
from zsadbench.methods.visualad.losses import visualad_loss
from zsadbench.methods.visualad.method import VisualAD
from zsadbench.methods.visualad.model import VisualADHead, VisualADModel
from zsadbench.methods.visualad.training import loss_params

import common

BACKBONE = "zsad-official-tiny-14-336"
#: Every block of the 4-block tower is tapped, as the default taps every quarter of ViT-L's 24 blocks.
CONFIG = VisualADConfig(backbone=BACKBONE, image_size=112, layers=(1, 2, 3, 4))
HEAD_SEED = 0
IMAGE_SEED = 1
NUM_IMAGES = 3
#: Standard deviation of the noise added to every head parameter by :func:`move_head`.
HEAD_NOISE = 0.1
#: The stages compared: the official ``test.py`` order (one image at a time), then one training batch.
STAGES = ("final_tokens", "patch_tokens", "enhanced_tokens", "aligned_patches", "layer_maps", "anomaly_map",
          "smoothed_map", "image_score", "loss", "token_grads")
#: The parts of :func:`visualad_loss` in the order of the ``loss`` stage.
LOSS_PARTS = ("total", "seg", "img", "con")


def config_json() -> str:
    """:data:`CONFIG` as stored beside the official outputs."""
    return common.config_json(CONFIG)


def native_backbone() -> ClipBackbone:
    """The tiny backbone at its native 336 px, with the same seeded random weights as :func:`build_ours`'s."""
    return common.native_backbone(BACKBONE)


def move_head(head: VisualADHead) -> None:
    """Add seeded Gaussian noise (std :data:`HEAD_NOISE`) to every head parameter and set each SCA residual
    scale to 1, in place, so that the head looks trained."""
    generator = torch.Generator().manual_seed(HEAD_SEED)
    with torch.no_grad():
        for _, parameter in sorted(head.named_parameters()):
            parameter.add_(torch.randn(parameter.shape, generator=generator) * HEAD_NOISE)
        for sca in head.sca:
            sca.res_scale.fill_(1.0)


def build_ours() -> VisualAD:
    """zsadbench's VisualAD on the tiny backbone, head drawn after ``torch.manual_seed(HEAD_SEED)`` and moved
    by :func:`move_head`."""
    common.register_backbone(BACKBONE)
    torch.manual_seed(HEAD_SEED)
    method = VisualAD(CONFIG, pretrained="none", device="cpu").setup()
    move_head(method.model_.head)
    method.load_state_dict(method.state_dict())
    return method


def input_images() -> torch.Tensor:
    """The fixed query images: ``[NUM_IMAGES, 3, S, S]`` in ``[0, 1]`` from a generator seeded with ``IMAGE_SEED``."""
    return common.seeded_images(NUM_IMAGES, CONFIG.image_size, IMAGE_SEED)


def input_masks() -> torch.Tensor:
    """The fixed ground truth ``[NUM_IMAGES, S, S]`` (0/1): image 0 normal, images 1 and 2 with one defect each."""
    masks = torch.zeros(NUM_IMAGES, CONFIG.image_size, CONFIG.image_size)
    masks[1, 20:60, 30:80] = 1.0
    masks[2, 70:100, 10:40] = 1.0
    return masks


def input_labels() -> torch.Tensor:
    """Image labels ``[NUM_IMAGES]`` of :func:`input_masks` (1 where the mask has a defect)."""
    return input_masks().flatten(1).amax(dim=1)


def head_stages(model: VisualADModel, images01: torch.Tensor) -> dict[str, torch.Tensor]:
    """The inner stages of the forward pass: ``final_tokens`` ``[B, 2, C]`` (anomaly, normal after the last
    block and ``ln_post``), ``patch_tokens`` ``[L, B, N, C]`` (tapped patches after ``ln_post``) and
    ``aligned_patches`` ``[L, B, N, C]`` (after each layer's SAF)."""
    head = model.head
    images = model.backbone.normalize(images01)
    taps = model.backbone.forward_intermediates(images, list(model.layers), extra_tokens=head.tokens(), norm=False)
    patches = [head.ln_post(raw) for raw in taps.patches]
    return {
        "final_tokens": head.ln_post(taps.extra),
        "patch_tokens": torch.stack(patches),
        "aligned_patches": torch.stack([saf(p) for saf, p in zip(head.saf, patches)]),
    }


def loss_stages(method: VisualAD, images01: torch.Tensor) -> dict[str, torch.Tensor]:
    """The training objective on one batch with :func:`input_masks` (dropout off): ``loss`` ``[4]`` in the
    order of :data:`LOSS_PARTS` and ``token_grads`` ``[2, C]``, the gradients of the total w.r.t. the anomaly
    and normal tokens (before clipping)."""
    model, cfg = method.model_, method.config
    head = model.head
    head.zero_grad(set_to_none=True)
    output = model(images01)
    maps = upsample(output.maps, cfg.image_size)
    losses = visualad_loss(maps, input_masks(), input_labels(), output.anomaly[:, -1], output.normal[:, -1],
                           loss_params(cfg))
    losses["total"].backward()
    grads = torch.stack([head.anomaly_token.grad, head.normal_token.grad])
    head.zero_grad(set_to_none=True)
    return {"loss": torch.stack([losses[name] for name in LOSS_PARTS]).detach(), "token_grads": grads}


def our_stages(method: VisualAD, images01: torch.Tensor) -> dict[str, np.ndarray]:
    """Every stage of :data:`STAGES` computed by zsadbench (float32 arrays).

    Besides :func:`head_stages` and :func:`loss_stages`: ``enhanced_tokens`` ``[L, B, 2, C]`` (SCA outputs),
    ``layer_maps`` ``[L, B, h, w]`` (``cos(p, a) − cos(p, n)`` on the grid), ``anomaly_map`` ``[B, S, S]``
    (summed, upsampled), ``smoothed_map`` ``[B, S, S]`` and ``image_score`` ``[B]`` (top-k mean of the
    smoothed map).
    """
    model, cfg = method.model_, method.config
    model.eval()
    with torch.no_grad():
        stages = head_stages(model, images01)
        output = model(images01)
        summed = upsample(output.maps.sum(dim=1, keepdim=True), cfg.image_size)[:, 0]
        smoothed = smooth(summed, cfg.sigma)
        stages.update({
            "enhanced_tokens": torch.stack([output.anomaly, output.normal], dim=2).transpose(0, 1),
            "layer_maps": output.maps.transpose(0, 1),
            "anomaly_map": summed,
            "smoothed_map": smoothed,
            "image_score": topk_mean(smoothed, cfg.topk_ratio),
        })
    stages.update(loss_stages(method, images01))
    return {name: stages[name].float().cpu().numpy() for name in STAGES}

#: The category of the queries, and the record stored beside the official stages.
CATEGORY = "object"
RECORD = {"head_seed": HEAD_SEED, "image_seed": IMAGE_SEED, "num_images": NUM_IMAGES}


def query_images() -> torch.Tensor:
    """The images whose stages are compared."""
    return input_images()
