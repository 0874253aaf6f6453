"""Run zsadbench's InCTRL beside the official code (github.com/mala-lab/InCTRL) on the same random weights, heads,
prompt images and queries, store the official outputs of every stage and print how far ours are from them.

The official ``InCTRL`` model is built from the tiny architecture (``inctrl_ours.py``) and handed zsadbench's
state dict (open_clip and the official copy of it name the parameters alike) plus the seeded heads under the
official names. Each query goes through the official ``forward`` on its own, with the prompt images as
``normal_list``, the official test loop's setting (``TEST.BATCH_SIZE = 1``). Nothing in the official code is
edited: its ``open_clip`` package is imported under its own name while zsadbench's open_clip is set aside, its two
training utilities (which need fvcore, iopath, psutil and simplejson) are stood in for, its ``.cuda()`` calls are
made no-ops on the CPU, and hooks record what its forward computes::

    python scripts/compare_official/inctrl.py --official /path/to/InCTRL --commit <sha>

writes ``tests/reference_outputs/official/inctrl.npz``, which ``tests/methods/test_official_outputs.py`` checks
zsadbench against without the official code.
"""
from __future__ import annotations

import contextlib
import importlib
import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch

import inctrl_ours as ours
from common import arguments, differences, report, table

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "tests" / "reference_outputs" / "official" / "inctrl.npz"
#: The official blocks (``encode_image``'s ``out_layers``, counted from 1).
OFFICIAL_LAYERS = (7, 9, 11)
#: zsadbench's names of the heads' modules → the official ones (the unused ``bn1`` of each head stays as built).
HEAD_NAMES = {
    "adapter.net.0": "adapter.fc.0", "adapter.net.2": "adapter.fc.2",
    **{f"{ours_head}.net.{i}": f"{theirs}.{name}" for ours_head, theirs in (("image_head", "diff_head_ref"),
                                                                           ("holistic_head", "diff_head"))
       for i, name in ((0, "projection1"), (2, "bn2"), (3, "projection2"), (5, "bn3"), (6, "projection3"))},
}


def _is_open_clip(name: str) -> bool:
    return name == "open_clip" or name.startswith("open_clip.")


def import_official(path: Path) -> dict[str, types.ModuleType]:
    """The official ``open_clip.model``, ``open_clip.tokenizer`` and ``binary_focal_loss`` modules.

    The official package is entered without running its ``__init__`` (which imports every module of it), with
    ``open_clip.utils.misc`` and ``open_clip.utils.env`` stood in for (``model.py`` imports them for training and
    checkpoint helpers its forward does not use); zsadbench's open_clip modules are put back afterwards.
    """
    saved = {name: module for name, module in sys.modules.items() if _is_open_clip(name)}
    for name in saved:
        del sys.modules[name]
    try:
        package = types.ModuleType("open_clip")
        package.__path__ = [str(path / "open_clip")]
        utils = types.ModuleType("open_clip.utils")
        utils.__path__ = [str(path / "open_clip" / "utils")]
        misc, env = types.ModuleType("open_clip.utils.misc"), types.ModuleType("open_clip.utils.env")
        env.checkpoint_pathmgr = None
        package.utils, utils.misc, utils.env = utils, misc, env
        sys.modules.update({"open_clip": package, "open_clip.utils": utils, "open_clip.utils.misc": misc,
                            "open_clip.utils.env": env})
        modules = {"model": importlib.import_module("open_clip.model"),
                   "tokenizer": importlib.import_module("open_clip.tokenizer")}
    finally:
        for name in [name for name in sys.modules if _is_open_clip(name)]:
            del sys.modules[name]
        sys.modules.update(saved)
    sys.path.insert(0, str(path))
    modules["loss"] = importlib.import_module("binary_focal_loss")
    return modules


@contextlib.contextmanager
def on_cpu() -> Iterator[None]:
    """``Tensor.cuda()`` and ``Tensor.to("cuda")`` leave tensors on the CPU while the official code runs."""
    to = torch.Tensor.to

    def to_cpu(self: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        args = tuple("cpu" if isinstance(a, str) and a.startswith("cuda") else a for a in args)
        return to(self, *args, **kwargs)

    with mock.patch.object(torch.Tensor, "cuda", lambda self, *a, **k: self), \
            mock.patch.object(torch.Tensor, "to", to_cpu):
        yield


def official_model(official: types.ModuleType, method) -> torch.nn.Module:
    """The official ``InCTRL`` built from the tiny architecture, holding zsadbench's CLIP weights and heads."""
    architecture = json.loads(ours.CONFIG_FILE.read_text())
    model = official.InCTRL(None, architecture["embed_dim"], architecture["vision_cfg"], architecture["text_cfg"])
    clip = {k: v for k, v in method.model_.backbone.model.state_dict().items() if k != "logit_scale"}
    heads = method.model_.heads[str(ours.NUM_SHOTS)].state_dict()
    renamed = {}
    for name, value in heads.items():
        module, _, leaf = name.rpartition(".")
        renamed[f"{HEAD_NAMES[module]}.{leaf}"] = value
    result = model.load_state_dict({**clip, **renamed}, strict=False)
    unexpected = list(result.unexpected_keys)
    missing = [k for k in result.missing_keys if ".bn1." not in k]
    if unexpected or missing:
        raise RuntimeError(f"the official model does not take zsadbench's weights: missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]}")
    return model.eval()


class Recorder:
    """Wrappers of the official modules' ``forward`` (which the official code calls directly, past any hook) and
    of ``encode_text`` that keep, per call of the official forward, what the visual tower, the adapter, both heads
    and the text tower returned (and what the heads were given)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.calls: dict[str, list[Any]] = {"visual": [], "adapter": [], "image_head_in": [], "image_head": [],
                                            "holistic_in": [], "holistic": [], "text": []}
        self._wrap(model.visual, "forward", "visual")
        self._wrap(model.adapter, "forward", "adapter")
        self._wrap(model.diff_head_ref, "forward", "image_head", "image_head_in")
        self._wrap(model.diff_head, "forward", "holistic", "holistic_in")
        self._wrap(model, "encode_text", "text")

    def _wrap(self, owner: Any, method: str, key: str, input_key: str | None = None) -> None:
        original = getattr(owner, method)

        def recorded(*args: Any, **kwargs: Any) -> Any:
            out = original(*args, **kwargs)
            self.calls[key].append(out)
            if input_key:
                self.calls[input_key].append(args[0])
            return out

        setattr(owner, method, recorded)

    def clear(self) -> None:
        for calls in self.calls.values():
            calls.clear()


def run_official(model, tokenizer, recorder: Recorder, prompts: torch.Tensor, queries: torch.Tensor):
    """The official forward of ``queries`` (normalised, one call) against the normalised ``prompts``; returns
    ``(final, image-level score)`` and leaves the call's records in ``recorder``."""
    recorder.clear()
    with torch.no_grad(), on_cpu():
        return model(tokenizer, [queries], [ours.CATEGORY] * len(queries), list(prompts))


def official_stages(modules: dict[str, types.ModuleType], method, prompts01: torch.Tensor, queries01: torch.Tensor
                    ) -> dict[str, np.ndarray]:
    """Every stage of the official forward, one query per call, same layout as :func:`inctrl_ours.our_stages`.

    The forward computes the text prior and the patch residual map inline; they follow from what it hands its
    heads: with ``H`` the holistic head's input (prior ``t`` + image-level score ``r`` + map ``M``), ``f`` the
    final score and ``h`` the holistic score, ``max M = 2f − h``, ``t = max H − r − max M`` and
    ``M = H − t − r``.
    """
    model = official_model(modules["model"], method)
    recorder = Recorder(model)
    normalize = method.model_.backbone.normalize
    prompts, queries = normalize(prompts01), normalize(queries01)
    per_query: dict[str, list[torch.Tensor]] = {}
    for i in range(len(queries)):
        final, image = run_official(model, modules["tokenizer"].tokenize, recorder, prompts, queries[i:i + 1])
        calls = recorder.calls
        (token, taps, _), (prompt_token, prompt_taps, _) = calls["visual"]
        holistic_in, holistic = calls["holistic_in"][0], calls["holistic"][0][:, 0]
        max_residual = 2 * final - holistic
        prior = holistic_in.max(dim=1).values - image - max_residual
        residual_map = holistic_in - prior[:, None] - image[:, None]
        found = {
            **{f"patches_{layer}": t[:, 1:] for layer, t in zip(OFFICIAL_LAYERS, taps)},
            "image_token": token, "adapted_query": calls["adapter"][0], "image_residual": calls["image_head_in"][0],
            "image_residual_score": image, "text_prior": prior, "residual_map": residual_map,
            "holistic_input": holistic_in, "holistic_score": holistic, "max_residual": max_residual,
            "image_score": final,
        }
        for name, value in found.items():
            per_query.setdefault(name, []).append(value)
    stages = {name: torch.cat(values) for name, values in per_query.items()}
    grid = int(round(stages["residual_map"].shape[1] ** 0.5))
    labels = torch.tensor(ours.LABELS, dtype=torch.float32)
    focal = modules["loss"].BinaryFocalLoss()
    stages.update({
        "text_normal": recorder.calls["text"][0], "text_anomalous": recorder.calls["text"][1],
        **{f"prompt_patches_{layer}": t[:, 1:].reshape(-1, t.shape[-1])
           for layer, t in zip(OFFICIAL_LAYERS, prompt_taps)},
        "prompt_tokens": prompt_token, "adapted_prompts": calls["adapter"][1][0],
        "smoothed_map": stages["residual_map"].reshape(-1, grid, grid),
        "loss": focal(stages["image_score"], labels) + focal(stages["image_residual_score"], labels),
    })
    return {name: stages[name].detach().float().numpy() for name in ours.STAGES}


def batched_rows(modules: dict[str, types.ModuleType], method, prompts01: torch.Tensor, queries01: torch.Tensor,
                 theirs: dict[str, np.ndarray]) -> list[tuple[str, float, float]]:
    """How far the official forward moves its own scores when it takes all queries in one call."""
    model = official_model(modules["model"], method)
    normalize = method.model_.backbone.normalize
    final, image = run_official(model, modules["tokenizer"].tokenize, Recorder(model), normalize(prompts01),
                                normalize(queries01))
    batched = {"image_score": final.numpy(), "image_residual_score": image.numpy()}
    return differences(batched, theirs, tuple(batched))


def main(argv: list[str] | None = None) -> int:
    """Compare, write the npz of the official stages, print the tables; returns the exit status."""
    args = arguments(__doc__, "github.com/mala-lab/InCTRL", argv)
    args.out = args.out or DEFAULT_OUT
    torch.set_num_threads(1)
    if ours.CONFIG.layers != OFFICIAL_LAYERS:
        raise SystemExit(f"the official code reads blocks {OFFICIAL_LAYERS}; CONFIG has {ours.CONFIG.layers}")
    modules = import_official(args.official.resolve())
    method = ours.build_ours()
    prompts, queries = ours.input_images()
    theirs = official_stages(modules, method, prompts, queries)
    mine = ours.our_stages(method, queries)
    report(args, theirs, mine, ours)
    print(f"\nthe official forward with all {len(queries)} queries in one call, against one query per call:\n")
    print(table(batched_rows(modules, method, prompts, queries, theirs), theirs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
