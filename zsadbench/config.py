"""Typed, frozen, hashable method configurations.

A method's config is a frozen dataclass deriving from :class:`MethodConfig`: every hyper-parameter with
the paper's value as default. Its sha256 over canonical JSON is part of every cache key and result row.
The allowed values are declared (:mod:`zsadbench.constraints`) and checked whenever a config is built.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from typing import Any, ClassVar, NamedTuple, TypeVar

from . import constraints
from .constraints import Constraints, CrossChecks
from .errors import ConfigError

C = TypeVar("C", bound="MethodConfig")


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Convert a JSON/CLI value to the declared field type (tuples from lists, numbers from strings)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union or (origin is not None and str(origin) == "types.UnionType"):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: cannot use {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where} must be one of {list(args)}, got {value!r}")
        return value
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        item = args[0] if args else Any
        items = [_coerce(v, item, where) for v in value]
        return tuple(items) if origin is tuple else items
    if annotation is bool:
        if isinstance(value, str):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    if annotation in (int, float):
        try:
            converted = annotation(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where} must be {annotation.__name__}, got {value!r}") from exc
        if annotation is int and isinstance(value, float) and value != converted:
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return converted
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    return value


class FieldInfo(NamedTuple):
    """One config field as :meth:`MethodConfig.describe_fields` reports it."""

    name: str
    type: str
    default: str
    allowed: str


@dataclasses.dataclass(frozen=True)
class MethodConfig:
    """Base of every method config: a frozen dataclass with a JSON round trip and a content hash.

    ``_parameter_constraints`` maps field names to their allowed values and ``_cross_checks`` lists the rules
    between fields (see :mod:`zsadbench.constraints`); both are class variables, so they never enter the hash.
    A subclass that defines ``__post_init__`` calls ``super().__post_init__()``.
    """

    _parameter_constraints: ClassVar[Constraints] = {}
    _cross_checks: ClassVar[CrossChecks] = ()

    def __post_init__(self) -> None:
        constraints.check(self)

    @classmethod
    def describe_fields(cls) -> list[FieldInfo]:
        """Each field's name, type, default (as typed after ``--set KEY=``) and allowed values."""
        declared = constraints.parameter_constraints(cls)
        return [
            FieldInfo(f.name, f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type)),
                      constraints.default_text(f),
                      declared[f.name].text() if f.name in declared else "")
            for f in dataclasses.fields(cls)
        ]

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no whitespace): the input of :meth:`config_hash`."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def config_hash(self) -> str:
        """First 12 hex digits of the sha256 of the canonical JSON."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:12]

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        """Build a config from a dict, converting types and rejecting unknown keys by name."""
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(
                f"unknown option(s) {', '.join(unknown)} for {cls.__name__}; valid options: {', '.join(sorted(names))}"
            )
        kwargs = {k: _coerce(v, hints[k], f"{cls.__name__}.{k}") for k, v in data.items()}
        return cls(**kwargs)

    @classmethod
    def from_json(cls: type[C], text: str) -> C:
        return cls.from_dict(json.loads(text))

    def replace(self: C, **overrides: Any) -> C:
        """A copy with some fields overridden (values converted as in :meth:`from_dict`)."""
        merged = {**self.to_dict(), **overrides}
        return type(self).from_dict(merged)


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value
