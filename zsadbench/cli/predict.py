"""``zsadbench predict``: a method's image scores, anomaly maps and overlays for your own images."""
from __future__ import annotations

import argparse
from pathlib import Path

from .options import key_value, load_plugins, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGES_OR_DIRS",
                        help="image files, or folders searched recursively for images")
    parser.add_argument("--method", "-m", required=True, metavar="NAME", help="the method; see `zsadbench list`")
    parser.add_argument("--write", type=Path, required=True, metavar="DIR",
                        help="output folder: scores.csv, maps/*.npy, overlays/*.png and README.txt")
    parser.add_argument("--pretrained", default="default", metavar="TAG|PATH|none",
                        help="backbone weights: 'default' = the method's paper weights, an open_clip/timm tag, a local "
                             "file, or 'none' for random initialisation (the method's demo configuration)")
    parser.add_argument("--set", dest="overrides", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                        help="override a method option, as in `zsadbench run` (one value per option; repeatable)")
    parser.add_argument("--state", type=Path, default=None, metavar="FILE",
                        help="the trained state of a method that trains on an auxiliary set: a *.pt file that "
                             "`zsadbench run` cached in OUT/cache/states/")
    parser.add_argument("--support", type=Path, action="append", default=[], metavar="IMG|DIR",
                        help="normal images for a few-shot method, files or folders (repeatable); their count is k")
    parser.add_argument("--category", default=None, metavar="NAME",
                        help="the object's name, which CLIP methods put into their prompts (default: the name of "
                             "each image's folder)")
    parser.add_argument("--device", default="auto", metavar="DEVICE",
                        help="torch device: auto (cuda if available), cpu, cuda, cuda:1 (default: auto)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="precision of the frozen backbone's forward passes (default: fp32)")
    parser.add_argument("--batch-size", type=positive_int, default=8, metavar="N",
                        help="inference batch size (default: 8)")
    parser.add_argument("--size", type=positive_int, default=None, metavar="PX",
                        help="the method's input size: the same as --set image_size=PX")
    parser.add_argument("--workers", type=positive_int, default=None, metavar="N",
                        help="image loading threads (default: the CPUs available, at most 16)")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE:CLASS",
                        help="load a method plugin class explicitly (repeatable)")


def _overrides(args: argparse.Namespace) -> tuple[tuple[str, str], ...]:
    """``--set`` with ``--size`` added as ``image_size``; a key given twice fails with one line."""
    from ..errors import ConfigError

    overrides = list(args.overrides)
    if args.size is not None:
        if any(key.rpartition(".")[2] == "image_size" for key, _ in overrides):
            raise ConfigError("--size and --set image_size=... both give the input size; give one of them")
        overrides.append(("image_size", str(args.size)))
    seen: dict[str, str] = {}
    for key, value in overrides:
        if key in seen:
            raise ConfigError(f"--set {key} is given twice ({key}={seen[key]} and {key}={value}); give each key once")
        seen[key] = value
    return tuple(overrides)


def execute(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .. import registry
    from ..runner.predict import PredictConfig, predict_images
    from .options import resolve_device

    load_plugins(args.plugin)
    registry.methods().get(args.method)  # an unknown method is named before anything is loaded
    config = PredictConfig(
        method=args.method,
        inputs=tuple(args.images),
        write=args.write,
        pretrained=args.pretrained,
        overrides=_overrides(args),
        state=args.state,
        support=tuple(args.support),
        category=args.category,
        device=resolve_device(args.device),
        precision=args.precision,
        batch_size=args.batch_size,
        **({"workers": args.workers} if args.workers else {}),
    )
    console = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as bar:
        tasks: dict[str, int] = {}

        def step(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done)

        summary = predict_images(config, step, lambda text: console.print(f"[yellow]note[/]: {escape(text)}",
                                                                          highlight=False))
    low, high = summary.scale
    console.print(f"{summary.label}: {summary.images} images; scores in {summary.write / 'scores.csv'}, maps in "
                  f"{summary.write / 'maps'}, overlays in {summary.write / 'overlays'} (colour scale {low:.4g} .. "
                  f"{high:.4g}, see README.txt)", highlight=False, soft_wrap=True)
    return 0
