"""Shared by the learning tests: one torch thread (reproducible margins) and held-out pixel AUROC."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from zsadbench.method import Method
from zsadbench.runner.loading import ImageSet


@pytest.fixture()
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def pixel_auroc(method: Method, images: ImageSet) -> float:
    """scikit-learn's AUROC of ``method``'s maps against the masks of ``images``, over all pixels."""
    maps, masks = [], []
    for loaded in images.iter_batches(16):
        with torch.inference_mode():
            maps.append(method.predict(loaded.batch).anomaly_map.numpy())
        masks.append(loaded.masks)
    return float(roc_auc_score(np.concatenate(masks).ravel(), np.concatenate(maps).ravel()))
