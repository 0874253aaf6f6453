"""The harness around the model: ``zsadbench run`` with a method that costs nothing, against the loading floor.

It writes an MVTec-shaped tree of large PNGs (``--images`` test images of ``--size`` px over ``--categories``
MVTec AD categories, half of them with a defect and its mask; kept in ``--tree`` for later runs), then, in one
process:

1. **floor**: decoding and resizing every test image and mask alone, with the run's loader
   (:class:`~zsadbench.runner.loading.Prefetcher` over the categories, same worker count, batch size and sizes);
2. **run**: ``zsadbench run`` with ``NullMethod`` below: its map is the image's grey level pooled over the
   patch grid of a ViT-L/14 at 518 px (37 x 37), which the runner resizes to the evaluation size; the run's
   own per-stage times (each cell's provenance) say where the time went;
3. **smooth maps**: the same run with the map upsampled and Gaussian-smoothed (sigma 4 at the evaluation size)
   inside the method, as AnomalyCLIP, MPAMA and VisualAD make theirs, to measure what such maps cost on disk.
   Its artifact size is compared with format 1 (the same 16-bit levels in a zlib npz), built from the same
   arrays.

It prints per-image milliseconds for decode+resize (the floor), each stage of the run, artifact KB per image,
and the end-to-end images/s against the floor. A run on a small tree goes first, so one-time costs of a
process (imports, loading the compiled metric kernels) that a sweep pays once are not counted.

    python benchmarks/bench_harness.py                       # 240 PNGs of 900 px, evaluation size 518
    python benchmarks/bench_harness.py --images 60 --size 600 # a quicker look
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import os
import shutil
import tempfile
import time
from pathlib import Path

from zsadbench.machine import shorten_openmp_spin

shorten_openmp_spin()  # as the CLI does before anything starts OpenMP

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402

from zsadbench import registry  # noqa: E402
from zsadbench.cli.main import main  # noqa: E402
from zsadbench.config import MethodConfig  # noqa: E402
from zsadbench.maps import smooth  # noqa: E402
from zsadbench.method import Method  # noqa: E402
from zsadbench.runner.loading import ImageSet, Prefetcher  # noqa: E402
from zsadbench.runner.plan import default_workers  # noqa: E402
from zsadbench.store import ResultStore  # noqa: E402
from zsadbench.store.artifacts import stored_levels, unpack_masks  # noqa: E402
from zsadbench.types import Batch, Prediction  # noqa: E402

CATEGORIES = ("bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut", "pill", "screw",
              "tile", "toothbrush", "transistor", "wood", "zipper")
STAGES = ("load_wait", "predict", "check", "quantise", "metrics", "artifact")


@dataclasses.dataclass(frozen=True)
class NullConfig(MethodConfig):
    image_size: int = 518
    grid: int = 37
    sigma: float = 0.0


class NullMethod(Method):
    """A training-free method whose cost is negligible: the grey level pooled over a ``grid`` x ``grid`` patch
    grid (as a map), its maximum as the score. With ``sigma`` it returns the map upsampled to its input size
    and Gaussian-smoothed, like the methods' post-processing."""

    name = "null"
    version = "1"
    label = "Null"
    settings = frozenset({"zero-shot"})
    config_class = NullConfig

    def setup(self) -> "NullMethod":
        return self

    def predict(self, batch: Batch) -> Prediction:
        pooled = F.adaptive_avg_pool2d(batch.image, self.config.grid).mean(dim=1, keepdim=True)  # the grey level
        pooled = (pooled - pooled.mean(dim=(2, 3), keepdim=True)).abs()
        if self.config.sigma > 0:
            size = self.config.image_size
            pooled = smooth(F.interpolate(pooled, size=(size, size), mode="bilinear", align_corners=False)[:, 0],
                            self.config.sigma)[:, None]
        maps = pooled[:, 0]
        return Prediction(maps.flatten(1).amax(dim=1), maps)


def write_tree(root: Path, images: int, size: int, categories: int) -> Path:
    """``images`` test PNGs of ``size`` px over the first ``categories`` of :data:`CATEGORIES` (half anomalous,
    with masks) and one train image each: smooth shading plus noise, so the files are about as large as
    photographs."""
    stamp = root / f".tree-{images}-{size}-{categories}"
    if stamp.is_file():
        return root
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    per_category = images // categories
    for category in CATEGORIES[:categories]:
        folders = [("train", "good", 1), ("test", "good", per_category - per_category // 2),
                   ("test", "crack", per_category // 2)]
        for split, defect, count in folders:
            directory = root / category / split / defect
            directory.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                shade = 90 + 60 * np.sin(6 * xx + i) * np.cos(4 * yy)
                image = np.clip(shade[..., None] + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8)
                if defect != "good":
                    mask = np.zeros((size, size), np.uint8)
                    top, left, side = rng.integers(0, size // 2, 2).tolist() + [int(rng.integers(size // 20, size // 4))]
                    mask[top : top + side, left : left + side] = 255
                    image[mask > 0] = 230
                    masks = root / category / "ground_truth" / defect
                    masks.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(mask).save(masks / f"{i:03d}_mask.png")
                Image.fromarray(image).save(directory / f"{i:03d}.png")
    stamp.touch()
    return root


def floor(tree: Path, eval_size: int, input_size: int, workers: int, batch: int) -> tuple[float, int]:
    """Seconds to decode and resize every test image and mask with the run's loader, and the image count."""
    adapter = registry.datasets().get("mvtec")(tree)
    started, count = time.perf_counter(), 0
    sets = [ImageSet(adapter, adapter.select("test", c), input_size, eval_size, workers) for c in adapter.categories()]
    with Prefetcher(sets, batch) as loads:  # as the runner loads a fit group's cells
        for index in range(len(sets)):
            count += sum(len(loaded.samples) for loaded in loads.batches(index))
    return time.perf_counter() - started, count


def run(tree: Path, out: Path, args: argparse.Namespace, sigma: float) -> float:
    """Wall seconds of ``zsadbench run`` with :class:`NullMethod` into a fresh ``out``."""
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    status = main(["run", "--plugin", f"{__name__}:NullMethod", "--method", "null", "--datasets", "mvtec",
                   "--data-root", str(tree), "--out", str(out), "--eval-size", str(args.eval_size),
                   "--batch-size", str(args.batch_size), "--workers", str(args.workers), "--device", "cpu",
                   "--pretrained", "none", "--no-table", "--set", f"sigma={sigma}", "--set", f"grid={args.grid}",
                   "--set", f"image_size={args.input_size}", "--keep-maps", args.keep_maps])
    if status != 0:
        raise SystemExit(f"zsadbench run failed with status {status}")
    return time.perf_counter() - started


def stage_ms(out: Path) -> tuple[dict[str, float], float, float, int]:
    """Per-image milliseconds of each stage, artifact KB per image, format-1 KB per image, image count."""
    store = ResultStore(out)
    rows = [r for r in store.rows() if r.status == "ok"]
    images = sum(r.provenance.images for r in rows)
    totals = {stage: sum((r.provenance.stage_seconds or {}).get(stage, 0.0) for r in rows) for stage in STAGES}
    size = sum(r.provenance.artifact_bytes for r in rows)
    old = sum(format_1_bytes(store.load_artifact(r.cell_id)) for r in rows if r.provenance.keep_maps == "all")
    return {k: 1e3 * v / images for k, v in totals.items()}, size / images / 1024, old / images / 1024, images


def format_1_bytes(arrays: dict[str, np.ndarray]) -> int:
    """The size the same cell took in format 1: plain uint16 levels and packed masks, in a zlib npz."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, image_keys=arrays["image_keys"], pred_score=arrays["pred_score"],
                        gt_label=arrays["gt_label"], anomaly_map=stored_levels(arrays), map_min=arrays["map_min"],
                        map_max=arrays["map_max"], gt_mask=np.packbits(unpack_masks(arrays), axis=-1),
                        mask_width=arrays["mask_width"], record=arrays["record"])
    return buffer.getbuffer().nbytes


def main_bench() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=240, help="test images in the tree (default: 240)")
    parser.add_argument("--size", type=int, default=900, help="side of the PNGs in px (default: 900)")
    parser.add_argument("--categories", type=int, default=8, choices=range(1, len(CATEGORIES) + 1),
                        metavar="N", help="categories, one cell each (default: 8)")
    parser.add_argument("--eval-size", type=int, default=518, help="evaluation size (default: 518)")
    parser.add_argument("--input-size", type=int, default=518, help="the null method's input size (default: 518)")
    parser.add_argument("--grid", type=int, default=37, help="patch grid of the null method's map (default: 37)")
    parser.add_argument("--batch-size", type=int, default=8, help="inference batch size (default: 8)")
    parser.add_argument("--keep-maps", choices=("all", "gallery", "none"), default="all",
                        help="the runs' --keep-maps (default: all)")
    parser.add_argument("--workers", type=int, default=default_workers(),
                        help="loader threads (default: the run's default, %(default)s here)")
    parser.add_argument("--tree", type=Path, default=Path(tempfile.gettempdir()) / "zsadbench-bench-harness",
                        help="where the PNG tree is written and kept (default: %(default)s)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    tree = write_tree(args.tree / "mvtec", args.images, args.size, args.categories)
    scratch = Path(tempfile.mkdtemp(prefix="zsadbench-bench-harness-out-"))
    try:
        run(write_tree(args.tree / "warm-up" / "mvtec", 8, 64, 2), scratch / "warm-up", args, sigma=4.0)
        floor(tree, args.eval_size, args.input_size, args.workers, args.batch_size)  # warms the page cache
        floor_s, count = floor(tree, args.eval_size, args.input_size, args.workers, args.batch_size)
        run_s = run(tree, scratch / "null", args, sigma=0.0)
        stages, kb, old_kb, images = stage_ms(scratch / "null")
        smooth_s = run(tree, scratch / "smooth", args, sigma=4.0)
        smooth_stages, smooth_kb, smooth_old_kb, _ = stage_ms(scratch / "smooth")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    assert images == count, (images, count)
    print(f"\n{count} PNGs of {args.size} px in {args.categories} categories, input {args.input_size} px, evaluation "
          f"size {args.eval_size}, batch {args.batch_size}, {args.workers} loader threads, {torch.get_num_threads()} "
          f"torch threads, {os.cpu_count()} CPUs, --keep-maps {args.keep_maps}\n")
    print("| stage | ms per image | smooth maps: ms per image |")
    print("|---|---|---|")
    print(f"| decode+resize alone (the floor, {args.workers} threads) | {1e3 * floor_s / count:.1f} | |")
    for stage in STAGES:
        note = " (storing thread)" if stage in ("metrics", "artifact") else ""
        print(f"| run: {stage}{note} | {stages[stage]:.2f} | {smooth_stages[stage]:.2f} |")
    print(f"| run: end to end | {1e3 * run_s / count:.1f} | {1e3 * smooth_s / count:.1f} |")
    print()
    print("| artifact | KB per image, pooled map | KB per image, smooth map (sigma 4) |")
    print("|---|---|---|")
    print(f"| format 2 (this version) | {kb:.1f} | {smooth_kb:.1f} |")
    if args.keep_maps == "all":
        print(f"| format 1 (zlib npz of the same levels) | {old_kb:.1f} | {smooth_old_kb:.1f} |")
    print()
    floor_rate, run_rate = count / floor_s, count / run_s
    print(f"floor {floor_rate:.1f} images/s, zsadbench run {run_rate:.1f} images/s: "
          f"ratio {run_rate / floor_rate:.2f} (target >= 0.8)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main_bench())
