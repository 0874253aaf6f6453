"""Run zsadbench's VAND beside the official code (github.com/ByChelsea/VAND-APRIL-GAN) on the same random weights,
linear layers and images, store the official outputs of every stage and print how far ours are from them.

The official model is built as the official ``create_model`` builds a model for OpenAI weights at another input
size: its ``CLIP`` class from the architecture's config at that size, the weights (zsadbench's tiny backbone at its
native size) passed through the official ``resize_pos_embed`` and loaded strictly. zsadbench's linear layers are
loaded into the official ``LinearLayer``. The zero-shot stages follow ``test.py`` (batch size 1, one image at a
time), the memory follows ``few_shot.py``::

    python scripts/compare_official/vand.py --official /path/to/VAND-APRIL-GAN

writes ``tests/reference_outputs/official/vand.npz``, which ``tests/methods/test_official_outputs.py`` checks
zsadbench against without the official code.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import pairwise

import vand_ours as ours
from common import HERE, arguments, differences, report, table

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "tests" / "reference_outputs" / "official" / "vand.npz"
#: The name the official copy of open_clip is imported under, beside the installed open_clip zsadbench uses.
OFFICIAL_OPEN_CLIP = "vand_official_open_clip"


def _module(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def import_official(path: Path) -> dict[str, Any]:
    """The official modules used here, imported from the checkout at ``path``.

    The official copy of open_clip is entered as a package of another name (so the installed open_clip stays
    what zsadbench uses) without running its ``__init__``; the top-level ``model.py`` and ``prompt_ensemble.py``
    are imported under names of their own. ``prompt_ensemble.py`` imports ``pkg_resources`` only for
    ``packaging``; that module gets a stand-in when setuptools no longer ships it.
    """
    if importlib.util.find_spec("pkg_resources") is None:
        import packaging.version

        sys.modules["pkg_resources"] = types.SimpleNamespace(packaging=packaging)
    package = types.ModuleType(OFFICIAL_OPEN_CLIP)
    package.__path__ = [str(path / "open_clip")]
    sys.modules[OFFICIAL_OPEN_CLIP] = package
    clip = importlib.import_module(f"{OFFICIAL_OPEN_CLIP}.model")
    tokenizer = importlib.import_module(f"{OFFICIAL_OPEN_CLIP}.tokenizer")
    constants = importlib.import_module(f"{OFFICIAL_OPEN_CLIP}.constants")
    linear = _module("vand_official_model", path / "model.py")
    prompts = _module("vand_official_prompt_ensemble", path / "prompt_ensemble.py")
    return {"CLIP": clip.CLIP, "resize_pos_embed": clip.resize_pos_embed, "tokenize": tokenizer.tokenize,
            "mean": constants.OPENAI_DATASET_MEAN, "std": constants.OPENAI_DATASET_STD,
            "LinearLayer": linear.LinearLayer, "encode_text": prompts.encode_text_with_prompt_ensemble}


@contextlib.contextmanager
def cuda_on_cpu() -> Iterator[None]:
    """Without a GPU, ``tensor.to("cuda")`` returns the tensor: the official vision tower moves a buffer it only
    returns (the summed attention of block 12) to ``"cuda"`` unconditionally."""
    if torch.cuda.is_available():
        yield
        return
    original = torch.Tensor.to

    def to(self, *args, **kwargs):
        if args and args[0] == "cuda":
            return self
        return original(self, *args, **kwargs)

    torch.Tensor.to = to
    try:
        yield
    finally:
        torch.Tensor.to = original


def build_official(official: dict[str, Any], method) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The official CLIP at :data:`vand_ours.CONFIG`'s size and ``LinearLayer``, holding zsadbench's weights."""
    cfg = ours.CONFIG
    model_cfg = json.loads((HERE / f"{ours.BACKBONE}.json").read_text())
    model_cfg["vision_cfg"]["image_size"] = cfg.image_size
    model = official["CLIP"](**model_cfg)
    state = {k: v.clone() for k, v in ours.native_backbone().model.state_dict().items() if k != "attn_mask"}
    official["resize_pos_embed"](state, model)
    model.load_state_dict(state, strict=True)
    backbone = method.model_.backbone
    # the model name only tells the official LinearLayer that the tower is a ViT
    linear = official["LinearLayer"](backbone.width, backbone.embed_dim, len(cfg.layers), "ViT-L-14-336")
    linear.load_state_dict({f"fc.{k}": v for k, v in method.model_.adapters.state_dict().items()})
    return model.eval(), linear.eval()


def official_stages(official: dict[str, Any], model, linear, support01: torch.Tensor,
                    images01: torch.Tensor) -> dict[str, np.ndarray]:
    """Every stage of the official ``few_shot.py`` memory and ``test.py`` loop on ``images01`` (one image per
    step), same layout as :func:`vand_ours.our_stages`."""
    cfg = ours.CONFIG
    mean = torch.tensor(official["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(official["std"]).view(1, 3, 1, 1)
    features_list, few_shot_features = list(cfg.layers), list(cfg.memory_layers)
    rows: dict[str, list[torch.Tensor]] = {name: [] for name in ours.STAGES}
    with torch.no_grad(), cuda_on_cpu():
        text_prompts = official["encode_text"](model, [ours.CATEGORY], official["tokenize"], "cpu")
        features = []
        for image in (support01 - mean) / std:
            _, patch_tokens = model.encode_image(image[None], few_shot_features)
            features.append([p[0, 1:, :] for p in patch_tokens])
        memory = [torch.cat([features[j][i] for j in range(len(features))], dim=0) for i in range(len(features[0]))]
        for image in (images01 - mean) / std:
            image_features, patch_tokens = model.encode_image(image[None], features_list)
            rows["image_features"].append(image_features.clone())
            image_features /= image_features.norm(dim=-1, keepdim=True)
            text_features = torch.stack([text_prompts[ours.CATEGORY]], dim=0)
            rows["image_score"].append((100.0 * image_features @ text_features[0]).softmax(dim=-1)[:, 1])
            patch_tokens = linear(patch_tokens)
            rows["patch_tokens"].append(torch.stack([p.clone() for p in patch_tokens], dim=0))
            anomaly_maps = []
            for layer in range(len(patch_tokens)):
                patch_tokens[layer] /= patch_tokens[layer].norm(dim=-1, keepdim=True)
                anomaly_map = 100.0 * patch_tokens[layer] @ text_features
                batch, length, _ = anomaly_map.shape
                side = int(np.sqrt(length))
                anomaly_map = F.interpolate(anomaly_map.permute(0, 2, 1).view(batch, 2, side, side),
                                            size=cfg.image_size, mode="bilinear", align_corners=True)
                anomaly_maps.append(torch.softmax(anomaly_map, dim=1)[:, 1, :, :])
            rows["layer_maps"].append(torch.stack(anomaly_maps))
            anomaly_map = torch.stack(anomaly_maps).sum(dim=0)
            rows["anomaly_map"].append(anomaly_map)
            rows["smoothed_map"].append(anomaly_map)
            _, patch_tokens = model.encode_image(image[None], few_shot_features)
            distance_maps = []
            for index, p in enumerate(patch_tokens):
                cos = pairwise.cosine_similarity(memory[index].cpu(), p[0, 1:, :].cpu())
                side = int(np.sqrt(cos.shape[1]))
                distance = np.min(1 - cos, 0).reshape(1, 1, side, side)
                distance_maps.append(F.interpolate(torch.tensor(distance), size=cfg.image_size, mode="bilinear",
                                                   align_corners=True)[0])
            rows["memory_maps"].append(torch.stack(distance_maps))
            fewshot_map = anomaly_map + torch.stack(distance_maps).sum(dim=0)
            rows["fewshot_map"].append(fewshot_map)
            rows["fewshot_map_max"].append(fewshot_map.flatten(1).amax(dim=1))
    stages = {"text_features": text_prompts[ours.CATEGORY].T, "memory_tokens": torch.stack(memory)}
    per_layer = ("patch_tokens", "layer_maps", "memory_maps")
    stages.update({name: torch.cat(values, dim=1 if name in per_layer else 0)
                   for name, values in rows.items() if values})
    return {name: value.float().numpy() for name, value in stages.items()}


def main(argv: list[str] | None = None) -> int:
    """Compare, write the npz of the official stages, print the table; returns the exit status."""
    args = arguments(__doc__, "github.com/ByChelsea/VAND-APRIL-GAN", argv)
    args.out = args.out or DEFAULT_OUT
    torch.set_num_threads(1)
    official = import_official(args.official.resolve())
    method = ours.build_ours()
    model, linear = build_official(official, method)
    support, queries = ours.input_images()
    theirs = official_stages(official, model, linear, support, queries)
    mine = ours.our_stages(method, queries)
    report(args, theirs, mine, ours)
    for change in ({"pos_interpolation": "bilinear"}, {"activation": "quickgelu"}):
        variant = ours.build_ours(ours.CONFIG.replace(**change))
        setting = ", ".join(f"{key}={value}" for key, value in change.items())
        print(f"\nwith {setting} (not the official tower), for comparison:\n")
        print(table(differences(ours.our_stages(variant, queries), theirs, ours.STAGES), theirs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
