"""The results store under stress: old or foreign stores, corruption, a full disk, failures under --force,
two runs on one folder, and rebuilding or rescoring from the per-image artifacts."""
from __future__ import annotations

import errno
import json
import sqlite3
import subprocess
import sys
import time

from zsadbench.cli.main import main
from zsadbench.store import ResultStore

from runner_helpers import command, env, run


def toy(data_root, out, *extra):
    return run("--plugin", "toy_plugins:ToyMethod", "--method", "toy", "--datasets", "toy",
               "--data-root", str(data_root), "--out", str(out), *extra)


def one_line(err: str) -> str:
    return " ".join(err.split())


def test_a_store_of_another_schema_version_gets_one_line(data_root, tmp_path, capsys):
    out = tmp_path / "out"
    assert toy(data_root, out) == 0
    with sqlite3.connect(out / "results.sqlite") as conn:
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    capsys.readouterr()
    assert toy(data_root, out) == 1
    err = one_line(capsys.readouterr().err)
    assert "StoreError" in err and "schema 1" in err and "new --out" in err and "Traceback" not in err
    with sqlite3.connect(out / "results.sqlite") as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    assert toy(data_root, out) == 1
    assert "upgrade zsadbench" in one_line(capsys.readouterr().err)


def test_a_corrupted_store_is_named_and_rebuilt_from_the_artifacts(data_root, tmp_path, capsys):
    out = tmp_path / "out"
    assert toy(data_root, out) == 0
    before = {r.cell_id: r.metrics for r in ResultStore(out).rows()}
    db = out / "results.sqlite"
    for suffix in ("-wal", "-shm"):
        (out / f"results.sqlite{suffix}").unlink(missing_ok=True)
    db.write_bytes(b"this is not an sqlite database" * 100)
    capsys.readouterr()
    assert toy(data_root, out) == 1
    err = one_line(capsys.readouterr().err)
    assert str(db) in err and "rescore" in err and "--rebuild" in err and "Traceback" not in err
    db.rename(out / "results.sqlite.broken")
    assert main(["rescore", "--out", str(out), "--rebuild"]) == 0
    assert {r.cell_id: r.metrics for r in ResultStore(out).rows()} == before
    assert toy(data_root, out) == 0 and "0 cells computed" in one_line(capsys.readouterr().err)


def test_a_full_disk_stops_the_run_with_one_line_and_keeps_finished_cells(data_root, tmp_path, capsys, monkeypatch):
    from zsadbench.store import db

    out = tmp_path / "out"
    real = db.atomic_write_bytes
    writes = []

    def filling(path, data):
        writes.append(path)
        if len(writes) > 1:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(db, "atomic_write_bytes", filling)
    assert toy(data_root, out) == 1
    err = one_line(capsys.readouterr().err)
    assert "StoreError" in err and "no space left" in err and str(out / "cells") in err and "Traceback" not in err
    monkeypatch.setattr(db, "atomic_write_bytes", real)
    rows = ResultStore(out).rows()
    assert [r.category for r in rows] == ["alpha"] and rows[0].status == "ok"
    assert ResultStore(out).load_cell_arrays(rows[0].cell_id)["pred_score"].shape == (6,)


def test_a_failure_under_force_keeps_the_good_result(data_root, tmp_path, capsys):
    out = tmp_path / "out"
    assert toy(data_root, out) == 0
    good = {r.category: r.metrics for r in ResultStore(out).rows()}
    (data_root / "toy" / "beta" / "test" / "bad" / "000.png").write_bytes(b"broken")
    assert toy(data_root, out, "--force") == 1
    assert "stored good result is kept" in one_line(capsys.readouterr().err)
    rows = {r.category: r for r in ResultStore(out).rows()}
    assert rows["beta"].status == "ok" and rows["beta"].metrics == good["beta"]


def test_two_runs_on_one_folder_compute_each_cell_once(data_root, tmp_path):
    out = tmp_path / "out"
    args = command("--plugin", "toy_plugins:ToyMethod", "--method", "toy", "--datasets", "toy", "--shots", "0,1",
                   "--batch-size", "1", "--data-root", str(data_root), "--out", str(out))
    log = tmp_path / "predictions.txt"
    first = subprocess.Popen(args, env=env(TOY_SLEEP="0.3", TOY_PREDICT_LOG=str(log)), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    second = subprocess.Popen(args, env=env(TOY_SLEEP="0.3", TOY_PREDICT_LOG=str(log)), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    assert first.wait(300) == 0 and second.wait(300) == 0, (first.stderr.read(), second.stderr.read())
    computed = [line.split()[1] for line in log.read_text().splitlines()]
    cells = {(r.category, r.shots) for r in ResultStore(out).rows() if r.status == "ok"}
    assert len(cells) == 4
    # every cell's 6 images were predicted by one process only
    assert sorted(computed.count(c) for c in set(computed)) == [6] * 4, computed
    with sqlite3.connect(out / "results.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_rescore_gives_back_the_stored_metrics_and_repairs_edited_ones(data_root, tmp_path, capsys):
    out = tmp_path / "out"
    assert toy(data_root, out, "--eval-size", "48") == 0
    capsys.readouterr()
    assert main(["rescore", "--out", str(out)]) == 0
    assert "rescored 2 cells: 0 differ" in one_line(capsys.readouterr().err)
    original = {r.cell_id: r.metrics for r in ResultStore(out).rows()}
    with sqlite3.connect(out / "results.sqlite") as conn:
        conn.execute("UPDATE cells SET metrics_json = replace(metrics_json, '\"aupro\": ', '\"aupro\": 0.5, \"x\": ')")
        conn.execute("UPDATE cells SET metrics_json = '{\"image_auroc\": 0.25}' WHERE category = 'beta'")
    assert main(["rescore", "--out", str(out)]) == 1
    assert "2 differ" in one_line(capsys.readouterr().err)
    assert main(["rescore", "--out", str(out), "--update"]) == 0
    assert {r.cell_id: r.metrics for r in ResultStore(out).rows()} == original


def test_provenance_keys_unknown_to_this_version_are_read_and_kept(data_root, tmp_path):
    out = tmp_path / "out"
    assert toy(data_root, out, "--threads", "1") == 0
    with sqlite3.connect(out / "results.sqlite") as conn:
        conn.execute("UPDATE cells SET provenance_json = json_set(provenance_json, '$.gpu_clock', 1500)")
    store = ResultStore(out)
    rows = store.rows()
    assert all(r.provenance.extra == {"gpu_clock": 1500} and r.provenance.threads == 1 for r in rows)
    assert all(r.provenance.metric_levels == ["image", "pixel"] and r.provenance.traceback is None for r in rows)
    store.put(rows[0])
    with sqlite3.connect(out / "results.sqlite") as conn:
        stored = json.loads(conn.execute("SELECT provenance_json FROM cells WHERE cell_id = ?",
                                         (rows[0].cell_id,)).fetchone()[0])
    assert stored["gpu_clock"] == 1500 and "traceback" not in stored


def test_rescore_of_a_folder_without_results_fails_with_one_line(tmp_path, capsys):
    missing = tmp_path / "never-run"
    assert main(["rescore", "--out", str(missing)]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert f"no results store in {missing}" in err and "zsadbench run" in err and not missing.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["rescore", "--out", str(empty), "--rebuild"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "holds no artifacts" in err and not (empty / "results.sqlite").exists()


def test_temporaries_of_killed_writers_are_removed_and_live_ones_kept(data_root, tmp_path):
    import os
    import socket

    from zsadbench.store.files import atomic_write_bytes

    out = tmp_path / "out"
    assert toy(data_root, out) == 0
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # a process that has exited
    host = socket.gethostname()
    states = out / "cache" / "states"
    states.mkdir(parents=True, exist_ok=True)
    stale = states / f".abc.pt.zsad-{host}-{dead_pid}-x1y2z3.tmp"
    live = states / f".def.pt.zsad-{host}-{os.getpid()}-a1b2c3.tmp"
    elsewhere = out / "cells" / f".x.npz.zsad-another-host-{dead_pid}-q9q9.tmp"
    foreign = states / "notes.tmp"
    for path in (stale, live, elsewhere, foreign):
        path.write_bytes(b"partial")
    atomic_write_bytes(states / "done.bin", b"ok")  # its own temporary is gone once written
    assert toy(data_root, out) == 0
    assert not stale.exists() and live.exists() and elsewhere.exists() and foreign.exists()
    assert (states / "done.bin").read_bytes() == b"ok"
    assert not [p for p in states.glob(".done.bin.*")]
