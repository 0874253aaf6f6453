"""Run zsadbench's AdaCLIP beside the official code (github.com/caoyunkang/AdaCLIP) on the same random weights,
learnable parameters and images, store the official outputs of every stage and print how far ours are from them.

Both models hold the weights of the tiny backbone of ``adaclip_ours.py``: zsadbench's state dict (its positional
grid already resized to 112 px) is loaded strictly into the official ``CLIP`` built from the same JSON, and
zsadbench's head (static prompts, dynamic-prompt generators, projections) is put into the official ``AdaCLIP``
module. The inference stages follow the official ``forward`` with ``aggregation=True`` (batch size 1, one image
at a time, as ``train.py`` enforces); the loss stages follow ``AdaCLIP_Trainer.train_one_batch`` with the
official ``FocalLoss`` and ``BinaryDiceLoss`` (``aggregation=False``). The official forward normalises features in
place after autograd has saved them, which backward refuses in float32 (under CUDA autocast the saved tensors are
float32 copies); the training forward therefore runs with saved-tensor hooks that keep a copy of each saved
tensor, so backward sees the values of the forward pass as written. The official k-means draws from NumPy's
global generator; it is seeded with the configuration's ``hsf_seed`` before each image, which gives the draws
zsadbench makes from a generator of that seed::

    python scripts/compare_official/adaclip.py --official /path/to/AdaCLIP

writes ``tests/reference_outputs/official/adaclip.npz``, which ``tests/methods/test_official_outputs.py``
checks zsadbench against without the official code.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import sys
import types
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from zsadbench.backbones import create_clip

import adaclip_ours as ours
import common
from common import HERE, arguments, differences, report, table

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "tests" / "reference_outputs" / "official" / "adaclip.npz"


def import_official(path: Path) -> dict[str, Any]:
    """The official modules used here, imported from the checkout at ``path``.

    Its ``pkg_resources`` import (used only for ``packaging.version``) gets a stand-in when setuptools no
    longer ships that module. The official ``method`` package is entered without running its ``__init__``,
    whose trainer imports OpenCV and the repository's evaluation tools, which the compared code does not use.
    """
    if importlib.util.find_spec("pkg_resources") is None:
        import packaging.version

        sys.modules["pkg_resources"] = types.SimpleNamespace(packaging=packaging)
    sys.path.insert(0, str(path))
    package = types.ModuleType("method")
    package.__path__ = [str(path / "method")]
    sys.modules["method"] = package
    return {name: importlib.import_module(module) for name, module in
            (("adaclip", "method.adaclip"), ("clip", "method.clip_model"), ("factory", "method.custom_clip"),
             ("loss", "loss"))}


def official_clip(official: dict[str, Any], method) -> torch.nn.Module:
    """The official ``CLIP`` of the tiny architecture at the comparison's input size, holding zsadbench's weights."""
    config = json.loads((HERE / f"{ours.BACKBONE}.json").read_text())
    config["vision_cfg"]["image_size"] = ours.CONFIG.image_size
    model = official["clip"].CLIP(**config)
    model.load_state_dict(method.model_.backbone.model.state_dict(), strict=True)
    return model.eval()


def put_head(model: torch.nn.Module, head: torch.nn.Module) -> None:
    """Copy zsadbench's head into the official modules (the official text prompts of block 1 are never used)."""
    cfg = ours.CONFIG
    with torch.no_grad():
        for prompter, mine in ((model.visual_prompter, head.visual_prompts), (model.text_prompter, head.text_prompts)):
            offset = len(prompter.static_prompts) - len(mine.static)
            for i, tensor in enumerate(mine.static):
                prompter.static_prompts[offset + i].copy_(tensor)
        for generator, mine in ((model.dynamic_visual_prompt_generator, head.visual_prompts.generator),
                                (model.dynamic_text_prompt_generator, head.text_prompts.generator)):
            width = mine.out_features // cfg.prompting_length
            for i, linear in enumerate(generator.head):
                linear.weight.copy_(mine.weight[i * width:(i + 1) * width])
                linear.bias.copy_(mine.bias[i * width:(i + 1) * width])
        for linear, mine in zip(model.patch_token_layer.head, head.patch_projections):
            linear.load_state_dict(mine.state_dict())
        model.cls_token_layer.head[0].load_state_dict(head.cls_projection.state_dict())


def official_gradient(model: torch.nn.Module, head: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The official parameters' gradients, laid out as zsadbench's head and grouped as ``adaclip_ours.GRADIENTS``."""
    visual_generator, text_generator = model.dynamic_visual_prompt_generator, model.dynamic_text_prompt_generator
    parts = {
        "visual_prompts.static": torch.stack([p.grad for p in model.visual_prompter.static_prompts]),
        "text_prompts.static": torch.stack([p.grad for p in model.text_prompter.static_prompts][1:]),
        "visual_prompts.generator.weight": torch.cat([h.weight.grad for h in visual_generator.head]),
        "visual_prompts.generator.bias": torch.cat([h.bias.grad for h in visual_generator.head]),
        "text_prompts.generator.weight": torch.cat([h.weight.grad for h in text_generator.head]),
        "text_prompts.generator.bias": torch.cat([h.bias.grad for h in text_generator.head]),
        "cls_projection.weight": model.cls_token_layer.head[0].weight.grad,
        "cls_projection.bias": model.cls_token_layer.head[0].bias.grad,
    }
    for i, linear in enumerate(model.patch_token_layer.head):
        parts[f"patch_projections.{i}.weight"] = linear.weight.grad
        parts[f"patch_projections.{i}.bias"] = linear.bias.grad
    return ours.split_gradient({name: parts[name] for name, _ in head.named_parameters()})


def positional_gap(official: dict[str, Any], size: int = 518) -> float:
    """max |official − zsadbench| of the visual positional embedding resized from the native 24×24 grid to the grid
    of ``size`` px (37×37 at 518): the official loader resizes it bicubically, zsadbench bilinearly. Not part of the
    stages, whose models both hold zsadbench's embedding (at 112 px both resizes sample the grid at whole positions
    and agree)."""
    config = json.loads((HERE / f"{ours.BACKBONE}.json").read_text())
    config["vision_cfg"]["image_size"] = size
    state = {"visual.positional_embedding": common.native_backbone(ours.BACKBONE).visual.positional_embedding.detach()}
    official["clip"].resize_pos_embed(state, official["clip"].CLIP(**config))
    resized = create_clip(ours.BACKBONE, "none", image_size=size).visual.positional_embedding.detach()
    return float((state["visual.positional_embedding"] - resized).abs().max())


def build_official(official: dict[str, Any], method) -> torch.nn.Module:
    """The official AdaCLIP module around the official CLIP, with zsadbench's head put in."""
    cfg = ours.CONFIG
    clip = official_clip(official, method)
    model = official["adaclip"].AdaCLIP(
        freeze_clip=clip, text_channel=clip.text_projection.shape[1], visual_channel=clip.visual.conv1.out_channels,
        prompting_length=cfg.prompting_length, prompting_depth=cfg.prompting_depth,
        prompting_branch=cfg.prompting_branch, prompting_type=cfg.prompting_type, use_hsf=cfg.use_hsf,
        k_clusters=cfg.k_clusters, output_layers=list(cfg.layers), device="cpu", image_size=cfg.image_size,
    )
    put_head(model, method.model_.head)
    for parameter in clip.parameters():
        parameter.requires_grad_(False)
    return model.eval()


def official_stages(official: dict[str, Any], model: torch.nn.Module, head: torch.nn.Module,
                    images01: torch.Tensor) -> dict[str, np.ndarray]:
    """Every stage of the official code on ``images01`` (one image per step), same layout as
    :func:`adaclip_ours.our_stages`."""
    cfg = ours.CONFIG
    mean = torch.tensor(official["factory"].OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(official["factory"].OPENAI_DATASET_STD).view(1, 3, 1, 1)
    names = [ours.CATEGORY]
    rows: dict[str, list[torch.Tensor]] = {name: [] for name in ours.STAGES if name not in ours.GRADIENTS}
    focal, dice = official["loss"].FocalLoss(), official["loss"].BinaryDiceLoss()
    masks, labels = ours.training_targets()
    model.zero_grad(set_to_none=True)
    for b, image in enumerate((images01 - mean) / std):
        image = image[None]
        with torch.no_grad():
            pooled, _ = model.visual.forward(image, model.output_layers)
            model.generate_and_set_dynamic_promtps(image)
            image_features, patch_tokens, _ = model.encode_image(image)
            text = model.text_embedding_layer(model, names, "cpu")
            cls_feature, patch_features = model.proj_visual_tokens(image_features, patch_tokens)
            logits = [cfg.logit_scale * p @ text for p in patch_features]
            np.random.seed(cfg.hsf_seed)
            fused = model.HSF.forward(patch_features, list(logits))
            np.random.seed(cfg.hsf_seed)
            anomaly_map, score = model(image, names, aggregation=True)
        rows["frozen_embedding"].append(pooled)
        rows["text_features"].append(text.transpose(1, 2))
        rows["patch_tokens"].append(torch.stack([t[:, 1:] for t in patch_tokens]))
        rows["patch_features"].append(torch.stack(patch_features))
        rows["image_feature"].append(cls_feature)
        rows["patch_logits"].append(torch.stack(logits))
        rows["hsf_feature"].append(fused)
        rows["image_score"].append(score)
        rows["anomaly_map"].append(anomaly_map)
        rows["smoothed_map"].append(torch.from_numpy(gaussian_filter(anomaly_map[0].numpy(), sigma=cfg.sigma))[None])
        # one step of AdaCLIP_Trainer.train_one_batch (batch size 1), without the optimiser's update
        np.random.seed(cfg.hsf_seed)
        with torch.autograd.graph.saved_tensors_hooks(lambda t: t.clone(), lambda t: t):
            layer_maps, probabilities = model(image, names, aggregation=False)
        gt = masks[b:b + 1, None].squeeze()  # the trainer squeezes its [1, 1, H, W] mask batch to [H, W]
        image_loss = focal(probabilities, labels[b:b + 1].float().unsqueeze(1))
        segmentation_loss = sum(focal(m, gt) + dice(m[:, 1], gt) + dice(m[:, 0], 1 - gt) for m in layer_maps)
        (image_loss + segmentation_loss).backward()
        rows["loss_image"].append(image_loss.detach()[None])
        rows["loss_segmentation"].append(segmentation_loss.detach()[None])
    stages = {name: torch.cat(values, dim=1 if name in ("patch_tokens", "patch_features", "patch_logits") else 0)
              for name, values in rows.items()}
    stages.update(official_gradient(model, head))
    return {name: value.detach().float().numpy() for name, value in stages.items()}


def main(argv: list[str] | None = None) -> int:
    """Compare, write the npz of the official stages, print the table; returns the exit status."""
    args = arguments(__doc__, "github.com/caoyunkang/AdaCLIP", argv)
    args.out = args.out or DEFAULT_OUT
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.cuda.amp.autocast on the official forward
    official = import_official(args.official.resolve())
    method = ours.build_ours()
    model = build_official(official, method)
    images = ours.query_images()
    theirs = official_stages(official, model, method.model_.head, images)
    mine = ours.our_stages(method, images)
    report(args, theirs, mine, ours)
    print("\nnot checked (the official float16 cast rounds these gradients):\n")
    print(table(differences(mine, theirs, ("text_prompt_gradient",)), theirs))
    print("\nthe official positional-embedding resize (bicubic) against zsadbench's (bilinear), 24x24 to 37x37:",
          f"max abs diff {positional_gap(official):.1e}")
    exact = ours.build_ours(dataclasses.replace(ours.CONFIG, prompt_cast="fp32"))
    print('\nwith prompt_cast="fp32" (the default: prompts not rounded), for comparison:\n')
    print(table(differences(ours.our_stages(exact, images), theirs, ours.STAGES), theirs))
    per_image = ours.build_ours(dataclasses.replace(ours.CONFIG, dice_unit="image"))
    print('\nwith dice_unit="image" (the default: Dice per image, not per row), for comparison:\n')
    losses = ("loss_image", "loss_segmentation", *ours.GRADIENTS)
    print(table(differences(ours.our_stages(per_image, images), theirs, losses), theirs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
