"""``zsadbench efficiency``: parameters, GFLOPs, throughput, peak memory and training time of methods on this
device, as a table like the MPAMA paper's Table 7."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from .options import key_value, load_plugins, name_list, positive_int

if TYPE_CHECKING:
    from rich.console import Console

    from ..efficiency.measure import Settings
    from ..efficiency.table import EfficiencyRow
    from ..runner.plan import RunConfig
    from ..runner.planner import MethodSpec
    from zsadbench.datasets.base import DatasetAdapter


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--methods", "--method", "-m", dest="methods", type=name_list, required=True,
                        metavar="NAME[,NAME]", help="methods to measure, built as `zsadbench run` builds them")
    parser.add_argument("--pretrained", default="default", metavar="TAG|PATH|none",
                        help="backbone weights as for `zsadbench run`; 'none' = random weights and each method's demo "
                             "configuration (the table says so)")
    parser.add_argument("--set", dest="overrides", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                        help="override a method option, as for `zsadbench run` (a comma list makes one row per value)")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE:CLASS",
                        help="load a method or dataset plugin class explicitly (repeatable)")
    parser.add_argument("--device", default="auto", metavar="DEVICE",
                        help="torch device: auto (cuda if available), cpu, cuda, cuda:1 (default: auto)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="precision of the frozen backbones' forward passes (default: fp32)")
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N",
                        help="torch CPU threads, pinned while measuring (default: torch's default)")
    parser.add_argument("--batch", type=positive_int, default=None, metavar="N",
                        help="the larger batch size measured besides 1 (default: 8 on a CPU, 32 on CUDA)")
    parser.add_argument("--repeats", type=positive_int, default=5, metavar="N",
                        help="timed predict calls per batch size; the table gives their median (default: 5)")
    parser.add_argument("--warmup", type=int, default=2, metavar="N",
                        help="untimed predict calls before the timed ones (default: 2)")
    parser.add_argument("--shots", type=int, default=None, metavar="K",
                        help="measure the methods that take K-shot (0: zero-shot) at K; the others, and all without "
                             "--shots, in their own setting (zero-shot where they have it, else their smallest k)")
    parser.add_argument("--epochs", type=positive_int, default=1, metavar="N",
                        help="epochs of the training measurement: every epoch option not given with --set is set "
                             "to N (default: 1); Train s/epoch divides the fit time by the epochs")
    parser.add_argument("--train-data", default="synthetic_aux", metavar="DATASET",
                        help="what fit reads: zero-shot training on its test split, few-shot support from the "
                             "normal training images of its first category (default: synthetic_aux, generated)")
    parser.add_argument("--train-images", type=int, default=8, metavar="N",
                        help="images of zero-shot training, spread over the test split (0: all; default: 8)")
    parser.add_argument("--data-root", type=Path, default=None, metavar="DIR",
                        help="folder holding --train-data's folder (default: as for `zsadbench run`)")
    parser.add_argument("--format", choices=("rich", "md", "csv", "latex"), default=None,
                        help="table format (default: from --write's suffix .md/.csv/.tex/.txt, else rich)")
    parser.add_argument("--write", type=Path, default=None, metavar="FILE",
                        help="also write the table to FILE")


def _format(args: argparse.Namespace) -> str:
    from ..efficiency.table import SUFFIXES
    from ..errors import ConfigError

    if args.format:
        return args.format
    if args.write is None:
        return "rich"
    fmt = SUFFIXES.get(args.write.suffix.lower())
    if fmt is None:
        raise ConfigError(f"--write {args.write}: cannot tell the format from the suffix {args.write.suffix!r}; "
                          f"name a {', '.join(SUFFIXES)} file or pass --format")
    return fmt


def _check(args: argparse.Namespace) -> None:
    from ..errors import ConfigError

    if args.warmup < 0:
        raise ConfigError(f"--warmup must be 0 or more, got {args.warmup}")
    if args.train_images < 0:
        raise ConfigError(f"--train-images must be 0 (all) or more, got {args.train_images}")
    if args.write is not None and args.write.is_dir():
        raise ConfigError(f"--write {args.write}: that is a folder; --write takes a file name such as efficiency.tex")


def execute(args: argparse.Namespace) -> int:
    _check(args)
    fmt = _format(args)
    from rich.console import Console
    from rich.markup import escape

    from .. import registry
    from ..efficiency.measure import Settings, describe_device, method_specs, shots_for, training_adapter
    from ..efficiency.table import EfficiencyReport, render, to_rich
    from ..method import is_random_weights
    from ..runner import RunConfig
    from ..store.files import atomic_write_bytes
    from .options import table_console
    from .options import resolve_device

    console = Console(stderr=True)
    load_plugins(args.plugin)
    for name in args.methods:
        registry.methods().get(name)
    device = resolve_device(args.device)
    cuda = device.startswith("cuda")
    batch = args.batch or (32 if cuda else 8)
    config = RunConfig(methods=args.methods, datasets=(args.train_data,), pretrained=args.pretrained,
                       data_root=args.data_root, device=device, batch_size=batch, overrides=tuple(args.overrides),
                       precision=args.precision, threads=args.threads)
    specs, notes = method_specs(config)
    notes += [note for spec in specs.values() if (note := shots_for(spec.cls, args.shots)[1])]
    for note in notes:
        console.print(f"[yellow]note[/]: {escape(note)}", highlight=False)
    adapter = training_adapter(args.train_data, args.data_root)
    settings = Settings(batch=batch, repeats=args.repeats, warmup=args.warmup, shots=args.shots, epochs=args.epochs,
                        train_images=args.train_images)
    rows = _measure_all(config, specs, settings, adapter, console)
    labels = [row.label for row in rows]
    for row in rows:
        if labels.count(row.label) > 1:  # variants of one class, or plugins sharing a label
            row.label = f"{row.label} ({row.key})"
    images = f"{args.train_images} images" if args.train_images else "all test images"
    report = EfficiencyReport(
        rows, describe_device(device, args.precision, config.threads), batch, args.repeats, args.warmup,
        any(is_random_weights(spec.weights.tag) for spec in specs.values()),
        f"{images} of {args.train_data}'s test split (zero-shot training) or the first k normal training images of "
        f"its category {adapter.categories()[0]} (few-shot)",
    )
    if fmt == "rich":
        table_console().print(to_rich(report))
    else:
        print(render(report, fmt), end="")
    if args.write is not None:
        atomic_write_bytes(args.write, render(report, fmt).encode("utf-8"))
        console.print(f"wrote {escape(str(args.write))}", highlight=False)
    return 1 if any(row.error for row in rows) else 0


def _measure_all(config: RunConfig, specs: dict[str, MethodSpec], settings: Settings, adapter: DatasetAdapter,
                 console: Console) -> list[EfficiencyRow]:
    """Measure every method variant under a progress bar; a failure is one line and a failed row."""
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..efficiency.measure import measure_method

    rows = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("measuring", total=len(specs))
        for spec in specs.values():
            row = measure_method(config, spec, settings, adapter,
                                 lambda message: progress.update(task, description=escape(message)))
            if row.error:
                console.print(f"[red]failed[/] {escape(spec.key)}: {escape(row.error)}", highlight=False,
                              soft_wrap=True)
            elif not console.is_terminal:  # a pipe or log file shows no live bar
                console.print(f"measured {escape(spec.key)} ({len(rows) + 1} of {len(specs)})", highlight=False)
            rows.append(row)
            progress.advance(task)
    return rows
