"""Run anomalib's PaDiM (``anomalib.models.image.padim.torch_model.PadimModel``) on zsadbench's seeded ResNet-18
weights, support and query images, store its outputs of every stage and print how far zsadbench's are from them.

Run it with the Python of an environment holding anomalib and zsadbench (``pip install --no-deps -e .``)::

    /tmp/anomalib-venv/bin/python scripts/compare_official/padim.py

writes ``tests/reference_outputs/official/padim.npz``.

anomalib draws its kept channels with ``torch.randperm``; they are set to the ones zsadbench draws (the official
code's ``random.sample`` with seed 1024). anomalib fits and inverts the covariances in float32; the stored run
fits its Gaussians in float64 (its support features cast to float64 under a float64 default dtype, its map
generator moved to float64), the precision zsadbench and the official code use, so the table measures the
method and not float32 rounding. A second table shows anomalib as shipped (float32) against the same stages.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from anomalib.models.image.padim import torch_model

import padim_ours as ours
from common import differences, store, table
from patchcore import add_versions, official_source

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "tests" / "reference_outputs" / "official" / "padim.npz"


def build_anomalib(state: dict[str, torch.Tensor], channels: torch.Tensor, support: torch.Tensor,
                   float64: bool) -> torch_model.PadimModel:
    """anomalib's PadimModel on zsadbench's backbone weights and kept channels, fitted on the normalised
    ``support`` images (in float64 when ``float64``)."""
    cfg = ours.CONFIG
    model = torch_model.PadimModel(backbone=cfg.backbone, layers=list(cfg.layers), pre_trained=False,
                                   n_features=cfg.n_features)
    model.feature_extractor.feature_extractor.load_state_dict(state)
    model.idx = channels.clone()
    model.train()
    with torch.no_grad():
        model(support)
        if float64:
            model.memory_bank = [m.double() for m in model.memory_bank]
            previous = torch.get_default_dtype()
            torch.set_default_dtype(torch.float64)
            try:
                model.fit()
            finally:
                torch.set_default_dtype(previous)
            model.anomaly_map_generator.double()
        else:
            model.fit()
    return model.eval()


def anomalib_stages(model: torch_model.PadimModel, queries: torch.Tensor) -> dict[str, np.ndarray]:
    """The stages of anomalib's ``forward`` on normalised ``queries``, laid out as :func:`padim_ours.our_stages`."""
    generator = model.anomaly_map_generator
    with torch.no_grad():
        maps = model.feature_extractor(queries)
        embedding = model.generate_embedding(maps)
        stats = [model.gaussian.mean, model.gaussian.inv_covariance]
        distances = generator.compute_distance(embedding.to(stats[0].dtype), stats)
        final = model(queries)
        stages = {**maps, "embedding": embedding, "mean": model.gaussian.mean, "distances": distances[:, 0],
                  "image_score": final.pred_score.reshape(-1), "smoothed_map": final.anomaly_map[:, 0]}
    return {name: value.float().numpy() for name, value in stages.items()}


def main(argv: list[str] | None = None) -> int:
    """Compare, write the npz of anomalib's stages, print the tables; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the .npz to write")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    method = ours.build_ours()
    model = method.model_
    support, queries = ours.input_images()
    state = model.backbone.model.state_dict()
    normalized = model.backbone.normalize(support), model.backbone.normalize(queries)
    mine = ours.our_stages(method, queries)
    theirs = anomalib_stages(build_anomalib(state, model.channels, normalized[0], True), normalized[1])
    store(args.out, theirs, official_source(torch_model.__file__), ours)
    add_versions(args.out)
    print("anomalib with its Gaussians in float64 (stored):")
    print(table(differences(mine, theirs, ours.STAGES), theirs))
    shipped = anomalib_stages(build_anomalib(state, model.channels, normalized[0], False), normalized[1])
    print("\nanomalib as shipped (float32):")
    print(table(differences(mine, shipped, ours.STAGES), shipped))
    print(f"\nstages written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
