"""Run anomalib's PatchCore (``anomalib.models.image.patchcore.torch_model.PatchcoreModel``) on zsadbench's seeded
ResNet-18 weights, support and query images, store its outputs of every stage and print how far zsadbench's are
from them.

Run it with the Python of an environment holding anomalib and zsadbench (``pip install --no-deps -e .``)::

    /tmp/anomalib-venv/bin/python scripts/compare_official/patchcore.py

writes ``tests/reference_outputs/official/patchcore.npz``.

At anomalib's default coreset ratio (0.1) the random projection matrix and the first centre of anomalib's
``KCenterGreedy`` are stood in for by the ones zsadbench draws, so both select from the same projected features;
the greedy selection itself is anomalib's. At ratio 1.0 anomalib runs unchanged (seeded); its memory bank then holds
every support feature in its selection order, and is put in zsadbench's order (each row matched to its nearest
row of zsadbench's bank) before it is compared.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from anomalib.models.components.dimensionality_reduction import SparseRandomProjection
from anomalib.models.components.sampling import k_center_greedy
from anomalib.models.image.patchcore import torch_model

import patchcore_ours as ours
from common import differences, store, table

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "tests" / "reference_outputs" / "official" / "patchcore.npz"


def official_source(module_file: str) -> str:
    """The git blob id of an installed anomalib file: the 40-hex identity stored as ``official_commit`` (a PyPI
    release carries no git commit)."""
    done = subprocess.run(["git", "hash-object", module_file], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def add_versions(path: Path) -> None:
    """Add the anomalib and timm versions the stored stages were made with."""
    with np.load(path) as data:
        kept = {key: data[key] for key in data.files}
    np.savez_compressed(path, **kept, anomalib_version=np.array(version("anomalib")),
                        timm_version=np.array(version("timm")))


def build_anomalib(state: dict[str, torch.Tensor], support: torch.Tensor, ratio: float) -> torch_model.PatchcoreModel:
    """anomalib's PatchcoreModel on zsadbench's backbone weights, its memory bank filled from the normalised
    ``support`` images and subsampled at ``ratio`` (with zsadbench's projection and first centre below 1.0)."""
    cfg = ours.CONFIG
    model = torch_model.PatchcoreModel(layers=list(cfg.layers), backbone=cfg.backbone, pre_trained=False,
                                       num_neighbors=cfg.num_neighbors)
    model.feature_extractor.feature_extractor.load_state_dict(state)
    model.train()
    with torch.no_grad():
        embedding = model(support)
    if ratio >= 1:
        torch.manual_seed(0)
        np.random.seed(0)
        model.subsample_embedding(ratio)
    else:
        matrix, start = ours.coreset_randomness(*embedding.shape)

        def stand_in(self: SparseRandomProjection, n_features: int) -> torch.Tensor:
            if self.n_components != matrix.shape[0] or n_features != matrix.shape[1]:
                raise SystemExit(f"anomalib projects to {self.n_components} of {n_features} dimensions, zsadbench "
                                 f"to {tuple(matrix.shape)}: the Johnson-Lindenstrauss dimensions differ")
            return matrix

        with mock.patch.object(SparseRandomProjection, "_sparse_random_matrix", stand_in), \
                mock.patch.object(k_center_greedy.torch, "randint", return_value=torch.tensor([start])):
            model.subsample_embedding(ratio)
    return model.eval()


def anomalib_stages(model: torch_model.PatchcoreModel, queries: torch.Tensor) -> dict[str, torch.Tensor]:
    """The stages of anomalib's ``forward`` on normalised ``queries``, laid out as
    :func:`patchcore_ours.our_stages`."""
    with torch.no_grad():
        maps = model.feature_extractor(queries)
        embedding = model.generate_embedding({name: model.feature_pooler(m) for name, m in maps.items()})
        batch, _, height, width = embedding.shape
        scores, _ = model.nearest_neighbors(model.reshape_embedding(embedding), n_neighbors=1)
        final = model(queries)
    return {**maps, "embedding": embedding, "memory_bank": model.memory_bank,
            "patch_scores": scores.reshape(batch, height, width), "image_score": final.pred_score,
            "smoothed_map": final.anomaly_map[:, 0]}


def in_our_order(theirs: torch.Tensor, mine: torch.Tensor) -> torch.Tensor:
    """``theirs`` rows reordered to match ``mine`` (each of mine paired with its nearest of theirs)."""
    nearest = torch.cdist(mine, theirs).argmin(dim=1)
    if len(set(nearest.tolist())) != len(mine) or len(theirs) != len(mine):
        raise SystemExit("the ratio-1.0 memory banks are not one permutation of the other")
    return theirs[nearest]


def main(argv: list[str] | None = None) -> int:
    """Compare, write the npz of anomalib's stages, print the table; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the .npz to write")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    method = ours.build_ours()
    backbone = method.model_.backbone
    support, queries = ours.input_images()
    state = backbone.model.state_dict()
    theirs = anomalib_stages(build_anomalib(state, backbone.normalize(support), ours.CONFIG.coreset_ratio),
                             backbone.normalize(queries))
    full = anomalib_stages(build_anomalib(state, backbone.normalize(support), 1.0), backbone.normalize(queries))
    mine = ours.our_stages(method, queries)
    full["memory_bank"] = in_our_order(full["memory_bank"], torch.from_numpy(mine["full_memory_bank"]))
    theirs.update({f"full_{key}": full[key] for key in ("memory_bank", "patch_scores", "image_score",
                                                        "smoothed_map")})
    theirs = {name: theirs[name].float().numpy() for name in ours.STAGES}
    store(args.out, theirs, official_source(torch_model.__file__), ours)
    add_versions(args.out)
    print(table(differences(mine, theirs, ours.STAGES), theirs))
    print(f"anomalib {version('anomalib')}, timm {version('timm')}; stages written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
