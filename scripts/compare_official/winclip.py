"""Run anomalib's WinCLIP (``anomalib.models.image.winclip.torch_model.WinClipModel``) on zsadbench's tiny
weights, support and query images, store its outputs of every stage and print how far zsadbench's are from them.

Run it with the Python of an environment holding anomalib and the open_clip version anomalib pins (its
transformers are sequence-first there, which anomalib's window pass expects); zsadbench's side runs in zsadbench's
own environment (``--ours-python``), whose open_clip has batch-first transformers::

    /tmp/anomalib-venv/bin/python scripts/compare_official/winclip.py

writes ``tests/reference_outputs/official/winclip.npz``.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path
from unittest import mock

import numpy as np
import open_clip
import torch
from anomalib.models.image.winclip import torch_model
from anomalib.models.image.winclip.utils import class_scores

import winclip_ours as ours
from common import differences, store, table

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "tests" / "reference_outputs" / "official" / "winclip.npz"


def official_source() -> str:
    """The git blob id of the installed ``torch_model.py``: the 40-hex identity stored as ``official_commit``."""
    path = Path(torch_model.__file__)
    done = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def anomalib_clip(state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """open_clip's own model of the tiny architecture at the comparison size, holding zsadbench's weights."""
    clip = open_clip.create_model(ours.BACKBONE, force_image_size=ours.CONFIG.image_size)
    clip.load_state_dict(state)
    return clip.eval()


def build_anomalib(state: dict[str, torch.Tensor], support: torch.Tensor) -> torch_model.WinClipModel:
    """anomalib's WinClipModel built around :func:`anomalib_clip` instead of downloading its backbone."""
    made = (anomalib_clip(state), None, None)
    with mock.patch.object(torch_model.open_clip, "create_model_and_transforms", return_value=made):
        model = torch_model.WinClipModel(ours.CATEGORY, support, scales=ours.CONFIG.scales)
    return model.eval()


def anomalib_stages(model: torch_model.WinClipModel, queries: torch.Tensor) -> dict[str, np.ndarray]:
    """Every stage of anomalib's ``forward`` on normalised ``queries``, laid out as
    :func:`winclip_ours.our_stages`."""
    with torch.no_grad():
        image, windows, patches = model.encode_image(queries)
        zero_score = class_scores(image, model.text_embeddings, model.temperature, target_class=1)
        final = model(queries)
        stages = {
            "text_embeddings": model.text_embeddings,
            "image_embeddings": image,
            **{f"window_embeddings_{s}": w for s, w in zip(ours.CONFIG.scales, windows)},
            "patch_embeddings": patches,
            "zero_shot_score": zero_score,
            "zero_shot_map": model._compute_zero_shot_scores(zero_score, windows),
            "few_shot_map": model._compute_few_shot_scores(patches, windows),
            "image_score": final.pred_score,
            "smoothed_map": final.anomaly_map,
        }
    return {name: value.float().numpy() for name, value in stages.items()}


def run_ours(python: Path) -> dict[str, np.ndarray]:
    """zsadbench's stages, computed by ``python`` (zsadbench's environment) in a child process."""
    code = ("import sys, numpy, winclip_ours as o; "
            "numpy.savez(sys.argv[1], **o.our_stages(o.build_ours(), o.query_images()))")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ours.npz"
        subprocess.run([str(python), "-c", code, str(out)], cwd=Path(__file__).parent, check=True)
        with np.load(out) as data:
            return {key: data[key] for key in data.files}


def add_versions(path: Path) -> None:
    """Add the anomalib and open_clip versions the stored stages were made with."""
    with np.load(path) as data:
        kept = {key: data[key] for key in data.files}
    np.savez_compressed(path, **kept, anomalib_version=np.array(version("anomalib")),
                        open_clip_version=np.array(version("open_clip_torch")))


def main(argv: list[str] | None = None) -> int:
    """Compare, write the npz of anomalib's stages, print the table; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ours-python", type=Path, default=ROOT / ".venv" / "bin" / "python",
                        help="the Python of zsadbench's environment")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the .npz to write")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    method = ours.build_ours()
    backbone = method.model_.backbone
    support, queries = ours.input_images()
    model = build_anomalib(backbone.model.state_dict(), backbone.normalize(support))
    theirs = anomalib_stages(model, backbone.normalize(queries))
    store(args.out, theirs, official_source(), ours)
    add_versions(args.out)
    print(table(differences(run_ours(args.ours_python), theirs, ours.STAGES), theirs))
    print(f"anomalib {version('anomalib')}, open_clip {version('open_clip_torch')}; stages written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
