"""zsadbench's side of the PaDiM comparison with anomalib's ``PadimModel``: the tiny model, the fixed support and
query images and every stage of the computation, written with zsadbench's own functions.

Shared by ``padim.py`` (which runs anomalib's model beside it and stores anomalib's stages) and by
``tests/methods/test_official_outputs.py`` (which checks these stages against the stored ones).

The backbone is ResNet-18 with zsadbench's seeded random weights at 96 px (layer1 24×24, layer2 12×12, layer3
6×6), keeping the paper's 100 of its 448 channels. Three support images are fitted (anomalib's unbiased
covariance needs two or more). ``covariance_eps`` is 0.01 + 1e-5: anomalib adds 1e-5·I to the paper's
covariance + 0.01·I before inverting it, which is the same matrix.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from zsadbench.method import FitData
from zsadbench.methods.padim.config import PaDiMConfig
from zsadbench.methods.padim.method import PaDiM
from zsadbench.types import Batch

import common

CONFIG = PaDiMConfig(backbone="resnet18", image_size=96, n_features=100, covariance_eps=0.01 + 1e-5)
CATEGORY = "bottle"
IMAGE_SEED = 4
NUM_SHOTS = 3
NUM_QUERIES = 2
#: The stages compared, in the order of anomalib's ``forward``.
STAGES = ("layer1", "layer2", "layer3", "embedding", "mean", "distances", "image_score", "smoothed_map")
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


def build_ours(config: PaDiMConfig = CONFIG) -> PaDiM:
    """zsadbench's PaDiM on the seeded ResNet-18, fitted on the support images."""
    support, _ = input_images()

    def batches(**_: object) -> Iterator[Batch]:
        yield Batch(image=support, category=CATEGORY)

    data = FitData("support", batches, NUM_SHOTS, "seeded", CATEGORY, shots=NUM_SHOTS)
    return PaDiM(config, pretrained="none", device="cpu").fit(data)


def our_stages(method: PaDiM, images01: torch.Tensor) -> dict[str, np.ndarray]:
    """Every stage of zsadbench's PaDiM on ``images01`` (float32 arrays): the backbone maps ``layer1`` to
    ``layer3``, the ``embedding`` ``[B, 100, 24, 24]`` (chosen channels), the Gaussians' ``mean``
    ``[100, 576]`` (anomalib's layout), the Mahalanobis ``distances`` ``[B, 24, 24]``, the ``image_score``
    ``[B]`` and the ``smoothed_map`` ``[B, 96, 96]``."""
    model = method.model_
    with torch.no_grad():
        layer1, layer2, layer3 = model.backbone(images01)
        embedding = model.embed(images01)
        score, smoothed = model(images01)
        stages = {"layer1": layer1, "layer2": layer2, "layer3": layer3, "embedding": embedding,
                  "mean": model.gaussians.mean.T, "distances": model.distance_maps(embedding),
                  "image_score": score, "smoothed_map": smoothed}
    return {name: value.float().cpu().numpy() for name, value in stages.items()}
