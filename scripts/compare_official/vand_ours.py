"""zsadbench's side of the VAND comparison with the official code: the tiny model, the seeded linear layers, the
fixed support and query images and every stage of the computation, written with zsadbench's own functions.

Shared by ``vand.py`` (which runs the official code beside it and stores the official stages) and by
``tests/methods/test_official_outputs.py`` (which checks these stages against the stored ones).

The backbone is ``zsad-official-promptad-tiny-16-64`` (the JSON file next to this module, shared with the PromptAD
comparison): the official vision tower reads the attention of its 12th block, so it needs at least 12 blocks. Its
config has no QuickGELU, like the plain ``ViT-L-14-336`` config the official code builds its 518 px model from.
The model runs at 96 px, so both sides resize the 4×4 positional grid to 6×6 (bicubic, antialiased). Blocks
3, 6, 9 and 12 stand for 6, 12, 18 and 24 of ViT-L/14, for the maps and the memory alike.
"""
from __future__ import annotations

import numpy as np
import torch

from zsadbench.backbones.clip import ClipBackbone
from zsadbench.method import FitData
from zsadbench.methods.vand.config import VANDConfig
from zsadbench.methods.vand.method import VAND
from zsadbench.methods.vand.tower import read_tower
from zsadbench.types import Batch

import common

BACKBONE = "zsad-official-promptad-tiny-16-64"
#: The official design (four tapped blocks, each with its own linear layer; the same blocks in the memory; scale
#: 100; no smoothing) on the 12-block tiny backbone at 96 px.
CONFIG = VANDConfig(backbone=BACKBONE, image_size=96, layers=(3, 6, 9, 12), memory_layers=(3, 6, 9, 12))
#: The category the prompts name.
CATEGORY = "bottle"
ADAPTER_SEED = 0
IMAGE_SEED = 1
NUM_SHOTS = 2
NUM_IMAGES = 3
#: The stages compared, in the order of the official ``test.py``: text features, the image feature, the
#: projected patch tokens and the anomaly probability map of each layer, their sum (also as ``smoothed_map``:
#: neither side smooths), the image score; then the few-shot memory, the distance map of each memory layer, the
#: few-shot map and its maximum (what the official image score normalises over a category).
STAGES = ("text_features", "image_features", "patch_tokens", "layer_maps", "anomaly_map", "smoothed_map",
          "image_score", "memory_tokens", "memory_maps", "fewshot_map", "fewshot_map_max")
#: The record stored beside the official stages.
RECORD = {"adapter_seed": ADAPTER_SEED, "image_seed": IMAGE_SEED, "num_shots": NUM_SHOTS, "num_images": NUM_IMAGES}


def config_json() -> str:
    """:data:`CONFIG` as stored beside the official outputs."""
    return common.config_json(CONFIG)


def native_backbone() -> ClipBackbone:
    """The tiny backbone at its native 64 px, with the same seeded random weights as :func:`build_ours`'s."""
    return common.native_backbone(BACKBONE)


def build_ours(config: VANDConfig = CONFIG) -> VAND:
    """zsadbench's VAND on the tiny backbone, its linear layers drawn after ``torch.manual_seed(ADAPTER_SEED)``,
    counted as trained (zero-shot: no memory)."""
    common.register_backbone(BACKBONE)
    torch.manual_seed(ADAPTER_SEED)
    method = VAND(config, pretrained="none", device="cpu").setup()
    method.load_state_dict(method.state_dict())
    return method


def input_images() -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed ``(support, queries)``: ``[NUM_SHOTS | NUM_IMAGES, 3, S, S]`` in ``[0, 1]``, drawn from a
    generator seeded with ``IMAGE_SEED``."""
    images = common.seeded_images(NUM_SHOTS + NUM_IMAGES, CONFIG.image_size, IMAGE_SEED)
    return images[:NUM_SHOTS], images[NUM_SHOTS:]


def query_images() -> torch.Tensor:
    """The images whose stages are compared."""
    return input_images()[1]


def few_shot(method: VAND) -> VAND:
    """A copy of ``method`` (same linear layers) fitted on the support images."""
    copy = VAND(method.config, pretrained="none", device="cpu").setup()
    copy.load_state_dict(method.state_dict())
    support = input_images()[0]
    return copy.fit(FitData("support", lambda *a, **k: iter([Batch(image=support, category=CATEGORY)]), len(support),
                            "official", CATEGORY, len(support)))


def our_stages(method: VAND, images01: torch.Tensor) -> dict[str, np.ndarray]:
    """Every stage of zsadbench's VAND on ``images01`` (float32 arrays).

    ``text_features`` ``[2, D]`` (normal, anomaly; unit), ``image_features`` ``[B, D]`` (CLS → ``ln_post`` →
    projection), ``patch_tokens`` ``[L, B, N, D]`` (each layer's raw patches through its linear layer),
    ``layer_maps`` ``[L, B, S, S]`` (anomaly probability), ``anomaly_map``/``smoothed_map`` ``[B, S, S]``,
    ``image_score`` ``[B]``, ``memory_tokens`` ``[L, k·N, width]``, ``memory_maps`` ``[L, B, S, S]``,
    ``fewshot_map`` ``[B, S, S]`` (what few-shot ``predict`` returns) and ``fewshot_map_max`` ``[B]``.
    """
    model, cfg = method.model_, method.config
    fitted = few_shot(method)
    with torch.no_grad():
        patches, cls = read_tower(model.backbone, images01, cfg.layers + cfg.memory_layers)
        text = model.texts([CATEGORY] * len(images01))
        layer_maps = torch.stack(model.layer_probabilities(patches, text))
        fewshot_map = fitted.predict(Batch(image=images01, category=CATEGORY)).anomaly_map
        stages = {
            "text_features": model.text_features(CATEGORY),
            "image_features": model.image_features(cls),
            "patch_tokens": torch.stack(model.projected(patches)),
            "layer_maps": layer_maps,
            "anomaly_map": layer_maps.sum(dim=0),
            "smoothed_map": method.predict(Batch(image=images01, category=CATEGORY)).anomaly_map,
            "image_score": model.image_probability(cls, text),
            "memory_tokens": torch.stack([fitted.memory_[layer] for layer in cfg.memory_layers]),
            "memory_maps": torch.stack(model.memory_maps(patches, fitted.memory_)),
            "fewshot_map": fewshot_map,
            "fewshot_map_max": fewshot_map.flatten(1).amax(dim=1),
        }
    return {name: value.float().cpu().numpy() for name, value in stages.items()}
