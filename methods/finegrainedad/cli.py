"""``zsadbench captions generate`` and ``zsadbench captions check``: FineGrainedAD's sub-command.

It reaches the ``zsadbench`` command through the ``zsadbench.commands`` entry-point group (see
:func:`zsadbench.cli.main.plugin_commands`), the way any plugin adds a sub-command.

``generate`` sends one normal image and the MFSC schema to an OpenAI-compatible chat-completions endpoint and
stores the validated answer as ``<out>/<dataset>/<category>.json`` (nothing is written when the answer is
rejected). ``check`` validates every shipped caption file, lists the built-in categories without one, and
validates a user folder when given; the exit status is 1 when anything is wrong.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from zsadbench.errors import ConfigError

HELP = "generate and check the MFSC captions FineGrainedAD reads"
DEFAULT_OUT = "captions"
# spelled out rather than imported so that building the parser imports nothing of the method package
ENDPOINT_ENV, API_KEY_ENV, MODEL_ENV = "ZSADBENCH_CAPTIONS_ENDPOINT", "ZSADBENCH_CAPTIONS_API_KEY", "ZSADBENCH_CAPTIONS_MODEL"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``generate`` and ``check`` sub-commands to the ``zsadbench captions`` parser."""
    sub = parser.add_subparsers(dest="captions_command", metavar="COMMAND", required=True)
    gen = sub.add_parser(
        "generate", help="caption one category from a normal image with a multimodal chat model",
        description="Send one normal image and the MFSC schema to an OpenAI-compatible chat-completions endpoint "
                    "(POST URL/chat/completions, JSON mode) and store the validated captions as "
                    "OUT/DATASET/CATEGORY.json. Use the folder with --set captions_dir=OUT.")
    gen.add_argument("--dataset", "-d", required=True, help="dataset name, e.g. mvtec")
    gen.add_argument("--category", "-c", required=True, help="category name as the dataset adapter spells it")
    gen.add_argument("--image", required=True, type=Path, help="a normal (defect-free) image of the category")
    gen.add_argument("--endpoint", default=None,
                     help=f"base URL of the API, e.g. https://api.openai.com/v1 (default: ${ENDPOINT_ENV}, "
                          "then $OPENAI_BASE_URL)")
    gen.add_argument("--api-key", default=None,
                     help=f"API key sent as a bearer token (default: ${API_KEY_ENV}, then $OPENAI_API_KEY; "
                          "none for local servers)")
    gen.add_argument("--model", default=None, help=f"model name (default: ${MODEL_ENV}, then gpt-4o)")
    gen.add_argument("--out", default=DEFAULT_OUT, type=Path,
                     help=f"captions folder to write into (default: ./{DEFAULT_OUT})")
    gen.add_argument("--timeout", default=120.0, type=float, help="seconds to wait for the answer (default 120)")
    gen.add_argument("--force", action="store_true", help="replace an existing caption file")
    check = sub.add_parser(
        "check", help="validate the shipped caption files (and a user folder)",
        description="Validate every shipped caption file against the MFSC schema, list the built-in categories "
                    "without captions, and validate the files of --folder when given.")
    check.add_argument("--folder", type=Path, default=None, help="a user captions folder to validate as well")


def execute(args: argparse.Namespace) -> int:
    """Run the selected ``captions`` sub-command; returns the exit status."""
    if args.captions_command == "generate":
        return _generate(args, Console(soft_wrap=True))
    if args.captions_command == "check":
        return _check(args, Console(soft_wrap=True))
    raise ConfigError(f"unknown captions command {args.captions_command!r}; use generate or check")


def _generate(args: argparse.Namespace, console: Console) -> int:
    from zsadbench.methods.finegrainedad.mfsc import Endpoint, caption_path, generate_captions

    if not args.image.is_file():
        raise ConfigError(f"--image {args.image}: no such file; pass a normal image of {args.dataset}/{args.category}")
    target = caption_path(args.out, args.dataset, args.category)
    if target.exists() and not args.force:
        raise ConfigError(f"{target} exists; pass --force to replace it or choose another --out")
    endpoint = Endpoint.resolve(args.endpoint, args.api_key, args.model)
    with console.status(f"asking {endpoint.model} at {endpoint.url} ..."):
        captions, path = generate_captions(args.dataset, args.category, args.image, args.out,
                                           endpoint=endpoint, timeout=args.timeout)
    console.print(f"wrote {escape(str(path))}: {escape(captions.summary)}")
    return 0


def _check(args: argparse.Namespace, console: Console) -> int:
    from zsadbench.methods.finegrainedad.mfsc import CaptionsError, check_folder, shipped_dir
    from zsadbench.methods.finegrainedad.mfsc.coverage import missing_captions

    folders = [shipped_dir()] + ([args.folder] if args.folder else [])
    if args.folder and not args.folder.is_dir():
        raise ConfigError(f"--folder {args.folder}: no such folder; pass the folder given as captions_dir")
    failed = 0
    for folder in folders:
        results = check_folder(folder)
        errors = [e for e in results.values() if isinstance(e, CaptionsError)]
        for error in errors:
            console.print(f"[red]invalid[/]: {escape(str(error))}")
        console.print(f"{escape(str(folder))}: {len(results) - len(errors)} of {len(results)} files valid")
        failed += len(errors)
    missing = missing_captions(shipped_dir())
    for dataset, category in missing:
        console.print(f"[red]missing[/]: no shipped captions for {dataset}/{category}")
    return 1 if failed or missing else 0
