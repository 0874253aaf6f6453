"""Fixtures shared by the test modules: toy data trees, the registry reset, one torch thread, the toy captions,
and the folders beside the repository (``../shared``) that only some checkouts have.

Tests that need ``../shared`` take the ``real_samples`` or ``papers`` fixture, which skips the test, naming the
folder, where it is absent; everything else runs in a bare clone. Tests taking ``real_samples`` carry the
marker of that name (``-m real_samples`` runs only them).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from zsadbench import registry
from zsadbench.datasets.synthetic import SyntheticDataset

import fake_trees
import toy_plugins
from promptad_helpers import LEARN_CATEGORIES, S

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def pytest_configure(config):
    config.addinivalue_line("markers", "real_samples: needs the real MVTec AD samples in ../shared/real-samples (skips without them)")


def pytest_collection_modifyitems(items):
    for item in items:
        if "real_samples" in getattr(item, "fixturenames", ()):
            item.add_marker("real_samples")


def _beside_repository(folder: Path, what: str, name: str) -> Path:
    if not folder.is_dir():
        pytest.skip(f"needs {what} in {folder} (../shared/{name} beside the repository)")
    return folder


@pytest.fixture(scope="session")
def real_samples() -> Path:
    """``../shared/real-samples`` (real MVTec AD images in MVTec layout), or ``$ZSADBENCH_REAL_SAMPLES``."""
    folder = Path(os.environ.get("ZSADBENCH_REAL_SAMPLES") or SHARED / "real-samples").resolve()
    return _beside_repository(folder, "the real MVTec AD samples", "real-samples")


@pytest.fixture(scope="session")
def real_mvtec(real_samples) -> Path:
    """The real samples' MVTec AD data root (hazelnut and transistor, 256 px)."""
    return real_samples / "mvtec_ad_256"


@pytest.fixture(scope="session")
def papers() -> Path:
    """``../shared/papers``: the paper texts the reported numbers are checked against."""
    return _beside_repository(SHARED / "papers", "the paper texts", "papers")


@pytest.fixture()
def data_root(tmp_path) -> Path:
    """A data root holding the toy dataset of ``toy_plugins`` at ``<root>/toy``."""
    toy_plugins.write_toy_tree(tmp_path / "data" / "toy")
    return tmp_path / "data"


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory) -> Path:
    """A data root holding a fake copy of every dataset layout (``fake_trees``)."""
    return fake_trees.make_fake_data_root(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> SyntheticDataset:
    """The synthetic set of the PromptAD and FineGrainedAD learning checks (``promptad_helpers``)."""
    return SyntheticDataset(tmp_path_factory.mktemp("synthetic"), categories=LEARN_CATEGORIES, n_train=4,
                            n_test_normal=4, n_test_anomalous=8, image_size=S)


@pytest.fixture()
def fresh_registry():
    """An empty registry before and after the test (modules use it with ``pytest.mark.usefixtures``)."""
    registry.reset()
    yield
    registry.reset()


@pytest.fixture()
def one_thread():
    """One torch thread for the test (reproducible training margins)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def toy_captions(tmp_path_factory) -> Path:
    """A captions folder for the toy categories (FineGrainedAD reads them), from a shipped synthetic file."""
    from zsadbench.methods.finegrainedad import mfsc

    shipped = json.loads((Path(mfsc.__file__).parent / "data" / "synthetic" / "button.json").read_text())
    folder = tmp_path_factory.mktemp("toy-captions")
    (folder / "toy").mkdir()
    for category in toy_plugins.CATEGORIES:
        (folder / "toy" / f"{category}.json").write_text(json.dumps({**shipped, "dataset": "toy", "category": category}))
    return folder
