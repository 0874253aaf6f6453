"""Commands that compute no model never load a model library: each runs in a fresh interpreter, which then
reports the modules it imported."""
from __future__ import annotations

import subprocess
import sys

import pytest

from runner_helpers import env, run

MODEL_LIBRARIES = ("torch", "open_clip", "timm", "transformers")

PROBE = """
import sys
from zsadbench.cli.main import main
try:
    status = main(sys.argv[1:])
except SystemExit as exc:  # --help exits through argparse
    status = exc.code
print("LOADED", *[name for name in {libraries!r} if name in sys.modules])
raise SystemExit(status)
"""


def loaded_after(*args: str) -> tuple[int, list[str], str]:
    """Exit status, model libraries in ``sys.modules`` after ``zsadbench ARGS``, and stderr."""
    code = PROBE.format(libraries=MODEL_LIBRARIES)
    environment = {**env(), "ZSADBENCH_DISABLE_PLUGIN_AUTOLOAD": "1"}  # other distributions may import torch
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                          env=environment)
    line = next(line for line in done.stdout.splitlines() if line.startswith("LOADED"))
    return done.returncode, line.split()[1:], done.stderr


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A results folder with two computed cells of a toy method."""
    import toy_plugins

    root = tmp_path_factory.mktemp("light")
    toy_plugins.write_toy_tree(root / "data" / "toy")
    assert run("--plugin", "toy_plugins:ToyMethod", "--method", "toy", "--datasets", "toy",
               "--data-root", str(root / "data"), "--out", str(root / "out")) == 0
    return root / "out"


@pytest.mark.parametrize("args", [
    ("list",), ("list", "methods"), ("--help",), ("run", "--help"), ("data", "check", "--help"), ("table", "--help"),
    ("show", "mpama"), ("show", "finegrainedad"),
])
def test_listing_and_help_load_no_model_library(args):
    status, loaded, err = loaded_after(*args)
    assert status == 0, err
    assert loaded == [], f"zsadbench {' '.join(args)} imported {loaded}"


@pytest.mark.parametrize("args", [
    ("table", "--out", "{out}"), ("table", "--out", "{out}", "--format", "latex"), ("plot", "--out", "{out}"),
    ("viz", "--out", "{out}"), ("rescore", "--out", "{out}"),
])
def test_commands_on_a_results_folder_load_no_model_library(results, args):
    status, loaded, err = loaded_after(*(a.format(out=results) for a in args))
    assert status == 0, err
    assert loaded == [], f"zsadbench {' '.join(args)} imported {loaded}"


def test_data_check_loads_no_model_library(tmp_path):
    import toy_plugins

    toy_plugins.write_toy_tree(tmp_path / "mvtec")  # an MVTec-shaped tree with two categories
    status, loaded, err = loaded_after("data", "check", "--datasets", "mvtec", "--data-root", str(tmp_path), "--deep")
    assert status == 0, err
    assert loaded == []


def test_a_run_does_load_torch(results):
    """The probe sees what a command imports: a command that computes does load torch."""
    data = results.parent / "data"
    status, loaded, err = loaded_after("run", "--plugin", "toy_plugins:ToyDataset", "--plugin",
                                       "toy_plugins:ToyMethod", "--method", "toy", "--datasets", "toy",
                                       "--data-root", str(data), "--out", str(results), "--no-table",
                                       "--eval-size", "32")
    assert status == 0, err
    assert "torch" in loaded


@pytest.mark.parametrize("preset, expected", [
    ({}, {"GOMP_SPINCOUNT": "30000"}),
    ({"GOMP_SPINCOUNT": "5"}, {"GOMP_SPINCOUNT": "5"}),  # the user's choice stays
    ({"OMP_WAIT_POLICY": "ACTIVE"}, {"OMP_WAIT_POLICY": "ACTIVE"}),  # a policy sets its own spin
])
def test_the_cli_shortens_openmp_spin_before_anything_loads_torch(preset, expected):
    probe = ("import os, sys\nfrom zsadbench.cli.main import main\nmain(['list'])\n"
             "print('SPIN', os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'),"
             " 'torch' in sys.modules)")
    environment = {k: v for k, v in env().items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    environment.update(preset, ZSADBENCH_DISABLE_PLUGIN_AUTOLOAD="1")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=environment)
    line = next(line for line in done.stdout.splitlines() if line.startswith("SPIN")).split()[1:]
    assert line == [expected.get("GOMP_SPINCOUNT", "None"), expected.get("OMP_WAIT_POLICY", "None"), "False"]
