"""``zsadbench rank``: rank methods across datasets (Friedman, then Nemenyi or Wilcoxon–Holm) and draw the
critical-difference diagram."""
from __future__ import annotations

import argparse
from pathlib import Path

from .stats_common import add_output_arguments, add_selection_arguments, emit, p_value, percent



def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="the results folder of a run")
    parser.add_argument("--metric", default="image_auroc", help="the metric ranked (default: image_auroc)")
    parser.add_argument("--test", choices=("nemenyi", "wilcoxon-holm"), default="nemenyi",
                        help="post-hoc test of every pair (default: nemenyi)")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level (default: 0.05)")
    parser.add_argument("--plot", type=Path, default=None, metavar="PATH",
                        help="write the critical-difference diagram as PATH.png and PATH.pdf")
    add_selection_arguments(parser)
    add_output_arguments(parser)


def execute(args: argparse.Namespace) -> int:
    import numpy as np
    from rich.console import Console

    from ..errors import ConfigError
    from ..metrics import METRICS
    from ..stats.ranking import rank_test
    from ..stats.results import finished_cells, stored_dataset_values
    from .stats_common import select_variants

    if args.metric not in METRICS:
        raise ConfigError(f"--metric: unknown metric {args.metric!r}; known: {', '.join(METRICS)}")
    spec = METRICS[args.metric]
    found = select_variants(finished_cells(args.out), args.methods, args.datasets)
    console = Console(stderr=True)
    values = _complete(stored_dataset_values(found, args.metric), found, spec.label, console)
    result = rank_test(values.to_numpy(), list(values.columns), list(values.index), args.test, args.alpha,
                       spec.higher_is_better)
    order = np.argsort(result.mean_ranks, kind="stable")
    means = values.mean(axis=0)
    rows = [[str(n + 1), result.methods[i], f"{result.mean_ranks[i]:.3f}", percent(means.iloc[i], args.digits)]
            for n, i in enumerate(order)]
    f = result.friedman
    notes = [f"{len(result.datasets)} datasets: {', '.join(result.datasets)}",
             f"Friedman chi2 = {f.chi2:.3f} (p = {p_value(f.p_value)}), Iman-Davenport F = {f.f:.3f} "
             f"(p = {p_value(f.f_p_value)})"]
    if result.cd is not None:
        notes.append(f"Nemenyi critical difference at alpha = {args.alpha}: {result.cd:.3f}")
    records = [{"method": result.methods[i], "mean_rank": result.mean_ranks[i], "mean_value": means.iloc[i],
                "datasets": len(result.datasets), "friedman_chi2": f.chi2, "friedman_p": f.p_value}
               for i in order]
    pairs, pair_records = [], []
    significant = result.significant
    for x in range(len(order)):
        for y in range(x + 1, len(order)):
            i, j = order[x], order[y]
            gap = result.mean_ranks[j] - result.mean_ranks[i]
            pairs.append([result.methods[i], result.methods[j], f"{gap:.3f}", p_value(result.p_values[i, j]),
                          "yes" if significant[i, j] else "no"])
            pair_records.append({"better": result.methods[i], "worse": result.methods[j], "rank_difference": gap,
                                 "p_value": result.p_values[i, j], "significant": bool(significant[i, j])})
    test = "Nemenyi" if args.test == "nemenyi" else "Wilcoxon signed-rank, Holm-adjusted"
    if args.format == "csv":
        emit("", [], [], [], "csv", records)
        print()
        emit("", [], [], [], "csv", pair_records)
    else:
        emit(f"Average ranks by {spec.label} (1 = best)", ["#", "Method", "mean rank", f"mean {spec.label}"], rows,
             notes, args.format, text_columns=2)
        emit(f"Pairs ({test}, alpha = {args.alpha})", ["better", "worse", "rank gap", "p", "significant"], pairs, [],
             args.format, text_columns=2)
    if args.plot is not None:
        from ..stats.cd_diagram import draw_cd_diagram

        diagram = draw_cd_diagram(result.methods, result.mean_ranks, significant, args.plot, cd=result.cd,
                                  title=f"{spec.label}, {test}, alpha = {args.alpha}")
        for path in diagram.paths:
            console.print(f"wrote {path}", highlight=False)
    return 0


def _complete(values, found: dict, label: str, console):
    """The ``[dataset x variant]`` values that can be ranked: real datasets only when there are some (as the
    tables' Mean), variants with a value, datasets where every variant has one; a line names each left out."""
    from ..errors import ConfigError

    domains = {c.dataset: c.domain for group in found.values() for c in group}
    real = [d for d in values.index if domains[d] != "synthetic"]
    if real and len(real) < len(values.index):
        console.print(f"left out the generated sets ({', '.join(d for d in values.index if d not in real)}), as the "
                      "tables' Mean does", highlight=False)
        values = values.loc[real]
    empty = [v for v in values.columns if values[v].isna().all()]
    if empty:
        console.print(f"left out (no {label} on any dataset): {'; '.join(empty)}", highlight=False)
        values = values.drop(columns=empty)
    incomplete = values.index[values.isna().any(axis=1)].tolist()
    if incomplete:
        console.print(f"left out datasets where some method has no {label}: {', '.join(incomplete)}", highlight=False)
        values = values.dropna()
    if values.shape[1] < 3 or values.shape[0] < 2:
        raise ConfigError(f"ranking needs at least 3 methods with {label} on at least 2 common datasets; these results "
                          f"have {values.shape[1]} on {values.shape[0]}: run more methods or datasets, or compare two "
                          "methods with `zsadbench compare`")
    return values
