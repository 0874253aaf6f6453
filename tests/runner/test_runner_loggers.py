"""``zsadbench run --log mlflow|tensorboard``: every finished cell reaches the tracker, one tracker run per method
variant, the cell in each metric's name; without ``--log`` no tracker package is imported.

MLflow is tested against a stand-in module put into ``sys.modules`` that records the client's calls (the real
package is large); TensorBoard for real, by reading its event files back.
"""
from __future__ import annotations

import math
import subprocess
import sys
import types
from pathlib import Path

import pytest

from zsadbench.store import ResultStore

from runner_helpers import env, run, stored_categories

SMALL = ("--plugin", "toy_plugins:ToyMethod", "--method", "toy", "--datasets", "toy")
TOY = (*SMALL, "--shots", "0,1", "--set", "gain=1,2")  # two variants, zero- and one-shot cells


def toy_run(data_root: Path, out: Path, *extra: str, toy: tuple[str, ...] = TOY) -> int:
    return run(*toy, "--data-root", str(data_root), "--out", str(out), *extra)


def stored(out: Path) -> dict[str, dict[str, float]]:
    """``metric name -> value`` per variant label, as the store holds them (the names the loggers use)."""
    values: dict[str, dict[str, float]] = {}
    for cell in ResultStore(out).rows():
        prefix = f"{cell.dataset}/{cell.category}/{cell.shots}-shot/seed{cell.seed}"
        values.setdefault(cell.method_label, {}).update(
            {f"{prefix}/{name}": value for name, value in cell.metrics.items() if not math.isnan(value)})
    return values


PROBE = """
import sys
from runner_helpers import run
status = run({args!r})
print("LOADED", *[name for name in ("mlflow", "tensorboard", "torch.utils.tensorboard") if name in sys.modules])
raise SystemExit(status)
"""


def test_a_run_without_log_imports_no_tracker(tmp_path, data_root):
    args = [*SMALL, "--data-root", str(data_root), "--out", str(tmp_path / "out")]
    code = PROBE.replace("run({args!r})", f"run(*{args!r})")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env())
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("LOADED"))
    assert line.split()[1:] == []


class _Client:
    """Records what an ``mlflow.MlflowClient`` is asked to do."""

    def __init__(self, calls: list, tracking_uri: str | None = None) -> None:
        self.calls = calls
        calls.append(("client", tracking_uri))

    def get_experiment_by_name(self, name: str):
        self.calls.append(("get_experiment_by_name", name))
        return None

    def create_experiment(self, name: str, artifact_location: str | None = None) -> str:
        self.calls.append(("create_experiment", name, artifact_location))
        return "7"

    def create_run(self, experiment_id: str, run_name: str | None = None, tags: dict | None = None):
        run_id = f"run{sum(call[0] == 'create_run' for call in self.calls)}"
        self.calls.append(("create_run", experiment_id, run_name, dict(tags or {}), run_id))
        return types.SimpleNamespace(info=types.SimpleNamespace(run_id=run_id))

    def log_batch(self, run_id: str, metrics=(), params=(), tags=()) -> None:
        self.calls.append(("log_batch", run_id, list(metrics), list(params), list(tags)))

    def set_terminated(self, run_id: str) -> None:
        self.calls.append(("set_terminated", run_id))


@pytest.fixture()
def fake_mlflow(monkeypatch) -> list:
    """A stand-in ``mlflow`` in ``sys.modules``; returns the list of calls its clients record."""
    calls: list = []
    mlflow = types.ModuleType("mlflow")
    mlflow.MlflowClient = lambda tracking_uri=None: _Client(calls, tracking_uri)
    entities = types.ModuleType("mlflow.entities")
    entities.Metric = lambda key, value, timestamp, step: ("metric", key, value, step)
    entities.Param = lambda key, value: ("param", key, value)
    entities.RunTag = lambda key, value: ("tag", key, value)
    mlflow.entities = entities
    monkeypatch.setitem(sys.modules, "mlflow", mlflow)
    monkeypatch.setitem(sys.modules, "mlflow.entities", entities)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    return calls


def test_mlflow_gets_one_run_per_variant_with_every_cell(tmp_path, data_root, fake_mlflow):
    out = tmp_path / "out"
    assert toy_run(data_root, out, "--log", "mlflow") == 0
    calls = fake_mlflow
    folder = (out / "mlruns").resolve()
    assert calls[0] == ("client", f"sqlite:///{folder}/mlflow.db")
    assert ("create_experiment", "zsadbench out", (folder / "artifacts").as_uri()) in calls
    runs = {call[4]: call for call in calls if call[0] == "create_run"}
    assert sorted(call[2] for call in runs.values()) == ["Toy [gain=1]", "Toy [gain=2]"]
    assert all(call[1] == "7" and call[3]["zsadbench.method"] == "toy" for call in runs.values())
    assert "environment.python" in next(iter(runs.values()))[3]
    expected = stored(out)
    for run_id, (_, _, label, _, _) in runs.items():
        batches = [call for call in calls if call[0] == "log_batch" and call[1] == run_id]
        params = {key: value for batch in batches for _, key, value in batch[3]}
        assert float(params["config.gain"]) == float(label[-2]) and params["precision"] == "fp32"
        assert {"method", "pretrained", "weights_id", "eval_size"} <= params.keys()
        metrics = {key: value for batch in batches for _, key, value, step in batch[2]}
        assert metrics == expected[label]
        assert "toy/alpha/0-shot/seed0/image_auroc" in metrics and "toy/beta/1-shot/seed0/pixel_auroc" in metrics
        tags = {key: value for batch in batches for _, key, value in batch[4]}
        assert tags["toy/beta/1-shot/seed0/status"] == "ok"
        assert tags["toy/beta/1-shot/seed0/support"].startswith('["beta/train/good/')
        assert "toy/alpha/0-shot/seed0/device" in tags and "toy/alpha/0-shot/seed0/cell_id" in tags
    assert sorted(call[1] for call in calls if call[0] == "set_terminated") == sorted(runs)


def test_mlflow_goes_to_the_tracking_uri_or_the_log_dir(tmp_path, data_root, fake_mlflow, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracker.invalid:5000")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "sweeps")
    assert toy_run(data_root, tmp_path / "a", "--log", "mlflow", toy=SMALL) == 0
    assert fake_mlflow[0] == ("client", None) and ("create_experiment", "sweeps", None) in fake_mlflow
    fake_mlflow.clear()
    assert toy_run(data_root, tmp_path / "b", "--log", "mlflow", "--log-dir", str(tmp_path / "tracked"), toy=SMALL) == 0
    assert fake_mlflow[0] == ("client", f"sqlite:///{(tmp_path / 'tracked').resolve()}/mlflow.db")


def test_tensorboard_event_files_hold_every_metric(tmp_path, data_root):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # a test extra
    out = tmp_path / "out"
    assert toy_run(data_root, out, "--log", "tensorboard") == 0
    folders = sorted((out / "tensorboard").iterdir())
    assert [f.name.rsplit("-", 1)[0] for f in folders] == ["Toy__gain_1_", "Toy__gain_2_"]
    expected = stored(out)
    for folder, label in zip(folders, ("Toy [gain=1]", "Toy [gain=2]")):
        events = EventAccumulator(str(folder))
        events.Reload()
        scalars = {tag: events.Scalars(tag) for tag in events.Tags()["scalars"]}
        assert scalars.keys() == expected[label].keys()
        for tag, value in expected[label].items():
            assert [e.step for e in scalars[tag]] == [0]
            assert scalars[tag][0].value == pytest.approx(value, rel=1e-6)
        assert "params/text_summary" in events.Tags()["tensors"]
        assert "toy/alpha/0-shot/seed0/provenance/text_summary" in events.Tags()["tensors"]


@pytest.mark.parametrize(("backend", "module", "package"), [
    ("mlflow", "mlflow", "mlflow"), ("tensorboard", "torch.utils.tensorboard", "tensorboard"),
])
def test_a_missing_tracker_package_is_one_line_before_any_cell(tmp_path, data_root, monkeypatch, capsys, backend,
                                                               module, package):
    monkeypatch.setitem(sys.modules, module, None)  # what an absent package looks like to `import`
    out = tmp_path / "out"
    assert toy_run(data_root, out, "--log", backend) == 1
    err = capsys.readouterr().err
    assert f"--log {backend} needs the {package} package" in err and f"pip install {package}" in err
    assert "Traceback" not in err
    assert stored_categories(out) == {}


@pytest.mark.parametrize(("extra", "message"), [
    (("--log-dir", "somewhere"), "--log-dir only applies with --log"),
    (("--log", "mlflow", "--executor", "ray"), "--log works with --executor local only"),
])
def test_log_options_that_do_not_fit_are_refused(tmp_path, data_root, capsys, extra, message):
    assert toy_run(data_root, tmp_path / "out", *extra) == 1
    assert message in capsys.readouterr().err
