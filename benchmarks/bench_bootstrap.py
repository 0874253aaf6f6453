"""Bootstrap speed on one cell of typical size: the per-image histogram scan against materialised resamples.

The cell is made the way the methods make maps: a 37 x 37 grid of patch scores upsampled bilinearly to the
evaluation size and Gaussian-smoothed (sigma 4), with round defects in half of the images that raise the
map there; it is stored as a run stores it (16-bit levels, artifact, row) in a temporary results folder.
Timed: reading and decoding the artifact, building the histograms, the resamples of the image and of the
pixel ranking metrics (AUROC, AP, F1-max), a few materialised AUPRO resamples (each a full metric pass,
extrapolated to all of them), ``compute_metrics`` on one materialised resample (what the scan replaces), and
the same request answered again from the cache. Every scanned replicate checked is equal to
``compute_metrics`` on its materialised resample.

    python benchmarks/bench_bootstrap.py
    python benchmarks/bench_bootstrap.py --images 120 --size 518 --resamples 1000
"""
from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy import ndimage

from zsadbench.metrics import UndefinedMetricWarning, compute_metrics
from zsadbench.runner.scoring import score_arrays
from zsadbench.stats.bootstrap import CellData, bootstrap_cell
from zsadbench.stats.histograms import pixel_table
from zsadbench.stats.resample import BootstrapSettings, cell_weights
from zsadbench.stats.results import Bootstrapper
from zsadbench.store import Cell, Provenance, ResultStore, StoredCell
from zsadbench.store.artifacts import encode, quantize

PIXEL = ("pixel_auroc", "pixel_ap", "pixel_f1_max")


def make_cell(count: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    maps = np.empty((count, size, size), np.float32)
    masks = np.zeros((count, size, size), bool)
    yy, xx = np.ogrid[:size, :size]
    for i in range(count):
        grid = rng.random((37, 37)).astype(np.float32)
        maps[i] = ndimage.gaussian_filter(ndimage.zoom(grid, size / 37, order=1)[:size, :size], 4)
        if i % 2:
            cy, cx = rng.integers(size // 8, size - size // 8, 2)
            radius = int(rng.integers(size // 50 + 2, size // 8))
            masks[i] = (yy - cy) ** 2 + (xx - cx) ** 2 < radius**2
            maps[i][masks[i]] += np.float32(0.1)
    labels = masks.reshape(count, -1).any(axis=1).astype(np.int64)
    scores = maps.reshape(count, -1).max(axis=1) + rng.normal(0, 0.02, count).astype(np.float32)
    return maps, masks, labels, scores.astype(np.float32)


def store_cell(out: Path, maps, masks, labels, scores) -> StoredCell:
    levels, low, high = quantize(maps)
    metrics = score_arrays(("image", "pixel"), scores, labels, levels, low, high, masks)
    cell = Cell(method="bench", config_hash="0" * 16, dataset="bench", category="c", shots=0, seed=0, aux="",
                eval_size=maps.shape[-1], pretrained="none")
    row = StoredCell.of(cell, method_label="Bench", config_json="{}", dataset_label="Bench", domain="industrial",
                        random_init=True, status="ok", metrics=metrics,
                        provenance=Provenance(keep_maps="all", metric_levels=["image", "pixel"]))
    keys = [f"c/{i:04d}.png" for i in range(len(maps))]
    encoded = encode(image_keys=keys, pred_score=scores, gt_label=labels, levels=levels, map_min=low, map_max=high,
                     gt_mask=masks, record=row.record())
    store = ResultStore(out)
    store.save_artifact(cell.cell_id, encoded)
    row = replace(row, provenance=replace(row.provenance, artifact_checksum=str(encoded["checksum"])))
    store.put(row)
    return row


def timed(what: str, call):
    started = time.perf_counter()
    value = call()
    print(f"| {what} | {time.perf_counter() - started:.2f} s |")
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=120, help="test images of the cell (default: 120)")
    parser.add_argument("--size", type=int, default=518, help="evaluation size (default: 518)")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default: 1000)")
    parser.add_argument("--aupro", type=int, default=10, help="materialised AUPRO resamples timed (default: 10)")
    args = parser.parse_args()
    maps, masks, labels, scores = make_cell(args.images, args.size)
    warmup = CellData(np.arange(4).astype(str), scores[:4], labels[:4], *quantize(maps[:4, :16, :16]), masks[:4, :16, :16])
    bootstrap_cell(warmup, ("image_auroc", *PIXEL, "aupro"), np.ones((2, 4), np.int32))  # compiles or loads kernels
    with tempfile.TemporaryDirectory() as folder:
        row = store_cell(Path(folder), maps, masks, labels, scores)
        store = ResultStore(folder)
        print(f"\none cell: {args.images} images at {args.size}^2 ({args.images * args.size ** 2 / 1e6:.1f} M pixels), "
              f"{args.resamples} resamples\n")
        print("| step | time |\n|---|---|")
        data = timed("read and decode the artifact", lambda: CellData.from_artifact(store.load_artifact(row.cell_id)))
        weights = cell_weights(data.image_keys, data.labels, BootstrapSettings(args.resamples, 0))
        timed("dequantise the maps", lambda: data.maps)
        table = timed("per-image histograms (pixel table)", lambda: pixel_table(data.levels, data.low, data.high,
                                                                              data.masks))
        timed(f"image AUROC/AP/F1-max, {args.resamples} resamples (with the point)",
              lambda: bootstrap_cell(data, ("image_auroc", "image_ap", "image_f1_max"), weights))
        values = timed(f"pixel AUROC/AP/F1-max scan, {args.resamples} resamples", lambda: table.ranking(weights))
        index = np.repeat(np.arange(args.images), weights[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            started = time.perf_counter()
            want = compute_metrics(None, None, data.maps[index], data.masks[index], names=PIXEL)
            one = time.perf_counter() - started
        print(f"| compute_metrics on one materialised resample (pixel AUROC/AP/F1-max) | {one:.2f} s "
              f"(x {args.resamples} = {one * args.resamples:.0f} s) |")
        assert [values[k][0] for k in ("auroc", "ap", "f1_max")] == list(want.values()), "scan and metrics differ"
        started = time.perf_counter()
        bootstrap_cell(data, ("aupro",), weights[: args.aupro])
        per = (time.perf_counter() - started) / args.aupro
        print(f"| AUPRO, materialised, per resample | {per:.2f} s (x {args.resamples} = {per * args.resamples:.0f} s) |")
        cells = store.rows()
        first = Bootstrapper(folder, BootstrapSettings(args.resamples, 0))
        timed(f"`intervals` path: image + pixel AUROC/AP/F1-max of the cell, {args.resamples} resamples",
              lambda: first.run(cells, ("image_auroc", "image_ap", "image_f1_max", *PIXEL)))
        again = Bootstrapper(folder, BootstrapSettings(args.resamples, 0))
        timed("the same request again (from OUT/stats)", lambda: again.run(cells, ("image_auroc", *PIXEL)))
        print(f"\nhistogram table: {table.entries:,} entries in {table.group_bucket.size:,} steps "
              f"({table.width} buckets)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
