"""Run FineGrainedAD's released region clustering (github.com/RetoFan233/FineGrainedAD, ``PromptAD/clusters.py`` and
``FineGrainedPatchAD.language_guided_progressive_region_aggregation``) beside zsadbench's ``as_shipped`` clustering
on the same similarities and noise, store the official stages and print where they differ::

    python scripts/compare_official/finegrainedad_regions.py --official /path/to/FineGrainedAD

writes ``tests/reference_outputs/official/finegrainedad_regions.npz``, which
``tests/methods/test_official_regions.py`` checks zsadbench against without the official code.

The official method computes the cosine similarities itself; here it is handed the tokens and anchors whose
similarities, rounded to eighths, zsadbench receives (the rounding is applied by standing in for ``torch.mm`` in
its module while it runs), so both sides cluster the same numbers. Its CTM and TCBlock modules are the released
ones; the noise of both stages comes from the global generator seeded with ``NOISE_SEED``, the same stream
zsadbench draws from its own generator.
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import numpy as np
import torch

import finegrainedad_regions_ours as ours
from common import arguments, official_commit

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "tests" / "reference_outputs" / "official" / "finegrainedad_regions.npz"


def official_stages(path: Path) -> dict[str, np.ndarray]:
    """The official stage-1 labels, foreground (the stage-2 token mask) and final ``idx_token``."""
    sys.path.insert(0, str(path))
    clusters = importlib.import_module("PromptAD.clusters")
    model = importlib.import_module("PromptAD.model")
    tokens, anchors, sim = ours.inputs()
    torch.manual_seed(ours.NOISE_SEED)
    stage1, _ = clusters.cluster_dpc_knn({"x": sim}, 2, k=min(3, max(2 // 2, 1)) if ours.K1 > 2 else ours.K1)
    masks = []
    real_ctm = clusters.CTM.forward

    def recording(self, token_dict, sample_ratio=None):
        if token_dict["mask"] is not None:
            masks.append(token_dict["mask"].clone())
        return real_ctm(self, token_dict, sample_ratio)

    owner = SimpleNamespace(ctm0=clusters.CTM(2, ours.WIDTH, ours.WIDTH, k=ours.K1), block0=clusters.TCBlock(),
                            ctm1=clusters.CTM(ours.ENTITIES + 1, ours.WIDTH, ours.WIDTH, k=ours.K2),
                            block1=clusters.TCBlock())
    rows = iter(sim)
    cosine = model.torch.mm
    torch.manual_seed(ours.NOISE_SEED)
    with mock.patch.object(clusters.CTM, "forward", recording), \
            mock.patch.object(model.torch, "mm", lambda a, b: next(rows) if b.shape == anchors.T.shape
                              and a.shape[0] == ours.TOKENS else cosine(a, b)), \
            mock.patch.object(model.torch, "norm", lambda t, dim=None: torch.ones(t.shape[0])):
        out = model.FineGrainedPatchAD.language_guided_progressive_region_aggregation(owner, tokens, anchors)
    return {"stage1": stage1.numpy(), "foreground": masks[0].long().numpy(), "labels": out["idx_token"].numpy()}


def main(argv: list[str] | None = None) -> int:
    """Compare, write the npz of the official stages, print the agreement; returns the exit status."""
    args = arguments(__doc__, "github.com/RetoFan233/FineGrainedAD", argv)
    args.out = args.out or DEFAULT_OUT
    torch.set_num_threads(1)
    theirs = official_stages(args.official.resolve())
    mine = ours.our_stages()
    commit = args.commit or official_commit(args.official)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **theirs, official_commit=np.array(commit),
                        **{key: np.array(value) for key, value in ours.RECORD.items()})
    print("| stage | shape | tokens that agree |\n|---|---|---|")
    for name in ours.STAGES:
        agree = float((mine[name] == theirs[name]).mean())
        print(f"| {name} | {list(theirs[name].shape)} | {agree:.1%} |")
    print(f"official stages written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
