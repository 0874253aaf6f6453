"""zsadbench's side of the AdaCLIP comparison with the official code: the tiny model, the fixed inputs and every
stage of the computation, written with zsadbench's own functions.

Shared by ``adaclip.py`` (which runs the official code beside it and stores the official stages) and by
``tests/methods/test_official_outputs.py`` (which checks these stages against the stored ones).

The backbone is ``zsad-official-adaclip-tiny-14-336`` (the JSON file next to this module): 4 visual blocks of
width 128 (heads of width 64), 3 text blocks of width 64, joint embedding 64. The official code makes the
dynamic text prompts in the joint embedding's width and adds them to the text tower's tokens, so the two
widths must be equal; the official layer rule (the quarters of the depth) taps blocks 1-4. The backbone's
24×24 positional grid is resized to the 8×8 grid of the 112 px input by zsadbench and handed over resized.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from zsadbench.maps import smooth
from zsadbench.methods.adaclip.config import AdaCLIPConfig
from zsadbench.methods.adaclip.hsf import fuse
from zsadbench.methods.adaclip.method import AdaCLIP
from zsadbench.methods.adaclip.model import upsample_logits
from zsadbench.methods.adaclip.training import adaclip_loss

import common

BACKBONE = "zsad-official-adaclip-tiny-14-336"
#: The official design on the tiny towers: hybrid prompts of 2 tokens in visual blocks 1-3 and text blocks 2-3,
#: the maps of blocks 1-4, HSF with 4 clusters (20 of the 64 patches), the prompts cast to float16 where they
#: enter a tower as the official ``.half()`` does, and the Dice terms per image row as the official trainer's
#: batch-1 masks make them.
#: ``activation="quickgelu"``: the tiny architecture's config sets ``quick_gelu``, which the official loader honours
#: (the default ``gelu`` reproduces that loader for ``ViT-L-14-336``, whose config does not).
CONFIG = AdaCLIPConfig(backbone=BACKBONE, image_size=112, layers=(1, 2, 3, 4), prompting_depth=3, prompting_length=2,
                       k_clusters=4, prompt_cast="fp16", dice_unit="row", activation="quickgelu")
HEAD_SEED = 0
IMAGE_SEED = 1
NUM_IMAGES = 3
#: The category the text ensemble names, and the record stored beside the official stages.
CATEGORY = "metal_nut"
RECORD = {"head_seed": HEAD_SEED, "image_seed": IMAGE_SEED, "num_images": NUM_IMAGES, "category": CATEGORY}
#: The stages compared, in the order of the official forward pass, then the training loss and its gradient.
STAGES = ("frozen_embedding", "text_features", "patch_tokens", "patch_features", "image_feature", "patch_logits",
          "hsf_feature", "image_score", "anomaly_map", "smoothed_map", "loss_image", "loss_segmentation",
          "visual_prompt_gradient", "projection_gradient")
#: Head parameters by the gradient they belong to (``text_prompt_gradient`` is stored and printed but not among
#: the checked stages: the official ``.half()`` cast rounds the text prompts' gradients to float16, so the two codes
#: agree there only to float16's resolution).
GRADIENTS = {"visual_prompt_gradient": ("visual_prompts.",), "text_prompt_gradient": ("text_prompts.",),
             "projection_gradient": ("patch_projections.", "cls_projection.")}


def config_json() -> str:
    """:data:`CONFIG` as stored beside the official outputs."""
    return common.config_json(CONFIG)


def build_ours(config: AdaCLIPConfig = CONFIG) -> AdaCLIP:
    """zsadbench's AdaCLIP on the tiny backbone (``config``, :data:`CONFIG` by default), its head drawn after
    ``torch.manual_seed(HEAD_SEED)``."""
    common.register_backbone(BACKBONE)
    torch.manual_seed(HEAD_SEED)
    method = AdaCLIP(config, pretrained="none", device="cpu").setup()
    method.load_state_dict(method.state_dict())
    return method


def query_images() -> torch.Tensor:
    """The fixed query images: ``[NUM_IMAGES, 3, S, S]`` in ``[0, 1]`` from a generator seeded with ``IMAGE_SEED``."""
    return common.seeded_images(NUM_IMAGES, CONFIG.image_size, IMAGE_SEED)


def training_targets() -> tuple[torch.Tensor, torch.Tensor]:
    """Masks ``[NUM_IMAGES, S, S]`` (0/1) and labels of the loss stages: a normal image, then two anomalous ones."""
    size = CONFIG.image_size
    masks = torch.zeros(NUM_IMAGES, size, size)
    masks[1, 20:50, 30:70] = 1.0
    masks[2, 60:100, 10:40] = 1.0
    masks[2, 5:15, 80:110] = 1.0
    return masks, torch.tensor([0, 1, 1])


def split_gradient(gradients: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The head's gradients (by parameter name, in the order of its ``named_parameters``) flattened into the
    groups of :data:`GRADIENTS`."""
    return {group: torch.cat([g.reshape(-1) for name, g in gradients.items() if name.startswith(prefixes)])
            for group, prefixes in GRADIENTS.items()}


def our_stages(method: AdaCLIP, images01: torch.Tensor) -> dict[str, np.ndarray]:
    """Every stage of zsadbench's AdaCLIP on ``images01`` (float32 arrays).

    ``frozen_embedding`` ``[B, E]`` (plain tower, final CLS → ``ln_post`` → proj), ``text_features`` ``[B, 2, E]``,
    ``patch_tokens`` ``[L, B, N, W]`` (raw, prompted tower), ``patch_features`` ``[L, B, N, E]`` and
    ``image_feature`` ``[B, E]`` (learnable projections, normalised), ``patch_logits`` ``[L, B, N, 2]``,
    ``hsf_feature`` ``[B, E]``, ``image_score`` ``[B]``, ``anomaly_map`` / ``smoothed_map`` ``[B, S, S]``,
    then, one image per step as the official trainer runs, ``loss_image`` / ``loss_segmentation`` ``[B]`` and the
    gradients of the summed losses (see :func:`split_gradient`).
    """
    model, cfg = method.model_, method.config
    head, backbone = model.head, model.backbone
    categories = [CATEGORY] * images01.shape[0]
    with torch.no_grad():
        images = backbone.normalize(images01)
        embedding = model.frozen_embedding(images)
        taps = backbone.forward_intermediates(images, list(cfg.layers), deep_tokens=head.visual_prompts(embedding))
        patches = [F.normalize(p(raw), dim=-1) for p, raw in zip(head.patch_projections, taps.patches)]
        image = F.normalize(head.cls_projection(backbone.project(backbone.post_norm(taps.cls))), dim=-1)
        text = model.text_features(categories, embedding)
        logits = [cfg.logit_scale * p @ text.transpose(1, 2) for p in patches]
        fused = fuse(patches, logits, cfg.k_clusters, cfg.hsf_tokens_per_cluster, cfg.hsf_seed)
        output = model(images01, categories)
        anomaly_map = upsample_logits(torch.stack(output.patch_logits).mean(dim=0), model.grid, cfg.image_size)
        anomaly_map = anomaly_map.softmax(dim=1)[:, 1]
    stages = {
        "frozen_embedding": embedding,
        "text_features": text,
        "patch_tokens": torch.stack(taps.patches),
        "patch_features": torch.stack(patches),
        "image_feature": image,
        "patch_logits": torch.stack(logits),
        "hsf_feature": fused,
        "image_score": output.image_logits.softmax(dim=-1)[:, 1],
        "anomaly_map": anomaly_map,
        "smoothed_map": smooth(anomaly_map, cfg.sigma),
    }
    masks, labels = training_targets()
    losses = {"loss_image": [], "loss_segmentation": []}
    head.zero_grad(set_to_none=True)
    for b in range(images01.shape[0]):
        out = model(images01[b:b + 1], categories[:1])
        parts = adaclip_loss(out.patch_logits, out.image_logits, masks[b:b + 1], labels[b:b + 1], cfg, model.grid)
        parts["total"].backward()
        losses["loss_image"].append(parts["image"].detach())
        losses["loss_segmentation"].append(parts["segmentation"].detach())
    stages.update({name: torch.stack(values) for name, values in losses.items()})
    stages.update(split_gradient({name: p.grad for name, p in head.named_parameters()}))
    head.zero_grad(set_to_none=True)
    return {name: value.detach().float().cpu().numpy() for name, value in stages.items()}
