"""zsadbench's side of the AnomalyCLIP comparison with the official code: the tiny model, the fixed inputs and
every stage of the computation, written with zsadbench's own functions.

Shared by ``anomalyclip.py`` (which runs the official code beside it and stores the official stages) and by
``tests/methods/test_official_anomalyclip.py`` (which checks these stages against the stored ones).

The backbone is ``zsad-official-tiny-14-336`` (the JSON file next to this module): a ViT with heads of width 64,
because the official ``build_model`` derives the number of heads as ``width // 64``. Its 24×24 positional grid
is resized to the 8×8 grid of the 112 px input by both codes.
"""
from __future__ import annotations

import numpy as np
import torch

from zsadbench.backbones.clip import ClipBackbone
from zsadbench.methods.anomalyclip.config import AnomalyCLIPConfig
from zsadbench.methods.anomalyclip.method import AnomalyCLIP
from zsadbench.methods.anomalyclip.scoring import smooth, upsample
from zsadbench.methods.anomalyclip.visual import tower_features

import common

BACKBONE = "zsad-official-tiny-14-336"
#: The official design (12 context tokens, deep prompts of 4 tokens) on a 4-block image tower and a 3-block
#: text tower: V-V attention in the last 3 blocks (``DPAM_layer=4``), the map of block 4, deep prompts before
#: text blocks 2 and 3, cast to float16 where they enter the text tower as the official ``.half()`` does.
CONFIG = AnomalyCLIPConfig(backbone=BACKBONE, image_size=112, layers=(4,), vv_last=3, n_ctx=12, deep_tokens=4,
                           deep_depth=3, sigma=4.0, deep_prompt_cast="fp16")
PROMPT_SEED = 0
IMAGE_SEED = 1
NUM_IMAGES = 3
#: The stages compared, in the order of the official ``test.py``.
STAGES = ("text_features", "image_features", "patch_tokens", "patch_probabilities", "anomaly_map",
          "smoothed_map", "image_score")


def config_json() -> str:
    """:data:`CONFIG` as stored beside the official outputs."""
    return common.config_json(CONFIG)


def native_backbone() -> ClipBackbone:
    """The tiny backbone at its native 336 px, with the same seeded random weights as :func:`build_ours`'s."""
    return common.native_backbone(BACKBONE)


def build_ours(config: AnomalyCLIPConfig = CONFIG) -> AnomalyCLIP:
    """zsadbench's AnomalyCLIP on the tiny backbone (``config``, :data:`CONFIG` by default), prompts drawn after
    ``torch.manual_seed(PROMPT_SEED)``."""
    common.register_backbone(BACKBONE)
    torch.manual_seed(PROMPT_SEED)
    method = AnomalyCLIP(config, pretrained="none", device="cpu").setup()
    method.load_state_dict(method.state_dict())
    return method


def input_images() -> torch.Tensor:
    """The fixed query images: ``[NUM_IMAGES, 3, S, S]`` in ``[0, 1]`` from a generator seeded with ``IMAGE_SEED``."""
    return common.seeded_images(NUM_IMAGES, CONFIG.image_size, IMAGE_SEED)


def our_stages(method: AnomalyCLIP, images01: torch.Tensor) -> dict[str, np.ndarray]:
    """Every stage of zsadbench's AnomalyCLIP on ``images01`` (float32 arrays).

    ``text_features`` ``[2, D]`` (normal, anomaly; L2-normalised), ``image_features`` ``[B, D]`` (final CLS
    @ proj), ``patch_tokens`` ``[L, B, N, D]`` (V-V stream → ``ln_post`` → proj, per tapped layer),
    ``patch_probabilities`` ``[L, B, N, 2]``, ``anomaly_map`` ``[B, S, S]`` (upsampled and summed over layers),
    ``smoothed_map`` ``[B, S, S]`` and ``image_score`` ``[B]``.
    """
    model, cfg = method.model_, method.config
    with torch.no_grad():
        text = model.text_features()
        tower = tower_features(model.backbone, images01, cfg.layers, cfg.vv_last)
        probs = model.patch_maps(tower, text)
        summed = upsample(sum(p[:, 1:2] for p in probs), cfg.image_size)[:, 0]
        stages = {
            "text_features": text,
            "image_features": model.backbone.project(tower.cls),
            "patch_tokens": torch.stack([model.backbone.project(p) for p in tower.patches]),
            "patch_probabilities": torch.stack([p.flatten(2).transpose(1, 2) for p in probs]),
            "anomaly_map": summed,
            "smoothed_map": smooth(summed, cfg.sigma),
            "image_score": model.image_logits(tower, text).softmax(dim=-1)[:, 1],
        }
    return {name: value.float().cpu().numpy() for name, value in stages.items()}

#: The category the prompts name, and the record stored beside the official stages.
CATEGORY = "object"
RECORD = {"prompt_seed": PROMPT_SEED, "image_seed": IMAGE_SEED, "num_images": NUM_IMAGES}


def query_images() -> torch.Tensor:
    """The images whose stages are compared."""
    return input_images()
