"""``zsadbench efficiency``: parameter counts against a hand count, FLOPs against 2·M·N·K, the timing arithmetic
with a fake clock, peak memory of a known allocation, the table formats (LaTeX compiled with pdflatex) and the
command end to end on WinCLIP and on toy plugins."""
from __future__ import annotations

import csv
import dataclasses
import io
import shutil
import subprocess
import sys

import pytest
import torch
from torch import nn

from zsadbench import registry
from zsadbench.cli.main import main
from zsadbench.config import MethodConfig
from zsadbench.efficiency.measure import (
    Settings, count_parameters, count_state, gflops_per_image, host_peak_growth_mb, images_per_second,
    measure_method, median_seconds, random_batch,
)
from zsadbench.efficiency.table import DeviceInfo, EfficiencyReport, EfficiencyRow, render, to_csv, to_latex
from zsadbench.method import FitData, Method
from zsadbench.runner import RunConfig
from zsadbench.runner.identity import WeightsSpec
from zsadbench.runner.planner import MethodSpec
from zsadbench.types import Batch, Prediction

import toy_plugins
from runner_helpers import env

M, K, N = 12, 16, 5  # predict multiplies [B*M, K] by [K, N]; the 8 px RGB image holds M*K values


@dataclasses.dataclass(frozen=True)
class TinyConfig(MethodConfig):
    image_size: int = 8
    epochs: int = 3


class Tiny(Method):
    """A linear map shared by two attributes, a conv in a list, a buffer; predict is one matmul."""

    name = "tiny"
    config_class = TinyConfig
    settings = frozenset({"zero-shot"})
    trains_on_auxiliary = True

    def setup(self) -> "Tiny":
        self.linear_ = nn.Linear(K, N)  # 16*5 + 5 = 85
        bank = nn.Module()
        bank.register_buffer("memory", torch.zeros(100))  # a buffer: not a parameter
        self.parts_ = [nn.Conv2d(3, 4, 3), {"again": self.linear_, "bank": bank}]  # 3*4*9 + 4 = 112
        return self

    def fit(self, data: FitData) -> "Tiny":
        self.epochs_seen_ = self.config.epochs
        for _ in data.batches(4):
            pass
        self.fitted_ = True
        return self

    def predict(self, batch: Batch) -> Prediction:
        rows = batch.image.reshape(len(batch) * M, K)
        out = torch.mm(rows, self.linear_.weight.detach().t())
        return Prediction(out.reshape(len(batch), -1).amax(dim=1), batch.image[:, 0])

    def state_dict(self) -> dict:
        return {"weight": self.linear_.weight.detach(), "steps": 3, "index": torch.arange(4),
                "nested": [torch.zeros(2, 3)]}


def tiny() -> Tiny:
    return Tiny().setup().fit(FitData("none"))


def test_parameters_and_trainable_against_a_hand_count():
    method = tiny()
    assert count_parameters(method) == (K * N + N) + (3 * 4 * 9 + 4)  # the shared linear once, no buffer
    assert count_state(method.state_dict()) == K * N + 2 * 3  # floating-point tensors only


@pytest.mark.parametrize("batch_size", [1, 3])
def test_flops_of_one_matmul_are_2_m_n_k_per_image(batch_size):
    batch = random_batch(8, batch_size, "alpha")
    assert gflops_per_image(tiny(), batch) == pytest.approx(2 * M * N * K / 1e9)


class Prompted(Tiny):
    """Also calls a module on a learned parameter (as prompt learners do), which the counter's hooks follow."""

    def setup(self) -> "Prompted":
        super().setup()
        self.anchors_ = nn.Parameter(torch.randn(2, K))
        return self

    def predict(self, batch: Batch) -> Prediction:
        self.linear_(self.anchors_)  # addmm of [2, K] by [K, N]
        return super().predict(batch)


def test_flops_of_a_module_called_on_a_learned_parameter():
    method = Prompted().setup().fit(FitData("none"))
    assert gflops_per_image(method, random_batch(8, 1, "alpha")) == pytest.approx((2 * M * N * K + 2 * 2 * N * K) / 1e9)


class FakeTime:
    """A clock that moves only when told (a call's duration) or, with ``tick``, by ``tick`` at every reading."""

    def __init__(self, tick: float = 0.0) -> None:
        self.now, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


def test_median_of_the_timed_calls_after_the_warm_up():
    clock, durations, syncs = FakeTime(), iter([9.0, 9.0, 0.5, 0.2, 0.3, 0.9, 0.4]), []

    def call():
        clock.now += next(durations)

    seconds = median_seconds(call, repeats=5, warmup=2, sync=lambda: syncs.append(clock.now), clock=clock)
    assert seconds == pytest.approx(0.4)
    assert len(syncs) == 10  # before and after each timed call
    assert images_per_second(8, seconds) == pytest.approx(20.0)


def spec_of(cls: type[Method], **config) -> MethodSpec:
    return MethodSpec(cls.name, cls, cls.config_class(**config), "Tiny", WeightsSpec("", ""), "fp32", cls.name)


@pytest.fixture()
def toy_adapter(data_root):
    return toy_plugins.ToyDataset(data_root / "toy")


@pytest.mark.parametrize("epochs, expected_epochs", [(None, 3), (2, 2)])
def test_a_row_divides_by_the_batch_and_the_epochs(toy_adapter, epochs, expected_epochs):
    config = RunConfig(methods=("tiny",), datasets=("toy",), threads=torch.get_num_threads())
    settings = Settings(batch=6, repeats=3, warmup=1, epochs=epochs, train_images=4)
    row = measure_method(config, spec_of(Tiny), settings, toy_adapter, clock=FakeTime(tick=0.25))
    assert row.error is None
    assert row.setting == "zero-shot" and row.input_size == 8
    assert row.throughput_1 == pytest.approx(1 / 0.25) and row.throughput_n == pytest.approx(6 / 0.25)
    assert row.train_seconds == pytest.approx(0.25 / expected_epochs) and row.train_per == "epoch"
    assert row.params == 85 + 112 and row.trainable == 86
    assert row.gflops == pytest.approx(2 * M * N * K / 1e9)


def test_a_failing_method_keeps_what_was_measured(toy_adapter):
    class Broken(Tiny):
        def predict(self, batch):
            raise RuntimeError("no kernel for this shape")

    config = RunConfig(methods=("tiny",), datasets=("toy",), threads=torch.get_num_threads())
    row = measure_method(config, spec_of(Broken), Settings(repeats=1, warmup=0), toy_adapter)
    assert row.error == "RuntimeError: no kernel for this shape"
    assert row.params == 197 and row.throughput_1 is None


def test_host_memory_growth_sees_a_known_allocation():
    grown = host_peak_growth_mb(lambda: torch.ones(64 * 2**18).sum())  # 64 MiB of float32, touched
    if grown is None:
        pytest.skip("this platform does not report the resident set's high-water mark (/proc/self/clear_refs)")
    assert 60 <= grown <= 200


# -- formats ---------------------------------------------------------------------------------------------
DEVICE = DeviceInfo("AMD EPYC 7763, 2 CPUs", "cpu", "2.4.0", "fp32", 2)


def report() -> EfficiencyReport:
    rows = [
        EfficiencyRow("anomalyclip", "AnomalyCLIP", "zero-shot", 160, 149_620_737, 5_557_248, 21.4, 12.3, 80.1, 310.0,
                      1250.5, 3.21, "epoch"),
        EfficiencyRow("winclip", "WinCLIP_plus & co", "4-shot", 240, 208_000_000, 1_400, 40.0, 5.0, 30.0, 100.0,
                      400.0, 0.8, "fit"),
        EfficiencyRow("broken", "Broken", error="RuntimeError: 100% of $memory used"),
    ]
    return EfficiencyReport(rows, DEVICE, 8, 5, 2, True, "8 images of synthetic_aux's test split")


def test_csv_gives_raw_numbers_and_the_device_on_each_row():
    rows = list(csv.DictReader(io.StringIO(to_csv(report()))))
    assert [r["method"] for r in rows] == ["anomalyclip", "winclip", "broken"]
    first = rows[0]
    assert first["params"] == "149620737" and first["img_per_s_bs8"] == "80.1" and first["memory_mib_bs8"] == "1250.5"
    assert {r["device"] for r in rows} == {DEVICE.name} and rows[2]["error"].startswith("RuntimeError")


def test_markdown_and_text_state_the_device_and_the_marks():
    for fmt in ("md", "rich"):
        text = render(report(), fmt)
        flat = " ".join(text.split())
        assert "149.6M" in text and "5.6M" in text and "1.4K" in text and "0.800†" in text
        assert "AMD EPYC 7763" in flat and "torch 2.4.0" in flat and "not results" in flat
        assert "† time of one fit" in flat and "* failed: Broken: RuntimeError" in flat


def test_latex_compiles_and_states_the_device(tmp_path):
    exe = shutil.which("pdflatex")
    assert exe, "pdflatex is missing: bash scripts/install-test-deps"
    tex = to_latex(report())
    assert r"\caption{Efficiency on AMD EPYC 7763, 2 CPUs (CPU, 2 torch threads), torch 2.4.0, fp32" in tex
    assert r"WinCLIP\_plus \& co" in tex and r"100\% of \$memory" in tex
    doc = "\n".join([r"\documentclass{article}", r"\usepackage[a4paper,textwidth=17.5cm,textheight=26cm]{geometry}",
                     r"\usepackage{booktabs}", r"\begin{document}", tex, r"\end{document}", ""])
    (tmp_path / "doc.tex").write_text(doc, encoding="utf-8")
    done = subprocess.run([exe, "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "Overfull \\hbox" not in (tmp_path / "doc.log").read_text(errors="replace")


# -- the command --------------------------------------------------------------------------------------------
def efficiency(*args: str) -> int:
    registry.reset()
    try:
        return main(["efficiency", "--repeats", "1", "--warmup", "1", *args])
    finally:
        registry.reset()


def test_the_command_measures_winclip(tmp_path, data_root, capsys):
    out = tmp_path / "efficiency.csv"
    status = efficiency("--methods", "winclip", "--set", "backbone=zsad-tiny-16-240", "--set", "image_size=64",
                        "--pretrained", "none", "--plugin", "toy_plugins:ToyDataset", "--train-data", "toy",
                        "--data-root", str(data_root), "--batch", "2", "--write", str(out))
    assert status == 0, capsys.readouterr().err
    (row,) = csv.DictReader(io.StringIO(out.read_text()))
    assert row["setting"] == "zero-shot" and row["input_px"] == "64" and row["random_init"] == "True"
    assert int(row["params"]) > 0 and row["trainable"] == "0" and float(row["gflops"]) > 0
    assert float(row["img_per_s_bs1"]) > 0 and float(row["img_per_s_bs2"]) > 0
    assert row["train_seconds"] == "" and row["error"] == ""
    assert row["device"].endswith("CPUs") and row["threads"] == str(torch.get_num_threads())


def test_the_command_measures_toy_plugins_and_names_a_failure(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ZSADBENCH_CACHE", str(tmp_path / "cache"))  # synthetic_aux is generated there
    status = efficiency("--plugin", "toy_plugins:ToyMethod", "--plugin", "toy_plugins:EpochTrainedMethod",
                        "--plugin", "toy_plugins:RaisingInitMethod", "--methods", "toy,epochtrained,raisinginit",
                        "--epochs", "2", "--format", "md")
    captured = capsys.readouterr()
    assert status == 1
    assert "failed raisinginit: RuntimeError: cannot build the model" in " ".join(captured.err.split())
    table = [line.split("|")[1:-1] for line in captured.out.splitlines() if line.startswith("| Toy")]
    measured = {cells[0].strip(): [c.strip() for c in cells] for cells in table}
    assert set(measured) == {"Toy (toy)", "Toy (epochtrained)", "Toy (raisinginit)*"}
    toy, trained = measured["Toy (toy)"], measured["Toy (epochtrained)"]
    assert toy[1] == "zero-shot" and toy[2] == "32 px" and float(toy[6]) > 0 and toy[10] == "–"
    assert trained[2] == "16 px" and trained[4] == "1" and float(trained[10]) > 0  # its gain; seconds per epoch
    assert measured["Toy (raisinginit)*"][3:] == ["–"] * 8
    assert "synthetic_aux" in captured.out


def test_help_loads_no_model_library():
    code = ("import sys\nfrom zsadbench.cli.main import main\ntry:\n    main(['efficiency', '--help'])\n"
            "except SystemExit:\n    pass\n"
            "print('LOADED', *[m for m in ('torch', 'open_clip', 'timm') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**env(), "ZSADBENCH_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert done.stdout.strip().splitlines()[-1] == "LOADED" and "--train-data" in done.stdout
