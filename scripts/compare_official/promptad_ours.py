"""zsadbench's side of the PromptAD comparison with the official code: the tiny model, the seeded prompts, the fixed
support and query images and every stage of the computation, written with zsadbench's own functions.

Shared by ``promptad.py`` (which runs the official code beside it and stores the official stages) and by
``tests/methods/test_official_promptad.py`` (which checks these stages against the stored ones).

The backbone is ``zsad-official-promptad-tiny-16-64`` (the JSON file next to this module): a 12-block ViT, because
the official vision tower puts V-V attention into its last 12 blocks and reads its memory after blocks 3 and 8
(both fixed in its code), at 64 px (a 4×4 grid). The category is MVTec AD's ``bottle``, whose abnormal state
phrases are the same words, in the same order, on both sides.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from zsadbench.backbones.clip import ClipBackbone
from zsadbench.methods.promptad.config import PromptADConfig
from zsadbench.methods.promptad.features import extract
from zsadbench.methods.promptad.method import PromptAD
from zsadbench.methods.promptad.model import fuse
from zsadbench.methods.promptad.prompts import GroupFeatures
from zsadbench.methods.promptad.scoring import grid_to_map, harmonic, map_max

import common

BACKBONE = "zsad-official-promptad-tiny-16-64"
CONFIG_FILE = Path(__file__).with_name(f"{BACKBONE}.json")
#: The official design (memory layers 3 and 8, 4 normal context vectors, 1 segmentation and 3 classification
#: normal prompts, 4 abnormal contexts of 1 vector, maps at 400 px, σ = 4) on the tiny backbone at 64 px.
CONFIG = PromptADConfig(backbone=BACKBONE, image_size=64, memory_layers=(3, 8), epochs_seg=1, epochs_cls=1)
DATASET = "mvtec"
CATEGORY = "bottle"
PROMPT_SEED = 0
IMAGE_SEED = 1
NUM_SHOTS = 1
NUM_QUERIES = 3
#: PromptAD's loss terms, each compared for the segmentation prompts (on the support's patch tokens) and the
#: classification prompts (on its CLS feature) at the initial prompts: cross-entropy, margin, weighted alignment.
LOSS_TERMS = ("v2t", "eam", "align")
#: The stages compared, in the order of the official test: text features of each prompt set, the support
#: memory, the query features, the maps and the image score.
STAGES = (
    "seg_text_normal", "seg_text_abnormal", "seg_text_anchors",
    "cls_text_normal", "cls_text_abnormal", "cls_text_anchors",
    *(f"gallery_{layer}" for layer in CONFIG.memory_layers),
    "patch_tokens", "cls_feature", *(f"memory_{layer}" for layer in CONFIG.memory_layers),
    "text_map", "memory_map", "fused_grid", "fused_map", "smoothed_map",
    "image_text_score", "memory_max", "image_score",
    *(f"{task}_loss_{term}" for task in ("seg", "cls") for term in LOSS_TERMS),
)


def config_json() -> str:
    """:data:`CONFIG` as stored beside the official outputs."""
    return common.config_json(CONFIG)


def native_backbone() -> ClipBackbone:
    """The tiny backbone with the same seeded random weights as :func:`build_ours`'s."""
    return common.native_backbone(BACKBONE)


def input_images() -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed ``(support, queries)``: ``[NUM_SHOTS | NUM_QUERIES, 3, S, S]`` in ``[0, 1]``, drawn from a generator
    seeded with ``IMAGE_SEED``."""
    images = common.seeded_images(NUM_SHOTS + NUM_QUERIES, CONFIG.image_size, IMAGE_SEED)
    return images[:NUM_SHOTS], images[NUM_SHOTS:]


def prompt_state(width: int) -> dict[str, torch.Tensor]:
    """The learnable context vectors of both prompt banks, ``N(0, ctx_init_std²)`` from a generator seeded with
    ``PROMPT_SEED``, under the names of the head's state dict."""
    generator = torch.Generator().manual_seed(PROMPT_SEED)
    cfg, state = CONFIG, {}
    for bank, n_pro in (("seg", cfg.n_pro_seg), ("cls", cfg.n_pro_cls)):
        shapes = {"normal_ctx": (n_pro, cfg.n_ctx, width), "abnormal_ctx": (cfg.n_pro_ab, cfg.n_ctx_ab, width)}
        for name, shape in shapes.items():
            state[f"{bank}.{name}"] = torch.randn(*shape, generator=generator) * cfg.ctx_init_std
    return state


def build_ours(config: PromptADConfig = CONFIG) -> PromptAD:
    """zsadbench's PromptAD on the tiny backbone (``config``, :data:`CONFIG` by default), holding the seeded
    prompts and the support image's memory."""
    common.register_backbone(BACKBONE)
    method = PromptAD(config, pretrained="none", device="cpu").setup()
    backbone = method.backbone_
    support, _ = input_images()
    with torch.no_grad():
        shots = extract(backbone, support, config.memory_layers, memory_tap=config.memory_tap)
    method.load_state_dict({
        "dataset": DATASET,
        "category": CATEGORY,
        "head": prompt_state(int(backbone.model.token_embedding.embedding_dim)),
        "memory": [m.reshape(-1, m.shape[-1]) for m in shots.memory],
    })
    return method


def official_abnormal(group: GroupFeatures, n_pro: int, n_pro_ab: int) -> torch.Tensor:
    """The raw abnormal features in the official prompt learner's order.

    Handcrafted prompts go state by state, each with every normal context; learned prompt ``i`` pairs normal
    context ``i mod n_pro`` with abnormal context ``i mod n_pro_ab``, which is every pair once only when the two
    counts are coprime (the official 1 or 3 against 4).
    """
    if math.gcd(n_pro, n_pro_ab) != 1:
        raise ValueError(f"n_pro={n_pro} and n_pro_ab={n_pro_ab} share a factor: the official prompts repeat pairs")
    dim = group.handcrafted.shape[-1]
    handcrafted = group.handcrafted.reshape(n_pro, -1, dim).transpose(0, 1).reshape(-1, dim)
    order = [(i % n_pro) * n_pro_ab + i % n_pro_ab for i in range(n_pro * n_pro_ab)]
    return torch.cat([handcrafted, group.learned[order]])


def text_stages(prefix: str, group: GroupFeatures, n_pro: int) -> dict[str, torch.Tensor]:
    """One prompt set's raw normal and abnormal features (official order) and its normalised ``[2, D]`` anchors."""
    return {
        f"{prefix}_text_normal": group.normal,
        f"{prefix}_text_abnormal": official_abnormal(group, n_pro, CONFIG.n_pro_ab),
        f"{prefix}_text_anchors": group.pair(),
    }


def our_stages(method: PromptAD, queries01: torch.Tensor) -> dict[str, np.ndarray]:
    """Every stage of zsadbench's PromptAD on ``queries01`` (float32 arrays).

    Text: raw features ``[P, D]`` of each prompt set and its anchors. Vision: the support memory
    ``gallery_<L> [k·N, W]``, the query ``patch_tokens [B, N, D]``, ``cls_feature [B, D]`` and ``memory_<L>
    [B, N, W]`` (all L2-normalised). Maps on the ``[B, h, w]`` grid (``text_map``, ``memory_map``, ``fused_grid``)
    and at ``map_size`` (``fused_map`` before and ``smoothed_map`` after the Gaussian). Scores ``[B]``: the CLS text
    score, the largest memory score at ``image_score_size`` and the fused image score. Losses (scalars): each of
    :data:`LOSS_TERMS` of both prompt sets on the support image's features.
    """
    head, cfg, backbone = method.head_, method.config, method.backbone_
    grid = backbone.grid_size
    seg, cls = head.frozen
    with torch.no_grad():
        query = extract(backbone, queries01, cfg.memory_layers, memory_tap=cfg.memory_tap)
        scores = head.scores(query)
        pixel = harmonic(scores.text, scores.visual)
        image, smoothed = fuse(scores, grid, cfg.map_size, cfg.sigma, cfg.image_score_size)
        shots = extract(backbone, input_images()[0], cfg.memory_layers, memory_tap=cfg.memory_tap)
        losses = {"seg": head.seg_loss(shots), "cls": head.cls_loss(shots)}
    on_grid = {name: s.reshape(-1, *grid) for name, s in
               (("text_map", scores.text), ("memory_map", scores.visual), ("fused_grid", pixel))}
    stages = {
        **text_stages("seg", seg, cfg.n_pro_seg),
        **text_stages("cls", cls, cfg.n_pro_cls),
        **{f"gallery_{layer}": m for layer, m in zip(cfg.memory_layers, head.memory)},
        "patch_tokens": query.patches,
        "cls_feature": query.cls,
        **{f"memory_{layer}": m for layer, m in zip(cfg.memory_layers, query.memory)},
        **on_grid,
        "fused_map": grid_to_map(pixel, grid, cfg.map_size, 0.0),
        "smoothed_map": smoothed,
        "image_text_score": scores.image_text,
        "memory_max": map_max(scores.visual, grid, cfg.image_score_size),
        "image_score": image,
        **{f"{task}_loss_{term}": terms[term] for task, terms in losses.items() for term in LOSS_TERMS},
    }
    return {name: stages[name].detach().float().cpu().numpy() for name in STAGES}

#: The record stored beside the official stages.
RECORD = {"prompt_seed": PROMPT_SEED, "image_seed": IMAGE_SEED, "num_shots": NUM_SHOTS, "num_queries": NUM_QUERIES,
          "dataset": DATASET, "category": CATEGORY}


def query_images() -> torch.Tensor:
    """The query images whose stages are compared (the support image is held by :func:`build_ours`)."""
    return input_images()[1]
