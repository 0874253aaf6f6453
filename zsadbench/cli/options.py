"""Argument types shared by the sub-commands: each turns a bad value into a clear argparse message."""
from __future__ import annotations

import argparse
from collections.abc import Callable

#: the largest integer any option takes: SQLite stores seeds as signed 64-bit integers and torch seeds
#: generators with 32 bits, so a seed beyond this would overflow one of them
INT_MAX = 2**31 - 1

#: inclusive (lowest, highest) value of each integer option, checked while parsing (see :func:`apply_int_ranges`)
INT_RANGES: dict[str, tuple[int, int]] = {
    "--seeds": (0, INT_MAX),
    "--shots": (0, 64),
    "--eval-size": (8, 4096),
    "--batch-size": (1, 4096),
    "--workers": (1, 256),
    "--threads": (1, 1024),
    "--digits": (1, 6),
    "--max-problems": (0, 1_000_000),
}


def int_list(text: str) -> tuple[int, ...]:
    """``"0,1,2"`` → ``(0, 1, 2)``."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 0,1,2, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected non-negative integers, got {text!r}")
    if any(v > INT_MAX for v in values):
        raise argparse.ArgumentTypeError(f"expected integers up to {INT_MAX}, got {text!r}")
    return values


def name_list(text: str) -> tuple[str, ...]:
    """``"a,b"`` → ``("a", "b")``, without empty items."""
    values = tuple(v.strip() for v in text.split(",") if v.strip())
    if not values:
        raise argparse.ArgumentTypeError("expected at least one name")
    return values


def key_value(text: str) -> tuple[str, str]:
    """``"key=value"`` → ``("key", "value")``."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. image_size=240 or winclip.scales=2,3), got {text!r}")
    return key.strip(), value.strip()


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1 or value > INT_MAX:
        raise argparse.ArgumentTypeError(f"expected a positive integer up to {INT_MAX}, got {text!r}")
    return value


def _ranged(parse: Callable[[str], object], low: int, high: int) -> Callable[[str], object]:
    """``parse`` followed by a check that every integer it returned lies in ``low..high``."""

    def checked(text: str) -> object:
        value = parse(text)
        values = value if isinstance(value, tuple) else (value,)
        bad = [v for v in values if isinstance(v, int) and not low <= v <= high]
        if bad:
            raise argparse.ArgumentTypeError(f"{bad[0]} is out of range: expected {low}..{high}, got {text!r}")
        return value

    checked.__name__ = getattr(parse, "__name__", "int")
    return checked


def apply_int_ranges(parser: argparse.ArgumentParser) -> None:
    """Bound every option of ``parser`` and its sub-commands that :data:`INT_RANGES` names to its range."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in {id(p): p for p in action.choices.values()}.values():
                apply_int_ranges(sub)
            continue
        bounds = next((INT_RANGES[o] for o in action.option_strings if o in INT_RANGES), None)
        if bounds is not None:
            action.type = _ranged(action.type or int, *bounds)


def load_plugins(paths: list[str] | None) -> None:
    """Register every ``--plugin module:Class`` (methods or dataset adapters, by base class)."""
    if not paths:
        return
    from .. import registry
    from ..method import Method

    for path in paths:
        obj = registry.load_object(path)
        target = registry.methods() if isinstance(obj, type) and issubclass(obj, Method) else registry.datasets()
        target.register_path(path)


def table_console():
    """A rich console for tables: the terminal's width, or 200 columns when writing to a file or pipe."""
    import sys

    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=200)


def resolve_device(name: str) -> str:
    """``--device``: ``auto`` is CUDA when available, else the CPU; any other name must be a torch device this
    machine has."""
    import torch

    from ..errors import ConfigError

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"--device {name!r} is not a torch device (use cpu, cuda or cuda:N)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    return name
