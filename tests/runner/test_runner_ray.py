"""``zsadbench run --executor ray`` on a local two-worker Ray cluster, against local runs of the same sweep."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from zsadbench import registry
from zsadbench.cli.main import main
from zsadbench.metrics import METRICS as ALL_METRICS
from zsadbench.store import ResultStore

TESTS = Path(__file__).resolve().parents[1]
PLUGINS = ("--plugin", "toy_plugins:ToyDataset", "--plugin", "toy_plugins:ToyMethod", "--plugin",
           "toy_plugins:NaNMethod", "--plugin", "ray_toy_plugins:TracedTrained")
METRICS = list(ALL_METRICS)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """A head node with two CPUs (two worker processes); workers import the test plugins via PYTHONPATH.

    This process connects to it once, so the runs made here share warm workers (a run that finds Ray
    connected uses that connection); the killed-worker test connects from its own process with --address.
    """
    import ray

    temp = Path(tempfile.mkdtemp(prefix="zr"))  # Ray's socket paths must stay short
    port = _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "ZSADBENCH_RAY_SCRATCH": str(temp / "scratch"),
           "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    ray_cli = str(Path(sys.executable).parent / "ray")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_AUTH_MODE", "disabled")
        try:
            subprocess.run([ray_cli, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                            "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats",
                            "--temp-dir", str(temp / "ray")], env=env, check=True, capture_output=True, timeout=120)
            ray.init(address=f"127.0.0.1:{port}", log_to_driver=False)
            yield {"address": f"127.0.0.1:{port}", "env": env}
        finally:
            ray.shutdown()
            subprocess.run([ray_cli, "stop", "--force"], env=env, capture_output=True, timeout=120)
            shutil.rmtree(temp, ignore_errors=True)


def run(*args: str) -> int:
    registry.reset()
    try:
        return main(["run", *PLUGINS, "--no-table", "--eval-size", "32", "--datasets", "toy", *args])
    finally:
        registry.reset()


def created_at(out: Path, status: str = "ok") -> dict[str, float]:
    with sqlite3.connect(out / "results.sqlite") as conn:
        return dict(conn.execute("SELECT cell_id, created_at FROM cells WHERE status = ?", (status,)).fetchall())


def frame(out: Path):
    return ResultStore(out).to_frame().sort_values("cell_id").reset_index(drop=True)


def test_ray_sweep_equals_the_local_run_cell_for_cell_and_resumes(cluster, data_root, tmp_path, capsys):
    sweep = ("--method", "toy,nanmethod,tracedtrained", "--shots", "0,1", "--seeds", "0,1", "--aux", "toy",
             "--data-root", str(data_root), "--threads", "1")
    local, remote = tmp_path / "local", tmp_path / "ray"
    assert run(*sweep, "--out", str(local)) == 1  # nanmethod fails on 'beta', in both runs
    capsys.readouterr()
    assert run(*sweep, "--out", str(remote), "--executor", "ray", "--address", cluster["address"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    # toy and nanmethod: 0-shot (2 cells each) and 1-shot × 2 seeds (4 each); tracedtrained: 0-shot × 2 seeds.
    # nanmethod fails on beta: once in 0-shot, once per seed in 1-shot.
    assert "13 cells computed, 0 reused" in err and "3 failed" in err and "nanmethod toy/beta" in err

    a, b = frame(local), frame(remote)
    assert list(a.cell_id) == list(b.cell_id) and len(a) == 16
    assert list(a.status) == list(b.status) and (b.status == "failed").sum() == 3
    assert list(a.error.fillna("")) == list(b.error.fillna(""))
    ok = b.status == "ok"
    assert np.array_equal(a.loc[ok, METRICS].to_numpy(float), b.loc[ok, METRICS].to_numpy(float), equal_nan=True)
    for cell_id in b.cell_id[ok]:
        mine, theirs = ResultStore(local).load_cell_arrays(cell_id), ResultStore(remote).load_cell_arrays(cell_id)
        for name in ("image_keys", "pred_score", "anomaly_map", "map_min", "map_max", "gt_mask"):
            assert np.array_equal(mine[name], theirs[name]), (cell_id, name)

    workers = [row.provenance.worker for row in ResultStore(remote).rows() if row.provenance.worker is not None]
    assert all(w["host"] == socket.gethostname() and w["pid"] != os.getpid() for w in workers)
    assert len(workers) == 16
    # The trained states came back through the object store into the driver's cache, one per seed.
    assert sorted(p.name for p in (remote / "cache" / "states").iterdir()) == \
        sorted(p.name for p in (local / "cache" / "states").iterdir())
    assert len(list((remote / "cache" / "states").iterdir())) == 2

    created, failed = created_at(remote), created_at(remote, "failed")
    assert run(*sweep, "--out", str(remote), "--executor", "ray", "--address", cluster["address"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "0 cells computed, 13 reused" in err and "3 failed" in err  # the failed cells are retried
    rerun = frame(remote)
    assert np.array_equal(rerun.loc[ok, METRICS].to_numpy(float), b.loc[ok, METRICS].to_numpy(float), equal_nan=True)
    assert created_at(remote) == created and len(created) == 13
    again = created_at(remote, "failed")
    assert set(again) == set(failed) and all(again[c] > failed[c] for c in failed)


def test_a_cached_state_is_sent_to_the_worker_instead_of_training_again(cluster, data_root, tmp_path):
    trace = tmp_path / "trace.txt"
    sweep = ("--method", "tracedtrained", "--aux", "toy", "--data-root", str(data_root), "--set", f"trace={trace}",
             "--executor", "ray", "--address", cluster["address"])
    assert run(*sweep, "--out", str(tmp_path / "first")) == 0
    assert [line.split()[0] for line in trace.read_text().splitlines()].count("fit") == 1
    second = tmp_path / "second"
    shutil.copytree(tmp_path / "first" / "cache" / "states", second / "cache" / "states")
    trace.write_text("")
    assert run(*sweep, "--out", str(second)) == 0  # another output folder: its workers' scratch holds no state
    events = [line.split()[0] for line in trace.read_text().splitlines()]
    assert events.count("fit") == 0 and events.count("predict") == 2
    assert np.array_equal(frame(tmp_path / "first")[METRICS].to_numpy(float), frame(second)[METRICS].to_numpy(float))


def test_a_plugin_the_workers_cannot_import_stops_the_run_with_the_fix(cluster, data_root, tmp_path, capsys,
                                                                       monkeypatch):
    (tmp_path / "driver_only.py").write_text(
        "from toy_plugins import ToyMethod\n\n\nclass DriverOnly(ToyMethod):\n    name = 'driveronly'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))  # importable here, not on the workers
    out = tmp_path / "out"
    assert run("--plugin", "driver_only:DriverOnly", "--method", "driveronly", "--shots", "1",
               "--data-root", str(data_root), "--out", str(out), "--executor", "ray") == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "ConfigError: a Ray worker cannot import the module 'driver_only'" in err and "PYTHONPATH" in err
    assert not ResultStore(out).rows()
    with sqlite3.connect(out / "results.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM leases").fetchone() == (0,)  # every lease given back


def test_a_killed_worker_loses_only_its_cell_which_is_computed_again(cluster, data_root, tmp_path):
    trace = tmp_path / "trace.txt"
    out = tmp_path / "out"
    # One fit group of two cells (alpha, beta), each predicting for 2 s: the worker is killed in beta.
    command = [sys.executable, "-m", "zsadbench", "run", *PLUGINS, "--no-table", "--eval-size", "32", "--datasets",
               "toy", "--method", "tracedtrained", "--aux", "toy", "--data-root", str(data_root), "--out", str(out),
               "--set", "sleep=2", "--set", f"trace={trace}", "--executor", "ray", "--address", cluster["address"]]
    process = subprocess.Popen(command, env=cluster["env"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = None
    deadline = time.time() + 120
    while victim is None and time.time() < deadline and process.poll() is None:
        for line in trace.read_text().splitlines() if trace.exists() else []:
            event, pid, what = line.split()
            if event == "predict" and what == "beta" and _stored(out) == {"alpha"}:
                victim = int(pid)
        time.sleep(0.1)
    assert victim is not None, "the worker never reached the second cell"
    os.kill(victim, signal.SIGKILL)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    rows = {r.category: r for r in ResultStore(out).rows()}
    assert {c: r.status for c, r in rows.items()} == {"alpha": "ok", "beta": "ok"}
    assert rows["alpha"].provenance.worker["pid"] == victim  # stored before the kill, kept
    assert rows["beta"].provenance.worker["pid"] != victim  # computed again by another worker
    events = [line.split() for line in trace.read_text().splitlines()]
    assert [e for e in events if e[0] == "fit"] == [["fit", str(victim), "toy"]]  # the retry got the trained state
    assert [e[1] for e in events if e[0] == "predict" and e[2] == "alpha"] == [str(victim)]
    with pytest.raises(ProcessLookupError):
        os.kill(victim, 0)


def _stored(out: Path) -> set[str]:
    try:
        return {r.category for r in ResultStore(out).rows()}
    except Exception:  # noqa: BLE001 - the store is being created
        return set()


def _cli(code: str, data_root: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    args = ["run", *PLUGINS, "--no-table", "--eval-size", "32", "--datasets", "toy", "--method", "toy",
            "--data-root", str(data_root), "--out", str(out), *extra]
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    script = f"import sys\n{code}\nfrom zsadbench.cli.main import main\nrc = main({args!r})\n" \
             "print(json.dumps({'rc': rc, 'ray': 'ray' in sys.modules}))\n"
    return subprocess.run([sys.executable, "-c", "import json\n" + script], env=env, capture_output=True, text=True,
                          timeout=180)


def test_a_local_run_does_not_import_ray(data_root, tmp_path):
    result = _cli("", data_root, tmp_path / "out")
    assert json.loads(result.stdout.splitlines()[-1]) == {"rc": 0, "ray": False}, result.stderr
    assert len(ResultStore(tmp_path / "out").rows()) == 2


def test_missing_ray_is_one_line_naming_the_extra(data_root, tmp_path):
    result = _cli("sys.modules['ray'] = None  # as if Ray were not installed", data_root, tmp_path / "out",
                  "--executor", "ray")
    assert json.loads(result.stdout.splitlines()[-1])["rc"] == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("ConfigError: --executor ray needs Ray") and 'pip install "zsadbench[ray]"' in lines[-1]
    assert "Traceback" not in result.stderr
    assert not ResultStore(tmp_path / "out").rows()


def test_an_address_where_nothing_answers_fails_within_the_time_limit(data_root, tmp_path):
    pytest.importorskip("ray", reason="needs the ray extra (pip install 'zsadbench[ray]')")
    port = _free_port()  # bound and released: nothing listens there
    started = time.monotonic()
    result = _cli("", data_root, tmp_path / "out", "--executor", "ray", "--address", f"127.0.0.1:{port}")
    assert json.loads(result.stdout.splitlines()[-1])["rc"] == 1 and time.monotonic() - started < 60
    err = " ".join(result.stderr.split())
    assert f"ConfigError: --address 127.0.0.1:{port}: nothing answers there within 10 s" in err
    assert "Traceback" not in err


def test_a_local_cluster_that_times_out_at_start_up_is_one_line(data_root, tmp_path):
    pytest.importorskip("ray", reason="needs the ray extra (pip install 'zsadbench[ray]')")
    timing_out = ("import ray\n"
                  "def timing_out(*args, **kwargs):\n"
                  "    raise TimeoutError('Timed out after 60 seconds waiting for the raylet to start')\n"
                  "ray.init = timing_out")
    result = _cli(timing_out, data_root, tmp_path / "out", "--executor", "ray")
    assert json.loads(result.stdout.splitlines()[-1])["rc"] == 1
    err = " ".join(result.stderr.split())
    assert ("ConfigError: --address a local cluster: cannot connect to the Ray cluster (TimeoutError: "
            "Timed out after 60 seconds waiting for the raylet to start)") in err and "Traceback" not in err
