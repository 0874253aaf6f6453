"""Validation of caption data against ``schema.json``, the single source of the field names and vocabularies.

The structure, the attribute vocabularies and the extension grammar are checked by the JSON Schema (with the
``jsonschema`` package); two rules a schema cannot state are checked here: every entity of the foreground view
has exactly one component, in the same order, and entity names are unique.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema

from .errors import CaptionsError
from .types import MFSCCaptions, build

SCHEMA_FILE = "schema.json"
#: fields the caller fills in rather than the captioner: a generated answer holds only the others
META_FIELDS = ("version", "dataset", "category", "source")


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The MFSC JSON Schema shipped with the package (parsed once; treat as read-only)."""
    return json.loads(resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))


def attributes() -> tuple[str, ...]:
    """The attribute names that have a vocabulary: number, location, direction, colour, texture, shape."""
    return tuple(name[: -len("_base")] for name in schema()["$defs"] if name.endswith("_base"))


def vocabulary(attribute: str) -> tuple[str, ...]:
    """The base values of ``attribute`` (from the schema), in the schema's order."""
    defs = schema()["$defs"]
    if f"{attribute}_base" not in defs:
        raise CaptionsError(f"{attribute!r} is not an MFSC attribute; use one of {', '.join(attributes())}")
    return tuple(defs[f"{attribute}_base"]["enum"])


def answer_schema() -> dict[str, Any]:
    """The schema of what a captioner returns: the file schema without the fields the caller adds."""
    full = schema()
    return {
        **full,
        "required": [f for f in full["required"] if f not in META_FIELDS],
        "properties": {k: v for k, v in full["properties"].items() if k not in META_FIELDS},
    }


@lru_cache(maxsize=2)
def _validator(kind: str) -> jsonschema.protocols.Validator:
    chosen = schema() if kind == "file" else answer_schema()
    cls = jsonschema.validators.validator_for(chosen)
    return cls(chosen)


def validate(data: Any, where: str) -> MFSCCaptions:
    """Check ``data`` (a parsed caption file) and return its record.

    Raises :class:`CaptionsError` with one line naming ``where`` (a file name, or any label), the field
    at fault and the fix.
    """
    check(data, where)
    return build(data)


def check(data: Any, where: str, *, answer: bool = False) -> None:
    """Raise :class:`CaptionsError` unless ``data`` follows the schema (the answer schema when ``answer``)."""
    if not isinstance(data, dict):
        raise CaptionsError(f"{where}: expected a JSON object with the MFSC fields, got {_JSON_TYPES.get(type(data), type(data).__name__)}")
    error = jsonschema.exceptions.best_match(_validator("answer" if answer else "file").iter_errors(data))
    if error is not None:
        raise CaptionsError(f"{where}: {_field(error.absolute_path)}: {_problem(error)}")
    _check_entities(data, where)


def _check_entities(data: dict[str, Any], where: str) -> None:
    names = [e["name"] for e in data["foreground_view"]["entities"]]
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise CaptionsError(f"{where}: foreground_view.entities[{i}].name: entity {name!r} is named twice; "
                                "give each entity one entry")
        seen.add(name)
    components = [c["entity"] for c in data["component_view"]["components"]]
    if components != names:
        i = next((k for k, (a, b) in enumerate(zip(components, names)) if a != b), min(len(components), len(names)))
        raise CaptionsError(
            f"{where}: component_view.components[{i}].entity: the components name {components} but the "
            f"foreground entities are {names}; give one component per entity, in the same order"
        )


def _field(path: Any) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".") or "(top level)"


def _problem(error: jsonschema.ValidationError) -> str:
    """The violation in words, with the fix."""
    kind, value = error.validator, error.instance
    if kind == "required":
        missing = [f for f in error.validator_value if not (isinstance(value, dict) and f in value)]
        return f"missing field {', '.join(repr(m) for m in missing)}; add it"
    if kind == "additionalProperties":
        allowed = ", ".join(error.schema.get("properties", {}))
        extra = ", ".join(repr(k) for k in value if k not in error.schema.get("properties", {}))
        return f"unknown field {extra}; allowed fields are {allowed}"
    if kind == "enum":
        name = _def_name(error.schema)
        if name.endswith("_base"):
            return f"{value!r} is not a {name[:-len('_base')]} base value; use one of: {', '.join(error.validator_value)}"
        return f"{value!r} is not allowed; use one of: {', '.join(error.validator_value)}"
    if kind == "oneOf":
        name = _def_name(error.schema)
        if isinstance(value, str) and f"{name}_base" in schema()["$defs"]:
            return f"{value!r} is not a {name} base value; use one of: {', '.join(vocabulary(name))}"
        return (f"{_short(value)} is not a {name} value; give one base value as a string or an extension "
                f'{{"base": [2 to 4 {name} base values], "joiner": "and" | "or" | "with"}}')
    if kind == "type":
        return f"{_short(value)} is {_JSON_TYPES.get(type(value), type(value).__name__)}, expected {error.validator_value}"
    if kind in ("minLength", "maxLength"):
        bound = "at least" if kind == "minLength" else "at most"
        return f"text of {len(value)} characters; write {bound} {error.validator_value}"
    if kind in ("minItems", "maxItems"):
        bound = "at least" if kind == "minItems" else "at most"
        return f"{len(value)} item(s); give {bound} {error.validator_value}"
    if kind == "pattern" and isinstance(value, str) and not value.strip():
        return "empty text; write a value"
    if kind == "pattern":
        rule = ("use letters, digits, '_', '.', '-' and spaces only" if _def_name(error.schema) == "identifier"
                else "no leading or trailing spaces")
        return f"{_short(value)} has the wrong form; {rule}"
    if kind == "const":
        return f"{_short(value)} must be {error.validator_value!r}"
    return error.message


_JSON_TYPES = {str: "a string", int: "a number", float: "a number", bool: "a boolean", list: "an array",
               dict: "an object", type(None): "null"}


def _def_name(subschema: Any) -> str:
    """The ``$defs`` name of a sub-schema, or "field" when it is not a named definition."""
    return next((name for name, d in schema()["$defs"].items() if d == subschema), "field")


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."
