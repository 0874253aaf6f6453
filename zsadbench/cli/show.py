"""``zsadbench show METHOD``: a method's every option with its type, default, demo value and meaning."""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import re

from .options import load_plugins, table_console


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("method", help="a method name (see `zsadbench list methods`)")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE:CLASS",
                        help="load a plugin class explicitly first (repeatable)")


def field_docs(config_class: type) -> dict[str, str]:
    """For each field, the first sentence of the config class's docstrings (its own, then its bases') that names
    it inside a ````...```` span (alone or in an expression such as ````1 + region_weight````)."""
    names = {f.name for f in dataclasses.fields(config_class)}
    sentences: list[str] = []
    for cls in config_class.__mro__:
        doc = inspect.getdoc(cls) if cls.__doc__ else None
        if doc and cls is not object:
            text = " ".join(doc.split())
            sentences += re.split(r"(?<=[.;])\s+(?=[A-Z`(])", text)
    found: dict[str, str] = {}
    for sentence in sentences:
        for span in re.findall(r"``(.+?)``", sentence):
            for name in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", span):
                if name in names:
                    found.setdefault(name, sentence.replace("``", "`"))
    return found


def option_rows(cls: type) -> list[tuple[str, str, str, str, str, str]]:
    """``(option, type, default, demo value, allowed values, meaning)`` of each config field of method ``cls``."""
    docs = field_docs(cls.config_class)
    demo = dict(cls.random_init_overrides)
    return [(info.name, info.type, info.default, _value(demo[info.name]) if info.name in demo else "", info.allowed,
             docs.get(info.name, "")) for info in cls.config_class.describe_fields()]


def execute(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from .. import registry

    load_plugins(args.plugin)
    cls = registry.methods().get(args.method)
    console = table_console()
    label = getattr(cls, "label", "") or cls.__name__
    title = (f"{cls.name}: {label} ({cls.describe()}); version {cls.version}; default weights "
             f"{cls.default_pretrained}")
    table = Table(title=escape(title), title_justify="left")
    for column in ("option", "type", "default", "demo (--pretrained none)", "allowed", "meaning"):
        table.add_column(column, overflow="fold")
    for row in option_rows(cls):
        table.add_row(*(escape(v) for v in row))
    console.print(table)
    console.print(escape(f"set any option with --set {cls.name}.OPTION=VALUE (or --set OPTION=VALUE when one method "
                         "is selected); a comma list of a scalar option, or |-separated lists of a tuple option, "
                         "makes a grid of variants"), highlight=False)
    return 0


def _value(value: object) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return str(value).lower() if isinstance(value, bool) else str(value)
