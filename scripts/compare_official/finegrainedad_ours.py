"""zsadbench's side of the FineGrainedAD comparison with the official code: the tiny model, the seeded prompts and
Query Former, the fixed support and query images and every stage of the inference, written with zsadbench's own
functions.

Shared by ``finegrainedad.py`` (which runs the official code beside it and stores the official stages) and by
``tests/methods/test_official_outputs.py`` (which checks these stages against the stored ones).

The backbone, images and prompt context vectors are those of the PromptAD comparison (``promptad_ours.py``): the
official tower has the same structural demands (12 blocks, memory after blocks 3 and 8). The category is MVTec
AD's ``bottle`` with its shipped MFSC captions: six levels (image, foreground, background, three components).
``as_shipped`` gives the released Query Former (each query sees its own level's anchors only) and the released
image score and CLS level; ``attribute_prompts`` is off, because the released code mixes the attribute prompts into
the token embeddings of the caption level (Attr-MoE), which zsadbench does at the feature level.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from zsadbench.methods.finegrainedad.config import FineGrainedADConfig
from zsadbench.methods.finegrainedad.method import FineGrainedAD
from zsadbench.methods.finegrainedad.model import FineGrainedADHead, token_wise_scores
from zsadbench.methods.promptad.features import extract
from zsadbench.methods.promptad.model import fuse
from zsadbench.methods.promptad.prompts import GroupFeatures
from zsadbench.methods.promptad.scoring import grid_to_map, harmonic, map_max

import common
import promptad_ours
from promptad_ours import BACKBONE, CATEGORY, DATASET, IMAGE_SEED, NUM_QUERIES, NUM_SHOTS, PROMPT_SEED, input_images

#: The released design on the tiny backbone at 64 px (see the module docstring for the two switches).
CONFIG = FineGrainedADConfig(backbone=BACKBONE, image_size=64, memory_layers=(3, 8), epochs_seg=1, epochs_cls=1,
                             attribute_prompts=False, as_shipped=True)
QUERY_SEED = 2
#: Standard deviation of the seeded Query Former weights (about a default linear layer's at width 32).
QUERY_STD = 0.1
#: The stages compared: per-level text features and anchors of both prompt sets (levels in zsadbench's order), the
#: Query Former's outputs and the level each query token and CLS feature picks, the support memory and query
#: features, the maps and the image score.
STAGES = (
    "seg_text_normal", "seg_text_abnormal", "seg_normal_anchors", "seg_abnormal_anchors", "seg_intrinsic",
    "cls_text_normal", "cls_text_abnormal", "cls_normal_anchors", "cls_abnormal_anchors", "cls_intrinsic",
    *(f"gallery_{layer}" for layer in CONFIG.memory_layers),
    "patch_tokens", "cls_feature", *(f"memory_{layer}" for layer in CONFIG.memory_layers),
    "token_level", "text_map", "memory_map", "fused_grid", "fused_map", "smoothed_map",
    "cls_level", "image_text_score", "memory_max", "image_score",
)


def config_json() -> str:
    """:data:`CONFIG` as stored beside the official outputs."""
    return common.config_json(CONFIG)


def query_former_state(head: FineGrainedADHead) -> dict[str, torch.Tensor]:
    """Every Query Former tensor ``N(0, QUERY_STD²)`` from a generator seeded with ``QUERY_SEED``, under the names of
    the head's state dict."""
    generator = torch.Generator().manual_seed(QUERY_SEED)
    return {f"query.{name}": torch.randn(p.shape, generator=generator) * QUERY_STD
            for name, p in head.query.state_dict().items()}


def check_prompt_config() -> None:
    """The seeded context vectors come from ``promptad_ours.prompt_state``, so the prompt shapes must be its."""
    fields = ("n_ctx", "n_ctx_ab", "n_pro_seg", "n_pro_cls", "n_pro_ab", "ctx_init_std")
    theirs = dataclasses.asdict(promptad_ours.CONFIG)
    if any(getattr(CONFIG, f) != theirs[f] for f in fields):
        raise ValueError(f"{fields} must match promptad_ours.CONFIG, whose seeded context vectors are reused")


def support_memory(method: FineGrainedAD) -> list[torch.Tensor]:
    """The support image's memory, one ``[k·N, W]`` gallery per memory layer, as a fit keeps it."""
    with torch.no_grad():
        shots = extract(method.backbone_, input_images()[0], CONFIG.memory_layers, memory_tap=CONFIG.memory_tap)
    return [m.reshape(-1, m.shape[-1]) for m in shots.memory]


def build_ours() -> FineGrainedAD:
    """zsadbench's FineGrainedAD on the tiny backbone, holding the seeded prompts and Query Former and the support
    image's memory."""
    check_prompt_config()
    common.register_backbone(BACKBONE)
    method = FineGrainedAD(CONFIG, pretrained="none", device="cpu").setup()
    width = int(method.backbone_.model.token_embedding.embedding_dim)
    head = {**promptad_ours.prompt_state(width), **query_former_state(method._build_head(DATASET, CATEGORY, [], {}))}
    method.load_state_dict({"dataset": DATASET, "category": CATEGORY, "head": head, "memory": support_memory(method)})
    return method


def level_text_stages(prefix: str, levels: dict[str, GroupFeatures], n_pro: int) -> dict[str, torch.Tensor]:
    """Raw normal features ``[L·n_pro, D]`` and abnormal features (each level in the official prompt learner's order,
    levels concatenated) of one prompt set, and its normal and abnormal anchors ``[L, D]``."""
    groups = list(levels.values())
    return {
        f"{prefix}_text_normal": torch.cat([g.normal for g in groups]),
        f"{prefix}_text_abnormal": torch.cat([promptad_ours.official_abnormal(g, n_pro, CONFIG.n_pro_ab)
                                              for g in groups]),
        f"{prefix}_normal_anchors": torch.stack([g.normal_anchor for g in groups]),
        f"{prefix}_abnormal_anchors": torch.stack([g.abnormal_anchor for g in groups]),
    }


def our_stages(method: FineGrainedAD, queries01: torch.Tensor) -> dict[str, np.ndarray]:
    """Every stage of zsadbench's FineGrainedAD inference on ``queries01`` (float32 arrays).

    Text: per prompt set, the raw features and anchors of every level (:func:`level_text_stages`) and the Query
    Former's outputs ``[L, D]``. Vision: ``gallery_<L>``, ``patch_tokens``, ``cls_feature``, ``memory_<L>`` as in the
    PromptAD comparison. ``token_level [B, N]`` and ``cls_level [B]`` are the level indices the query tokens and
    CLS features pick; maps on the ``[B, h, w]`` grid and at ``map_size``; scores ``[B]``.
    """
    head, cfg, backbone = method.head_, method.config, method.backbone_
    grid = backbone.grid_size
    normal, abnormal, intrinsic, (cls_normal, cls_abnormal, cls_intrinsic) = head.frozen
    with torch.no_grad():
        seg_levels, cls_levels = head.level_features(), head.level_features(cls=True)
        query = extract(backbone, queries01, cfg.memory_layers, memory_tap=cfg.memory_tap)
        scores = head.scores(query)
        _, token_level = token_wise_scores(query.patches, normal, abnormal, intrinsic, head.scale)
        _, cls_level = token_wise_scores(query.cls[:, None], cls_normal, cls_abnormal, cls_intrinsic, head.scale)
        pixel = harmonic(scores.text, scores.visual)
        image, smoothed = fuse(scores, grid, cfg.map_size, cfg.sigma, cfg.image_score_size)
    on_grid = {name: s.reshape(-1, *grid) for name, s in
               (("token_level", token_level), ("text_map", scores.text), ("memory_map", scores.visual),
                ("fused_grid", pixel))}
    stages = {
        **level_text_stages("seg", seg_levels, cfg.n_pro_seg),
        **level_text_stages("cls", cls_levels, cfg.n_pro_cls),
        "seg_intrinsic": intrinsic,
        "cls_intrinsic": cls_intrinsic,
        **{f"gallery_{layer}": m for layer, m in zip(cfg.memory_layers, head.memory)},
        "patch_tokens": query.patches,
        "cls_feature": query.cls,
        **{f"memory_{layer}": m for layer, m in zip(cfg.memory_layers, query.memory)},
        **on_grid,
        "fused_map": grid_to_map(pixel, grid, cfg.map_size, 0.0),
        "smoothed_map": smoothed,
        "cls_level": cls_level[:, 0],
        "image_text_score": scores.image_text,
        "memory_max": map_max(scores.visual, grid, cfg.image_score_size),
        "image_score": image,
    }
    return {name: stages[name].detach().float().cpu().numpy() for name in STAGES}


#: The record stored beside the official stages.
RECORD = {"prompt_seed": PROMPT_SEED, "query_seed": QUERY_SEED, "image_seed": IMAGE_SEED, "num_shots": NUM_SHOTS,
          "num_queries": NUM_QUERIES, "dataset": DATASET, "category": CATEGORY}


def query_images() -> torch.Tensor:
    """The query images whose stages are compared (the support image is held by :func:`build_ours`)."""
    return input_images()[1]
