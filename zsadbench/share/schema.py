"""The results file's format: its JSON Schema (``results.schema.json``, shipped beside this module), the format's
version and each metric's definition version, and the check of a document against them."""
from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import DataError

#: the version of the file format this zsadbench writes and reads
SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("results.schema.json")


@cache
def schema() -> dict[str, Any]:
    """The JSON Schema of a results file."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def metric_versions() -> dict[str, int]:
    """The version of each metric's definition (the schema's ``metric_versions``): bump a metric's number here
    when its definition changes, so that files computed under either definition are never merged."""
    return dict.fromkeys(schema()["$defs"]["metric"]["enum"], 1)


def validate(doc: Any, source: str) -> None:
    """Raise :class:`DataError` naming ``source`` and the field when ``doc`` is not a results file of this
    format version."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    version = doc.get("schema_version") if isinstance(doc, dict) else None
    if isinstance(version, int) and not isinstance(version, bool) and version != SCHEMA_VERSION:
        newer = version > SCHEMA_VERSION
        raise DataError(f"{source}: schema_version {version} is {'newer than' if newer else 'not'} the results format "
                        f"this zsadbench reads ({SCHEMA_VERSION}): "
                        + ("upgrade zsadbench to read it" if newer else
                           "export it again with this zsadbench (`zsadbench export --out RUN`)"))
    error = best_match(Draft202012Validator(schema()).iter_errors(doc))
    if error is not None:
        raise DataError(f"{source}: {field_path(error.absolute_path)}: {error.message} (see {SCHEMA_PATH.name}); "
                        "export the file again with `zsadbench export`, or correct that field")


def field_path(parts: Any) -> str:
    """``variants[0].datasets.mvtec`` for the path ``["variants", 0, "datasets", "mvtec"]``; ``(top level)``."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "(top level)"
