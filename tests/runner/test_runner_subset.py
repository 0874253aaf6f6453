"""Smoke runs on part of a dataset: ``--categories`` / ``-d DATASET/CATEGORY`` and ``--limit N`` test images per
category, kept apart from full cells by their identity and recorded in their provenance."""
from __future__ import annotations

import io
import re
from pathlib import Path

import pandas as pd
import pytest

from zsadbench.runner.subset import limited
from zsadbench.store import ResultStore
from zsadbench.tables import make_table, results_frame
from zsadbench.types import Sample

import toy_plugins
from runner_helpers import run


def sample(i: int, split: str, label: int) -> Sample:
    return Sample(Path(f"{i:02d}.png"), "c", split, label)


def test_limit_keeps_both_labels_in_index_order():
    samples = [sample(0, "train", 0)] + [sample(i, "test", int(i % 3 != 0)) for i in range(1, 12)]
    anomalous = [s for s in samples if s.split == "test" and s.gt_label == 1]
    normal = [s for s in samples if s.split == "test" and s.gt_label == 0]
    kept = limited(samples, 5)
    # ceil(5 / 2) = 3 anomalous, the first ones, and 2 normal; the training image stays; the order is the index's
    assert kept == [samples[0]] + sorted(anomalous[:3] + normal[:2], key=samples.index)
    assert limited(samples, 100) == samples
    # too few normal images: the anomalous ones fill the limit
    few_normal = [s for s in samples if not (s.gt_label == 0 and s.split == "test")] + normal[:1]
    assert sum(s.split == "test" for s in limited(few_normal, 6)) == 6


def test_one_category_with_a_limit_is_its_own_cell(data_root, tmp_path):
    out = tmp_path / "out"
    common = ("--plugin", "toy_plugins:ToyMethod", "--method", "toy", "--data-root", str(data_root), "--out", str(out))
    first = toy_plugins.CATEGORIES[0]
    assert run(*common, "--datasets", f"toy/{first}", "--limit", "2") == 0
    (smoke,) = ResultStore(out).rows()
    assert smoke.category == first and smoke.provenance.images == 2 and smoke.provenance.test_limit == 2
    assert run(*common, "--datasets", "toy", "--categories", first) == 0  # the full category: computed, not reused
    rows = ResultStore(out).rows()
    assert len(rows) == 2 and len({r.cell_id for r in rows}) == 2
    full = next(r for r in rows if r.cell_id != smoke.cell_id)
    assert full.provenance.images == 6 and full.provenance.test_limit is None
    # the tables keep the smoke cell in a column of its own, labelled as such
    table = make_table(results_frame(out), "csv", csv_layout="long")
    labels = set(pd.read_csv(io.StringIO(table))["variant"])
    assert len(labels) == 2 and sum("smoke: ≤2 test images" in label for label in labels) == 1


@pytest.mark.parametrize("args,message", [
    (("--datasets", "toy/nutt"), r"'nutt' is not a category of toy;.*it has"),
    (("--datasets", "toy", "--categories", "synthetic/nut"), r"'synthetic' is not among the datasets of this run"),
    (("--datasets", "toy", "--limit", "1"), "--limit must be at least 2"),
])
def test_bad_subsets_name_the_fix(data_root, tmp_path, capsys, args, message):
    code = run("--plugin", "toy_plugins:ToyMethod", "--method", "toy", "--data-root", str(data_root),
               "--out", str(tmp_path / "out"), *args)
    err = capsys.readouterr().err
    assert code != 0 and re.search(message, err), err
    assert err.startswith("ConfigError:") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "results.sqlite").exists()
