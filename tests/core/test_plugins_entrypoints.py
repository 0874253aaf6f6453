"""Third-party plugins shipped in separate distributions, discovered through entry points.

Each test writes a real distribution on disk (a package plus a ``*.dist-info`` folder with METADATA and
entry_points.txt) and runs ``zsadbench`` in a subprocess with that folder on ``PYTHONPATH``: exactly what
``pip install`` of a plugin leaves behind, with no change to zsadbench.
"""
from __future__ import annotations

import toy_plugins
from plugin_distributions import write_distribution, zsadbench

PLUGIN_MODULE = '''
from __future__ import annotations
import dataclasses
from zsadbench.config import MethodConfig
from zsadbench.method import Method
from zsadbench.types import Batch, Prediction

@dataclasses.dataclass(frozen=True)
class BrightConfig(MethodConfig):
    image_size: int = 32

class BrightMethod(Method):
    """Scores each pixel by its brightness."""
    name = "brightness"
    config_class = BrightConfig
    def setup(self):
        return self
    def predict(self, batch: Batch) -> Prediction:
        self.check_fitted()
        amap = batch.image.mean(dim=1)
        return Prediction(amap.flatten(1).max(dim=1).values, amap)
'''


def test_method_from_a_separate_distribution_runs_by_name(tmp_path):
    site = tmp_path / "site"
    write_distribution(site, "zsad-bright", "zsad_bright", PLUGIN_MODULE,
                       {"zsadbench.methods": {"brightness": "zsad_bright:BrightMethod"},
                        "zsadbench.datasets": {"toy": "toy_plugins:ToyDataset"}})
    toy_plugins.write_toy_tree(tmp_path / "data" / "toy")
    listed = zsadbench(site, "list")
    assert listed.returncode == 0, listed.stderr
    assert "brightness" in listed.stdout and "zsad-bright" in listed.stdout
    result = zsadbench(site, "run", "--method", "brightness", "--datasets", "toy", "--data-root",
                       str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--eval-size", "32", "--no-table")
    assert result.returncode == 0, result.stderr
    table = zsadbench(site, "table", "--out", str(tmp_path / "out"), "--format", "csv")
    assert table.returncode == 0, table.stderr
    assert "BrightMethod I-AUROC" in table.stdout

    disabled = zsadbench(site, "run", "--method", "brightness", "--datasets", "toy", "--data-root",
                         str(tmp_path / "data"), "--out", str(tmp_path / "out2"),
                         env={"ZSADBENCH_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert disabled.returncode == 1 and "unknown method 'brightness'" in disabled.stderr


def test_clashing_and_broken_plugins_get_clear_errors_naming_the_distribution(tmp_path):
    site = tmp_path / "site"
    write_distribution(site, "zsad-clash", "zsad_clash", "", {"zsadbench.methods": {"winclip": "zsad_clash:Other"}})
    write_distribution(site, "zsad-broken", "zsad_broken", "raise ImportError('needs libfoo')",
                       {"zsadbench.methods": {"broken": "zsad_broken:Method"}})
    clash = zsadbench(site, "run", "--method", "winclip", "--datasets", "synthetic", "--dry-run")
    assert clash.returncode == 1
    message = " ".join(clash.stderr.split())
    assert "claimed by more than one plugin" in message and "zsad-clash" in message
    broken = zsadbench(site, "run", "--method", "broken", "--datasets", "synthetic", "--dry-run")
    assert broken.returncode == 1
    message = " ".join(broken.stderr.split())
    assert "broken method plugin 'broken' from zsad-broken" in message and "needs libfoo" in message
    assert "Traceback" not in broken.stderr
    listed = zsadbench(site, "list", "methods")
    assert listed.returncode == 0 and "broken" in listed.stdout


ODD_MODULE = '''
import sys
from zsadbench.method import Method
from zsadbench.datasets.base import DatasetAdapter

class NoSettings(Method):
    """Declares its settings wrongly: describing it fails."""
    name = "nosettings"
    settings = None

class Levels(DatasetAdapter):
    """Declares its metric levels wrongly: describing it fails."""
    name = "badlevels"
    metric_levels = 3
    def index(self):
        return []
'''


def table_rows(text: str) -> dict[str, str]:
    """``{name: the row's cells joined}`` of rich tables whose long cells fold over several lines."""
    rows: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) < 3:
            continue
        if cells[0]:
            current = rows.setdefault(cells[0], [])
        if current is not None:
            current.append(" ".join(cells[1:]))
    return {name: " ".join(parts) for name, parts in rows.items()}


def test_list_shows_every_kind_of_broken_plugin_with_its_distribution_and_exits_0(tmp_path):
    site = tmp_path / "site"
    write_distribution(site, "zsad-missing", "zsad_missing_pkg", "",
                       {"zsadbench.methods": {"ghost": "zsad_not_installed.module:Ghost"}})
    write_distribution(site, "zsad-raises", "zsad_raises", "raise RuntimeError('config [gpu] absent')",
                       {"zsadbench.methods": {"raiser": "zsad_raises:Method"},
                        "zsadbench.datasets": {"raiserdata": "zsad_raises:Data"}})
    write_distribution(site, "zsad-exits", "zsad_exits", "import sys\nsys.exit(3)",
                       {"zsadbench.methods": {"quitter": "zsad_exits:Method"}})
    write_distribution(site, "zsad-odd", "zsad_odd", ODD_MODULE,
                       {"zsadbench.methods": {"nosettings": "zsad_odd:NoSettings"},
                        "zsadbench.datasets": {"badlevels": "zsad_odd:Levels"}})
    listed = zsadbench(site, "list", env={"COLUMNS": "400"})
    assert listed.returncode == 0, listed.stderr
    assert "Traceback" not in listed.stderr
    rows = table_rows(listed.stdout)
    expected = {
        "ghost": ("zsad-missing 1.0", "No module named 'zsad_not_installed'"),
        "raiser": ("zsad-raises 1.0", "RuntimeError: config [gpu] absent"),
        "raiserdata": ("zsad-raises 1.0", "RuntimeError: config [gpu] absent"),
        "quitter": ("zsad-exits 1.0", "SystemExit: 3"),
        "nosettings": ("zsad-odd 1.0", "TypeError"),
        "badlevels": ("zsad-odd 1.0", "TypeError"),
    }
    for name, (dist, reason) in expected.items():
        assert name in rows, listed.stdout
        assert "broken" in rows[name] and dist in rows[name] and reason in rows[name], rows[name]
    assert "broken" not in rows["winclip"]  # the built-ins are listed as usual
