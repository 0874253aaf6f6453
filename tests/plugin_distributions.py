"""Shared by the entry-point tests: a plugin distribution written on disk (a package plus a ``*.dist-info``
folder with METADATA and entry_points.txt, what ``pip install`` leaves behind) and ``zsadbench`` run in a
subprocess with that folder and the test plugins on ``PYTHONPATH``."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import toy_plugins


def write_distribution(site: Path, dist: str, module: str, source: str, entry_points: dict[str, dict[str, str]]) -> None:
    (site / module).mkdir(parents=True)
    (site / module / "__init__.py").write_text(source)
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    sections = []
    for group, entries in entry_points.items():
        sections.append(f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items()))
    (info / "entry_points.txt").write_text("\n".join(sections))
    (info / "RECORD").write_text("")


def zsadbench(site: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    tests_dir = Path(toy_plugins.__file__).parent
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(tests_dir)]), **(env or {})}
    return subprocess.run([sys.executable, "-m", "zsadbench", *args], capture_output=True, text=True, env=environment,
                          timeout=300)
