"""Small plugins for the runner tests: a toy dataset written on the fly and toy methods.

They go through the same registry paths as real plugins (``--plugin tests_module:Class`` or
``registry.register``), so the runner is tested without a real backbone.
"""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from zsadbench.config import MethodConfig
from zsadbench.datasets.base import DatasetAdapter
from zsadbench.method import FitData, Method
from zsadbench.types import Batch, Prediction, Sample

CATEGORIES = ("alpha", "beta")


def write_toy_tree(root: Path, size: int = 32, n_train: int = 3, n_normal: int = 3, n_anomalous: int = 3) -> Path:
    """An MVTec-like tree: flat gray images, anomalies carry a bright square recorded in the mask."""
    rng = np.random.default_rng(0)
    for category in CATEGORIES:
        for split, folder, count in (("train", "good", n_train), ("test", "good", n_normal), ("test", "bad", n_anomalous)):
            directory = root / category / split / folder
            directory.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                image = np.full((size, size, 3), 100, np.uint8) + rng.integers(0, 10, (size, size, 3), dtype=np.uint8)
                if folder == "bad":
                    mask = np.zeros((size, size), np.uint8)
                    top, left = 4 + 3 * i, 6 + 2 * i
                    mask[top : top + 8, left : left + 8] = 255
                    image[mask > 0] = 250
                    masks = root / category / "ground_truth" / folder
                    masks.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(mask).save(masks / f"{i:03d}_mask.png")
                Image.fromarray(image).save(directory / f"{i:03d}.png")
    return root


class ToyDataset(DatasetAdapter):
    """Reads :func:`write_toy_tree` trees."""

    name = "toy"
    title = "Toy"
    domain = "industrial"
    layout = "<category>/{train,test}/{good,bad}/NNN.png, <category>/ground_truth/bad/NNN_mask.png"

    def index(self) -> list[Sample]:
        samples = []
        for image in sorted(self.root.glob("*/*/*/*.png")):
            category, split, folder = image.parts[-4:-1]
            if split == "ground_truth":
                continue
            mask = self.root / category / "ground_truth" / folder / f"{image.stem}_mask.png"
            samples.append(
                Sample(image, category, split, int(folder != "good"), mask if folder != "good" else None, folder)
            )
        return samples


@dataclasses.dataclass(frozen=True)
class ToyConfig(MethodConfig):
    image_size: int = 32
    gain: float = 1.0


class ToyMethod(Method):
    """Training-free zero-shot: the map is the distance of each pixel to the image's median colour."""

    name = "toy"
    version = "1"
    label = "Toy"
    settings = frozenset({"zero-shot", "few-shot"})
    shots = (1, 2)
    config_class = ToyConfig
    random_init_overrides = {"gain": 2.0}

    def setup(self) -> "ToyMethod":
        self.calls_ = getattr(self, "calls_", 0)
        return self

    def fit(self, data: FitData) -> "ToyMethod":
        self.reference_ = None
        if data.kind == "support":
            images = torch.cat([b.image for b in data.batches(4)])
            self.reference_ = images.mean(dim=0, keepdim=True)
        self.fitted_ = True
        return self

    def predict(self, batch: Batch) -> Prediction:
        self.check_fitted()
        self.calls_ += 1
        time.sleep(float(os.environ.get("TOY_SLEEP", "0")))
        log = os.environ.get("TOY_PREDICT_LOG")
        if log:
            with open(log, "a") as handle:
                for i in range(len(batch)):
                    handle.write(f"{os.getpid()} {batch.category}/{getattr(self, 'reference_', None) is not None}\n")
        reference = self.reference_ if self.reference_ is not None else batch.image.median(dim=-1, keepdim=True).values.median(dim=-2, keepdim=True).values
        amap = (batch.image - reference).abs().sum(dim=1) * self.config.gain
        return Prediction(amap.flatten(1).max(dim=1).values, amap)


class ToyTrainedMethod(ToyMethod):
    """Zero-shot with auxiliary training: learns a gain from the auxiliary set (counts its fits)."""

    name = "toytrained"
    version = "1"
    settings = frozenset({"zero-shot"})
    shots = ()
    trains_on_auxiliary = True
    fits = 0

    def fit(self, data: FitData) -> "ToyTrainedMethod":
        assert data.kind == "auxiliary"
        type(self).fits += 1
        marker = os.environ.get("TOY_FIT_MARKER")
        if marker:
            with open(marker, "a") as handle:
                handle.write(data.dataset + "\n")
        labels = torch.cat([b.gt_label for b in data.batches(4)])
        self.gain_ = torch.tensor(float(labels.float().mean()) + 1.0)
        self.reference_ = None
        self.fitted_ = True
        return self

    def state_dict(self) -> dict:
        return {"gain": self.gain_}

    def load_state_dict(self, state: dict) -> None:
        self.gain_ = state["gain"]
        self.reference_ = None
        self.fitted_ = True


class ToyInContextMethod(ToyTrainedMethod):
    """Few-shot after auxiliary training (the contract of InCTRL): a gain learnt on the auxiliary set, then each
    cell's support images as the reference (counts both kinds of fit)."""

    name = "toyincontext"
    settings = frozenset({"few-shot"})
    shots = (1, 2)
    adapted = 0

    def fit(self, data: FitData) -> "ToyInContextMethod":
        if data.kind == "auxiliary":
            return super().fit(data)
        assert data.kind == "support" and self.gain_ is not None, "the support fit comes after the auxiliary state"
        type(self).adapted += 1
        self.reference_ = torch.cat([b.image for b in data.batches(4)]).mean(dim=0, keepdim=True)
        return self

    def predict(self, batch: Batch) -> Prediction:
        amap = (batch.image - self.reference_).abs().sum(dim=1) * self.gain_
        return Prediction(amap.flatten(1).max(dim=1).values, amap)


class NaNMethod(ToyMethod):
    """Returns NaN maps for the category 'beta' (to test the error naming the cell)."""

    name = "nanmethod"

    def predict(self, batch: Batch) -> Prediction:
        prediction = super().predict(batch)
        if batch.category == "beta":
            return Prediction(prediction.pred_score, prediction.anomaly_map * float("nan"))
        return prediction


class InterruptingMethod(ToyMethod):
    """Raises KeyboardInterrupt on the category named by $TOY_INTERRUPT_AT (simulates Ctrl-C mid-run)."""

    name = "interrupting"

    def predict(self, batch: Batch) -> Prediction:
        if batch.category == os.environ.get("TOY_INTERRUPT_AT"):
            raise KeyboardInterrupt
        return super().predict(batch)


@dataclasses.dataclass(frozen=True)
class ProbeConfig(MethodConfig):
    image_size: int = 16
    gain: float = 1.0
    epochs: int = 3
    allocate_mb: int = 0


class ProbeMethod(ToyMethod):
    """Few-shot and zero-shot toy that reports what the runner gives it, through ``Prediction.stats``:
    how many fits this instance has seen, the precision, whether originals come at file resolution."""

    name = "probe"
    version = "1"
    config_class = ProbeConfig
    random_init_overrides = {}

    def fit(self, data: FitData) -> "ProbeMethod":
        self.fits_ = getattr(self, "fits_", 0) + 1
        return super().fit(data)

    def predict(self, batch: Batch) -> Prediction:
        if self.config.allocate_mb and batch.category == "alpha":
            torch.ones(self.config.allocate_mb * 2**18).sum()  # float32: allocate_mb MiB, touched and freed
        prediction = super().predict(batch)
        originals = [batch.original(i).shape[-1] for i in range(len(batch))]
        stats = {
            "fits": torch.tensor(self.fits_),
            "bf16": torch.tensor(int(self.precision == "bf16")),
            "original_px": torch.tensor(originals).sum(),
            "images": torch.tensor(len(batch)),
        }
        return Prediction(prediction.pred_score, prediction.anomaly_map, stats)


class EpochTrainedMethod(ToyTrainedMethod):
    """Trains a gain over ``epochs`` epochs with a checkpoint after each; appends ``epoch`` lines to
    $TOY_EPOCH_MARKER and kills its own process (SIGKILL) after epoch $TOY_KILL_AFTER_EPOCH. It records each
    training image's category in its state (class-aware methods train on mixed batches)."""

    name = "epochtrained"
    version = "1"
    config_class = ProbeConfig

    def fit(self, data: FitData) -> "EpochTrainedMethod":
        import signal

        start, gain, seen = 0, torch.tensor(1.0), []
        resumed = data.checkpoints.latest() if data.checkpoints is not None else None
        if resumed is not None:
            start, state = resumed
            gain, seen = state["gain"], list(state["categories"])
        for epoch in range(start, self.config.epochs):
            for batch in data.batches(4, shuffle=True, seed=data.seed * 100 + epoch):
                gain = gain + batch.gt_label.float().mean() * torch.rand(()) * 0.1
                seen.extend(batch.categories)
            marker = os.environ.get("TOY_EPOCH_MARKER")
            if marker:
                with open(marker, "a") as handle:
                    handle.write(f"{epoch + 1}\n")
            if data.checkpoints is not None:
                data.checkpoints.save(epoch + 1, {"gain": gain, "categories": sorted(set(seen))})
            if os.environ.get("TOY_KILL_AFTER_EPOCH") == str(epoch + 1):
                os.kill(os.getpid(), signal.SIGKILL)
        self.gain_, self.categories_ = gain, sorted(set(seen))
        self.reference_ = None
        self.fitted_ = True
        return self

    def state_dict(self) -> dict:
        return {"gain": self.gain_, "categories": self.categories_}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.categories_ = list(state["categories"])

    def predict(self, batch: Batch) -> Prediction:
        prediction = super().predict(batch)
        amap = prediction.anomaly_map * self.gain_
        return Prediction(amap.flatten(1).max(dim=1).values, amap)


class RaisingInitMethod(ToyMethod):
    """A plugin whose constructor raises (a broken third-party method)."""

    name = "raisinginit"

    def __init__(self, *args, **kwargs) -> None:
        raise RuntimeError("cannot build the model")


class WrongShapeMethod(ToyMethod):
    """Returns maps without the batch dimension for 'beta', and one score too many for 'alpha' 1-shot."""

    name = "wrongshape"

    def predict(self, batch: Batch) -> Prediction:
        prediction = super().predict(batch)
        if batch.category == "beta":
            return Prediction(prediction.pred_score, prediction.anomaly_map[0])
        if self.reference_ is not None:
            return Prediction(torch.cat([prediction.pred_score, prediction.pred_score[:1]]),
                              torch.cat([prediction.anomaly_map, prediction.anomaly_map[:1]]))
        return prediction
