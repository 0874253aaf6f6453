"""``zsadbench table``: render the results store of an output folder as a leaderboard."""
from __future__ import annotations

import argparse
from pathlib import Path

from .options import table_console, name_list, positive_int

FORMATS = ("rich", "md", "csv", "latex")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("runs/default"), metavar="DIR",
                        help="output folder of `zsadbench run` (default: runs/default)")
    parser.add_argument("--format", "-f", choices=FORMATS, default="rich", help="output format (default: rich terminal table)")
    parser.add_argument("--per-category", action=argparse.BooleanOptionalAction, default=None,
                        help="one row per category plus dataset means (default: on when the results hold one dataset)")
    parser.add_argument("--metrics", type=name_list, default=None, metavar="NAME[,NAME]",
                        help="metrics to show, e.g. image_auroc,pixel_auroc,aupro (default: every metric with a value)")
    parser.add_argument("--level", choices=("image", "pixel"), default=None, help="only image- or pixel-level metrics")
    parser.add_argument("--methods", type=name_list, default=None, metavar="NAME[,NAME]",
                        help="only these methods (names as in `zsadbench list`, or variant labels such as "
                             "'MPAMA [experts=3]')")
    parser.add_argument("--datasets", type=name_list, default=None, metavar="NAME[,NAME]",
                        help="only these datasets (their names, e.g. mvtec,visa)")
    parser.add_argument("--variants", type=name_list, default=None, metavar="LABEL[,LABEL]",
                        help="only these columns, by the labels the table shows after --methods and --datasets "
                             "(e.g. 'WinCLIP (2-shot)' or 'MPAMA [experts=3]'); they keep those labels")
    parser.add_argument("--digits", type=positive_int, default=1, help="decimals of the percentages (default: 1)")
    parser.add_argument("--reported", type=Path, action="append", default=[], metavar="CSV",
                        help="CSV of paper-reported numbers to show beside ours, marked † (repeatable)")
    parser.add_argument("--layout", choices=("standard", "paper"), default="standard",
                        help="paper: LaTeX in the MPAMA paper's layout (methods as columns, (AUROC, AP) and "
                             "(AUROC, PRO) pairs, best red, second blue); prints the main table(s), and the "
                             "per-category tables with --per-category; --write DIR writes every table")
    parser.add_argument("--pro", choices=("aupro_anomalyclip", "aupro"), default="aupro_anomalyclip",
                        help="the PRO of the paper layout's pixel pairs (default: AnomalyCLIP's, as the papers report)")
    parser.add_argument("--delta", action="store_true",
                        help="paper layout: a Δ column after each of our columns with a reported counterpart")
    parser.add_argument("--by-aux", action="store_true",
                        help="a trained zero-shot method gets one column per auxiliary set (default: one per protocol)")
    parser.add_argument("--text-width", type=_centimetres, default=17.5, metavar="CM",
                        help="LaTeX: the text width the tables must fit, in cm (default: 17.5); a wider standard "
                             "table is split by metric group, a paper-layout one scaled with a note")
    parser.add_argument("--caption", default=None, help="LaTeX caption (wraps the tabular in a table environment)")
    parser.add_argument("--label", default=None, help="LaTeX label")
    parser.add_argument("--csv-layout", choices=("wide", "long"), default="wide",
                        help="CSV as the table (wide) or one row per variant, dataset, category and metric (long)")
    parser.add_argument("--write", type=Path, default=None, nargs="?", const=Path("leaderboards"), metavar="DIR",
                        help="also write Markdown, CSV and LaTeX files into DIR (default DIR: leaderboards/)")
    parser.add_argument("--name", default=None, help="base name of the written files (default: the output folder's name)")
    add_ci_arguments(parser, "show each number's bootstrap confidence interval: test images resampled (stratified "
                             "by label) with the exact metric kernels, replicates kept in OUT/stats (image and pixel "
                             "AUROC, AP, F1-max; AUPRO only when named in --metrics)", style=True)


def add_ci_arguments(parser: argparse.ArgumentParser, ci_help: str, *, style: bool = False) -> None:
    """``--ci`` and the options of its bootstrap (shared by ``table``, ``export`` and ``leaderboard``)."""
    parser.add_argument("--ci", action="store_true", help=ci_help)
    parser.add_argument("--ci-level", type=_level, default=0.95, metavar="LEVEL",
                        help="confidence level of the intervals (default: 0.95)")
    if style:
        parser.add_argument("--ci-style", choices=("pm", "range"), default="pm",
                            help="show an interval as (±half-width) or [lo, hi] (default: pm)")
    parser.add_argument("--resamples", type=positive_int, default=1000,
                        help="bootstrap resamples of the test images (default: 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap draws (default: 0)")


def select(frame, methods: tuple[str, ...] | None, datasets: tuple[str, ...] | None):
    """The rows of ``frame`` of the chosen methods (name or variant label) and datasets; a name that matches
    nothing is an error listing what the results hold."""
    for chosen, columns, option in ((methods, ("method", "method_label"), "--methods"), (datasets, ("dataset",), "--datasets")):
        if not chosen:
            continue
        _check(option, chosen, sorted({str(v) for c in columns for v in frame[c].unique()}))
        frame = frame[frame[list(columns)].isin(chosen).any(axis=1)]
    return frame


def _check(option: str, chosen: tuple[str, ...], held: list[str]) -> None:
    from ..errors import ConfigError

    unknown = [name for name in chosen if name not in held]
    if unknown:
        raise ConfigError(f"{option}: {unknown[0]!r} is not in these results; they hold {', '.join(held)}")


def _level(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a confidence level such as 0.95, got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a confidence level strictly between 0 and 1 (e.g. 0.95), "
                                         f"got {text!r}")
    return value


def _centimetres(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a width in cm such as 17.5, got {text!r}") from None
    if not 1.0 <= value <= 1000.0:
        raise argparse.ArgumentTypeError(f"expected a width from 1 to 1000 cm, got {text!r}")
    return value


def show(out: Path) -> int:
    """Print what ``zsadbench table --out OUT`` prints (the end-of-run table of ``zsadbench run``)."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return execute(parser.parse_args(["--out", str(out)]))


def execute(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..errors import ConfigError
    from ..metrics import METRICS
    from ..tables import expected_categories, load_reported, make_table, results_frame, variant_labels, write_tables

    for name in args.metrics or ():
        if name not in METRICS:
            raise ConfigError(f"--metrics: unknown metric {name!r}; known: {', '.join(METRICS)}")
    if args.write is not None and args.write.exists() and not args.write.is_dir():
        raise ConfigError(f"--write {args.write}: that is a file; --write takes a folder the tables are written into "
                          "(created if missing)")
    everything = results_frame(args.out)
    frame = select(everything, args.methods, args.datasets)
    if args.variants:
        _check("--variants", args.variants, list(dict.fromkeys(variant_labels(frame, by_aux=args.by_aux))))
    _check_metrics(frame, args.metrics)
    categories = expected_categories(everything)  # what a complete Mean covers, whatever is selected
    intervals = _intervals(args, frame) if args.ci else None
    if args.layout == "paper":
        return _paper(args, frame, categories, intervals)
    per_category = args.per_category if args.per_category is not None else frame["dataset"].nunique() == 1
    options = dict(
        per_category=per_category,
        metrics=list(args.metrics) if args.metrics else None,
        level=args.level,
        digits=args.digits,
        reported=load_reported(args.reported) if args.reported else None,
        caption=args.caption,
        label=args.label,
        csv_layout=args.csv_layout,
        by_aux=args.by_aux,
        categories=categories,
        variants=args.variants,
        text_width_cm=args.text_width,
        intervals=intervals,
        ci_style=args.ci_style,
    )
    rendered = make_table(frame, args.format, **options)
    if args.format == "rich":
        table_console().print(rendered)
    else:
        print(rendered)
    if args.write is not None:
        written = write_tables(frame, args.write, args.name or args.out.resolve().name, **options)
        for path in written:
            Console(stderr=True).print(f"wrote {path}", highlight=False)
    return 0


def _check_metrics(frame, metrics: tuple[str, ...] | None) -> None:
    """A chosen metric with no value in the selected results is an error listing those with values."""
    import pandas as pd

    from ..errors import ConfigError
    from ..metrics import METRICS

    held = [m for m in METRICS if m in frame and pd.to_numeric(frame[m], errors="coerce").notna().any()]
    for name in metrics or ():
        if name not in held:
            raise ConfigError(f"--metrics: {name!r} has no value in these results; they hold {', '.join(held)}")


def _intervals(args: argparse.Namespace, frame):
    """The intervals of the numbers the table shows, computed (with a progress bar) or read from the cache,
    or from the results file of a merged folder; the notes go to stderr."""
    from rich.console import Console

    from ..errors import ConfigError
    from ..metrics import METRICS
    from ..share.intervals import folder_intervals
    from ..tables.intervals import interval_metrics
    from .stats_common import bootstrap_progress

    shown = list(args.metrics) if args.metrics else [m for m in METRICS if m in frame and frame[m].notna().any()]
    if args.layout == "paper":
        shown = [m for m in shown if m in ("image_auroc", "image_ap", "pixel_auroc", args.pro)]
    shown = [m for m in shown if args.level is None or METRICS[m].level == args.level]
    metrics = interval_metrics(shown, named=bool(args.metrics))
    if not metrics:
        raise ConfigError(f"--ci: none of the metrics shown ({', '.join(shown) or 'none'}) has a bootstrap; show "
                          "an image or pixel AUROC, AP or F1-max (or name aupro in --metrics)")
    ok = int((frame["status"].astype(str) == "ok").sum())
    with bootstrap_progress(ok) as progress:
        intervals, _, notes = folder_intervals(args.out, frame, metrics, resamples=args.resamples, seed=args.seed,
                                               level=args.ci_level, by_aux=args.by_aux, progress=progress)
    console = Console(stderr=True)
    for note in notes:
        console.print(note, highlight=False, markup=False, soft_wrap=True)
    return intervals


def _paper(args: argparse.Namespace, frame, categories: dict[str, tuple[str, ...]], intervals) -> int:
    from rich.console import Console

    from ..store.files import atomic_write_bytes
    from ..tables import load_reported, make_paper_tables

    tables = make_paper_tables(
        frame, reported=load_reported(args.reported) if args.reported else None, pro=args.pro, delta=args.delta,
        per_category=True, digits=args.digits, caption=args.caption, label=args.label, by_aux=args.by_aux,
        categories=categories, variants=args.variants, text_width_cm=args.text_width, intervals=intervals,
        ci_style=args.ci_style,
    )
    shown = [t for name, t in tables.items() if name.startswith("main") or (args.per_category and "-" in name
                                                                             and not name.startswith("ablation"))]
    print("\n".join(shown), end="")
    if args.write is not None:
        for name, text in tables.items():
            path = args.write / f"{args.name or args.out.resolve().name}-{name}.tex"
            atomic_write_bytes(path, text.encode("utf-8"))
            Console(stderr=True).print(f"wrote {path}", highlight=False)
    return 0
