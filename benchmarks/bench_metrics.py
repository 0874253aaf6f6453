"""Time zsadbench's pixel metrics against the references that install from PyPI, side by side.

Synthetic, deterministic float32 score maps and boolean masks are written once per size to a work folder;
every method then runs in its own process (so a reference that runs out of memory cannot take the others
down, and peak memory is measured per method) under a cap on its data memory. For each method the table
shows its values' differences from zsadbench, its wall time, its peak memory beyond the inputs and its
speed ratio (wall time) to the zsadbench call doing the same work. CPU time (all threads of the
process) is shown beside wall time because a shared machine inflates wall times. References that fail (out of memory, import
error, timeout) are reported as such.

    python benchmarks/bench_metrics.py                      # all three sizes
    python benchmarks/bench_metrics.py --sizes small,medium --mem-limit-gb 8

The references: scikit-learn (``roc_auc_score`` + ``average_precision_score``), torchmetrics (exact
``BinaryAUROC`` + ``BinaryAveragePrecision``), anomalib's AUPRO, ADEval's binned ``EvalAccumulator`` (its
AUPR is a trapezoid, a different quantity from AP), a plain NumPy re-statement of the MVTec AD reference
AUPRO (argsort of every pixel), and ``numpy-exact``, a memory-frugal exact float64 reference written here
(sorted negatives plus ``searchsorted``) that checks exactness at every size.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZES = {"small": (50, 256), "medium": (500, 256), "large": (1725, 518)}
LIMIT = 0.3
RANK = ("pixel_auroc", "pixel_ap")
ALL = ("pixel_auroc", "pixel_ap", "pixel_f1_max", "aupro")


# --- data -------------------------------------------------------------------------------------------
def make_image(i: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One deterministic score map and mask: smooth noise, plus raised defects on 2 images in 3."""
    from scipy import ndimage

    rng = np.random.default_rng([seed, i])
    mask = np.zeros((size, size), bool)
    if i % 3:
        yy, xx = np.ogrid[:size, :size]
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.uniform(0, size, 2)
            ry, rx = rng.uniform(0.01, 0.12, 2) * size
            mask |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        if rng.random() < 0.3:  # a thin diagonal scratch: one 8-connected region
            n = int(rng.integers(size // 8, size // 3))
            y0, x0 = rng.integers(0, size - n, 2)
            mask[y0 + np.arange(n), x0 + np.arange(n)] = True
    coarse = rng.standard_normal((37, 37)).astype(np.float32)
    smooth = ndimage.zoom(coarse, size / 37, order=1)[:size, :size]
    score = 0.3 * smooth + 0.05 * rng.standard_normal((size, size), dtype=np.float32)
    score += mask * np.float32(rng.uniform(0.2, 1.2))
    return score.astype(np.float32), mask


def generate(folder: Path, n: int, size: int, seed: int = 0) -> None:
    """Write ``maps.npy`` and ``masks.npy`` image by image (never all in memory)."""
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "done").exists():
        return
    maps = np.lib.format.open_memmap(folder / "maps.npy", "w+", np.float32, (n, size, size))
    masks = np.lib.format.open_memmap(folder / "masks.npy", "w+", np.bool_, (n, size, size))
    for i in range(n):
        maps[i], masks[i] = make_image(i, size, seed)
    maps.flush()
    masks.flush()
    del maps, masks
    (folder / "done").write_text("ok")


# --- references ----------------------------------------------------------------------------------
def positive_weights(masks: np.ndarray) -> np.ndarray:
    """1 / (regions x region size) for every defect pixel, in raster order (8-connected regions)."""
    from scipy import ndimage

    parts, total = [], 0
    for m in masks:
        if m.any():
            lab, k = ndimage.label(m, np.ones((3, 3), int))
            sizes = np.bincount(lab.ravel())
            parts.append(1.0 / sizes[lab[m]])
            total += k
    return np.concatenate(parts) / total


def mvtec_reference(maps: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    """The MVTec AD evaluation code's AUPRO, re-stated: argsort every pixel, cumulative sums, trapezoid."""
    fp_step = (~masks).ravel().astype(np.uint32)
    pro_step = np.zeros(masks.size)
    pro_step[masks.ravel()] = positive_weights(masks)
    n_ok = int(fp_step.sum())
    order = np.argsort(maps.ravel(), kind="stable")[::-1]
    scores = maps.ravel()[order]
    fprs = np.cumsum(fp_step[order], dtype=np.float64) / n_ok
    pros = np.cumsum(pro_step[order])
    del order
    last = np.append(np.diff(scores) != 0, True)  # one point per distinct score
    fprs = np.concatenate(([0.0], np.clip(fprs[last], 0, 1)))
    pros = np.concatenate(([0.0], np.clip(pros[last], 0, 1)))
    return {"aupro": trapezoid_to(fprs, pros, LIMIT) / LIMIT}


def trapezoid_to(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
    """Trapezoid area under ``y(x)`` (x non-decreasing) from ``x[0]`` to ``x_max``, interpolated there."""
    inside = int(np.searchsorted(x, x_max, side="right"))
    area = float(np.sum(np.diff(x[:inside]) * (y[1:inside] + y[:inside - 1]) / 2))
    if inside < x.size:
        x0, x1, y0, y1 = x[inside - 1], x[inside], y[inside - 1], y[inside]
        y_lim = y0 + (y1 - y0) * (x_max - x0) / (x1 - x0)
        area += (x_max - x0) * (y0 + y_lim) / 2
    return area


def numpy_exact(maps: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    """Exact float64 AUROC, AP, F1-max and AUPRO from sorted negatives and ``searchsorted``."""
    neg = maps[~masks]
    neg.sort()
    pos_w = positive_weights(masks)
    pos = maps[masks]
    order = np.argsort(pos, kind="stable")[::-1]
    pos, pos_w = pos[order], pos_w[order]
    n_neg, n_pos = neg.size, pos.size
    below = np.searchsorted(neg, pos, "left").astype(np.int64)
    ties = np.searchsorted(neg, pos, "right") - below
    auroc = float((2 * below + ties).sum()) / (2.0 * n_pos * n_neg)
    last = np.append(pos[1:] != pos[:-1], True)  # end of each run of equal positive scores
    tp = np.arange(1, n_pos + 1)[last]
    fp = n_neg - np.searchsorted(neg, pos[last], "left")
    gained = np.diff(np.concatenate(([0], tp)))
    ap = float(np.sum(gained * (tp / (tp + fp)))) / n_pos
    f1 = float(np.max(2 * tp / (tp + fp + n_pos)))
    # AUPRO: every distinct score down to the first one whose FPR passes the limit
    cut = neg[max(n_neg - int(np.floor(LIMIT * n_neg)) - 1, 0)]
    cand = np.unique(np.concatenate((neg[neg >= cut], pos[pos >= cut])))[::-1]
    fprs = (n_neg - np.searchsorted(neg, cand, "left")) / n_neg
    cum_w = np.concatenate(([0.0], np.cumsum(pos_w)))
    pros = cum_w[np.searchsorted(-pos, -cand, "right")]  # pos is descending
    x = np.concatenate(([0.0], fprs))
    y = np.concatenate(([0.0], np.minimum(pros, 1.0)))
    return {"pixel_auroc": auroc, "pixel_ap": ap, "pixel_f1_max": f1, "aupro": trapezoid_to(x, y, LIMIT) / LIMIT}


def sklearn_rank(maps: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    y, s = masks.ravel(), maps.ravel()
    return {"pixel_auroc": roc_auc_score(y, s), "pixel_ap": average_precision_score(y, s)}


def torchmetrics_rank(maps: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    import torch
    from torchmetrics.classification import BinaryAUROC, BinaryAveragePrecision

    s, y = torch.from_numpy(maps).ravel(), torch.from_numpy(masks).ravel()
    return {"pixel_auroc": float(BinaryAUROC()(s, y)), "pixel_ap": float(BinaryAveragePrecision()(s, y))}


def anomalib_aupro(maps: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    import torch
    from anomalib.metrics.aupro import _AUPRO

    metric = _AUPRO(fpr_limit=LIMIT)
    metric.update(torch.from_numpy(maps), torch.from_numpy(masks).to(torch.uint8))
    return {"aupro": float(metric.compute())}


def adeval_all(maps: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    if not hasattr(np, "trapz"):  # ADEval calls np.trapz, which NumPy 2.4 removed
        np.trapz = np.trapezoid
    import adeval

    acc = adeval.EvalAccumulator(float(maps.min()), float(maps.max()), float(maps.min()), float(maps.max()))
    for m, g in zip(maps, masks):
        acc.add_anomap(m, g.view(np.uint8))
    out = acc.summary()
    return {"pixel_auroc": out["p_auroc"], "pixel_aupr_trapezoid": out["p_aupr"], "aupro": float(out["p_aupro"])}


def zsad(names: tuple[str, ...]):
    def run(maps: np.ndarray, masks: np.ndarray) -> dict[str, float]:
        from zsadbench.metrics import compute_metrics

        return compute_metrics(None, None, maps, masks, names=names)
    return run


METHODS = {  # name: (function, the zsadbench row doing the same work)
    "zsadbench AUROC+AP": (zsad(RANK), None),
    "zsadbench AUPRO": (zsad(("aupro",)), None),
    "zsadbench AUROC+AP+F1+AUPRO": (zsad(ALL), None),
    "zsadbench AUPRO-AC": (zsad(("aupro_anomalyclip",)), None),
    "numpy-exact (float64)": (numpy_exact, "zsadbench AUROC+AP+F1+AUPRO"),
    "scikit-learn AUROC+AP": (sklearn_rank, "zsadbench AUROC+AP"),
    "torchmetrics AUROC+AP": (torchmetrics_rank, "zsadbench AUROC+AP"),
    "anomalib AUPRO": (anomalib_aupro, "zsadbench AUPRO"),
    "ADEval (binned)": (adeval_all, "zsadbench AUROC+AP+F1+AUPRO"),
    "MVTec-ref AUPRO (NumPy)": (mvtec_reference, "zsadbench AUPRO"),
}


# --- one method in a child process -------------------------------------------------------------------
def _rss(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def child(method: str, folder: Path) -> dict:
    func = METHODS[method][0]
    if method.startswith("zsadbench"):  # compile (or load the cache) outside the timing
        warm = np.lib.format.open_memmap(folder / "maps.npy", "r")[:2].copy()
        func(warm, np.lib.format.open_memmap(folder / "masks.npy", "r")[:2].copy())
    maps = np.load(folder / "maps.npy")
    masks = np.load(folder / "masks.npy")
    base = _rss("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # restart the peak-RSS counter
    t0, c0 = time.perf_counter(), time.process_time()
    values = func(maps, masks)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"values": {k: float(v) for k, v in values.items()}, "wall": wall, "cpu": cpu,
            "peak_extra": max(_rss("VmHWM") - base, 0)}


def run_method(method: str, folder: Path, limit_gb: float, timeout: int) -> dict:
    def cap() -> None:
        cap_bytes = int(limit_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_DATA, (cap_bytes, cap_bytes))
        os.nice(5)

    cmd = [sys.executable, __file__, "--child", method, "--data", str(folder)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, preexec_fn=cap)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    err = proc.stderr.strip().splitlines()
    last = err[-1] if err else f"exit {proc.returncode}"
    oom = ("MemoryError", "Unable to allocate", "out of memory", "can't allocate memory")
    if any(text in proc.stderr for text in oom) or proc.returncode in (-9, 137):
        return {"error": f"out of memory (cap {limit_gb:g} GiB)"}
    if "ModuleNotFoundError" in proc.stderr or "ImportError" in proc.stderr:
        return {"error": f"import error: {last[:80]}"}
    return {"error": last[:100]}


# --- report --------------------------------------------------------------------------------------------
def table(size: str, results: dict[str, dict]) -> str:
    n, px = SIZES[size]
    zs = results.get("zsadbench AUROC+AP+F1+AUPRO", {}).get("values", {})
    zs = {**zs, **results.get("zsadbench AUPRO-AC", {}).get("values", {})}
    lines = [f"### {size}: {n} x {px}^2 = {n * px * px / 1e6:.0f} M pixels", "",
             "| method | values | max abs diff vs zsadbench | wall s | CPU s | peak extra GiB | zsadbench speed-up |",
             "|---|---|---|---|---|---|---|"]
    for method, r in results.items():
        if "error" in r:
            lines.append(f"| {method} | {r['error']} | | | | | |")
            continue
        vals = ", ".join(f"{k}={v:.6f}" for k, v in r["values"].items())
        diffs = [abs(v - zs[k]) for k, v in r["values"].items() if k in zs]
        diff = f"{max(diffs):.1e}" if diffs and not method.startswith("zsadbench") else ""
        ref = METHODS[method][1]
        ratio = ""
        if ref and "wall" in results.get(ref, {}):
            ratio = f"{r['wall'] / results[ref]['wall']:.1f}x"
        lines.append(f"| {method} | {vals} | {diff} | {r['wall']:.2f} | {r['cpu']:.2f} | "
                     f"{r['peak_extra'] / 2**30:.2f} | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="small,medium,large")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of the method names")
    p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "zsadbench_bench_metrics"))
    p.add_argument("--mem-limit-gb", type=float, default=10.0, help="data-memory cap per method (inputs included)")
    p.add_argument("--timeout", type=int, default=1800, help="seconds per method and size")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, Path(args.data))))
        return 0
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for size in args.sizes.split(","):
        n, px = SIZES[size]
        folder = Path(args.workdir) / f"{size}_{n}x{px}"
        t0 = time.perf_counter()
        generate(folder, n, px)
        print(f"[{size}] data ready in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        results = {}
        for method in methods:
            results[method] = run_method(method, folder, args.mem_limit_gb, args.timeout)
            print(f"[{size}] {method}: {results[method]}", file=sys.stderr)
        print(table(size, results) + "\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
