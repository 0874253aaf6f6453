"""A broken method plugin fails only its cells, with a message naming the plugin class and the cell, and never
breaks `zsadbench list`."""
from __future__ import annotations

from zsadbench import registry
from zsadbench.cli.main import main
from zsadbench.store import ResultStore

from runner_helpers import run


def test_a_plugin_raising_in_init_fails_its_cells_and_names_the_class(data_root, tmp_path, capsys):
    out = tmp_path / "out"
    code = run("--plugin", "toy_plugins:RaisingInitMethod", "--plugin", "toy_plugins:ToyMethod",
               "--method", "raisinginit,toy", "--datasets", "toy", "--data-root", str(data_root), "--out", str(out))
    err = " ".join(capsys.readouterr().err.split())
    assert code == 1 and "Traceback" not in err
    assert "raisinginit (toy_plugins.RaisingInitMethod): RuntimeError: cannot build the model" in err
    rows = {(r.method, r.category): r.status for r in ResultStore(out).rows()}
    assert rows == {("raisinginit", "alpha"): "failed", ("raisinginit", "beta"): "failed",
                    ("toy", "alpha"): "ok", ("toy", "beta"): "ok"}
    registry.reset()
    registry.methods().register_path("toy_plugins:RaisingInitMethod")
    capsys.readouterr()
    assert main(["list", "methods"]) == 0
    assert "raisinginit" in capsys.readouterr().out
    registry.reset()


def test_maps_or_scores_of_the_wrong_shape_or_length_fail_only_their_cell(data_root, tmp_path, capsys):
    out = tmp_path / "out"
    code = run("--plugin", "toy_plugins:WrongShapeMethod", "--method", "wrongshape", "--datasets", "toy",
               "--shots", "0,1", "--data-root", str(data_root), "--out", str(out))
    err = " ".join(capsys.readouterr().err.split())
    assert code == 1 and "Traceback" not in err
    rows = {(r.category, r.shots): r for r in ResultStore(out).rows()}
    assert rows[("alpha", 0)].status == "ok"
    assert rows[("beta", 0)].status == "failed" and "anomaly_map must be [B,H,W]" in rows[("beta", 0)].error
    assert "toy_plugins.WrongShapeMethod" in rows[("beta", 0)].error
    assert rows[("alpha", 1)].status == "failed" and "for a batch of" in rows[("alpha", 1)].error
    assert "wrongshape toy/alpha 1-shot seed=0" in err and "wrongshape toy/beta 0-shot seed=0" in err
