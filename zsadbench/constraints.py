"""Declared constraints on method-config fields, checked whenever a config is built.

A config declares, per field, one constraint (scikit-learn's ``_parameter_constraints`` manner), and the rules
that tie several fields together as named cross-field checks::

    _parameter_constraints: ClassVar[Constraints] = {
        "image_size": POSITIVE,
        "focal_smooth": Interval(0, 0.5, closed="left"),
        "layers": Items(Interval(1, None, closed="left"), distinct=True, note="1-based block numbers"),
        "betas": Items(Interval(0, 1, closed="left"), length=2),
    }
    _cross_checks: ClassVar[CrossChecks] = (
        CrossCheck(("deep_tokens", "n_ctx"), lambda c: c.deep_tokens <= c.n_ctx,
                   "deep_tokens={deep_tokens} cannot exceed n_ctx={n_ctx}"),
    )

A subclass inherits its bases' declarations and adds (or replaces) its own. ``Literal`` fields are checked
against their options without a declaration. A violation is a :class:`~zsadbench.errors.ConfigError` naming
``ConfigClass.field``, the value, the allowed range and the field's default.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, Literal

from .errors import ConfigError

Closed = Literal["left", "right", "both", "neither"]


class Constraint(ABC):
    """A rule on one field's value; ``note`` says what the value means (shown in the error)."""

    note: str = ""

    @abstractmethod
    def holds(self, value: Any) -> bool:
        """Whether ``value`` satisfies the rule."""

    @abstractmethod
    def describe(self) -> str:
        """The allowed values, completing "must be ...", e.g. ``in [0, 1)``."""

    def text(self) -> str:
        """:meth:`describe` followed by the note, if any."""
        return f"{self.describe()} ({self.note})" if self.note else self.describe()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.text()}>"


class Interval(Constraint):
    """Numbers between ``left`` and ``right`` (one may be ``None``: unbounded); ``closed`` names the bounds that
    belong."""

    def __init__(self, left: float | None, right: float | None, *, closed: Closed, note: str = "") -> None:
        if left is None and right is None:
            raise ValueError("an Interval needs at least one bound")
        if closed not in typing.get_args(Closed):
            raise ValueError(f"closed must be one of {', '.join(typing.get_args(Closed))}, got {closed!r}")
        self.left, self.right, self.closed, self.note = left, right, closed, note

    @property
    def left_closed(self) -> bool:
        return self.closed in ("left", "both")

    @property
    def right_closed(self) -> bool:
        return self.closed in ("right", "both")

    def holds(self, value: Any) -> bool:
        try:
            above = self.left is None or (value >= self.left if self.left_closed else value > self.left)
            below = self.right is None or (value <= self.right if self.right_closed else value < self.right)
        except TypeError:
            return False
        return bool(above and below)

    def describe(self) -> str:
        if self.right is None:
            return f"{'>=' if self.left_closed else '>'} {self.left:g}"
        if self.left is None:
            return f"{'<=' if self.right_closed else '<'} {self.right:g}"
        return f"in {'[' if self.left_closed else '('}{self.left:g}, {self.right:g}{']' if self.right_closed else ')'}"


class Options(Constraint):
    """One of a fixed set of values."""

    def __init__(self, *values: Any, note: str = "") -> None:
        self.values, self.note = values, note

    def holds(self, value: Any) -> bool:
        return value in self.values

    def describe(self) -> str:
        return f"one of {', '.join(map(repr, self.values))}"


class Items(Constraint):
    """A tuple whose items each satisfy ``each``; optionally of exactly ``length`` items, non-empty, distinct,
    in increasing order."""

    def __init__(
        self,
        each: Constraint | None = None,
        *,
        length: int | None = None,
        non_empty: bool = True,
        distinct: bool = False,
        increasing: bool = False,
        note: str = "",
    ) -> None:
        self.each, self.length, self.non_empty, self.distinct, self.increasing = each, length, non_empty, distinct, increasing
        self.note = note

    def holds(self, value: Any) -> bool:
        if not isinstance(value, (tuple, list)):
            return False
        items = list(value)
        try:
            return (
                (self.length is None or len(items) == self.length)
                and (not self.non_empty or len(items) > 0)
                and (not self.distinct or len(set(items)) == len(items))
                and (not self.increasing or items == sorted(items))
                and (self.each is None or all(self.each.holds(v) for v in items))
            )
        except TypeError:
            return False

    def describe(self) -> str:
        count = f"{self.length}" if self.length is not None else "one or more" if self.non_empty else "any number of"
        kind = "distinct values" if self.distinct else "values"
        text = f"{count} {kind}" + (f" {self.each.text()}" if self.each is not None else "")
        return text + (", in increasing order" if self.increasing else "")


@dataclasses.dataclass(frozen=True)
class CrossCheck:
    """A rule between fields: ``holds(config)`` must be true; ``message`` is formatted with the config's fields
    and should start with the first of ``fields``, e.g. ``"deep_tokens={deep_tokens} cannot exceed n_ctx={n_ctx}"``."""

    fields: tuple[str, ...]
    holds: Callable[[Any], bool]
    message: str


Constraints = Mapping[str, Constraint]
CrossChecks = tuple[CrossCheck, ...]

POSITIVE = Interval(0, None, closed="neither")
NON_NEGATIVE = Interval(0, None, closed="left")
AT_LEAST_ONE = Interval(1, None, closed="left")


@functools.cache
def parameter_constraints(cls: type) -> Constraints:
    """Every field constraint of a config class: its ``Literal`` options, then the ``_parameter_constraints``
    declared along its bases (a subclass's entry replaces its base's)."""
    names = [f.name for f in dataclasses.fields(cls)]
    hints = typing.get_type_hints(cls)
    merged: dict[str, Constraint] = {
        name: Options(*typing.get_args(hints[name])) for name in names if typing.get_origin(hints[name]) is Literal
    }
    for klass in reversed(cls.__mro__):
        merged.update(klass.__dict__.get("_parameter_constraints", {}))
    unknown = sorted(set(merged) - set(names))
    if unknown:
        raise TypeError(f"{cls.__name__} declares constraints on unknown field(s) {', '.join(unknown)}")
    return types.MappingProxyType({name: merged[name] for name in names if name in merged})


@functools.cache
def cross_checks(cls: type) -> CrossChecks:
    """Every cross-field check of a config class, its bases' first."""
    checks = tuple(c for klass in reversed(cls.__mro__) for c in klass.__dict__.get("_cross_checks", ()))
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted({name for check in checks for name in check.fields} - names)
    if unknown:
        raise TypeError(f"{cls.__name__} declares cross checks on unknown field(s) {', '.join(unknown)}")
    return checks


def default_text(field: dataclasses.Field) -> str:
    """A field's default as typed after ``--set KEY=`` (tuples comma-separated); empty when it has none."""
    value = field.default
    if value is dataclasses.MISSING:
        return ""
    return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def check(config: Any) -> None:
    """Raise :class:`ConfigError` for the first field, then the first cross check, that ``config`` violates."""
    cls = type(config)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in fields:
        bad = _non_finite(getattr(config, name))
        if bad is not None:
            default = default_text(fields[name])
            raise ConfigError(f"{cls.__name__}.{name} holds {bad}, which makes every number it touches meaningless; "
                              f"give a finite number" + (f" (default: {default})" if default else ""))
    for name, constraint in parameter_constraints(cls).items():
        value = getattr(config, name)
        if not constraint.holds(value):
            default = default_text(fields[name])
            example = f" (default: {default})" if default else ""
            raise ConfigError(f"{cls.__name__}.{name} must be {constraint.text()}, got {value!r}{example}")
    values = {name: getattr(config, name) for name in fields}
    for rule in cross_checks(cls):
        if not rule.holds(config):
            raise ConfigError(f"{cls.__name__}.{rule.message.format(**values)}")


def _non_finite(value: Any) -> float | None:
    """The first NaN or infinity in a float field (a number, or a tuple of them), else ``None``."""
    for item in value if isinstance(value, (tuple, list)) else (value,):
        if isinstance(item, float) and not math.isfinite(item):
            return item
    return None
