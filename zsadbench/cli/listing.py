"""``zsadbench list``: methods and dataset adapters, with where each comes from and whether it loads."""
from __future__ import annotations

import argparse

from ..errors import ZsadError
from .options import load_plugins, table_console


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", nargs="?", choices=("methods", "datasets", "all"), default="all",
                        help="what to list (default: all)")
    parser.add_argument("--pattern", default="*", help="shell-style filter on names, e.g. 'win*'")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE:CLASS",
                        help="load a plugin class explicitly before listing (repeatable)")


def _rows(registry, pattern: str, describe) -> list[tuple[str, str, str]]:
    """One row per entry; a plugin that fails to import, to validate or to describe itself is listed as
    broken with the reason, and never stops the listing."""
    from rich.markup import escape

    rows = []
    wanted = set(registry.names(pattern))
    for entry in registry.entries():
        if entry.name not in wanted:
            continue
        try:
            details = escape(describe(registry.get(entry.name)))
        except Exception as exc:  # noqa: BLE001 - third-party code may raise anything
            reason = str(exc) if isinstance(exc, ZsadError) else f"{type(exc).__name__}: {exc}"
            details = f"[red]broken[/]: {escape(' '.join(reason.split()))}"
        rows.append((escape(entry.name), details, escape(f"{entry.origin} ({entry.value})")))
    return rows


def execute(args: argparse.Namespace) -> int:
    from rich.table import Table

    from .. import registry

    load_plugins(args.plugin)
    console = table_console()
    sections = []
    if args.what in ("methods", "all"):
        sections.append(("methods", registry.methods(), lambda c: f"{c.describe()}  weights: {c.default_pretrained}"))
    if args.what in ("datasets", "all"):
        sections.append(("datasets", registry.datasets(),
                         lambda c: f"{c.title or c.name}  [{c.domain}]  metrics: {'+'.join(sorted(c.metric_levels))}"))
    for title, reg, describe in sections:
        table = Table(title=title, title_justify="left")
        for column in ("name", "details", "from"):
            table.add_column(column, overflow="fold")
        for row in _rows(reg, args.pattern, describe):
            table.add_row(*row)
        console.print(table)
    return 0
