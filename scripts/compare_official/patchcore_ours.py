"""zsadbench's side of the PatchCore comparison with anomalib's ``PatchcoreModel``: the tiny model, the fixed
support and query images and every stage of the computation, written with zsadbench's own functions.

Shared by ``patchcore.py`` (which runs anomalib's model beside it and stores anomalib's stages) and by
``tests/methods/test_official_outputs.py`` (which checks these stages against the stored ones).

The backbone is ResNet-18 with zsadbench's seeded random weights at 96 px (layer2 12×12, layer3 6×6), configured
as anomalib runs PatchCore: 3×3 average pooling of each layer and the plain concatenation (``layer_dim`` and
``feature_dim`` 0), nearest upsampling of the patch scores. Two support images are encoded; the memory bank is
their coreset at anomalib's default ratio 0.1, and (stages ``full_*``) every feature, at ratio 1.0.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from zsadbench.method import FitData
from zsadbench.methods.patchcore.config import PatchCoreConfig
from zsadbench.methods.patchcore.coreset import coreset_draws
from zsadbench.methods.patchcore.method import PatchCore
from zsadbench.types import Batch

import common

CONFIG = PatchCoreConfig(backbone="resnet18", image_size=96, layer_dim=0, feature_dim=0, upsample="nearest",
                         coreset_ratio=0.1)
CATEGORY = "bottle"
IMAGE_SEED = 3
CORESET_SEED = 0
NUM_SHOTS = 2
NUM_QUERIES = 2
#: The stages compared: the coreset run's, then the ratio-1.0 run's (``full_*``).
STAGES = (
    "layer2", "layer3", "embedding", "memory_bank", "patch_scores", "image_score", "smoothed_map",
    "full_memory_bank", "full_patch_scores", "full_image_score", "full_smoothed_map",
)
RECORD = {"image_seed": IMAGE_SEED, "coreset_seed": CORESET_SEED, "num_shots": NUM_SHOTS,
          "num_queries": NUM_QUERIES, "category": CATEGORY}


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


def build_ours(coreset_ratio: float = CONFIG.coreset_ratio) -> PatchCore:
    """zsadbench's PatchCore on the seeded ResNet-18, fitted on the support images with the coreset generator
    seeded with ``CORESET_SEED``."""
    support, _ = input_images()

    def batches(**_: object) -> Iterator[Batch]:
        yield Batch(image=support, category=CATEGORY)

    data = FitData("support", batches, NUM_SHOTS, "seeded", CATEGORY, shots=NUM_SHOTS, seed=CORESET_SEED)
    return PatchCore(CONFIG.replace(coreset_ratio=coreset_ratio), pretrained="none", device="cpu").fit(data)


def coreset_randomness(n_samples: int, n_features: int) -> tuple[torch.Tensor, int]:
    """The projection matrix and first centre zsadbench's fit draws for ``n_samples`` features of
    ``n_features`` (the generator and the order of draws of :meth:`PatchCore.fit`)."""
    generator = torch.Generator().manual_seed(CORESET_SEED)
    return coreset_draws(n_samples, n_features, CONFIG.projection_eps, generator)


def _run_stages(method: PatchCore, images01: torch.Tensor) -> dict[str, torch.Tensor]:
    model = method.model_
    scores, _ = model.patch_scores(model.embed(images01))
    score, smoothed = model(images01)
    return {"memory_bank": model.memory_bank, "patch_scores": scores, "image_score": score, "smoothed_map": smoothed}


def our_stages(method: PatchCore, images01: torch.Tensor) -> dict[str, np.ndarray]:
    """Every stage of zsadbench's PatchCore on ``images01`` (float32 arrays): the backbone maps ``layer2``
    ``[B, 128, 12, 12]`` and ``layer3`` ``[B, 256, 6, 6]``, the ``embedding`` ``[B, 384, 12, 12]``, the
    ``memory_bank`` ``[M, 384]`` (selection order), the ``patch_scores`` ``[B, 12, 12]``, the re-weighted
    ``image_score`` ``[B]`` and the ``smoothed_map`` ``[B, 96, 96]``; then the same of the model fitted at
    coreset ratio 1.0 (``full_*``, the memory bank in the support features' own order)."""
    with torch.no_grad():
        layer2, layer3 = method.model_.backbone(images01)
        stages = {"layer2": layer2, "layer3": layer3, "embedding": method.model_.embed(images01),
                  **_run_stages(method, images01)}
        stages.update({f"full_{k}": v for k, v in _run_stages(build_ours(1.0), images01).items()})
    return {name: value.float().cpu().numpy() for name, value in stages.items()}
