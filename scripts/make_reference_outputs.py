"""Write the stored reference outputs of every built-in method (``tests/reference_outputs/<method>.npz``).

Each built-in method is built with the tiny configuration in :data:`TINY` and random weights
(``pretrained="none"``) on the CPU with one thread, fitted on fixed synthetic images (an auxiliary set for the
methods that train zero-shot, one support image for few-shot, nothing for training-free zero-shot) and run on a
fixed batch of three query images. ``tests/methods/test_reference_outputs.py`` recomputes the same outputs with the
current code and compares them, so a change of any method's scores or maps is caught.

Regenerate only for an intended change of a method's outputs, together with a bump of that method's ``version``::

    python scripts/make_reference_outputs.py --out tests/reference_outputs [--method NAME ...]
"""
from __future__ import annotations

import argparse
import contextlib
import random
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

import zsadbench
from zsadbench import registry
from zsadbench.method import FitData, Method
from zsadbench.types import Batch

#: The smallest configuration of each built-in method; a new built-in must be added here.
_CLIP_PROMPTS = {"backbone": "zsad-tiny-14-336", "image_size": 56, "vv_last": 3, "deep_depth": 2, "epochs": 1}
_FEW_SHOT = {"backbone": "zsad-tiny-16-240", "image_size": 64, "memory_layers": (1, 2), "epochs_seg": 1,
             "epochs_cls": 1, "map_size": 64}
TINY: dict[str, dict] = {
    "winclip": {"backbone": "zsad-tiny-16-240", "image_size": 64},
    "visualad": {"backbone": "zsad-tiny-14-336", "image_size": 56, "layers": (2, 4), "epochs": 1, "batch_size": 2},
    "anomalyclip": {**_CLIP_PROMPTS, "layers": (4,), "batch_size": 2},
    "mpa": {**_CLIP_PROMPTS, "layer": 4, "batch_size": 2},
    # every token routed to all four experts: on random weights a top-k choice flips with the last bits of float
    # sums, which differ between CPUs (6e-3 apart in the maps between one and two threads with top-2 routing)
    "mpama": {**_CLIP_PROMPTS, "layer": 4, "stage2_epochs": 1, "stage2_lr": 1e-4, "experts": 4, "top_k": 4,
              "batch_size": 2},
    "promptad": _FEW_SHOT,
    "finegrainedad": {**_FEW_SHOT, "cluster_size": 128, "query_heads": 2},
    "patchcore": {"backbone": "resnet18", "image_size": 64, "layer_dim": 64, "feature_dim": 64},
    "padim": {"backbone": "resnet18", "image_size": 64, "n_features": 32},
    "spade": {"backbone": "resnet18", "image_size": 64},
    "vand": {"backbone": "zsad-tiny-14-336", "image_size": 56, "layers": (2, 4), "memory_layers": (1, 3), "epochs": 1,
             "batch_size": 2},
    "inctrl": {"backbone": "zsad-tiny-16-240", "image_size": 64, "layers": (1, 2, 3), "epochs": 1, "steps_per_epoch": 2,
               "batch_size": 4},
    "adaclip": {"backbone": "zsad-tiny-14-336", "image_size": 56, "layers": (2, 4), "prompting_depth": 2,
                "prompting_length": 2, "k_clusters": 2, "epochs": 1, "batch_size": 2},
    "faprompt": {**_CLIP_PROMPTS, "layer": 4, "batch_size": 2},
}

#: Names the fit data and queries carry: categories with PromptAD class states and shipped MFSC captions.
AUXILIARY_DATASET = "visa"
AUXILIARY_CATEGORIES = ("candle", "pcb1")
TEST_DATASET = "mvtec"
TEST_CATEGORY = "bottle"
SEED = 0
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "tests" / "reference_outputs"


def builtin_methods() -> list[str]:
    """Names of the registered built-in methods, sorted."""
    return sorted(e.name for e in registry.methods().entries() if e.source == "builtin")


def synthetic_images(count: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` textured flat-colour images ``[count,3,size,size]`` in ``[0,1]`` and their masks.

    Even-numbered images are normal; odd ones carry a bright or dark square (alternating) recorded in the bool
    mask ``[count,size,size]``. Drawn from a ``torch.Generator`` seeded with ``seed``: no files, same on every run.
    """
    generator = torch.Generator().manual_seed(seed)
    colour = 0.3 + 0.4 * torch.rand(count, 3, 1, 1, generator=generator)
    images = (colour + 0.08 * torch.rand(count, 3, size, size, generator=generator)).clamp(0, 1)
    masks = torch.zeros(count, size, size, dtype=torch.bool)
    side = max(2, size // 4)
    for i in range(1, count, 2):
        top, left = (int(v) for v in torch.randint(0, size - side, (2,), generator=generator))
        masks[i, top : top + side, left : left + side] = True
        images[i][:, masks[i]] = 0.95 if i % 4 == 1 else 0.05
    return images, masks


class InMemoryImages:
    """A fixed set of labelled images that hands out :class:`Batch` objects the way ``FitData.batches`` does."""

    def __init__(self, images: torch.Tensor, masks: torch.Tensor, categories: tuple[str, ...]) -> None:
        self.images = images
        self.masks = masks
        self.categories = categories

    def __len__(self) -> int:
        return len(self.images)

    def batches(self, batch_size: int = 8, shuffle: bool = False, seed: int = 0) -> Iterator[Batch]:
        """Batches with ``gt_label`` and ``gt_mask``; ``shuffle`` permutes with ``np.random.default_rng(seed)``."""
        order = np.random.default_rng(seed).permutation(len(self)) if shuffle else np.arange(len(self))
        for start in range(0, len(self), batch_size):
            index = torch.from_numpy(order[start : start + batch_size].copy())
            masks = self.masks[index]
            categories = tuple(self.categories[i] for i in index.tolist())
            yield Batch(
                image=self.images[index].contiguous(),
                category=categories[0] if len(set(categories)) == 1 else "object",
                gt_label=masks.flatten(1).any(1).long(),
                gt_mask=masks,
                categories=categories,
            )


def fit_data(kind: str, size: int, count: int = 4) -> FitData:
    """The fixed fit data of ``kind`` (``auxiliary``, ``support`` or ``none``) at ``size`` px; ``count`` auxiliary
    images."""
    if kind == "auxiliary":
        images, masks = synthetic_images(count, size, seed=1)
        categories = tuple(AUXILIARY_CATEGORIES[i // 2 % len(AUXILIARY_CATEGORIES)] for i in range(len(images)))
        data = InMemoryImages(images, masks, categories)
        return FitData("auxiliary", data.batches, len(data), AUXILIARY_DATASET, seed=SEED)
    if kind == "support":
        images, masks = synthetic_images(1, size, seed=2)
        data = InMemoryImages(images, masks, (TEST_CATEGORY,))
        return FitData("support", data.batches, len(data), TEST_DATASET, TEST_CATEGORY, shots=1, seed=SEED)
    return FitData("none")


def query_batch(size: int) -> Batch:
    """The fixed prediction batch: one normal image, one with a bright square, one with a dark square."""
    images, _ = synthetic_images(4, size, seed=3)
    return Batch(image=images[[0, 1, 3]].contiguous(), category=TEST_CATEGORY)


def fit_kinds(cls: type[Method]) -> dict[str, str]:
    """Setting → fit kind for each setting ``cls`` supports."""
    kinds = {}
    if "zero-shot" in cls.settings:
        kinds["zero_shot"] = "auxiliary" if cls.trains_on_auxiliary else "none"
    if "few-shot" in cls.settings:
        kinds["few_shot"] = "support"
    return kinds


@contextlib.contextmanager
def reproducible() -> Iterator[None]:
    """One torch thread; the previous thread count and the global torch, numpy and random states come back after."""
    threads = torch.get_num_threads()
    states = torch.get_rng_state(), np.random.get_state(), random.getstate()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.set_rng_state(states[0])
        np.random.set_state(states[1])
        random.setstate(states[2])


def seed_everything(seed: int = SEED) -> None:
    """Seed torch, numpy and random."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def run_method(name: str) -> dict[str, np.ndarray]:
    """Outputs of built-in ``name`` in each of its settings: ``<setting>_pred_score`` ``[B]`` and
    ``<setting>_anomaly_map`` ``[B,H,W]`` (float32), with ``version`` the method's version."""
    cls = registry.methods().get(name)
    config = cls.config_class().replace(**TINY[name])
    outputs: dict[str, np.ndarray] = {"version": np.array(cls.version)}
    with reproducible():
        for setting, kind in fit_kinds(cls).items():
            seed_everything()
            method = cls(config, pretrained="none", device="cpu").setup()
            if kind == "support" and cls.trains_on_auxiliary:  # trained on the auxiliary set first, as a run does;
                method.fit(fit_data("auxiliary", method.input_size, count=8))  # two normal images per category
            method.fit(fit_data(kind, method.input_size))
            with torch.inference_mode():
                prediction = method.predict(query_batch(method.input_size))
            outputs[f"{setting}_pred_score"] = prediction.pred_score.float().cpu().numpy()
            outputs[f"{setting}_anomaly_map"] = prediction.anomaly_map.float().cpu().numpy()
    return outputs


def main(argv: list[str] | None = None) -> int:
    """Write the ``.npz`` file of each selected built-in method; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder of the .npz files (default: %(default)s)")
    parser.add_argument("--method", action="append", default=None,
                        help="regenerate only this built-in method (repeatable; default: all)")
    args = parser.parse_args(argv)
    print(f"zsadbench from {Path(zsadbench.__file__).parent}")
    names = builtin_methods()
    missing = set(names) - set(TINY)
    if missing:
        parser.error(f"no tiny configuration for {', '.join(sorted(missing))}: add it to TINY")
    unknown = set(args.method or ()) - set(names)
    if unknown:
        parser.error(f"not built-in methods: {', '.join(sorted(unknown))} (known: {', '.join(names)})")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.method or names:
        outputs = run_method(name)
        np.savez_compressed(args.out / f"{name}.npz", **outputs)
        shapes = ", ".join(f"{k} {v.shape}" for k, v in outputs.items() if k != "version")
        print(f"{name} v{outputs['version']}: {shapes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
