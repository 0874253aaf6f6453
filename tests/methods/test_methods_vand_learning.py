"""VAND learns: on a tiny random CLIP trained on synthetic_aux, the linear layers raise the pixel AUROC of held-out
images (new images of the training categories) over the freshly initialised layers, for every seed."""
from __future__ import annotations

import torch

from zsadbench.backbones import FeatureCache
from zsadbench.datasets.synthetic import AUX_CATEGORIES, SyntheticAuxDataset
from zsadbench.method import FitData
from zsadbench.methods.vand.config import VANDConfig
from zsadbench.methods.vand.method import VAND
from zsadbench.runner.loading import ImageSet

from learning_helpers import pixel_auroc

SIZE = 112
# Tiny random CLIP (4 blocks, width 64) at 112 px, the maps of blocks 2 and 4, 15 epochs; every other value is the
# official one.
CONFIG = VANDConfig(backbone="zsad-tiny-14-336", image_size=SIZE, layers=(2, 4), memory_layers=(1, 3), epochs=15)
COUNTS = dict(categories=AUX_CATEGORIES[:4], n_train=8, n_test_normal=6, n_test_anomalous=10, image_size=128)
SEEDS = (0, 1, 2)


def test_training_improves_held_out_pixel_auroc_over_seeds(tmp_path, one_thread):
    train_set = SyntheticAuxDataset(tmp_path / "train", **COUNTS)
    held_set = SyntheticAuxDataset(tmp_path / "held_out", seed=1, **COUNTS)
    train = ImageSet(train_set, train_set.select("test"), SIZE, SIZE)
    held_out = ImageSet(held_set, held_set.select("test"), SIZE, SIZE)
    gains = []
    for seed in SEEDS:  # the linear layers' initialisation and the batch order; the random backbone is the same
        torch.manual_seed(seed)
        method = VAND(CONFIG, pretrained="none").setup()
        method.load_state_dict(method.state_dict())
        before = pixel_auroc(method, held_out)
        method.fit(FitData("auxiliary", train.batches, len(train), "synthetic_aux", seed=seed, features=FeatureCache()))
        gains.append(pixel_auroc(method, held_out) - before)
        assert method.history_[-1]["total"] < method.history_[0]["total"]
    # Measured, seeds 0/1/2: before 0.697/0.591/0.693, after 0.931/0.879/0.878 (+0.23/+0.29/+0.19, mean +0.24);
    # total loss 2.95/3.18/3.45 in the first epoch, 1.92/1.95/1.95 in the last.
    assert min(gains) > 0.08 and sum(gains) / len(gains) > 0.12, gains
