"""A results document (the content of a results file) from stored cells, and the stored cells of a document.

One variant per column of ``zsadbench table`` (:func:`~zsadbench.tables.variant_labels`), each with its config,
weights, protocol, precision, evaluation size and environments; per dataset and per category the summaries of
every metric (mean, std over seeds, number of seeds: the tables' aggregation, as fractions) with their interval
when one is given, and every cell with its metrics and a provenance summary. Local paths (the data root, the
weights file) and host names are left out: the file is meant to be shared.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from .. import __version__
from ..store import Provenance, StoredCell
from .schema import SCHEMA_VERSION, metric_versions, schema

#: (variant label, dataset, category or "mean", metric) → (lo, hi)
IntervalIndex = Mapping[tuple[str, str, str, str], tuple[float, float]]
MEAN = "mean"


def cells_frame(cells: Sequence[StoredCell]) -> pd.DataFrame:
    """The tables' frame of ``cells``."""
    return pd.DataFrame.from_records([c.frame_record() for c in cells])


def results_document(cells: Sequence[StoredCell], *, intervals: IntervalIndex | None = None,
                     interval_settings: dict[str, Any] | None = None,
                     sources: Iterable[dict[str, Any]] = ()) -> dict[str, Any]:
    """The results document of ``cells`` (a results folder's rows). ``intervals`` are keyed by the labels
    the tables give the variants of ``cells``; ``interval_settings`` says how they were computed."""
    from ..tables import variant_labels

    labels = list(variant_labels(cells_frame(cells)))
    variants = []
    for label in dict.fromkeys(labels):
        members = [c for c, lab in zip(cells, labels) if lab == label]
        variants.append(_variant(label, members, intervals or {}))
    return {
        "schema_version": SCHEMA_VERSION,
        "zsadbench_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "metric_versions": metric_versions(),
        "intervals": interval_settings if intervals else None,
        "sources": list(sources),
        "variants": variants,
    }


def _variant(label: str, cells: list[StoredCell], intervals: IntervalIndex) -> dict[str, Any]:
    first = cells[0]
    environments: list[dict[str, Any]] = []
    for cell in cells:
        env = cell.provenance.environment
        if env is not None and env not in environments:
            environments.append(env)
    digests = {(c.provenance.weights or {}).get("sha256") for c in cells} - {None}
    datasets = {}
    for dataset in dict.fromkeys(c.dataset for c in cells):
        members = [c for c in cells if c.dataset == dataset]
        datasets[dataset] = _dataset(label, dataset, members, environments, intervals)
    return {
        "label": label,
        "method": first.method,
        "method_label": first.method_label,
        "config_hash": first.config_hash,
        "config": _config(first.config_json),
        "shots": first.shots,
        "weights": {"tag": first.pretrained, "sha256": digests.pop() if len(digests) == 1 else None,
                    "random_init": first.random_init},
        "protocol": (first.provenance.protocol or "") if any(c.aux for c in cells) else "",
        "precision": first.precision,
        "eval_size": first.eval_size,
        "test_limit": first.provenance.test_limit or 0,
        "environments": environments,
        "datasets": datasets,
    }


def _dataset(label: str, dataset: str, cells: list[StoredCell], environments: list[dict[str, Any]],
             intervals: IntervalIndex) -> dict[str, Any]:
    ok = _ok_frame(cells)
    names = _metric_names(cells)
    categories = {}
    for category in sorted({c.category for c in cells}):
        members = sorted((c for c in cells if c.category == category), key=lambda c: (c.seed, c.status))
        part = ok[ok["category"] == category]
        categories[category] = {
            "metrics": _with_intervals(summaries(part, names), intervals, (label, dataset, category)),
            "cells": [_cell(c, environments) for c in members],
        }
    first = cells[0]
    return {
        "label": first.dataset_label,
        "domain": first.domain,
        "aux": next((c.aux for c in cells if c.aux), ""),
        "metrics": _with_intervals(dataset_summaries(ok, names), intervals, (label, dataset, MEAN)),
        "categories": categories,
    }


def _cell(cell: StoredCell, environments: list[dict[str, Any]]) -> dict[str, Any]:
    recorded = cell.provenance.to_dict()
    keep = schema()["$defs"]["cell"]["properties"]["provenance"]["properties"]
    provenance = {k: v for k, v in recorded.items() if k in keep}
    if isinstance(provenance.get("weights"), dict):
        provenance["weights"] = {k: v for k, v in provenance["weights"].items() if k != "path"}
    env = cell.provenance.environment
    return {
        "cell_id": cell.cell_id,
        "seed": cell.seed,
        "status": cell.status,
        "error": cell.error,
        "method_version": cell.method_version,
        "weights_id": cell.weights_id,
        "data_digest": cell.data_digest,
        "aux": cell.aux,
        "metrics": {k: _number(v) for k, v in cell.metrics.items()},
        "environment": None if env is None else environments.index(env),
        "provenance": provenance,
    }


def _ok_frame(cells: Sequence[StoredCell]) -> pd.DataFrame:
    records = [{"category": c.category, "seed": c.seed, **c.metrics} for c in cells if c.status == "ok"]
    return pd.DataFrame.from_records(records, columns=["category", "seed", *_metric_names(cells)])


def _metric_names(cells: Sequence[StoredCell]) -> list[str]:
    order = metric_versions()
    held = {m for c in cells for m in c.metrics}
    return [m for m in order if m in held]


def summaries(ok: pd.DataFrame, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Mean, std (ddof=1) and number of the finished values of each metric in ``ok`` (one category's cells,
    one per seed), as the tables aggregate a category."""
    out = {}
    for name in names:
        values = pd.to_numeric(ok[name], errors="coerce").dropna() if name in ok else pd.Series(dtype=float)
        if len(values):
            out[name] = _summary(values)
    return out


def dataset_summaries(ok: pd.DataFrame, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """A dataset's value per metric as the tables compute it: per seed the mean over its categories, then
    mean, std and number over the seeds."""
    out = {}
    for name in names:
        if name not in ok:
            continue
        per_seed = pd.to_numeric(ok[name], errors="coerce").groupby(ok["seed"]).mean().dropna()
        if len(per_seed):
            out[name] = _summary(per_seed)
    return out


def _summary(values: pd.Series) -> dict[str, Any]:
    n = int(len(values))
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if n >= 2 else None, "n_seeds": n}


def _with_intervals(found: dict[str, dict[str, Any]], intervals: IntervalIndex,
                    where: tuple[str, str, str]) -> dict[str, dict[str, Any]]:
    for name, summary in found.items():
        ends = intervals.get((*where, name))
        if ends is not None:
            summary["ci"] = {"lo": ends[0], "hi": ends[1]}
    return found


def _config(text: str) -> dict[str, Any]:
    try:
        config = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}
    return config if isinstance(config, dict) else {}


def _number(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def stored_cells(doc: Mapping[str, Any]) -> list[StoredCell]:
    """The cells of a (validated) results document, as a results store holds them (without artifacts)."""
    out = []
    for v in doc["variants"]:
        config_json = json.dumps(v["config"], sort_keys=True, separators=(",", ":"))
        for dataset, d in v["datasets"].items():
            for category, cat in d["categories"].items():
                for c in cat["cells"]:
                    provenance = dict(c["provenance"])
                    if c["environment"] is not None:
                        provenance["environment"] = v["environments"][c["environment"]]
                    out.append(StoredCell(
                        method=v["method"], config_hash=v["config_hash"], dataset=dataset, category=category,
                        shots=v["shots"], seed=c["seed"], aux=c["aux"], eval_size=v["eval_size"],
                        pretrained=v["weights"]["tag"], precision=v["precision"], method_version=c["method_version"],
                        weights_id=c["weights_id"], data_digest=c["data_digest"], cell_id=c["cell_id"],
                        method_label=v["method_label"], config_json=config_json, dataset_label=d["label"],
                        domain=d["domain"], random_init=v["weights"]["random_init"], status=c["status"],
                        error=c["error"],
                        metrics={k: math.nan if x is None else float(x) for k, x in c["metrics"].items()},
                        provenance=Provenance.from_dict(provenance),
                    ))
    return out
