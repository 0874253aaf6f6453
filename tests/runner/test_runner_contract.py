"""The method contract as the runner honours it: fresh instances, category names and original images in
batches, per-epoch checkpoints that survive a kill, precision, prediction stats, map resizing, the pairing."""
from __future__ import annotations

import signal
import subprocess

import numpy as np
import pytest

from zsadbench.errors import ConfigError
from zsadbench.method import fit_kind, trains_then_adapts
from zsadbench.runner import auxiliary_for
from zsadbench.store import ResultStore

import toy_plugins
from runner_helpers import env, command, run


def stats(out) -> dict[tuple[str, int, int], dict]:
    return {(r.category, r.shots, r.seed): r.provenance.method_stats for r in ResultStore(out).rows()}


def test_every_fit_group_gets_a_fresh_instance_and_full_resolution_originals(data_root, tmp_path):
    out = tmp_path / "out"
    assert run("--plugin", "toy_plugins:ProbeMethod", "--method", "probe", "--datasets", "toy", "--shots", "0,1,2",
               "--seeds", "0,1", "--batch-size", "16", "--data-root", str(data_root), "--out", str(out)) == 0
    found = stats(out)
    assert len(found) == 2 + 2 * 2 * 2  # zero-shot once, few-shot per category × shots × seeds
    for key, value in found.items():
        assert value["fits"] == 1, key  # one batch per cell, and the instance has been fitted exactly once
        assert value["images"] == 6 and value["original_px"] == 6 * 32  # toy files are 32 px, inputs 16 px


def test_precision_reaches_the_method(data_root, tmp_path):
    out = tmp_path / "out"
    assert run("--plugin", "toy_plugins:ProbeMethod", "--method", "probe", "--datasets", "toy", "--precision", "bf16",
               "--batch-size", "4", "--data-root", str(data_root), "--out", str(out)) == 0
    assert {v["bf16"] for v in stats(out).values()} == {2}  # two batches of each 6-image category, both bf16
    assert {r.provenance.precision for r in ResultStore(out).rows()} == {"bf16"}


def test_peak_memory_is_measured_per_cell(data_root, tmp_path):
    out = tmp_path / "out"  # a fresh process: a long-lived one may serve the allocation from pages it already holds
    result = subprocess.run(command("--plugin", "toy_plugins:ProbeMethod", "--method", "probe", "--datasets", "toy",
                                    "--set", "allocate_mb=400", "--data-root", str(data_root), "--out", str(out)),
                            env=env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    peaks = {r.category: r.provenance.peak_memory["host_rss_mb"] for r in ResultStore(out).rows()}
    # alpha touches 400 MiB more than beta, which runs after it: beta's peak does not inherit alpha's
    assert peaks["alpha"] - peaks["beta"] > 300, peaks


def test_auxiliary_training_sees_category_names_and_resumes_after_a_kill(data_root, tmp_path):
    common = ("--plugin", "toy_plugins:EpochTrainedMethod", "--method", "epochtrained", "--datasets", "toy",
              "--aux", "toy", "--set", "epochs=4", "--data-root", str(data_root))
    marker = tmp_path / "epochs.txt"
    killed = subprocess.run(command(*common, "--out", str(tmp_path / "out")), capture_output=True, text=True,
                            env=env(TOY_EPOCH_MARKER=str(marker), TOY_KILL_AFTER_EPOCH="2"), timeout=300)
    assert killed.returncode == -signal.SIGKILL
    assert marker.read_text().split() == ["1", "2"]
    resumed = subprocess.run(command(*common, "--out", str(tmp_path / "out")), capture_output=True, text=True,
                             env=env(TOY_EPOCH_MARKER=str(marker)), timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert marker.read_text().split() == ["1", "2", "3", "4"]  # epochs 3 and 4 only, after the kill
    assert not list((tmp_path / "out" / "cache" / "checkpoints").glob("*/last.pt"))  # cleared once stored

    assert run(*common, "--out", str(tmp_path / "clean")) == 0  # uninterrupted, in this process
    killed_rows = {r.category: r.metrics for r in ResultStore(tmp_path / "out").rows()}
    clean_rows = {r.category: r.metrics for r in ResultStore(tmp_path / "clean").rows()}
    assert killed_rows == clean_rows  # resuming gives the same trained state, bit for bit
    import torch

    state = torch.load(next((tmp_path / "out" / "cache" / "states").glob("*.pt")), weights_only=True)
    assert state["categories"] == ["alpha", "beta"]


def test_maps_of_another_size_are_resized_bilinearly(data_root, tmp_path):
    out = tmp_path / "out"
    assert run("--plugin", "toy_plugins:ProbeMethod", "--method", "probe", "--datasets", "toy", "--batch-size", "16",
               "--data-root", str(data_root), "--out", str(out), "--eval-size", "40") == 0
    row = ResultStore(out).rows()[0]
    arrays = ResultStore(out).load_cell_arrays(row.cell_id)
    assert arrays["anomaly_map"].shape[1:] == (40, 40) and arrays["gt_mask"].shape[1:] == (40, 40)
    # the probe's 16 px maps, resized by hand: bilinear, half-pixel centres, edge clamping
    from zsadbench.runner.loading import ImageSet

    adapter = toy_plugins.ToyDataset(data_root / "toy")
    samples = adapter.select("test", row.category)
    small = next(ImageSet(adapter, samples, 16, 16).iter_batches(16)).batch.image
    source = (small - small.median(dim=-1, keepdim=True).values.median(dim=-2, keepdim=True).values).abs().sum(dim=1)
    expected = np.stack([_bilinear(m, 40) for m in source.numpy()])
    span = np.ptp(expected.reshape(len(expected), -1), axis=1)
    assert np.abs(arrays["anomaly_map"] - expected).max() <= (span / 65535).max() + 1e-5


def _bilinear(image: np.ndarray, size: int) -> np.ndarray:
    scale = image.shape[0] / size
    coords = np.clip((np.arange(size) + 0.5) * scale - 0.5, 0, image.shape[0] - 1)
    low = np.floor(coords).astype(int)
    high = np.minimum(low + 1, image.shape[0] - 1)
    frac = coords - low
    rows = image[low] * (1 - frac)[:, None] + image[high] * frac[:, None]
    return rows[:, low] * (1 - frac)[None] + rows[:, high] * frac[None]


@pytest.mark.parametrize(
    ("dataset", "protocol", "forced", "expected"),
    [
        ("visa", "anomalyclip", None, "mvtec"),
        ("btad", "anomalyclip", None, "mvtec"),
        ("kvasir", "anomalyclip", None, "mvtec"),
        ("mvtec", "anomalyclip", None, "visa"),
        ("mvtec", "visualad", None, "visa"),
        ("btad", "visualad", None, "visa"),
        ("visa", "visualad", None, "mvtec"),
        ("synthetic", "anomalyclip", None, "synthetic_aux"),
        ("synthetic", "visualad", None, "synthetic_aux"),
        ("btad", "anomalyclip", "mpdd", "mpdd"),
    ],
)
def test_auxiliary_pairing(dataset, protocol, forced, expected):
    assert auxiliary_for(dataset, protocol, forced) == expected


def test_the_fit_kind_follows_the_declared_settings():
    assert fit_kind(toy_plugins.ToyMethod, 0) == "none" and fit_kind(toy_plugins.ToyMethod, 2) == "support"
    assert fit_kind(toy_plugins.ToyTrainedMethod, 0) == "auxiliary"
    with pytest.raises(ConfigError, match="toytrained is not a few-shot method"):
        fit_kind(toy_plugins.ToyTrainedMethod, 1)
    with pytest.raises(ConfigError, match="toy does not take 4-shot; it takes k in 1, 2"):
        fit_kind(toy_plugins.ToyMethod, 4)


def test_a_few_shot_method_that_trains_on_an_auxiliary_set_trains_once_then_adapts_per_cell(data_root, tmp_path,
                                                                                             monkeypatch):
    cls = toy_plugins.ToyInContextMethod
    assert fit_kind(cls, 1) == "support" and trains_then_adapts(cls, 1) and not trains_then_adapts(cls, 0)
    monkeypatch.setattr(cls, "fits", 0)
    monkeypatch.setattr(cls, "adapted", 0)
    out = tmp_path / "out"
    args = ("--plugin", "toy_plugins:ToyInContextMethod", "--method", "toyincontext", "--datasets", "toy",
            "--aux", "toy", "--shots", "1,2", "--data-root", str(data_root), "--out", str(out))
    assert run(*args) == 0
    rows = ResultStore(out).rows()
    # 2 categories × 2 shot counts, one auxiliary training for all of them, one support fit per cell
    assert len(rows) == 4 and cls.fits == 1 and cls.adapted == 4
    assert {r.aux for r in rows} == {"toy"} and {r.shots for r in rows} == {1, 2}
    assert len({r.provenance.state for r in rows}) == 1 and all(r.provenance.support for r in rows)
    assert run(*args, "--seeds", "0,1") == 0  # a new seed trains its own state; the old cells are reused
    assert cls.fits == 2 and cls.adapted == 8 and len(ResultStore(out).rows()) == 8
