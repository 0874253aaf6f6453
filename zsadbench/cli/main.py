"""The ``zsadbench`` command: one sub-command per module, imported lazily.

Plugins add sub-commands through the ``zsadbench.commands`` entry-point group: each entry names a module with
``HELP`` (one line), ``add_arguments(parser)`` and ``execute(args) -> int``. FineGrainedAD's ``captions`` comes
this way; ``ZSADBENCH_DISABLE_PLUGIN_AUTOLOAD`` keeps other distributions' commands out, as it does their methods.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from importlib import metadata

from rich.console import Console
from rich.markup import escape

from .. import __version__
from ..errors import ZsadError
from ..machine import shorten_openmp_spin
from ..registry import DISABLE_ENV, OWN_DIST
from .options import apply_int_ranges
from .sweep import expand_config

COMMANDS = {
    "run": ("zsadbench.cli.run", "evaluate methods on datasets (resumable; results go to --out)"),
    "predict": ("zsadbench.cli.predict", "image scores, anomaly maps and overlays of a method on your own images"),
    "rescore": ("zsadbench.cli.rescore", "recompute every stored metric from the per-image artifacts, without inference"),
    "table": ("zsadbench.cli.table", "render the results of an output folder as a leaderboard table"),
    "plot": ("zsadbench.cli.plot", "draw figures (scale-wise, expert usage, few-shot curves) from an output folder"),
    "viz": ("zsadbench.cli.viz", "image / ground truth / anomaly-map galleries and an HTML page from an output folder"),
    "list": ("zsadbench.cli.listing", "list the available methods and datasets and where each comes from"),
    "show": ("zsadbench.cli.show", "a method's options: type, default, demo value, allowed values and meaning"),
    "data": ("zsadbench.cli.data", "check dataset trees and export AnomalyCLIP meta.json files"),
    "compare": ("zsadbench.cli.compare", "paired bootstrap and DeLong test of two methods on the same images, per dataset"),
    "rank": ("zsadbench.cli.rank", "rank methods across datasets (Friedman, Nemenyi or Wilcoxon-Holm, CD diagram)"),
    "intervals": ("zsadbench.cli.intervals", "bootstrap confidence intervals per cell and per dataset mean"),
    "export": ("zsadbench.cli.export", "write the results of an output folder as one versioned JSON file to share"),
    "merge": ("zsadbench.cli.merge", "merge shared results files from several machines into one leaderboard folder"),
    "leaderboard": ("zsadbench.cli.leaderboard", "a static, sortable HTML leaderboard of a results folder or files"),
    "efficiency": ("zsadbench.cli.efficiency", "parameters, GFLOPs, img/s, peak memory and training time of methods on this device"),
}
COMMAND_GROUP = "zsadbench.commands"


def plugin_commands(console: Console | None = None) -> dict[str, tuple[str, str]]:
    """``name -> (module, help)`` of the sub-commands in the ``zsadbench.commands`` entry-point group.

    A command that clashes with a core one or whose module fails to import is left out with one line on
    ``console`` naming the distribution; the other commands still work.
    """
    console = console or Console(stderr=True)
    autoload = os.environ.get(DISABLE_ENV, "").strip().lower() in ("", "0", "false", "no")
    found: dict[str, tuple[str, str]] = {}
    for ep in metadata.entry_points(group=COMMAND_GROUP):
        dist = getattr(ep, "dist", None)
        origin = dist.metadata["Name"] if dist is not None else "unknown distribution"
        if (origin or "").lower() != OWN_DIST and not autoload:
            continue
        if ep.name in COMMANDS or ep.name in found:
            console.print(f"[yellow]warning[/]: command {escape(ep.name)!r} from {escape(origin)} is already taken; left out")
            continue
        try:
            module = importlib.import_module(ep.value)
            found[ep.name] = (ep.value, str(module.HELP))
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the other commands
            console.print(f"[yellow]warning[/]: command {escape(ep.name)!r} from {escape(origin)} cannot be loaded "
                          f"({escape(type(exc).__name__)}: {escape(str(exc))}); left out")
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zsadbench",
        description="Benchmark harness for zero-shot and few-shot visual anomaly detection.",
    )
    parser.add_argument("--version", action="version", version=f"zsadbench {__version__}")
    parser.add_argument("--debug", action="store_true", help="print the full traceback of any error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module, help_text) in {**COMMANDS, **plugin_commands()}.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(command)
        command.set_defaults(_module=module)
    apply_int_ranges(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run the sub-command, and turn every error into one line and exit status 1.

    With ``--debug`` errors propagate, so Python prints their traceback.
    """
    shorten_openmp_spin()
    parser = build_parser()
    console = Console(stderr=True)
    try:
        argv = expand_config(list(sys.argv[1:] if argv is None else argv), parser)
    except ZsadError as exc:
        console.print(f"[red]{escape(type(exc).__name__)}[/]: {escape(' '.join(str(exc).split()))}", highlight=False,
                      soft_wrap=True)
        return 1
    args = parser.parse_args(argv)
    try:
        return int(importlib.import_module(args._module).execute(args) or 0)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: finished cells are stored; run the same command again to resume")
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line instead of a traceback
        if args.debug:
            raise
        hint = "" if isinstance(exc, ZsadError) else " (run with --debug for the traceback)"
        message = " ".join(str(exc).split()) or "no message"
        console.print(f"[red]{escape(type(exc).__name__)}[/]: {escape(message)}{hint}", highlight=False,
                      soft_wrap=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
