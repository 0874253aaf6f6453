"""The synthetic dataset generator and its two adapters (``synthetic``, ``synthetic_aux``)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from zsadbench import registry
from zsadbench.datasets import _synth_generate
from zsadbench.datasets.io import read_mask, read_rgb
from zsadbench.datasets.synthetic import (
    AUX_CATEGORIES,
    EVAL_CATEGORIES,
    PRESETS,
    SIZE_ENV,
    SyntheticAuxDataset,
    SyntheticDataset,
    SyntheticParams,
    defect_of,
    generate,
    render_image,
)
from zsadbench.errors import ConfigError, DataError

SMALL = dict(categories=["carpet", "nut"], n_train=2, n_test_normal=2, n_test_anomalous=5, image_size=48, seed=3)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("synth") / "set", **SMALL)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZSADBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(SIZE_ENV, raising=False)


# -- generation ---------------------------------------------------------------------------------------


def test_two_generations_are_byte_identical_and_parallel_matches_serial(tree: Path, tmp_path: Path) -> None:
    again = generate(tmp_path / "again", **SMALL, workers=1)
    parallel = generate(tmp_path / "parallel", **SMALL, workers=2)
    reference = _files(tree)
    assert len(reference) == 2 * (2 + 2 + 2 * 5) + 1  # images, masks and the manifest
    assert _files(again) == reference
    assert _files(parallel) == reference
    other_seed = generate(tmp_path / "seed4", **{**SMALL, "seed": 4})
    assert _files(other_seed)["carpet/train/good/000.png"] != reference["carpet/train/good/000.png"]


def test_each_image_depends_only_on_its_own_key(tree: Path) -> None:
    # rendered alone, out of order, an image equals the file written during the full generation
    for category, kind, index, rel in [("nut", "test_anomalous", 4, None), ("carpet", "train", 1, "carpet/train/good/001.png")]:
        out = render_image(category, kind, index, image_size=48, seed=3)
        if rel is None:
            defect = defect_of(category, index)[0]
            number = sum(defect_of(category, j)[0] == defect for j in range(index))
            rel = f"{category}/test/{defect}/{number:03d}.png"
        np.testing.assert_array_equal(read_rgb(tree / rel), out.image)


@pytest.mark.parametrize("category", EVAL_CATEGORIES + AUX_CATEGORIES)
def test_masks_are_exactly_the_changed_pixels(category: str) -> None:
    for index in range(4):
        out = render_image(category, "test_anomalous", index, image_size=64, seed=1)
        changed = np.abs(out.image.astype(int) - out.clean.astype(int)).max(axis=2)
        assert out.mask.dtype == bool and out.mask.any()
        np.testing.assert_array_equal(changed > 0, out.mask)
        assert changed[out.mask].min() >= _synth_generate.MASK_THRESHOLD
        assert out.defect in _synth_generate.DEFECTS_OF[category]
    for kind in ("train", "test_good"):
        normal = render_image(category, kind, 0, image_size=64, seed=1)
        assert not normal.mask.any()
        np.testing.assert_array_equal(normal.image, normal.clean)


def test_written_files_are_the_rendered_images_and_masks(tree: Path) -> None:
    tasks = _synth_generate._plan(SMALL["categories"], SMALL["n_train"], SMALL["n_test_normal"], SMALL["n_test_anomalous"])
    anomalous = [t for t in tasks if t.kind == "test_anomalous"]
    assert len(anomalous) == 10 and len(list(tree.rglob("*_mask.png"))) == 10
    for task in anomalous:
        out = render_image(task.category, task.kind, task.index, image_size=48, seed=3)
        np.testing.assert_array_equal(read_rgb(tree / task.image), out.image)
        np.testing.assert_array_equal(read_mask(tree / task.mask), out.mask)
        assert set(np.unique(np.asarray(Image.open(tree / task.mask)))) == {0, 255}


def test_defect_sizes_span_a_few_pixels_to_large_regions() -> None:
    size = 128
    areas: dict[str, list[int]] = {}
    for category in EVAL_CATEGORIES:
        for index in range(8):
            out = render_image(category, "test_anomalous", index, image_size=size)
            areas.setdefault(out.size_class, []).append(int(out.mask.sum()))
    everything = sorted(a for values in areas.values() for a in values)
    assert everything[0] <= 16  # a handful of pixels
    assert everything[-1] >= 0.1 * size * size  # a tenth of the image or more
    medians = [np.median(areas[name]) for name in ("tiny", "small", "medium", "large")]
    assert medians == sorted(medians) and medians[0] * 10 < medians[-1]


def test_defect_types_and_sizes_are_spread_over_a_category() -> None:
    pairs = {defect_of("leather", i) for i in range(40)}
    types = _synth_generate.DEFECTS_OF["leather"]
    assert {t for t, _ in pairs} == set(types)
    assert len(pairs) == len(types) * 4  # every type in every size class
    assert {defect_of("carpet", i)[1] for i in range(4)} == {"tiny", "small", "medium", "large"}


def test_manifest_records_the_parameters(tree: Path) -> None:
    manifest = json.loads((tree / "synthetic.json").read_text())
    assert manifest["version"] == _synth_generate.VERSION
    assert manifest["params"] == {k: v for k, v in SMALL.items()}
    assert manifest["files"] == sum(1 for _ in tree.rglob("*.png"))


def test_bad_parameters_raise_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown"):
        generate(tmp_path / "a", ["carpet", "velvet"], 1, 1, 1, 64)
    with pytest.raises(ConfigError, match="image_size"):
        generate(tmp_path / "b", ["carpet"], 1, 1, 1, 16)
    with pytest.raises(ConfigError, match="non-negative"):
        generate(tmp_path / "c", ["carpet"], -1, 1, 1, 64)
    with pytest.raises(ConfigError, match="size 'huge'"):
        SyntheticDataset(size="huge").samples
    with pytest.raises(ConfigError, match="another synthetic set"):
        SyntheticAuxDataset(tmp_path / "d", categories=["carpet"]).samples


# -- interrupted and stale trees -------------------------------------------------------------------------


def test_an_interrupted_generation_leaves_nothing_that_looks_complete(tree: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    real_work, calls = _synth_generate._work, []

    def dying_work(tasks, root, image_size, seed):
        calls.append(1)
        real_work(tasks[:3], root, image_size, seed)
        raise KeyboardInterrupt

    monkeypatch.setattr(_synth_generate, "_work", dying_work)
    target = tmp_path / "set"
    with pytest.raises(KeyboardInterrupt):
        generate(target, **SMALL, workers=1)
    assert calls and not target.exists()
    assert list(tmp_path.iterdir()) == []  # the staging folder is gone too
    monkeypatch.setattr(_synth_generate, "_work", real_work)
    assert _files(generate(target, **SMALL)) == _files(tree)


def test_a_killed_generation_is_swept_and_redone(tree: Path, tmp_path: Path) -> None:
    leftover = tmp_path / ".set.partial-999999999-abc"  # a process id that cannot be running
    (leftover / "carpet" / "train" / "good").mkdir(parents=True)
    (leftover / "carpet" / "train" / "good" / "000.png").write_bytes(b"half")
    generate(tmp_path / "set", **SMALL)
    assert not leftover.exists()
    assert _files(tmp_path / "set") == _files(tree)


def test_a_tree_with_a_missing_file_is_regenerated_by_the_adapter(tree: Path, tmp_path: Path) -> None:
    root = generate(tmp_path / "set", **SMALL)
    (root / "nut" / "test" / "good" / "001.png").unlink()
    (root / "carpet" / "train" / "good" / "001.png").unlink()
    dataset = SyntheticDataset(root)  # no explicit parameters: repaired as recorded in its manifest
    assert len(dataset.samples) == 2 * (2 + 2 + 5)
    assert _files(root) == _files(tree)


def test_cache_tree_without_manifest_is_regenerated_but_a_user_folder_is_refused(tmp_path: Path) -> None:
    dataset = SyntheticDataset(**SMALL)
    assert dataset.samples
    root = dataset.root
    first = _files(root)
    (root / "synthetic.json").unlink()
    assert len(SyntheticDataset(**SMALL).samples) == len(dataset.samples)
    assert _files(root) == first
    (root / "synthetic.json").unlink()  # the same, with the cache folder passed as root (as the runner does)
    assert len(SyntheticDataset(root, **SMALL).samples) == len(dataset.samples)
    assert _files(root) == first
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="not a synthetic set"):
        SyntheticDataset(foreign).samples
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_existing_tree_is_reused_unless_other_parameters_are_asked_for(tree: Path, monkeypatch) -> None:
    before = _files(tree)
    reused = SyntheticDataset(tree)  # defaults would be "small", but the tree is kept as made
    assert reused.categories() == ["carpet", "nut"]
    assert reused.expected_test == (4, 10)
    with pytest.raises(DataError, match="holds a synthetic set made with"):
        SyntheticDataset(tree, n_train=5).samples
    monkeypatch.setenv(SIZE_ENV, "medium")
    with pytest.raises(DataError, match="holds a synthetic set made with"):
        SyntheticDataset(tree).samples
    monkeypatch.delenv(SIZE_ENV)
    with pytest.raises(DataError, match="'synthetic' synthetic set, not 'synthetic_aux'"):
        SyntheticAuxDataset(tree).samples
    assert _files(tree) == before


# -- the adapters ------------------------------------------------------------------------------------


def test_adapter_counts_labels_and_mask_pairing(tmp_path: Path) -> None:
    dataset = SyntheticDataset(tmp_path / "set", **{k: v for k, v in SMALL.items() if k != "seed"})
    assert not (tmp_path / "set").exists()  # the constructor generates nothing
    samples = dataset.samples
    assert dataset.categories() == ["carpet", "nut"]
    for category in ("carpet", "nut"):
        train = dataset.select("train", category)
        assert len(train) == 2 and all(s.gt_label == 0 and s.mask_path is None for s in train)
        assert len(dataset.select("test", category, label=0)) == 2
        anomalous = dataset.select("test", category, label=1)
        assert len(anomalous) == 5
        assert sorted(s.defect_type for s in anomalous) == sorted(defect_of(category, i)[0] for i in range(5))
        for s in anomalous:
            assert s.mask_path == s.image_path.parents[2] / "ground_truth" / s.defect_type / f"{s.image_path.stem}_mask.png"
            image, mask = dataset.load_image(s), dataset.load_mask(s)
            assert image.shape == (48, 48, 3) and mask.shape == (48, 48) and mask.any()
        assert all(dataset.load_mask(s) is None for s in dataset.select("test", category, label=0))
    assert [s.key for s in samples] == [s.key for s in SyntheticDataset(tmp_path / "set").samples]
    assert dataset.expected_test == (4, 10)


def test_default_roots_sizes_and_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert registry.datasets().get("synthetic") is SyntheticDataset
    assert registry.datasets().get("synthetic_aux") is SyntheticAuxDataset
    small = SyntheticDataset()
    assert small.root.parent == tmp_path / "cache" / "synthetic"
    assert small.root.name.startswith("synthetic-small-")
    assert SyntheticAuxDataset().root.name.startswith("synthetic_aux-small-")
    assert SyntheticDataset(n_train=3).root.name.startswith("synthetic-custom-")
    assert not (tmp_path / "cache").exists()
    monkeypatch.setenv(SIZE_ENV, "medium")
    medium = SyntheticDataset()
    assert medium.root.name.startswith("synthetic-medium-") and medium.root != small.root
    assert medium.params.image_size > small.params.image_size
    assert len(medium.params.categories) > len(small.params.categories)
    assert SyntheticDataset.default_root() == medium.root
    assert SyntheticParams.preset("large", EVAL_CATEGORIES).categories == EVAL_CATEGORIES


def test_default_set_generates_in_the_cache_with_disjoint_categories() -> None:
    evaluation, auxiliary = SyntheticDataset(), SyntheticAuxDataset()
    n_cat, n_train, n_normal, n_anomalous, _ = PRESETS["small"]
    assert len(evaluation.samples) == n_cat * (n_train + n_normal + n_anomalous)
    assert evaluation.expected_test == (n_cat * n_normal, n_cat * n_anomalous)
    assert len(evaluation.categories()) == n_cat and len(auxiliary.categories()) == n_cat
    assert not set(evaluation.categories()) & set(auxiliary.categories())
    assert not set(EVAL_CATEGORIES) & set(AUX_CATEGORIES)
    assert len(EVAL_CATEGORIES) >= 15
    assert read_rgb(evaluation.samples[0].image_path).shape == (128, 128, 3)


# -- the defects are detectable and learnable -----------------------------------------------------


@pytest.mark.parametrize("category", ["carpet", "tile", "wood", "nut"])
def test_mean_normal_difference_baseline_detects_defects(category: str) -> None:
    size = 64
    mean = np.mean([render_image(category, "train", i, image_size=size).image for i in range(12)], axis=0)
    scores, truth = [], []
    for kind, count in (("test_anomalous", 12), ("test_good", 4)):
        for i in range(count):
            out = render_image(category, kind, i, image_size=size)
            scores.append(np.abs(out.image - mean).sum(axis=2).ravel())
            truth.append(out.mask.ravel())
    assert roc_auc_score(np.concatenate(truth), np.concatenate(scores)) > 0.8


def _pixel_features(image: np.ndarray) -> np.ndarray:
    x = image.astype(np.float32) / 255
    residual = x - ndimage.median_filter(x, size=(9, 9, 1))
    local = [np.abs(residual), ndimage.uniform_filter(np.abs(residual), (3, 3, 1)), np.abs(x - x.mean((0, 1)))]
    return np.concatenate([residual, *local], axis=2).reshape(-1, 12)


def _pixels(categories: tuple[str, ...], count: int) -> tuple[np.ndarray, np.ndarray]:
    features, labels = [], []
    for category in categories:
        for i in range(count):
            out = render_image(category, "test_anomalous", i, image_size=48)
            features.append(_pixel_features(out.image))
            labels.append(out.mask.ravel())
    return np.concatenate(features), np.concatenate(labels)


def test_a_pixel_classifier_trained_on_aux_transfers_to_the_evaluation_categories() -> None:
    x_aux, y_aux = _pixels(AUX_CATEGORIES, 8)
    rng = np.random.default_rng(0)
    keep = np.flatnonzero(y_aux | (rng.random(len(y_aux)) < 0.1))
    x_eval, y_eval = _pixels(EVAL_CATEGORIES, 4)
    learned = LogisticRegression(max_iter=500, class_weight="balanced").fit(x_aux[keep], y_aux[keep])
    shuffled = LogisticRegression(max_iter=500, class_weight="balanced").fit(x_aux[keep], rng.permutation(y_aux[keep]))
    auroc = roc_auc_score(y_eval, learned.decision_function(x_eval))
    assert auroc > 0.8
    assert auroc > roc_auc_score(y_eval, shuffled.decision_function(x_eval)) + 0.2


def test_constructor_does_no_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_synth_generate, "_work", lambda *a, **k: pytest.fail("rendered in the constructor"))
    SyntheticDataset(tmp_path / "x", size="large")
    SyntheticAuxDataset()
    assert os.listdir(tmp_path) == []
