"""``predict`` throughput of every built-in method next to its bare visual tower, side by side in one run.

For each method: images/s of ``Method.predict`` (under ``torch.inference_mode``, as the runner calls it) and
images/s of the plain full forward of the very image-tower module the method built (open_clip's
``VisionTransformer.forward`` for CLIP, the timm model for DINOv2 and the CNN baselines (their feature network,
cut after the last stage the method reads), after the backbone's normalisation), at the
method's input size, batch and precision (fp32, or bf16 autocast). The two sides run alternately, one call each
per repeat with the order swapped every repeat, after warm-up calls, so machine load hits both alike; the
reported rate is the batch over the fastest call of each side (on a shared machine other jobs only ever add
time, so the fastest alternated calls are the least disturbed; ``--json`` keeps every call's time). ``ratio = predict / tower``: 1.0 means predict costs no
more than one plain tower pass, so everything outside the tower (text features, heads, maps, smoothing, and the
V-V attention stream of the methods that add one) costs the rest. ``in tower`` splits that rest: the share of
``predict``'s wall time spent inside the backbone's own forward passes (``forward_intermediates`` with the
method's taps, V-V stream and extra tokens; the visual transformer for WinCLIP; a CNN's ``forward``), clocked
during the fastest timed call; ``in text tower`` is the share spent in the text tower (FAPrompt's and AdaCLIP's
prompts depend on the image, so they run it for every batch; the other methods encode their prompts once).

WinCLIP runs its tower over many windows by design, so its reference is the tower over the same window set it
evaluates: one plain full pass plus ``ln_pre`` → transformer → ``ln_post`` → projection over the CLS-plus-window
token sequences of every scale (built once, outside the timing, in WinCLIP's own chunks). A second row,
``winclip (single pass)``, divides by one plain full pass instead, to show the window cost itself.

Random weights (``pretrained="none"``; speed does not depend on them). Methods that train on an auxiliary set
are fitted for one epoch on two tiny random batches; few-shot methods on k = 1 random support image (one epoch
per phase), zero-shot WinCLIP with ``FitData("none")``. ``--size demo`` (default) uses each method's random-init
configuration (``random_init_overrides``), ``--size full`` the paper configuration (config defaults).

    python benchmarks/bench_methods.py                                     # demo size, CPU, batch 1 and 8
    python benchmarks/bench_methods.py --methods mpama,anomalyclip --batch 8 --repeats 5
    python benchmarks/bench_methods.py --size full --device cuda --precision bf16

Prints a Markdown table; ``--json PATH`` also writes the numbers.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import torch

from zsadbench.backbones import PromptTextEncoder, autocast
from zsadbench.method import FitData, Method, fit_kind
from zsadbench.registry import methods
from zsadbench.types import Batch

BUILTINS = ("winclip", "visualad", "promptad", "finegrainedad", "anomalyclip", "mpa", "mpama", "vand", "adaclip",
            "faprompt", "inctrl", "patchcore", "padim", "spade")
DATASET, CATEGORY = "synthetic", "nut"  # a category with shipped FineGrainedAD captions
EPOCH_FIELDS = ("epochs", "stage2_epochs", "epochs_seg", "epochs_cls")


@dataclass
class Row:
    """One measured (method, batch) pair."""

    method: str
    backbone: str
    input_size: int
    batch: int
    precision: str
    predict_ips: float
    tower_ips: float
    in_tower: float  # share of the fastest predict call's wall time spent inside the backbone's forward passes
    in_text: float  # the same for its text tower
    predict_s: list[float]
    tower_s: list[float]

    @property
    def ratio(self) -> float:
        return self.predict_ips / self.tower_ips


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def build_config(cls: type[Method], size: str):
    """The method's demo (random-init) or paper configuration, with one epoch per training phase."""
    names = {f.name for f in dataclasses.fields(cls.config_class)}
    overrides = dict(cls.random_init_overrides) if size == "demo" else {}
    overrides.update({name: 1 for name in EPOCH_FIELDS if name in names})
    return cls.config_class().replace(**overrides)


def toy_batches(count: int, size: int) -> Callable[..., Iterator[Batch]]:
    """``FitData.batches`` over ``count`` fixed random images; odd ones carry a masked bright square."""
    images = torch.rand(count, 3, size, size, generator=torch.Generator().manual_seed(0))
    masks = torch.zeros(count, size, size, dtype=torch.bool)
    masks[1::2, size // 4 : size // 2, size // 4 : size // 2] = True
    labels = torch.arange(count) % 2

    def batches(batch_size: int = 8, shuffle: bool = False, seed: int = 0) -> Iterator[Batch]:
        for start in range(0, count, batch_size):
            part = slice(start, start + batch_size)
            yield Batch(image=images[part], category=CATEGORY, gt_label=labels[part], gt_mask=masks[part])

    return batches


def fitted_method(name: str, size: str, device: str, precision: str) -> Method:
    """A built, checked and cheaply fitted method (see the module docstring)."""
    cls = methods().get(name)
    torch.manual_seed(0)
    method = cls(build_config(cls, size), pretrained="none", device=device, precision=precision)
    method.check_params().setup()
    kind = fit_kind(cls, 1 if "zero-shot" not in cls.settings else 0)
    if kind == "auxiliary":
        data = FitData("auxiliary", toy_batches(4, method.input_size), 4, DATASET, seed=0)
    elif kind == "support":
        data = FitData("support", toy_batches(1, method.input_size), 1, DATASET, CATEGORY, 1, 0)
    else:
        data = FitData("none")
    return method.fit(data)


def method_backbone(method: Method) -> torch.nn.Module:
    """The frozen backbone a built-in method wraps."""
    backbone = getattr(method, "backbone_", None)
    return backbone if backbone is not None else method.model_.backbone


def plain_tower(backbone: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The backbone's plain image-tower forward on ``[0, 1]`` images: the open_clip visual tower, or the timm model
    (DINOv2, or a CNN's feature network cut after the last stage its method reads)."""
    module = backbone.visual if hasattr(backbone, "visual") else backbone.model
    return lambda images: module(backbone.normalize(images))


def winclip_tower(method: Method, images: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """One plain full pass plus the transformer over WinCLIP's window sequences of ``images`` (built here, once)."""
    model = method.model_
    backbone = model.backbone
    plain = plain_tower(backbone)
    with torch.inference_mode():
        tokens = backbone.embed_tokens(backbone.normalize(images.to(model.device)))
    chunks = []
    for windows in model.windows:
        count, per_window = windows.shape
        patches = tokens[:, 1 + windows.to(tokens.device)]
        cls = tokens[:, :1, None].expand(len(tokens), count, 1, tokens.shape[-1])
        sequences = torch.cat([cls, patches], dim=2).reshape(len(tokens) * count, 1 + per_window, -1)
        chunks.extend(sequences.split(max(1, model.max_window_tokens // (1 + per_window))))

    def run(batch_images: torch.Tensor) -> torch.Tensor:
        out = plain(batch_images)
        for chunk in chunks:
            backbone.forward_from_tokens(chunk)
        return out

    return run


def tower_entry_points(backbone: torch.nn.Module) -> list[tuple[object, str]]:
    """The image tower's entry points a method calls: ``forward_intermediates`` (``forward`` for a CNN), and the
    CLIP visual transformer that WinCLIP calls directly."""
    targets: list[tuple[object, str]] = [
        (backbone, "forward_intermediates" if hasattr(backbone, "forward_intermediates") else "forward")]
    if hasattr(backbone, "visual"):
        targets.append((backbone.visual.transformer, "forward"))
    return targets


def text_entry_points(backbone: torch.nn.Module) -> list[tuple[object, str]]:
    """The text tower's entry points: prompt embeddings through :class:`PromptTextEncoder`, token ids through
    ``encode_text`` (CLIP backbones only)."""
    return [(PromptTextEncoder, "encode"), (backbone, "encode_text")] if hasattr(backbone, "encode_text") else []


@contextlib.contextmanager
def clock(targets: list[tuple[object, str]], device: str) -> Iterator[list[float]]:
    """Meanwhile, add the wall time of every outermost call to the ``(owner, attribute)`` callables ``targets`` to
    the yielded one-item list."""
    spent = [0.0]
    depth = [0]

    def wrap(fn: Callable) -> Callable:
        def timed(*args, **kwargs):
            depth[0] += 1
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    _sync(device)
                    spent[0] += time.perf_counter() - start
        return timed

    own = [(owner, attr, vars(owner).get(attr)) for owner, attr in targets]
    for owner, attr, _ in own:
        setattr(owner, attr, wrap(getattr(owner, attr)))
    try:
        yield spent
    finally:
        for owner, attr, original in own:
            if original is None:
                delattr(owner, attr)
            else:
                setattr(owner, attr, original)


def alternate(sides: list[Callable[[], object]], device: str, warmup: int, repeats: int) -> list[list[float]]:
    """Seconds of each timed call of each side, run alternately (order reversed every repeat) after warm-up."""
    times: list[list[float]] = [[] for _ in sides]
    for r in range(warmup + repeats):
        order = list(range(len(sides)))[:: 1 if r % 2 == 0 else -1]
        for i in order:
            _sync(device)
            start = time.perf_counter()
            sides[i]()
            _sync(device)
            if r >= warmup:
                times[i].append(time.perf_counter() - start)
    return times


def measure(name: str, method: Method, batch: int, args: argparse.Namespace) -> list[Row]:
    """Rows for one method at one batch size (two for WinCLIP: windowed and single-pass references)."""
    size = method.input_size
    images = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(1)).to(args.device)
    request = Batch(image=images, category=CATEGORY)
    backbone = method_backbone(method)
    towers = {name: plain_tower(backbone)}
    if name == "winclip":
        towers = {name: winclip_tower(method, images), f"{name} (single pass)": towers[name]}

    inside: list[tuple[float, float]] = []

    def predict() -> None:
        before = spent[0], text[0]
        with torch.inference_mode():
            method.predict(request)
        inside.append((spent[0] - before[0], text[0] - before[1]))

    def tower_side(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], None]:
        def run() -> None:
            with torch.inference_mode(), autocast(args.device, args.precision):
                fn(images)
        return run

    with clock(tower_entry_points(backbone), args.device) as spent, \
            clock(text_entry_points(backbone), args.device) as text:
        times = alternate([predict, *map(tower_side, towers.values())], args.device, args.warmup, args.repeats)
    fastest = min(range(args.repeats), key=times[0].__getitem__)
    visual, texts = (part / times[0][fastest] for part in inside[args.warmup + fastest])
    return [Row(label, backbone.name, size, batch, args.precision, batch / min(times[0]), batch / min(t), visual,
                texts, times[0], t) for label, t in zip(towers, times[1:])]


def table(rows: list[Row]) -> str:
    """The Markdown table of ``rows``."""
    lines = ["| method | backbone | input | batch | precision | predict img/s | tower img/s | ratio | in tower "
             "| in text tower |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.method} | {r.backbone} | {r.input_size} | {r.batch} | {r.precision} | "
                     f"{r.predict_ips:.2f} | {r.tower_ips:.2f} | {r.ratio:.2f} | {100 * r.in_tower:.0f} % | "
                     f"{100 * r.in_text:.0f} % |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="demo", choices=["demo", "full"],
                        help="demo: each method's random-init configuration (default); full: the paper's")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--batch", default="", help="comma list (default: 1,8 on CPU, 1,32 on CUDA)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls of each side (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls of each side first (default 1)")
    parser.add_argument("--methods", default=",".join(BUILTINS), help="comma list (default: every built-in)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--json", default="")
    args = parser.parse_args(argv)
    default_batches = "1,32" if args.device.startswith("cuda") else "1,8"
    args.batches = [int(b) for b in (args.batch or default_batches).split(",") if b.strip()]
    args.method_names = [m.strip() for m in args.methods.split(",") if m.strip()]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else (
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    print(f"{args.size} size, {args.precision}, {device}, torch {torch.__version__}\n", flush=True)
    rows: list[Row] = []
    for name in args.method_names:
        method = fitted_method(name, args.size, args.device, args.precision)
        for batch in args.batches:
            measured = measure(name, method, batch, args)
            rows.extend(measured)
            print("\n".join(table(measured).splitlines()[2:]), flush=True)
        del method
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
    print("\n" + table(rows))
    if args.json:
        payload = {"size": args.size, "device": device, "torch": torch.__version__, "repeats": args.repeats,
                   "rows": [{**asdict(r), "ratio": r.ratio} for r in rows]}
        with open(args.json, "w") as handle:
            json.dump(payload, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
