"""Throughput of the zsadbench backbones at their methods' input sizes.

For each backbone: images/s of ``forward_intermediates`` (the taps the methods use) in fp32 and bf16
autocast, at batch 1 and at the best batch size found by doubling, and the same taps read back through
the feature cache (memory and disk levels). Random weights: the speed does not depend on them.

    python benchmarks/bench_backbones.py --device cuda
    python benchmarks/bench_backbones.py --device cpu --tiny --max-batch 4      # a quick smoke run

Prints a Markdown table and writes JSON (``--json``, default ``bench_backbones.json``).
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from zsadbench.backbones import create_clip
from zsadbench.backbones.dinov2 import create_dinov2
from zsadbench.backbones.feature_cache import FeatureCache, cached_taps
from zsadbench.backbones.runtime import as_channels_last, autocast, prepare_for_inference

# (label, factory, name, input size, taps, vv_last, method)
FULL = [
    ("ViT-L-14-336@518", "clip", "ViT-L-14-336-quickgelu", 518, [6, 12, 18, 24], 19, "AnomalyCLIP/MPAMA"),
    ("ViT-L-14-336@518 plain", "clip", "ViT-L-14-336-quickgelu", 518, [6, 12, 18, 24], 0, "VisualAD"),
    ("ViT-B-16-plus-240@240", "clip", "ViT-B-16-plus-240", 240, [3, 8, 12], 12, "PromptAD/WinCLIP"),
    ("ViT-B-16@224", "clip", "ViT-B-16", 224, [12], 0, "baselines"),
    ("DINOv2-L/14-reg4@518", "dinov2", "vit_large_patch14_reg4_dinov2", 518, [6, 12, 18, 24], 0, "VisualAD-DINOv2"),
]
TINY = [
    ("tiny-14-336@518", "clip", "zsad-tiny-14-336", 518, [2, 4], 2, "tests"),
    ("tiny-16-240@240", "clip", "zsad-tiny-16-240", 240, [1, 3], 3, "tests"),
    ("tiny-dinov2@518", "dinov2", "zsad-tiny-dinov2", 518, [1, 3], 0, "tests"),
]


@dataclass
class Row:
    backbone: str
    method: str
    precision: str
    batch: int
    images_per_s: float
    ms_per_image: float
    mode: str


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _time(fn, device: str, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after one warm-up."""
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def _build(factory: str, name: str, size: int, device: str, compile_blocks: bool):
    torch.manual_seed(0)
    create = create_clip if factory == "clip" else create_dinov2
    return prepare_for_inference(create(name, image_size=size, device=device), compile_blocks=compile_blocks)


def _bench_backbone(spec, args) -> list[Row]:
    label, factory, name, size, taps, vv_last, method = spec
    backbone = _build(factory, name, size, args.device, args.compile)
    project = factory == "clip"
    rows: list[Row] = []

    def run(images, precision):
        with torch.no_grad(), autocast(args.device, precision):
            return backbone.forward_intermediates(images, taps, vv_last=vv_last, norm=True, project=project)

    precisions = ["fp32", "bf16"]
    for precision in precisions:
        best: Row | None = None
        batch = 1
        while batch <= args.max_batch:
            images = as_channels_last(torch.rand(batch, 3, size, size, device=args.device))
            try:
                seconds = _time(lambda: run(images, precision), args.device, args.repeats)
            except torch.OutOfMemoryError:
                torch.cuda.empty_cache()
                break
            row = Row(label, method, precision, batch, batch / seconds, 1000 * seconds / batch, "direct")
            if batch == 1:
                rows.append(row)
            if best is None or row.images_per_s > best.images_per_s:
                best = row
            elif row.images_per_s < 0.9 * best.images_per_s:
                break
            batch *= 2
        if best is not None and best.batch != 1:
            rows.append(best)

    batch = max(r.batch for r in rows if r.precision == "fp32")
    images = torch.rand(batch, 3, size, size, device=args.device)
    with tempfile.TemporaryDirectory() as root:
        cache = FeatureCache(root)

        def through_cache():
            with torch.no_grad():
                return cached_taps(cache, backbone, images, taps, vv_last=vv_last, norm=True, project=project)

        through_cache()  # fills the cache
        seconds = _time(through_cache, args.device, args.repeats)
        rows.append(Row(label, method, "fp32", batch, batch / seconds, 1000 * seconds / batch, "cache (memory)"))
        cache.clear_memory()
        cold = FeatureCache(root, memory_bytes=0)
        seconds = _time(lambda: cached_taps(cold, backbone, images, taps, vv_last=vv_last, norm=True,
                                            project=project), args.device, args.repeats)
        rows.append(Row(label, method, "fp32", batch, batch / seconds, 1000 * seconds / batch, "cache (disk)"))
    del backbone
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
    return rows


def _table(rows: list[Row]) -> str:
    lines = ["| backbone | method | precision | mode | batch | images/s | ms/image |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.backbone} | {r.method} | {r.precision} | {r.mode} | {r.batch} | "
                     f"{r.images_per_s:.1f} | {r.ms_per_image:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="the tiny test configurations instead of the real ones")
    parser.add_argument("--only", nargs="*", default=None, help="labels to run (default: all)")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="torch.compile each transformer block")
    parser.add_argument("--json", type=Path, default=Path("bench_backbones.json"))
    args = parser.parse_args(argv)
    specs = [s for s in (TINY if args.tiny else FULL) if args.only is None or s[0] in args.only]
    rows = [row for spec in specs for row in _bench_backbone(spec, args)]
    print(_table(rows))
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    payload = {"device": device_name, "torch": torch.__version__, "threads": torch.get_num_threads(),
               "compile": args.compile, "rows": [asdict(r) for r in rows]}
    args.json.write_text(json.dumps(payload, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
