"""Sweep files: ``run --print-config`` writes the YAML that reproduces a command line, ``run --config`` reads it
(command-line options win), and every run stores its own in ``OUT/sweeps``."""
from __future__ import annotations

import pytest
import yaml

from zsadbench import registry
from zsadbench.cli.main import main

from runner_helpers import run

TOY = ("--plugin", "toy_plugins:ToyDataset", "--plugin", "toy_plugins:ToyMethod", "--method", "toy",
       "--datasets", "toy", "--eval-size", "32", "--no-table")


def printed(capsys, *args: str) -> str:
    registry.reset()
    capsys.readouterr()
    assert main(["run", *args, "--print-config"]) == 0
    return capsys.readouterr().out


def test_print_config_round_trips_through_config(tmp_path, capsys, data_root):
    args = (*TOY, "--data-root", str(data_root), "--out", str(tmp_path / "out"), "--seeds", "0,1",
            "--set", "toy.gain=1,2", "--limit", "4", "--precision", "bf16")
    text = printed(capsys, *args)
    data = yaml.safe_load(text)
    assert data["method"] == ["toy"] and data["seeds"] == [0, 1] and data["limit"] == 4
    assert data["set"] == {"toy.gain": "1,2"} and data["precision"] == "bf16"
    assert data["plugin"] == ["toy_plugins:ToyDataset", "toy_plugins:ToyMethod"]
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(text)
    assert printed(capsys, "--config", str(sweep)) == text


def test_the_command_line_wins_over_the_file(tmp_path, capsys, data_root):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(printed(capsys, *TOY, "--data-root", str(data_root), "--seeds", "0,1", "--set", "toy.gain=1,2"))
    data = yaml.safe_load(printed(capsys, "--config", str(sweep), "--seeds", "3", "--set", "toy.gain=5"))
    assert data["seeds"] == [3] and data["set"] == {"toy.gain": "5"}


def test_a_sweep_file_written_by_hand_runs_and_is_stored_with_the_run(tmp_path, capsys, data_root):
    out = tmp_path / "out"
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({
        "plugin": ["toy_plugins:ToyDataset", "toy_plugins:ToyMethod"], "method": "toy", "datasets": ["toy"],
        "data-root": str(data_root), "out": str(out), "eval_size": 32, "no_table": True,
        "set": {"toy.gain": [1, 2]},
    }))
    registry.reset()
    assert main(["run", "--config", str(sweep)]) == 0
    assert "4 cells computed" in capsys.readouterr().err  # 2 categories × the 2 variants of the grid
    (stored,) = (out / "sweeps").glob("run-*.yaml")
    data = yaml.safe_load(stored.read_text())
    assert data["set"] == {"toy.gain": "1,2"} and data["out"] == str(out) and data["eval_size"] == 32
    assert run("--config", str(stored)) == 0  # the stored file reruns the same cells, all reused
    assert "0 cells computed, 4 reused" in capsys.readouterr().err


@pytest.mark.parametrize("text,message", [
    ("metod: toy\n", r"'metod' is not an option of zsadbench run; did you mean 'method'\?"),
    ("- toy\n", "expected a mapping of run options"),
    ("method: [toy\n", "not a YAML file"),
    ("no_table: maybe\n", "no_table is a flag; give true or false"),
    ("set: [gain, 2]\n", "set must be a mapping of method options"),
])
def test_a_bad_sweep_file_names_the_file_and_the_key(tmp_path, capsys, text, message):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(text)
    assert main(["run", "--config", str(sweep)]) == 1
    err = capsys.readouterr().err
    assert str(sweep) in " ".join(err.split()) and __import__("re").search(message, " ".join(err.split())), err
    assert main(["run", "--config", str(tmp_path / "missing.yaml")]) == 1
    assert "no such file; write one with" in capsys.readouterr().err


def test_backbone_is_a_set_of_every_methods_backbone(tmp_path, capsys, data_root):
    data = yaml.safe_load(printed(capsys, *TOY, "--backbone", "ViT-B-16"))
    assert data["set"] == {"backbone": "ViT-B-16"} and data["backbone"] is None  # stored once, as a --set
    registry.reset()
    assert main(["run", *TOY, "--data-root", str(data_root), "--out", str(tmp_path / "o"), "--backbone", "x"]) == 1
    assert "--set backbone: no selected method has an option 'backbone'" in capsys.readouterr().err
    assert main(["run", *TOY, "--backbone", "a", "--set", "toy.backbone=b"]) == 1
    assert "--backbone and --set backbone=... both name a backbone" in capsys.readouterr().err
