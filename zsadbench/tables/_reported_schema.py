"""The schema of a reported-numbers CSV, and the resolution of its method, dataset and category names.

Columns (``REQUIRED`` must be present, ``OPTIONAL`` may be):

=============  =====================================================================================================
method         a registered method (built-in or plugin) or a known baseline from ``known_methods.csv``
dataset        a registered dataset; empty only for a cost metric that no dataset is named for
category       ``mean`` (the dataset score the paper prints) or a category of the dataset, as its adapter spells it
shots          0 for zero-shot, k for k-shot, ``full`` for the full training set
metric         a name from ``zsadbench.metrics.METRICS`` (value in percent, 0-100) or a cost metric (``COSTS``)
value          the number as printed
paper, table   the source and the table (or section) it is printed in
method_label   the display name (default: our label for ``method``, else the known baseline's label)
variant        ``key=value[; key=value]``: the configuration of an ablation row; empty for the main configuration
setting        how the number was measured (protocol, training set, backbone) as the source states it
note           anything else worth knowing about the number (a mark in the source, a renamed column)
=============  =====================================================================================================
"""
from __future__ import annotations

import csv
import math
import re
from functools import cache
from pathlib import Path

from ..errors import DataError

REQUIRED = ("method", "dataset", "category", "shots", "metric", "value", "paper", "table")
OPTIONAL = ("method_label", "variant", "setting", "note")
#: cost metrics papers print beside their accuracy, with their unit
COSTS = {"inference_time_s": "s", "inference_time_ms": "ms", "fps": "images/s", "peak_gpu_memory_mb": "MB"}
FULL_SHOT = -1
_VARIANT = re.compile(r"^[A-Za-z_][\w.]*=[^;=]+(; [A-Za-z_][\w.]*=[^;=]+)*$")


@cache
def known_methods() -> dict[str, tuple[str, str]]:
    """Baselines that papers compare with, by name: (label, reference)."""
    with open(Path(__file__).with_name("known_methods.csv"), encoding="utf-8", newline="") as handle:
        return {r["method"]: (r["label"], r["reference"]) for r in csv.DictReader(handle)}


def method_label(method: str) -> str:
    """The display name of a known baseline ("" for other methods)."""
    return known_methods().get(method, ("", ""))[0]


def check_names(method: str, dataset: str, category: str, metric: str, where: str) -> None:
    """Raise :class:`DataError` unless the method, dataset and category resolve."""
    from .. import registry

    if method not in registry.methods().names() and method not in known_methods():
        raise DataError(
            f"{where}: unknown method {method!r}; use a registered method or add it to "
            f"zsadbench/tables/known_methods.csv (known: {', '.join(sorted(known_methods()))})"
        )
    if not dataset:
        if metric in COSTS:
            return
        raise DataError(f"{where}: empty 'dataset'; only a cost metric ({', '.join(COSTS)}) may leave it empty")
    if dataset not in registry.datasets().names():
        raise DataError(
            f"{where}: unknown dataset {dataset!r}; use one of {', '.join(registry.datasets().names())}"
        )
    expected = getattr(registry.datasets().get(dataset), "expected_categories", None) or {}
    if category != "mean" and expected and category not in expected:
        raise DataError(
            f"{where}: {dataset} has no category {category!r}; use 'mean' or one of {', '.join(expected)}"
        )


def parse_shots(text: str, where: str) -> int:
    """``"0"`` → 0, ``"4"`` → 4, ``"full"`` → :data:`FULL_SHOT`."""
    if text == "full":
        return FULL_SHOT
    try:
        k = int(text)
    except ValueError:
        raise DataError(f"{where}: shots {text!r} is not an integer; write 0 for zero-shot, k or 'full'") from None
    if k < 0:
        raise DataError(f"{where}: shots {k} is negative; write 0 for zero-shot, k or 'full'")
    return k


def parse_value(text: str, metric: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{where}: value {text!r} is not a number; write it as printed") from None
    if not math.isfinite(value) or value < 0 or (metric not in COSTS and value > 100):
        raise DataError(f"{where}: value {value} out of range; metrics are in percent (0-100), costs >= 0")
    return value


def check_variant(text: str, where: str) -> None:
    if text and not _VARIANT.match(text):
        raise DataError(f"{where}: variant {text!r} is not 'key=value' (several joined by '; '), e.g. experts=3")


def shots_text(shots: int) -> str:
    return "full-shot" if shots == FULL_SHOT else f"{shots}-shot"
