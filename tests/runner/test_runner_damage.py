"""Damage is a per-cell problem, and the disk and the folder get one line: full disks, read-only folders,
damaged artifacts in ``run``, ``rescore`` and ``rescore --rebuild``."""
from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

import numpy as np
import pytest

from zsadbench.cli.main import main
from zsadbench.store import ResultStore

from runner_helpers import run


def toy(data_root, out, *extra):
    return run("--plugin", "toy_plugins:ToyMethod", "--method", "toy", "--datasets", "toy",
               "--data-root", str(data_root), "--out", str(out), *extra)


def one_line(err: str) -> str:
    return " ".join(err.split())


@contextlib.contextmanager
def tmpfs(path: Path, options: str):
    """A real tmpfs mounted at ``path`` (skips, naming what it needs, where this process may not mount)."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"needs permission to mount a tmpfs (root): {done.stderr.strip() or 'mount failed'}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_full_file_system_stops_the_run_with_one_line(data_root, tmp_path, capsys):
    with tmpfs(tmp_path / "small", "size=64k") as small:
        out = small / "out"
        assert toy(data_root, out) == 1
        err = one_line(capsys.readouterr().err)
    assert "StoreError" in err and "no space left" in err and str(out) in err and "Traceback" not in err


def test_a_full_disk_seen_by_a_library_is_not_a_cell_failure(data_root, tmp_path, capsys, monkeypatch):
    from zsadbench.runner import worker

    def serialising(*args, **kwargs):
        raise RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(worker, "_run_cell", serialising)
    out = tmp_path / "out"
    assert toy(data_root, out) == 1
    err = one_line(capsys.readouterr().err)
    assert f"no space left on the device while writing under {out}" in err and "Traceback" not in err
    assert [r for r in ResultStore(out).rows() if r.status == "failed"] == []  # nothing stored as a cell failure


def test_a_read_only_out_folder_gets_one_line(data_root, tmp_path, capsys):
    with tmpfs(tmp_path / "ro", "ro,size=64k") as folder:
        assert toy(data_root, folder / "out") == 1
        err = one_line(capsys.readouterr().err)
    assert "read-only" in err and "writable --out" in err and "Traceback" not in err


def _damage(path: Path, how: str) -> None:
    if how == "garbage":
        path.write_bytes(b"not an npz at all" * 10)
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:  # a valid npz whose arrays were changed after the checksum was taken
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        arrays["pred_score"] = arrays["pred_score"] + 1
        np.savez(path, **arrays)


@pytest.mark.parametrize("how", ["garbage", "truncated", "edited"])
def test_rebuild_recovers_every_intact_cell_and_run_recomputes_only_the_damaged_one(data_root, tmp_path, capsys, how):
    out = tmp_path / "out"
    assert toy(data_root, out) == 0
    before = {r.cell_id: r for r in ResultStore(out).rows()}
    assert len(before) >= 2
    victim = sorted(before)[0]
    _damage(out / "cells" / f"{victim}.npz", how)
    (out / "results.sqlite").rename(out / "results.sqlite.broken")
    for extra in ("-wal", "-shm"):
        Path(f"{out / 'results.sqlite'}{extra}").unlink(missing_ok=True)
    capsys.readouterr()

    assert main(["rescore", "--out", str(out), "--rebuild"]) == 1
    err = one_line(capsys.readouterr().err)
    assert f"rebuilt {out / 'results.sqlite'} with {len(before) - 1} cells" in err
    assert f"not recovered {out / 'cells' / victim}.npz is damaged" in err
    rebuilt = {r.cell_id: r for r in ResultStore(out).rows()}
    assert set(rebuilt) == set(before) - {victim}
    assert all(rebuilt[c].metrics == before[c].metrics for c in rebuilt)

    (out / "cells" / f"{victim}.npz").unlink()
    assert toy(data_root, out) == 0
    err = one_line(capsys.readouterr().err)
    assert "1 cells computed" in err
    assert {r.cell_id: r.metrics for r in ResultStore(out).rows()} == {c: r.metrics for c, r in before.items()}


@pytest.mark.parametrize("how", ["garbage", "truncated"])
def test_run_recomputes_a_cell_whose_artifact_is_damaged_and_names_it(data_root, tmp_path, capsys, how):
    out = tmp_path / "out"
    assert toy(data_root, out) == 0
    before = {r.cell_id: r for r in ResultStore(out).rows()}
    victim = sorted(before)[0]
    _damage(out / "cells" / f"{victim}.npz", how)
    capsys.readouterr()
    assert toy(data_root, out) == 0
    err = one_line(capsys.readouterr().err)
    assert f"{before[victim].describe()}: {out / 'cells' / victim}.npz" in err and "computing the cell again" in err
    assert "1 cells computed" in err
    assert ResultStore(out).load_artifact(victim)["pred_score"].shape == (before[victim].provenance.images,)


def test_rescore_names_an_edited_artifact_by_its_checksum_and_rescores_the_rest(data_root, tmp_path, capsys):
    out = tmp_path / "out"
    assert toy(data_root, out) == 0
    cells = sorted(r.cell_id for r in ResultStore(out).rows())
    _damage(out / "cells" / f"{cells[0]}.npz", "edited")
    capsys.readouterr()
    assert main(["rescore", "--out", str(out)]) == 1
    err = one_line(capsys.readouterr().err)
    assert f"rescored {len(cells) - 1} cells" in err
    assert f"damaged cell {cells[0]}: {out / 'cells' / cells[0]}.npz is damaged (its arrays do not match the checksum" in err


def test_a_damaged_trained_state_is_trained_again_with_a_warning(data_root, tmp_path, monkeypatch):
    import shutil

    marker = tmp_path / "fits.txt"
    monkeypatch.setenv("TOY_FIT_MARKER", str(marker))
    out = tmp_path / "out"
    args = ("--plugin", "toy_plugins:ToyTrainedMethod", "--method", "toytrained", "--datasets", "toy", "--aux", "toy",
            "--data-root", str(data_root), "--out", str(out))
    assert run(*args) == 0
    before = {r.cell_id: r.metrics for r in ResultStore(out).rows()}
    (state,) = (out / "cache" / "states").glob("*.pt")
    state.write_bytes(state.read_bytes()[:40])
    (out / "results.sqlite").unlink()
    shutil.rmtree(out / "cells")
    with pytest.warns(RuntimeWarning, match=f"the trained state {state} cannot be read"):
        assert run(*args) == 0
    assert marker.read_text().splitlines() == ["toy", "toy"]  # trained once more, not failed
    assert {r.cell_id: r.metrics for r in ResultStore(out).rows()} == before


def _edit_store(out: Path, statement: str) -> None:
    import sqlite3

    with sqlite3.connect(out / "results.sqlite") as conn:
        conn.execute(statement)


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("folder", "results.sqlite is not a file (a folder?), so it cannot be a results store; move it aside"),
        ("out-file", "is a file, not a folder; pass a folder"),
        ("UPDATE meta SET value = 'two' WHERE key = 'schema_version'",
         "records schema_version 'two', which no zsadbench writes"),
        ("UPDATE cells SET metrics_json = 'not json'", "cannot be read (Expecting value"),
        ("UPDATE cells SET provenance_json = '[1,'", "cannot be read ("),
    ],
)
def test_store_conditions_get_one_line_naming_the_path_and_the_fix(data_root, tmp_path, capsys, damage, expected):
    out = tmp_path / "out"
    if damage == "folder":
        (out / "results.sqlite").mkdir(parents=True)
    elif damage == "out-file":
        out.write_text("a file where the folder should be")
    else:
        assert toy(data_root, out) == 0
        _edit_store(out, damage)
    capsys.readouterr()
    for command in (lambda: toy(data_root, out), lambda: main(["table", "--out", str(out)])):
        assert command() == 1
        err = one_line(capsys.readouterr().err)
        assert expected in err and str(out) in err and "Traceback" not in err


def test_table_write_onto_a_file_is_one_line(data_root, tmp_path, capsys):
    out = tmp_path / "out"
    assert toy(data_root, out) == 0
    target = tmp_path / "tables.md"
    target.write_text("keep me")
    capsys.readouterr()
    assert main(["table", "--out", str(out), "--write", str(target)]) == 1
    assert f"--write {target}: that is a file" in one_line(capsys.readouterr().err)
    assert target.read_text() == "keep me"


def test_rescore_reports_its_progress_cell_by_cell(data_root, tmp_path):
    from zsadbench.runner.rescore import rescore

    out = tmp_path / "out"
    assert toy(data_root, out) == 0
    calls = []
    report = rescore(out, progress=lambda done, total: calls.append((done, total)))
    assert report.cells == 2 and calls == [(0, 2), (1, 2), (2, 2)]


def test_a_read_only_out_folder_gets_one_line_without_a_mount(data_root, tmp_path, capsys, monkeypatch):
    import errno

    out = tmp_path / "ro" / "out"
    real_mkdir = Path.mkdir

    def read_only(self, *args, **kwargs):
        if self == out or out in self.parents:
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    assert toy(data_root, out) == 1
    err = one_line(capsys.readouterr().err)
    assert "read-only" in err and "writable --out" in err and str(out) in err and "Traceback" not in err
