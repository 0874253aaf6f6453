"""The efficiency table in every format: rich terminal, Markdown, CSV and paper-style LaTeX (like the MPAMA
paper's Table 7: methods as rows; parameters, GFLOPs, throughput, memory and training time as columns).

Pure: an :class:`EfficiencyReport` in, text (or a rich renderable) out; no torch needed.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.table import Table

FORMATS = ("rich", "md", "csv", "latex")
#: file suffixes of ``--write FILE`` and the format each one means
SUFFIXES = {".md": "md", ".csv": "csv", ".tex": "latex", ".txt": "rich"}
FAILED = "*"
PER_FIT = "†"
MISSING = "–"


@dataclass(frozen=True)
class DeviceInfo:
    """Where the numbers were measured: the processor or GPU, torch, precision and CPU threads."""

    name: str
    kind: str
    torch: str
    precision: str
    threads: int

    def describe(self) -> str:
        """One line, e.g. ``AMD EPYC (CPU, 2 torch threads), torch 2.4.0, fp32``."""
        where = "CPU" if self.kind == "cpu" else self.kind.upper()
        return f"{self.name} ({where}, {self.threads} torch threads), torch {self.torch}, {self.precision}"


@dataclass
class EfficiencyRow:
    """One method variant's measurements; ``None`` where a value was not measured (``error`` says why)."""

    key: str
    label: str
    setting: str = ""
    input_size: int | None = None
    params: int | None = None
    trainable: int | None = None
    gflops: float | None = None
    throughput_1: float | None = None
    throughput_n: float | None = None
    memory_1: float | None = None
    memory_n: float | None = None
    train_seconds: float | None = None
    #: what ``train_seconds`` is per: ``"epoch"``, ``"fit"`` (a fit without epochs) or ``""`` (learns nothing)
    train_per: str = ""
    error: str | None = None


@dataclass
class EfficiencyReport:
    """The rows of one ``zsadbench efficiency`` call and how they were measured."""

    rows: list[EfficiencyRow]
    device: DeviceInfo
    batch: int
    repeats: int
    warmup: int
    random_init: bool
    train_data: str
    notes: list[str] = field(default_factory=list)

    @property
    def memory_note(self) -> str:
        """What the Memory columns measure on this device."""
        if self.device.kind == "cuda":
            return ("Memory: peak CUDA memory allocated during one predict call (torch.cuda.max_memory_allocated: "
                    "weights, inputs and activations), MiB.")
        return ("Memory: peak growth of the process's resident set during one predict call (the kernel's "
                "high-water mark, reset just before the call, minus the resident set then, after freed heap memory "
                "is returned to the system), MiB: activations and temporaries; the weights, already resident, "
                "are not included.")


def columns(batch: int) -> list[str]:
    """The column headers of the Markdown, rich and CSV-like layouts."""
    return ["Method", "Setting", "Input", "Params", "Trainable", "GFLOPs", "img/s (bs 1)", f"img/s (bs {batch})",
            "Memory MiB (bs 1)", f"Memory MiB (bs {batch})", "Train s/epoch"]


def count(value: int | None) -> str:
    """A parameter count as papers print it: ``149.6M``, ``5.6K``, ``12``."""
    if value is None:
        return MISSING
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return str(value)


def number(value: float | None) -> str:
    """Three significant digits without an exponent (``0.000312``, ``1.23``, ``1234``)."""
    if value is None:
        return MISSING
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    decimals = max(0, 2 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def _train(row: EfficiencyRow) -> str:
    if row.train_seconds is None:
        return MISSING
    return number(row.train_seconds) + (PER_FIT if row.train_per == "fit" else "")


def cells(row: EfficiencyRow) -> list[str]:
    """A row's displayed values, in :func:`columns` order."""
    return [row.label + (FAILED if row.error else ""), row.setting or MISSING,
            f"{row.input_size} px" if row.input_size else MISSING, count(row.params), count(row.trainable),
            number(row.gflops), number(row.throughput_1), number(row.throughput_n), number(row.memory_1),
            number(row.memory_n), _train(row)]


def notes(report: EfficiencyReport) -> list[str]:
    """The footnotes: device, weights, and what each column measures (only the marks the table shows)."""
    lines = [f"Device: {report.device.describe()}."]
    if report.random_init:
        lines.append("Random weights (--pretrained none), the methods' demo configurations: these numbers measure "
                     "this code's cost of those configurations; they are not results.")
    lines += [
        "Params: elements of every distinct parameter of the torch modules the method holds after fit (frozen "
        "backbone, text tower and learned parts); buffers and memory banks are not parameters. Trainable: elements "
        "of the floating-point tensors of the method's state_dict() after fit, the learned state a run caches and "
        "reloads: learned prompts and heads, and for few-shot memory methods the features they keep of the k "
        "support images.",
        "GFLOPs: per image, torch.utils.flop_counter.FlopCounterMode around one predict call of batch 1 after the "
        "warm-up calls, at the method's input size (Input); 2 FLOPs per multiply-add. Not counted: ops without a "
        "FLOP formula in torch (elementwise, softmax, normalisation, interpolation, torch.cdist and other distance "
        "searches) and work outside torch (NumPy, SciPy, Numba).",
        f"img/s: batch size / median time of {report.repeats} predict calls on random images in [0,1] at the input "
        f"size, after {report.warmup} warm-up call{'' if report.warmup == 1 else 's'}"
        + ("; CUDA synchronised around each call." if report.device.kind == "cuda" else "."),
        report.memory_note,
        f"Train s/epoch: time of fit / its epochs, on {report.train_data}; the frozen backbone runs in every epoch "
        "(no feature cache). " + MISSING + ": the method learns nothing.",
    ]
    if any(r.train_per == "fit" for r in report.rows):
        lines.append(f"{PER_FIT} time of one fit: the method has no epochs.")
    lines += report.notes
    lines += [f"{FAILED} failed: {r.label}: {r.error}" for r in report.rows if r.error]
    return lines


# -- Markdown and CSV ---------------------------------------------------------------------------------------
def _md(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(report: EfficiencyReport) -> str:
    """A GitHub Markdown table with its footnotes below."""
    head = columns(report.batch)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    lines += ["| " + " | ".join(_md(c) for c in cells(row)) + " |" for row in report.rows]
    return "\n".join(lines + [""] + [f"- {_md(n)}" for n in notes(report)]) + "\n"


def to_csv(report: EfficiencyReport) -> str:
    """One line per method with raw numbers (counts, GFLOPs, img/s, MiB, seconds) and the device on each row."""
    n = report.batch
    head = ["method", "label", "setting", "input_px", "params", "trainable", "gflops", "img_per_s_bs1",
            f"img_per_s_bs{n}", "memory_mib_bs1", f"memory_mib_bs{n}", "train_seconds", "train_per", "device",
            "torch", "precision", "threads", "random_init", "error"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(head)
    d = report.device
    for r in report.rows:
        writer.writerow([r.key, r.label, r.setting, r.input_size, r.params, r.trainable, r.gflops, r.throughput_1,
                         r.throughput_n, r.memory_1, r.memory_n, r.train_seconds, r.train_per, d.name, d.torch,
                         d.precision, d.threads, report.random_init, r.error or ""])
    return out.getvalue()


# -- rich -------------------------------------------------------------------------------------------------
def to_rich(report: EfficiencyReport) -> Table:
    """A rich table with the footnotes as its caption."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="Efficiency", caption="\n".join(escape(n) for n in notes(report)), caption_justify="left")
    for k, head in enumerate(columns(report.batch)):
        table.add_column(head, justify="left" if k < 2 else "right", no_wrap=k > 1)
    for row in report.rows:
        values = [escape(c) for c in cells(row)]
        table.add_row(*values, style="red" if row.error else None)
    return table


def to_text(report: EfficiencyReport, width: int = 160) -> str:
    """The rich table as plain text (for ``--write FILE.txt``)."""
    from rich.console import Console

    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(to_rich(report))
    return console.file.getvalue()


# -- LaTeX ------------------------------------------------------------------------------------------------
_LATEX = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "–": "--", "×": r"$\times$", PER_FIT: r"$^{\dagger}$",
    FAILED: r"$^{*}$",
}


def escape_latex(text: str) -> str:
    """Plain text with LaTeX's special characters (and the table's marks) escaped."""
    return "".join(_LATEX.get(ch, ch) for ch in text)


def to_latex(report: EfficiencyReport, label: str = "tab:efficiency") -> str:
    """A booktabs ``table`` float like the MPAMA paper's Table 7, the device in its caption, notes below.

    Needs ``\\usepackage{booktabs}``.
    """
    n = report.batch
    caption = f"Efficiency on {report.device.describe()}, at batch sizes 1 and {n}."
    if report.random_init:
        caption += " Random weights: not results."
    lines = [
        "% requires \\usepackage{booktabs}",
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{escape_latex(caption)}}}",
        rf"\label{{{label}}}",
        r"\small",
        r"\setlength{\tabcolsep}{4pt}",
        r"\begin{tabular}{llrrrrrrrrr}",
        r"\toprule",
        r" & & & \multicolumn{2}{c}{Params} & & \multicolumn{2}{c}{img/s} & \multicolumn{2}{c}{Memory (MiB)}"
        r" & Train \\",
        r"\cmidrule(lr){4-5}\cmidrule(lr){7-8}\cmidrule(lr){9-10}",
        rf"Method & Setting & Input & Total & Trainable & GFLOPs & bs 1 & bs {n} & bs 1 & bs {n} & s/epoch \\",
        r"\midrule",
    ]
    lines += [" & ".join(escape_latex(c) for c in cells(row)) + r" \\" for row in report.rows]
    lines += [r"\bottomrule", r"\end{tabular}", r"\par\smallskip", r"\begin{minipage}{\linewidth}\footnotesize"]
    lines += [escape_latex(note) + r"\par" for note in notes(report)]
    lines += [r"\end{minipage}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def render(report: EfficiencyReport, fmt: str) -> str:
    """The report as text in ``fmt`` (one of :data:`FORMATS`; ``rich`` gives the plain-text table)."""
    renderers = {"rich": to_text, "md": to_markdown, "csv": to_csv, "latex": to_latex}
    return renderers[fmt](report)
