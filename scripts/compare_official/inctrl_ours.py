"""zsadbench's side of the InCTRL comparison with the official code: the tiny model, the seeded heads, the fixed
prompt and query images and every stage of the computation, written with zsadbench's own functions.

Shared by ``inctrl.py`` (which runs the official code beside it and stores the official stages) and by
``tests/methods/test_official_outputs.py`` (which checks these stages against the stored ones).

The backbone is ``zsad-official-inctrl-tiny-16-240`` (the JSON file next to this module): the official model fixes
240 px (a 15×15 grid), 12 visual blocks (it reads blocks 7, 9 and 11 and the attention of block 12) and a
640-wide joint embedding (its adapter and image head), so only the widths inside the towers are tiny. The category
``metal_nut`` puts two words into the prompts (underscores read as spaces on both sides).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from zsadbench.backbones.clip import ClipBackbone
from zsadbench.method import FitData
from zsadbench.methods.inctrl.config import InCTRLConfig
from zsadbench.methods.inctrl.method import InCTRL
from zsadbench.methods.inctrl.prompts import encode_prompts, prompt_texts
from zsadbench.methods.inctrl.scoring import binary_focal_loss
from zsadbench.types import Batch

import common

BACKBONE = "zsad-official-inctrl-tiny-16-240"
CONFIG_FILE = Path(__file__).with_name(f"{BACKBONE}.json")
#: The official design (blocks 7, 9, 11, adapter reduction 4, heads 128/64, text scale 100, focal α 1, γ 2) on the
#: tiny backbone, with heads for the official default of 2 prompts.
CONFIG = InCTRLConfig(backbone=BACKBONE, train_shots=(2,))
CATEGORY = "metal_nut"
HEAD_SEED = 0
IMAGE_SEED = 1
NUM_SHOTS = 2
NUM_QUERIES = 3
#: The queries' labels in the loss stage.
LABELS = (0, 1, 1)
#: The stages compared, in the order of the official forward: the prompts' text features, the query and prompt
#: tokens, the image-level residual, the text prior, the patch residual map, the holistic and final scores, the
#: loss of the three queries.
STAGES = (
    "text_normal", "text_anomalous",
    *(f"patches_{layer}" for layer in CONFIG.layers), *(f"prompt_patches_{layer}" for layer in CONFIG.layers),
    "image_token", "prompt_tokens", "adapted_query", "adapted_prompts", "image_residual", "image_residual_score",
    "text_prior", "residual_map", "holistic_input", "holistic_score", "max_residual", "image_score", "smoothed_map",
    "loss",
)
#: The record stored beside the official stages.
RECORD = {"head_seed": HEAD_SEED, "image_seed": IMAGE_SEED, "num_shots": NUM_SHOTS, "num_queries": NUM_QUERIES,
          "category": CATEGORY}


def config_json() -> str:
    """:data:`CONFIG` as stored beside the official outputs."""
    return common.config_json(CONFIG)


def native_backbone() -> ClipBackbone:
    """The tiny backbone with the same seeded random weights as :func:`build_ours`'s."""
    return common.native_backbone(BACKBONE)


def input_images() -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed ``(prompts, queries)``: ``[NUM_SHOTS | NUM_QUERIES, 3, 240, 240]`` in ``[0, 1]``, drawn from a
    generator seeded with ``IMAGE_SEED``."""
    images = common.seeded_images(NUM_SHOTS + NUM_QUERIES, CONFIG.image_size, IMAGE_SEED)
    return images[:NUM_SHOTS], images[NUM_SHOTS:]


def query_images() -> torch.Tensor:
    """The query images whose stages are compared (the prompt images are held by :func:`build_ours`)."""
    return input_images()[1]


def head_state(heads: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Seeded values for every tensor of one set of heads, so that no layer is the identity: linear weights and
    biases ``N(0, 0.1²)`` (the adapter's ``N(0, 0.05²)``); batch-norm scales ``1 + N(0, 0.1²)``, shifts and
    running means ``N(0, 0.1²)``, running variances in ``[0.5, 1.5)``. Drawn module by module, in order."""
    generator = torch.Generator().manual_seed(HEAD_SEED)

    def normal(like: torch.Tensor, std: float, mean: float = 0.0) -> torch.Tensor:
        return mean + std * torch.randn(like.shape, generator=generator)

    state = dict(heads.state_dict())
    for prefix, module in heads.named_modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            state[f"{prefix}.weight"] = normal(module.weight, 0.1, 1.0)
            state[f"{prefix}.bias"] = normal(module.bias, 0.1)
            state[f"{prefix}.running_mean"] = normal(module.running_mean, 0.1)
            state[f"{prefix}.running_var"] = 0.5 + torch.rand(module.running_var.shape, generator=generator)
        elif isinstance(module, torch.nn.Linear):
            std = 0.05 if prefix.startswith("adapter.") else 0.1
            state[f"{prefix}.weight"] = normal(module.weight, std)
            if module.bias is not None:
                state[f"{prefix}.bias"] = normal(module.bias, std)
    return state


def build_ours(config: InCTRLConfig = CONFIG) -> InCTRL:
    """zsadbench's InCTRL on the tiny backbone, holding the seeded heads and fitted on the prompt images."""
    common.register_backbone(BACKBONE)
    method = InCTRL(config, pretrained="none", device="cpu").setup()
    heads = method.model_.heads[str(NUM_SHOTS)]
    heads.load_state_dict(head_state(heads))
    prompts, _ = input_images()

    def batches(batch_size: int = NUM_SHOTS, shuffle: bool = False, seed: int = 0):
        yield Batch(image=prompts, category=CATEGORY)

    return method.fit(FitData("support", batches, NUM_SHOTS, "mvtec", CATEGORY, NUM_SHOTS))


def our_stages(method: InCTRL, queries01: torch.Tensor) -> dict[str, np.ndarray]:
    """Every stage of zsadbench's InCTRL on ``queries01`` (float32 arrays).

    Text: the raw features of the normal ``[154, E]`` and anomalous ``[88, E]`` prompts. Vision: the query's raw
    patch tokens ``patches_<L> [B, N, C]`` and the prompts' ``prompt_patches_<L> [k·N, C]``, the image tokens of the
    queries ``[B, E]`` and prompts ``[k, E]``, and both through the adapter. Scores ``[B]``: the image-level residual
    ``[B, E]`` and its score, the text prior, the holistic head's input ``[B, N]`` (residual map plus both
    scalars) and score, the largest residual, the final score (``image_score``); ``residual_map [B, N]`` and the
    map ``predict`` returns (``smoothed_map``, ``[B, 15, 15]``; nothing is smoothed). ``loss``: the two focal terms
    of the queries with :data:`LABELS`.
    """
    model = method.model_
    heads = model.heads[str(method.prompt_shots_)]
    prompts = method.prompts_
    normal, anomalous = prompt_texts(CATEGORY)
    with torch.no_grad():
        text = encode_prompts(model.backbone, normal + anomalous).float()
        query = model.tower(queries01)
        scores = model.scores(method.prompt_shots_, query, prompts, model.text([CATEGORY] * len(queries01)))
        labels = torch.tensor(LABELS, dtype=torch.float32)
        loss = (binary_focal_loss(scores.final, labels, CONFIG.focal_alpha, CONFIG.focal_gamma)
                + binary_focal_loss(scores.image, labels, CONFIG.focal_alpha, CONFIG.focal_gamma))
        stages = {
            "text_normal": text[: len(normal)],
            "text_anomalous": text[len(normal):],
            **{f"patches_{layer}": p for layer, p in zip(CONFIG.layers, query.patches)},
            **{f"prompt_patches_{layer}": p for layer, p in zip(CONFIG.layers, prompts.patches)},
            "image_token": query.token,
            "prompt_tokens": prompts.tokens,
            "adapted_query": heads.adapter(query.token),
            "adapted_prompts": heads.adapter(prompts.tokens),
            "image_residual": heads.image_residual(query.token, prompts.tokens),
            "image_residual_score": scores.image,
            "text_prior": scores.text,
            "residual_map": scores.residual_map,
            "holistic_input": scores.residual_map + scores.text[:, None] + scores.image[:, None],
            "holistic_score": scores.holistic,
            "max_residual": scores.residual_map.max(dim=1).values,
            "image_score": scores.final,
            "smoothed_map": scores.residual_map.reshape(-1, *model.backbone.grid_size),
            "loss": loss,
        }
    return {name: stages[name].detach().float().cpu().numpy() for name in STAGES}
