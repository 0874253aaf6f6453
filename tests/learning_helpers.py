"""Shared by the learning tests: held-out pixel AUROC (their ``one_thread`` fixture is in conftest.py)."""
from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from zsadbench.method import Method
from zsadbench.runner.loading import ImageSet


def pixel_auroc(method: Method, images: ImageSet) -> float:
    """scikit-learn's AUROC of ``method``'s maps against the masks of ``images``, over all pixels."""
    maps, masks = [], []
    for loaded in images.iter_batches(16):
        with torch.inference_mode():
            maps.append(method.predict(loaded.batch).anomaly_map.numpy())
        masks.append(loaded.masks)
    return float(roc_auc_score(np.concatenate(masks).ravel(), np.concatenate(maps).ravel()))
