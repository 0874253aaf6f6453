"""AnomalyCLIP learns: on a tiny random CLIP trained on synthetic_aux, the prompts raise the pixel AUROC of
held-out images (new images of the training categories) over the untrained prompts."""
from __future__ import annotations

import torch

from zsadbench.backbones import FeatureCache
from zsadbench.datasets.synthetic import AUX_CATEGORIES, SyntheticAuxDataset
from zsadbench.method import FitData
from zsadbench.methods.anomalyclip.config import AnomalyCLIPConfig
from zsadbench.methods.anomalyclip.method import AnomalyCLIP
from zsadbench.runner.loading import ImageSet

from learning_helpers import pixel_auroc

SIZE = 112
# Tiny random CLIP (4 blocks, width 64) at 112 px, the layer-4 map, 8 epochs; every other value is the official one.
CONFIG = AnomalyCLIPConfig(backbone="zsad-tiny-14-336", image_size=SIZE, layers=(4,), vv_last=3, deep_depth=2, epochs=8)
COUNTS = dict(categories=AUX_CATEGORIES[:4], n_train=8, n_test_normal=6, n_test_anomalous=10, image_size=128)


def test_training_improves_held_out_pixel_auroc(tmp_path, one_thread):
    train_set = SyntheticAuxDataset(tmp_path / "train", **COUNTS)
    held_set = SyntheticAuxDataset(tmp_path / "held_out", seed=1, **COUNTS)
    train = ImageSet(train_set, train_set.select("test"), SIZE, SIZE)
    held_out = ImageSet(held_set, held_set.select("test"), SIZE, SIZE)
    torch.manual_seed(0)
    method = AnomalyCLIP(CONFIG, pretrained="none").setup()
    method.load_state_dict(method.state_dict())
    before = pixel_auroc(method, held_out)
    method.fit(FitData("auxiliary", train.batches, len(train), "synthetic_aux", seed=0, features=FeatureCache()))
    after = pixel_auroc(method, held_out)
    # Measured with this config, seeds 0/1/2: before 0.593/0.395/0.264, after 0.674/0.598/0.677 (+0.08/+0.20/+0.41);
    # seed 0 is used here.
    assert method.history_[-1]["total"] < method.history_[0]["total"]
    assert after > before + 0.04, (before, after)
