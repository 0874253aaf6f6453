"""Argument types shared by the sub-commands: each turns a bad value into a clear argparse message."""
from __future__ import annotations

import argparse


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
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


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
