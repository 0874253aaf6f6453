"""The README's worked plugin example, taken from the README itself, installed as a distribution and run."""
from __future__ import annotations

import csv
import io
import re
import tomllib
from pathlib import Path

import toy_plugins
from plugin_distributions import write_distribution, zsadbench

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_block(language: str, marker: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)
    return next(b for b in blocks if marker in b)


def test_the_readme_plugin_runs_few_shot_through_its_entry_point(tmp_path):
    source = readme_block("python", "class PixelKNN")
    project = tomllib.loads(readme_block("toml", "zsadbench.methods"))
    entry_points = project["project"]["entry-points"]
    site = tmp_path / "site"
    write_distribution(site, project["project"]["name"], "zsad_knn", source,
                       {**entry_points, "zsadbench.datasets": {"toy": "toy_plugins:ToyDataset"}})
    toy_plugins.write_toy_tree(tmp_path / "data" / "toy", size=64)
    result = zsadbench(site, "run", "--method", "pixelknn", "--datasets", "toy", "--shots", "1,2", "--data-root",
                       str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--eval-size", "64", "--no-table")
    assert result.returncode == 0, result.stderr
    table = zsadbench(site, "table", "--out", str(tmp_path / "out"), "--format", "csv", "--csv-layout", "long")
    assert table.returncode == 0, table.stderr
    rows = list(csv.DictReader(io.StringIO(table.stdout)))
    assert "PixelKNN" in table.stdout and {"1", "2"} <= {r["shots"] for r in rows if r.get("shots")}
