"""zsadbench's side of the WinCLIP comparison with anomalib's WinCLIP: the tiny model, the fixed support and
query images and every stage of the computation, written with zsadbench's own functions.

Shared by ``winclip.py`` (which runs anomalib's model beside it and stores anomalib's stages) and by
``tests/methods/test_official_outputs.py`` (which checks these stages against the stored ones).

The backbone is the tiny test architecture ``zsad-tiny-16-240`` at 96 px (a 6×6 patch grid, so both window
scales slide). The model is fitted with one support image (WinCLIP+, k = 1); the zero-shot stages are taken
from the same model before the visual association is added.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from zsadbench.method import FitData
from zsadbench.methods.winclip.config import WinCLIPConfig
from zsadbench.methods.winclip.method import WinCLIP
from zsadbench.types import Batch

import common

BACKBONE = "zsad-tiny-16-240"
CONFIG = WinCLIPConfig(backbone=BACKBONE, image_size=96, scales=(2, 3))
CATEGORY = "bottle"
IMAGE_SEED = 1
NUM_SHOTS = 1
NUM_QUERIES = 2
#: The stages compared, in the order of anomalib's ``forward``.
STAGES = (
    "text_embeddings", "image_embeddings",
    *(f"window_embeddings_{scale}" for scale in CONFIG.scales),
    "patch_embeddings", "zero_shot_score", "zero_shot_map", "few_shot_map", "image_score", "smoothed_map",
)
RECORD = {"image_seed": IMAGE_SEED, "num_shots": NUM_SHOTS, "num_queries": NUM_QUERIES, "category": CATEGORY}


def config_json() -> str:
    """:data:`CONFIG` as stored beside anomalib's outputs."""
    return common.config_json(CONFIG)


def input_images() -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed ``(support, queries)`` in ``[0, 1]``, drawn from a generator seeded with ``IMAGE_SEED``."""
    images = common.seeded_images(NUM_SHOTS + NUM_QUERIES, CONFIG.image_size, IMAGE_SEED)
    return images[:NUM_SHOTS], images[NUM_SHOTS:]


def query_images() -> torch.Tensor:
    """The images whose stages are compared."""
    return input_images()[1]


def build_ours() -> WinCLIP:
    """zsadbench's WinCLIP+ on the tiny backbone, fitted on the support image."""
    common.register_backbone(BACKBONE)
    support, _ = input_images()

    def batches(**_: object) -> Iterator[Batch]:
        yield Batch(image=support, category=CATEGORY)

    data = FitData("support", batches, NUM_SHOTS, "seeded", CATEGORY, shots=NUM_SHOTS)
    return WinCLIP(CONFIG, pretrained="none", device="cpu").fit(data)


def our_stages(method: WinCLIP, images01: torch.Tensor) -> dict[str, np.ndarray]:
    """Every stage of zsadbench's WinCLIP+ on ``images01`` (float32 arrays).

    ``text_embeddings`` ``[2, D]`` (normal, anomalous; unnormalised means), ``image_embeddings`` ``[B, D]``,
    ``window_embeddings_<s>`` ``[B, W_s, D]``, ``patch_embeddings`` ``[B, N, width]``, ``zero_shot_score``
    ``[B]``, ``zero_shot_map`` and ``few_shot_map`` ``[B, h, w]`` (patch grid), ``image_score`` ``[B]`` and the
    final map ``smoothed_map`` ``[B, S, S]`` (WinCLIP does not smooth; the name is the one the tests read).
    """
    model = method.model_
    grid = (-1, *model.grid)
    with torch.no_grad():
        text = model.text_embeddings(CATEGORY)
        encoded = model.encode(images01)
        zero_score, zero_map = model.zero_shot_maps(encoded, text)
        score, final = model(images01, CATEGORY)
        stages = {
            "text_embeddings": text,
            "image_embeddings": encoded.image,
            **{f"window_embeddings_{s}": w for s, w in zip(CONFIG.scales, encoded.windows)},
            "patch_embeddings": encoded.patches,
            "zero_shot_score": zero_score,
            "zero_shot_map": zero_map.reshape(grid),
            "few_shot_map": model.few_shot_map(encoded).reshape(grid),
            "image_score": score,
            "smoothed_map": final,
        }
    return {name: value.float().cpu().numpy() for name, value in stages.items()}
