"""Speed of FineGrainedAD beside PromptAD: inference ms/image at 240 px and the training time of a 4-shot fit.

Both methods run on the paper backbone (ViT-B-16-plus-240, random weights: speed does not depend on them) with
their default configurations, on the same synthetic category and the same 4 support images. Inference is timed
per image (batch 1, as the FineGrainedAD paper's 23.3 ms) and at batch ``--batch``, after warm-up runs.

    python benchmarks/bench_finegrainedad.py --device cuda
    python benchmarks/bench_finegrainedad.py --device cpu --epochs 5      # fewer epochs: a quick CPU run

Prints a Markdown table and writes JSON (``--json``, default ``bench_finegrainedad.json``).
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from zsadbench.datasets.synthetic import SyntheticDataset
from zsadbench.method import FitData
from zsadbench.methods.finegrainedad.config import FineGrainedADConfig
from zsadbench.methods.finegrainedad.method import FineGrainedAD
from zsadbench.methods.promptad.config import PromptADConfig
from zsadbench.methods.promptad.method import PromptAD
from zsadbench.runner.loading import ImageSet
from zsadbench.types import Batch

CATEGORY = "nut"


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(method_cls, config, dataset, device: str, batch: int, repeats: int) -> dict:
    """Fit on 4 shots (timed), then time predict at batch 1 and at ``batch``."""
    torch.manual_seed(0)
    method = method_cls(config, pretrained="none", device=device).setup()
    support = ImageSet(dataset, dataset.select("train", CATEGORY, 0)[:4], config.image_size, config.image_size)
    _sync(device)
    started = time.perf_counter()
    method.fit(FitData("support", support.batches, 4, "synthetic", CATEGORY, 4, 0))
    _sync(device)
    train_s = time.perf_counter() - started
    images = torch.rand(batch, 3, config.image_size, config.image_size, generator=torch.Generator().manual_seed(0))
    row = {"train_s": round(train_s, 2)}
    for size in (1, batch):
        chunk = Batch(image=images[:size].to(device), category=CATEGORY)
        with torch.inference_mode():
            for _ in range(2):
                method.predict(chunk)
            _sync(device)
            started = time.perf_counter()
            for _ in range(repeats):
                method.predict(chunk)
            _sync(device)
        row[f"ms_per_image_b{size}"] = round(1000 * (time.perf_counter() - started) / (repeats * size), 2)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--epochs", type=int, default=0, help="override epochs_seg and epochs_cls (0: the defaults)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default="bench_finegrainedad.json")
    args = parser.parse_args(argv)
    epochs = {"epochs_seg": args.epochs, "epochs_cls": args.epochs} if args.epochs else {}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        dataset = SyntheticDataset(Path(tmp) / "synthetic", categories=(CATEGORY,), n_train=4, n_test_normal=1,
                                   n_test_anomalous=1, image_size=256)
        for label, cls, config in (("PromptAD", PromptAD, PromptADConfig(**epochs)),
                                   ("FineGrainedAD", FineGrainedAD, FineGrainedADConfig(**epochs))):
            row = {"method": label, "epochs": f"{config.epochs_seg}+{config.epochs_cls}",
                   **measure(cls, config, dataset, args.device, args.batch, args.repeats)}
            rows.append(row)
            print(row, flush=True)
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{platform.processor() or 'cpu'} ({torch.get_num_threads()} threads)"
    print(f"\nViT-B-16-plus-240 at 240 px, random weights, {device}, torch {torch.__version__}\n")
    print(f"| method | epochs (seg+cls) | 4-shot training (s) | inference ms/image, batch 1 | batch {args.batch} |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['epochs']} | {r['train_s']} | {r['ms_per_image_b1']} | {r[f'ms_per_image_b{args.batch}']} |")
    Path(args.json).write_text(json.dumps({"device": device, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
