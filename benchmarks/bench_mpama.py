"""Training and inference speed of MPAMA (and so of MPA, its stage 1), side by side in one run.

Training: wall time of every epoch of stage 1 and stage 2, once with the image tower run on every batch
(``FitData.features`` None) and once through an in-memory :class:`~zsadbench.backbones.FeatureCache`
(the tower runs in the first epoch only). Inference: images/s of ``predict`` at batch 1 and batched.
Random weights (speed does not depend on them) and random images with square defects.

    python benchmarks/bench_mpama.py                                 # tiny CLIP at 112 px: a CPU smoke run
    python benchmarks/bench_mpama.py --size demo                     # the random-weight demo: ViT-B/16 at 160 px
    python benchmarks/bench_mpama.py --size full --device cuda       # ViT-L/14@336 at 518 px, the paper's configuration
    python benchmarks/bench_mpama.py --size full --device cuda --precision bf16

Prints Markdown tables; ``--json PATH`` also writes the numbers.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from typing import Any

import torch

from zsadbench.backbones import FeatureCache
from zsadbench.method import FitData
from zsadbench.methods.mpama.config import MPAMAConfig
from zsadbench.methods.mpama.method import MPAMA
from zsadbench.types import Batch

SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(backbone="zsad-tiny-14-336", image_size=112, layer=4, vv_last=3, deep_depth=2),
    "demo": {k: v for k, v in MPAMA.random_init_overrides.items() if k not in ("epochs", "stage2_epochs")},
    "full": {},  # the config defaults: ViT-L-14-336-quickgelu, 518 px, layer 24, V-V in the last 19 blocks
}


class EpochClock:
    """Stands in for the run's checkpoints: records when each epoch ended instead of saving it."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def latest(self) -> None:
        return None

    def save(self, epoch: int, state: dict) -> None:
        _sync()
        self.ends.append(time.perf_counter())


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def toy_batches(count: int, size: int):
    """``FitData.batches``: fixed random images; odd ones carry a bright square that the mask marks."""
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(count, 3, size, size, generator=gen)
    masks = torch.zeros(count, size, size, dtype=torch.bool)
    masks[1::2, size // 4 : size // 2, size // 4 : size // 2] = True
    images[masks.unsqueeze(1).expand(-1, 3, -1, -1)] = 1.0
    labels = torch.arange(count) % 2

    def batches(batch_size: int = 8, shuffle: bool = False, seed: int = 0):
        order = torch.randperm(count, generator=torch.Generator().manual_seed(seed)) if shuffle else torch.arange(count)
        for start in range(0, count, batch_size):
            idx = order[start : start + batch_size]
            yield Batch(image=images[idx], category="toy", gt_label=labels[idx], gt_mask=masks[idx])

    return batches, images


def epoch_times(cfg: MPAMAConfig, args: argparse.Namespace, cached: bool) -> tuple[list[float], MPAMA]:
    """Seconds per epoch (stage 1 then stage 2) of one fit, with or without the feature cache."""
    torch.manual_seed(0)
    method = MPAMA(cfg, pretrained="none", device=args.device, precision=args.precision).setup()
    batches, _ = toy_batches(args.images, cfg.image_size)
    clock = EpochClock()
    features = FeatureCache() if cached else None
    _sync()
    start = time.perf_counter()
    method.fit(FitData("auxiliary", batches, args.images, "mvtec", seed=0, checkpoints=clock, features=features))
    ends = [start] + clock.ends
    return [b - a for a, b in zip(ends, ends[1:])], method


def images_per_second(method: MPAMA, images: torch.Tensor, batch: int, repeats: int) -> float:
    with torch.inference_mode():
        method.predict(Batch(image=images[:batch], category="toy"))  # warm-up
        _sync()
        start = time.perf_counter()
        done = 0
        for _ in range(repeats):
            for i in range(0, len(images), batch):
                method.predict(Batch(image=images[i : i + batch], category="toy"))
                done += len(images[i : i + batch])
        _sync()
    return done / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="tiny", choices=sorted(SIZES),
                        help="tiny CLIP at 112 px (default), the demo ViT-B/16 at 160 px, or the paper's ViT-L/14@336 at 518 px")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--images", type=int, default=16, help="training images (default 16)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each stage (default 3)")
    parser.add_argument("--batch", type=int, default=8, help="batched inference size (default 8)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", default="")
    args = parser.parse_args(argv)
    cfg = MPAMAConfig(**SIZES[args.size], epochs=args.epochs, stage2_epochs=args.epochs, batch_size=8)
    print(f"MPAMA {cfg.backbone} at {cfg.image_size} px, {args.images} training images, batch 8, "
          f"{args.precision} on {args.device} ({platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads)\n")
    epoch_times(cfg.replace(epochs=1, stage2_epochs=1), args, cached=False)  # warm-up, not reported
    direct, _ = epoch_times(cfg, args, cached=False)
    cached, method = epoch_times(cfg, args, cached=True)
    print("| stage | epoch | tower every epoch (s) | feature cache (s) |\n|---|---|---|---|")
    rows = []
    for i, (a, b) in enumerate(zip(direct, cached)):
        stage, epoch = (1, i + 1) if i < cfg.epochs else (2, i + 1 - cfg.epochs)
        rows.append({"stage": stage, "epoch": epoch, "direct_s": a, "cached_s": b})
        print(f"| {stage} | {epoch} | {a:.2f} | {b:.2f} |")
    _, images = toy_batches(max(args.batch, 8), cfg.image_size)
    one = images_per_second(method, images, 1, args.repeats)
    many = images_per_second(method, images, args.batch, args.repeats)
    print(f"\n| inference | images/s |\n|---|---|\n| batch 1 | {one:.2f} |\n| batch {args.batch} | {many:.2f} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"config": cfg.to_dict(), "device": args.device, "precision": args.precision,
                       "epochs": rows, "inference": {"batch_1": one, f"batch_{args.batch}": many}}, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
