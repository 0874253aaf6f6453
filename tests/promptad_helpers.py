"""Shared by the PromptAD and FineGrainedAD tests (FineGrainedAD builds on PromptAD): the tiny backbone, the
learning check on the synthetic set (the ``synthetic`` fixture) and the CLI over every fake dataset layout."""
from __future__ import annotations

import json

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from zsadbench import registry
from zsadbench.cli.main import main
from zsadbench.datasets.groups import expand_datasets
from zsadbench.datasets.synthetic import EVAL_CATEGORIES
from zsadbench.method import FitData
from zsadbench.methods.promptad.scoring import grid_to_map
from zsadbench.runner.loading import ImageSet
from zsadbench.store import ResultStore

TINY = "zsad-tiny-16-240"

# -- learning -----------------------------------------------------------------------------------------
S = 128
LEARN_CATEGORIES = EVAL_CATEGORIES[:4]


def text_branch_auroc(method, dataset, category) -> float:
    """Pixel AUROC of the prompt (text) branch alone on the category's test images."""
    maps, masks = [], []
    for loaded in ImageSet(dataset, dataset.select("test", category), S, S).iter_batches(16):
        with torch.inference_mode():
            scores = method.head_.scores(method._features(loaded.batch.image, None))
        maps.append(grid_to_map(scores.text, method.backbone_.grid_size, S, 0.0).numpy())
        masks.append(loaded.masks)
    return float(roc_auc_score(np.concatenate(masks).ravel(), np.concatenate(maps).ravel()))


def learning_gain(method_cls, make_config, dataset, seed: int = 0) -> tuple[list[float], list[float]]:
    """Text-branch pixel AUROC per category before and after training on one normal shot."""
    before, after = [], []
    for category in LEARN_CATEGORIES:
        support = ImageSet(dataset, dataset.select("train", category, 0)[:1], S, S)
        # "before": the same initial prompts, fitted with a vanishing learning rate
        for config, out in ((make_config(epochs_seg=1, lr=1e-9), before), (make_config(epochs_seg=30), after)):
            torch.manual_seed(seed)
            method = method_cls(config, pretrained="none").setup()
            torch.manual_seed(seed + 100)
            method.fit(FitData("support", support.batches, 1, "synthetic", category, 1, seed))
            out.append(text_branch_auroc(method, dataset, category))
    return before, after


# -- end to end -----------------------------------------------------------------------------------------
TINY_SET = ["--set", f"backbone={TINY}", "--set", "image_size=64", "--set", "memory_layers=1,2",
            "--set", "epochs_seg=1", "--set", "epochs_cls=1", "--set", "map_size=64"]


def run_all_datasets(method: str, fake_root, out, extra: list[str]) -> None:
    registry.reset()
    code = main(["run", "--method", method, "--shots", "1,2,4", "--datasets", "all", "--data-root", str(fake_root),
                 "--pretrained", "none", "--out", str(out), "--eval-size", "32", "--no-table", *TINY_SET, *extra])
    assert code == 0
    frame = ResultStore(out).to_frame()
    assert (frame.status == "ok").all() and frame.random_init.all()
    with_normals = {d for d in expand_datasets("all")
                    if registry.datasets().get(d)(fake_root / d).select("train", None, 0)}
    assert set(frame.dataset) == with_normals and len(with_normals) >= 7
    manifest = [json.loads(line) for line in (out / "manifests" / "support.jsonl").read_text().splitlines()]
    drawn = {(m["dataset"], m["category"], m["shots"]) for m in manifest}
    assert drawn == set(zip(frame.dataset, frame.category, frame.shots))
    assert all(len(m["files"]) == m["shots"] for m in manifest)
