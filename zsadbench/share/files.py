"""Reading and writing results files: JSON checked against the schema on write and on read, and on read also
against its own cells (every summary is recomputed from them, labels and cells are unique)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..store.files import atomic_write_bytes
from .document import dataset_summaries, stored_cells, summaries
from .schema import field_path, validate

#: how far a summary in a file may be from what its cells give (the order of a sum may differ)
TOLERANCE = 1e-9


def dumps(doc: dict[str, Any]) -> str:
    """The document as the file holds it (strict JSON: no NaN)."""
    return json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def write_results(path: str | Path, doc: dict[str, Any]) -> Path:
    """Check ``doc`` against the schema and write it to ``path`` atomically."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"--write {path}: that is a folder; name the results file to write, e.g. "
                        f"{path / 'results.json'}")
    validate(doc, f"{path} (as written)")
    atomic_write_bytes(path, dumps(doc).encode("utf-8"))
    return path


def read_results(path: str | Path) -> dict[str, Any]:
    """A results file, checked against the schema and against its own cells; one line naming the file and the
    field otherwise."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"results file {path} does not exist; pass a file written by `zsadbench export`")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text; pass a results file written by `zsadbench export`") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); pass a results "
                        "file written by `zsadbench export`") from None
    validate(doc, str(path))
    check_document(doc, str(path))
    return doc


def check_document(doc: dict[str, Any], source: str) -> None:
    """Labels and cells unique, environment indices in range, and every summary what the cells give."""
    labels = [v["label"] for v in doc["variants"]]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise DataError(f"{source}: variant label {twice[0]!r} is given twice; each variant (column) appears once")
    seen: dict[str, str] = {}
    for i, v in enumerate(doc["variants"]):
        for dataset, d in v["datasets"].items():
            for category, cat in d["categories"].items():
                for k, c in enumerate(cat["cells"]):
                    where = field_path(["variants", i, "datasets", dataset, "categories", category, "cells", k])
                    if c["cell_id"] in seen:
                        raise DataError(f"{source}: {where}: cell {c['cell_id']} is also {seen[c['cell_id']]}; "
                                        "each cell appears once")
                    seen[c["cell_id"]] = where
                    if c["environment"] is not None and c["environment"] >= len(v["environments"]):
                        raise DataError(f"{source}: {where}.environment: {c['environment']} is no index of "
                                        f"variants[{i}].environments ({len(v['environments'])} entries)")
    _check_summaries(doc, source)


def _check_summaries(doc: dict[str, Any], source: str) -> None:
    import pandas as pd

    for i, v in enumerate(doc["variants"]):
        cells = stored_cells({**doc, "variants": [v]})
        for dataset, d in v["datasets"].items():
            ok = pd.DataFrame.from_records([{"category": c.category, "seed": c.seed, **c.metrics} for c in cells
                                            if c.dataset == dataset and c.status == "ok"])
            names = list(doc["metric_versions"])
            base = ["variants", i, "datasets", dataset]
            if ok.empty:
                ok = pd.DataFrame(columns=["category", "seed"])
            ci = doc["intervals"] is not None
            _compare(d["metrics"], dataset_summaries(ok, names), source, base + ["metrics"], ci)
            for category, cat in d["categories"].items():
                part = ok[ok["category"] == category] if len(ok) else ok
                _compare(cat["metrics"], summaries(part, names), source, base + ["categories", category, "metrics"], ci)


def _compare(found: dict[str, Any], expected: dict[str, Any], source: str, where: list, intervals: bool) -> None:
    for name in sorted(set(found) | set(expected)):
        ci = found.get(name, {}).get("ci")
        if ci is not None and not intervals:
            raise DataError(f"{source}: {field_path(where + [name, 'ci'])}: an interval, but the file's 'intervals' is "
                            "null (it says how intervals were computed); export the file again with --ci")
        if ci is not None and not ci["lo"] <= ci["hi"]:
            raise DataError(f"{source}: {field_path(where + [name, 'ci'])}: lo {ci['lo']} is above hi {ci['hi']}; "
                            "export the file again")
        if name not in expected or name not in found:
            what = "has a summary its cells give no value for" if name in found else "lacks the summary its cells give"
            raise DataError(f"{source}: {field_path(where)}: {what} {name!r}; the file was edited: export it again "
                            "from its results folder")
        for key in ("mean", "std", "n_seeds"):
            a, b = found[name][key], expected[name][key]
            if (a is None) != (b is None) or (a is not None and not math.isclose(a, b, rel_tol=0, abs_tol=TOLERANCE)):
                raise DataError(f"{source}: {field_path(where + [name, key])} is {a}, but the cells give {b}; the file "
                                "was edited: export it again from its results folder")
