"""``zsadbench run``: evaluate methods on datasets; finished cells are skipped on the next run."""
from __future__ import annotations

import argparse
from pathlib import Path

from .options import int_list, key_value, load_plugins, name_list, positive_int, resolve_device


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", "-m", type=name_list, required=True, metavar="NAME[,NAME]",
                        help="method(s) to evaluate; see `zsadbench list`")
    parser.add_argument("--datasets", "-d", type=str, default="synthetic", metavar="NAMES",
                        help="dataset names, comma-separated, or the groups all (the 15 ZSAD datasets), industrial, "
                             "medical; DATASET/CATEGORY runs one category (default: synthetic, generated locally)")
    parser.add_argument("--categories", type=name_list, default=(), metavar="CAT[,CAT]",
                        help="only these categories (CATEGORY, or DATASET/CATEGORY for one dataset's); the dataset "
                             "Means then cover part of a dataset and the tables mark them")
    parser.add_argument("--limit", type=positive_int, default=None, metavar="N",
                        help="a smoke run: at most N test images per category (half anomalous where it can); its cells "
                             "are kept apart from full ones and marked in the tables")
    parser.add_argument("--shots", type=int_list, default=None, metavar="K[,K]",
                        help="0 for zero-shot, k>0 for k normal support images (default: each method's own setting)")
    parser.add_argument("--seeds", type=int_list, default=(0,), metavar="S[,S]",
                        help="seeds; trained and few-shot methods run once per seed and tables show mean ± std "
                             "(default: 0)")
    parser.add_argument("--backbone", default=None, metavar="MODEL",
                        help="the backbone (open_clip or timm model name) of every selected method that has one: "
                             "the same as --set backbone=MODEL; `zsadbench show METHOD` lists each method's")
    parser.add_argument("--pretrained", default="default", metavar="TAG|PATH|none",
                        help="backbone weights: 'default' = each method's paper weights, an open_clip/timm tag, a local "
                             "file, or 'none' for random initialisation (results are labelled as such)")
    parser.add_argument("--data-root", type=Path, default=None, metavar="DIR",
                        help="folder holding one sub-folder per dataset (default: $ZSADBENCH_DATA_ROOT, the config "
                             "file, or ~/zsadbench-data)")
    parser.add_argument("--out", type=Path, default=Path("runs/default"), metavar="DIR",
                        help="output folder: results.sqlite, per-image artifacts, manifests (default: runs/default)")
    parser.add_argument("--device", default="auto", metavar="DEVICE",
                        help="torch device: auto (cuda if available), cpu, cuda, cuda:1 (default: auto)")
    parser.add_argument("--eval-size", type=positive_int, default=518, metavar="PX",
                        help="side of the square maps and masks metrics are computed on (default: 518)")
    parser.add_argument("--batch-size", type=positive_int, default=8, metavar="N", help="inference batch size (default: 8)")
    parser.add_argument("--protocol", choices=("anomalyclip", "visualad"), default="anomalyclip",
                        help="auxiliary pairing for trained zero-shot methods: anomalyclip trains on MVTec AD (VisA for "
                             "MVTec AD), visualad the other way round (default: anomalyclip)")
    parser.add_argument("--aux", default=None, metavar="DATASET", help="force one auxiliary training dataset")
    parser.add_argument("--set", dest="overrides", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                        help="override a method option, e.g. --set scales=2,3 or --set visualad.epochs=1 (repeatable)")
    parser.add_argument("--force", action="store_true", help="recompute cells that are already stored")
    parser.add_argument("--dry-run", action="store_true", help="print the plan (cells, cached or not) and exit")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE:CLASS",
                        help="load a method or dataset plugin class explicitly (repeatable)")
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N",
                        help="torch CPU threads, pinned for the run (default: torch's default); results are "
                             "bitwise reproducible for a given machine and thread count")
    parser.add_argument("--workers", type=positive_int, default=None, metavar="N",
                        help="image loading threads (default: the CPUs available, at most 16)")
    parser.add_argument("--keep-maps", choices=("all", "gallery", "none"), default="all",
                        help="which anomaly maps the per-image artifacts keep: all (about 50-100 KB per image at "
                             "518 px; rescore of every metric, galleries, scale plots), gallery (the images galleries "
                             "show; rescore of image metrics only, no scale plots), none (no galleries either) "
                             "(default: all)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="precision of the frozen backbones' forward passes (bf16 autocast; default: fp32); part of "
                             "each cell's identity, so cells of another precision are computed, not reused")
    parser.add_argument("--support-manifest", type=Path, default=None, metavar="FILE",
                        help="replay few-shot support draws: a support.jsonl of an earlier run, or a PromptAD/"
                             "FineGrainedAD seeds_<dataset> folder")
    parser.add_argument("--no-table", action="store_true", help="do not print the results table at the end")
    parser.add_argument("--config", type=Path, default=None, metavar="FILE",
                        help="read the run's options from a YAML sweep file (methods, datasets, shots, seeds, a `set` "
                             "grid, ...); options on the command line win; every run stores its own in OUT/sweeps")
    parser.add_argument("--print-config", action="store_true",
                        help="print the sweep file that reproduces this command line and exit")
    parser.add_argument("--executor", choices=("local", "ray"), default="local",
                        help="where cells are computed: in this process, or as tasks on a Ray cluster (needs the "
                             "extra: pip install \"zsadbench[ray]\"); this process alone writes --out (default: local)")
    parser.add_argument("--address", default=None, metavar="auto|HOST:PORT",
                        help="with --executor ray: the cluster to use (default: $RAY_ADDRESS, else a local Ray)")
    parser.add_argument("--gpus-per-cell", type=float, default=None, metavar="N",
                        help="with --executor ray: GPUs per task, fractions allowed (default: 1 if the cluster has "
                             "GPUs, else 0)")
    parser.add_argument("--cpus-per-cell", type=float, default=1.0, metavar="N",
                        help="with --executor ray: CPUs per task; also the default of --threads (default: 1)")
    parser.add_argument("--log", choices=("mlflow", "tensorboard"), default=None,
                        help="send each finished cell's metrics, config and provenance to MLflow (a SQLite database "
                             "in OUT/mlruns, or $MLFLOW_TRACKING_URI; pip install mlflow) or TensorBoard (OUT/"
                             "tensorboard; pip install tensorboard), one run per method variant")
    parser.add_argument("--log-dir", type=Path, default=None, metavar="DIR",
                        help="with --log: the folder of MLflow's runs or TensorBoard's event files")


#: the most torch threads per available CPU a local run accepts
THREADS_PER_CPU = 8


def _check_combinations(args: argparse.Namespace) -> None:
    """Options that only mean something together, and a key set twice, fail with one line and the fix."""
    from ..errors import ConfigError

    if args.log_dir is not None and args.log is None:
        raise ConfigError("--log-dir only applies with --log mlflow|tensorboard; add --log or drop it")
    if args.log is not None and args.executor == "ray":
        raise ConfigError("--log works with --executor local only; drop --log, or run locally")
    if args.executor != "ray":
        given = [name for name, value in (("--address", args.address), ("--gpus-per-cell", args.gpus_per_cell))
                 if value is not None]
        if given:
            raise ConfigError(f"{' and '.join(given)} only apply to --executor ray; add --executor ray or drop them")
        from ..machine import available_cpus

        cpus = available_cpus()
        if args.threads and args.threads > THREADS_PER_CPU * cpus:
            raise ConfigError(f"--threads {args.threads}: this machine gives the run {cpus} CPUs, and more than "
                              f"{THREADS_PER_CPU} threads per CPU only wait on each other; use at most "
                              f"{THREADS_PER_CPU * cpus}")
    if args.backbone is not None:
        if any(key.rpartition(".")[2] == "backbone" for key, _ in args.overrides):
            raise ConfigError("--backbone and --set backbone=... both name a backbone; give one of them")
        args.overrides = [*args.overrides, ("backbone", args.backbone)]
        args.backbone = None
    seen: dict[str, str] = {}
    for key, value in args.overrides:
        if key in seen:
            raise ConfigError(f"--set {key} is given twice ({key}={seen[key]} and {key}={value}); give each key once "
                              "(a list of values in one --set makes a grid of variants, see zsadbench run --help)")
        seen[key] = value


def _workers(args: argparse.Namespace) -> dict[str, int]:
    """``--workers``, else on Ray the CPUs each task asks for; locally the run's own default."""
    if args.workers:
        return {"workers": args.workers}
    if args.executor == "ray":
        return {"workers": max(1, round(args.cpus_per_cell))}
    return {}


def _executor_threads(args: argparse.Namespace) -> int | None:
    """Default torch threads: torch's own locally, the CPUs each task asks for on Ray."""
    if args.executor != "ray":
        return None
    from ..runner.ray_executor import default_threads

    return default_threads(args.cpus_per_cell)


def split_categories(spec: str) -> tuple[str, tuple[str, ...]]:
    """``--datasets`` without its ``DATASET/CATEGORY`` items' categories, and those items: ``"mvtec/bottle,visa"``
    → ``("mvtec,visa", ("mvtec/bottle",))``."""
    names, categories = [], []
    for item in (i.strip() for i in spec.split(",") if i.strip()):
        dataset, slash, category = item.partition("/")
        names.append(dataset)
        if slash and category:
            categories.append(item)
    return ",".join(dict.fromkeys(names)), tuple(categories)


def execute(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..runner import RunConfig, build_plan, execute_plan
    from ..runner.loggers import LogTarget
    from zsadbench.datasets.groups import expand_datasets

    from .. import registry

    _check_combinations(args)
    if args.print_config:
        from .sweep import config_text

        print(config_text(args), end="")
        return 0
    load_plugins(args.plugin)
    for name in args.method:  # unknown methods are reported before anything else is resolved
        registry.methods().get(name)
    datasets, categories = split_categories(args.datasets)
    config = RunConfig(
        methods=args.method,
        datasets=tuple(expand_datasets(datasets)),
        categories=tuple(dict.fromkeys(categories + tuple(args.categories))),
        limit=args.limit,
        shots=args.shots,
        seeds=args.seeds,
        pretrained=args.pretrained,
        data_root=args.data_root,
        out=args.out,
        device=resolve_device(args.device) if args.executor == "local" else args.device,
        eval_size=args.eval_size,
        batch_size=args.batch_size,
        protocol=args.protocol,
        aux=args.aux,
        force=args.force,
        overrides=tuple(args.overrides),
        **_workers(args),
        keep_maps=args.keep_maps,
        precision=args.precision,
        support_manifest=args.support_manifest,
        threads=args.threads or _executor_threads(args),
        log=LogTarget(args.log, args.log_dir) if args.log else None,
    )
    console = Console(stderr=True)
    plan = build_plan(config)
    for note in plan.notes:
        console.print(f"[yellow]note[/]: {note}", highlight=False)
    if args.executor == "local":
        from ..runner.provenance import device_name
        from ..runner.reuse import reuse_notes

        for note in reuse_notes(plan, device_name(config.device)):
            console.print(f"[yellow]note[/]: {note}", highlight=False)
    if args.dry_run:
        from .plan_view import show_plan

        show_plan(plan, Console())
        return 0
    if args.executor == "ray":
        from ..runner.ray_executor import execute_plan_ray

        summary = execute_plan_ray(plan, address=args.address, gpus_per_cell=args.gpus_per_cell,
                                   cpus_per_cell=args.cpus_per_cell)
    else:
        summary = execute_plan(plan)
    from .sweep import store_config

    stored = store_config(args, config.out)
    console.print(
        f"{summary.done} cells computed, {summary.cached} reused from {config.out}, {summary.failed} failed "
        f"(this run's options: {stored})",
        highlight=False,
    )
    if summary.elsewhere:
        owners = sorted({owner for _, owner in summary.elsewhere})
        console.print(
            f"{len(summary.elsewhere)} cells are being computed by another run ({', '.join(owners)}); "
            "run the command again when it ends to see them in the table",
            highlight=False,
        )
    if not args.no_table and (summary.done or summary.cached):
        from .table import show

        show(config.out)
    if summary.failures:
        console.print("[red]failed cells[/] (stored with their error; they are retried on the next run):")
        for cell, message in summary.failures:
            console.print(f"  {cell.describe()}: {message}", highlight=False, soft_wrap=True)
        return 1
    return 0
