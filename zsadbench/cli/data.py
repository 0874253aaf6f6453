"""``zsadbench data check`` and ``zsadbench data export-meta``.

``check`` walks each dataset copy and prints, per category, the images found against the counts a complete
copy has, then every problem with the file at fault and the fix. Without ``--datasets`` it checks every dataset
of the protocol (and Real-IAD) that is present under the data root and lists the absent ones; with
``--datasets`` an absent dataset is a failure. The exit status is 1 when a checked dataset is unusable.
``export-meta`` writes the AnomalyCLIP ``meta.json`` of one dataset (by default into its folder).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from zsadbench.errors import ConfigError

DEFAULT_CHECKED = "all,realiad"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``check`` and ``export-meta`` sub-commands to the ``zsadbench data`` parser."""
    sub = parser.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    check = sub.add_parser(
        "check", help="check dataset copies: counts, masks, unreadable files",
        description="Walk each dataset folder and report counts found against counts expected, missing or "
                    "unpaired masks, unreadable files and wrong folder names, with the fix for each.")
    check.add_argument("--datasets", default=None,
                       help="names, comma lists or groups (all, industrial, medical); default: every dataset "
                            "present under the data root")
    check.add_argument("--data-root", default=None, help="folder holding one sub-folder per dataset")
    check.add_argument("--deep", action="store_true",
                       help="decode every image and mask (slow) instead of reading file headers only")
    check.add_argument("--max-problems", type=int, default=20, metavar="N",
                       help="problems listed per dataset (default 20; 0 lists all)")
    export = sub.add_parser(
        "export-meta", help="write the AnomalyCLIP meta.json of a dataset",
        description="Write the AnomalyCLIP/AdaCLIP meta.json describing a dataset copy, so other code bases "
                    "can read the same tree.")
    export.add_argument("--dataset", "--datasets", "-d", dest="dataset", required=True,
                        help="dataset name, e.g. mvtec")
    export.add_argument("--data-root", default=None, help="folder holding one sub-folder per dataset")
    export.add_argument("--output", "-o", default=None,
                        help="file (or folder) to write; default: meta.json in the dataset's folder")
    export.add_argument("--force", action="store_true", help="overwrite an existing file")


def execute(args: argparse.Namespace) -> int:
    """Run the selected ``data`` sub-command; returns the exit status."""
    if args.data_command == "check":
        return _check(args, Console(soft_wrap=True))
    if args.data_command == "export-meta":
        return _export(args, Console(soft_wrap=True))
    raise ConfigError(f"unknown data command {args.data_command!r}; use check or export-meta")


def _check(args: argparse.Namespace, console: Console) -> int:
    from zsadbench.datasets.check import check_dataset
    from zsadbench.datasets.groups import expand_datasets
    from zsadbench.datasets.roots import resolve_root

    explicit = args.datasets is not None
    names = expand_datasets(args.datasets if explicit else DEFAULT_CHECKED)
    absent, failed, checked = [], [], 0
    for name in names:
        root = resolve_root(name, args.data_root)
        if not explicit and not root.exists():
            absent.append(f"{name} ({root})")
            continue
        with console.status(f"checking {name} in {root} ..."):
            report = check_dataset(name, root, deep=args.deep)
        checked += 1
        _print_report(console, report, args.max_problems)
        if not report.usable:
            failed.append(name)
    if absent:
        console.print(f"[dim]not found, not checked: {escape(', '.join(absent))}[/dim]")
    if not checked:
        console.print("[red]no dataset found[/red]: pass --data-root DIR (one sub-folder per dataset) or --datasets")
        return 1
    if failed:
        console.print(f"[red]unusable: {', '.join(failed)}[/red] (fix the errors above, then check again)")
        return 1
    console.print(f"[green]{checked} dataset(s) usable[/green]")
    return 0


def _fmt(found: int, expected: int | None) -> str:
    if expected is None:
        return str(found)
    return f"{found}/{expected}" if found == expected else f"[yellow]{found}/{expected}[/yellow]"


def _print_report(console: Console, report, max_problems: int) -> None:
    state = "[green]usable[/green]" if report.usable else "[red]UNUSABLE[/red]"
    layout = f", layout {report.layout}" if report.layout else ""
    title = f"[bold]{escape(report.title)}[/bold] ({report.dataset})"
    console.print(f"\n{title} {escape(str(report.root))}{layout}: {state}")
    if report.categories:
        table = Table(show_edge=False, pad_edge=False)
        for column in ("category", "train", "test normal", "test anomalous", "masks"):
            table.add_column(column, justify="left" if column == "category" else "right")
        for c in report.categories:
            expected = c.expected or (None, None)
            table.add_row(escape(c.name), str(c.train), _fmt(c.test_normal, expected[0]),
                          _fmt(c.test_anomalous, expected[1]), str(c.masks))
        total = report.totals
        expected = report.expected or (None, None)
        table.add_row("[bold]total[/bold]", str(sum(c.train for c in report.categories)),
                      _fmt(total[0], expected[0]), _fmt(total[1], expected[1]),
                      str(sum(c.masks for c in report.categories)))
        console.print(table)
    problems = report.errors + report.warnings
    shown = problems if max_problems <= 0 else problems[:max_problems]
    for problem in shown:
        colour = "red" if problem.severity == "error" else "yellow"
        console.print(f"  [{colour}]{problem.severity}[/{colour}] {escape(str(problem))}")
    if len(shown) < len(problems):
        console.print(f"  ... and {len(problems) - len(shown)} more ({len(report.errors)} errors, "
                      f"{len(report.warnings)} warnings in all; --max-problems 0 lists them all)")


def _export(args: argparse.Namespace, console: Console) -> int:
    from zsadbench import registry
    from zsadbench.datasets.export import export_meta
    from zsadbench.datasets.roots import resolve_root

    cls = registry.datasets().get(args.dataset)
    adapter = cls(resolve_root(args.dataset, args.data_root))
    output = Path(args.output) if args.output else adapter.root / "meta.json"
    if output.is_dir():
        output = output / "meta.json"
    if output.exists() and not args.force:
        raise ConfigError(f"{output} already exists; pass --force to overwrite it, or --output to write elsewhere")
    export_meta(adapter, output)
    train = sum(1 for s in adapter.samples if s.split == "train")
    console.print(f"wrote {escape(str(output))}: {len(adapter.samples) - train} test and {train} train records, "
                  f"{len(adapter.categories())} categories")
    return 0
