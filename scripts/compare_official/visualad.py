"""Run zsadbench's VisualAD beside the official code (github.com/7HHHHH/VisualAD) on the same random weights,
learnable parameters and images, store the official outputs of every stage and print how far ours are from them.

Both models hold the weights of the tiny backbone of ``visualad_ours.py``: zsadbench's state dict is handed to
the official ``build_model`` (open_clip and OpenAI name CLIP's parameters alike), zsadbench's tokens and
``ln_post`` are put into the official vision tower, and its SCA and SAF modules are loaded into the official
ones, built as the official ``test.py`` builds them. The inference stages follow ``test.py`` (batch size 1, one
image at a time); the loss stages follow the loss closure of ``train.py`` on one batch of all images, with
dropout off::

    python scripts/compare_official/visualad.py --official /path/to/VisualAD

writes ``tests/reference_outputs/official/visualad.npz``, which ``tests/methods/test_official_visualad.py``
checks zsadbench against without the official code.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

import visualad_ours as ours
from common import arguments, report

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "tests" / "reference_outputs" / "official" / "visualad.npz"
#: The official code's offset of the patches in its sequence ``[anomaly, normal, CLS, patches]``.
PATCH_START = 3


def import_official(path: Path) -> dict[str, Any]:
    """The official modules used here, imported from the checkout at ``path``.

    Its ``pkg_resources`` import (used only for ``packaging.version``) gets a stand-in when setuptools no
    longer ships that module. The official ``utils`` package is entered without running its ``__init__``,
    which imports plotting and metric libraries that the compared code does not use. Importing ``train.py``
    switches on deterministic algorithms; the previous setting is restored.
    """
    if importlib.util.find_spec("pkg_resources") is None:
        import packaging.version

        sys.modules["pkg_resources"] = types.SimpleNamespace(packaging=packaging)
    sys.path.insert(0, str(path))
    package = types.ModuleType("utils")
    package.__path__ = [str(path / "utils")]
    sys.modules["utils"] = package
    deterministic = torch.are_deterministic_algorithms_enabled()
    with contextlib.redirect_stdout(io.StringIO()):
        train = importlib.import_module("train")
    torch.use_deterministic_algorithms(deterministic)
    names = ("VisualAD_lib.build_model", "VisualAD_lib.constants", "utils.anomaly_detection", "utils.feature_transform",
             "utils.loss", "utils.scoring", "utils.spatial_cross_attention", "utils.training_utils")
    modules = {name.split(".")[-1]: importlib.import_module(name) for name in names}
    return {"train": train, **modules}


def openai_state_dict() -> dict[str, torch.Tensor]:
    """The tiny backbone's weights in OpenAI's layout: open_clip keeps OpenAI's names, minus the metadata keys."""
    state = {k: v.clone() for k, v in ours.native_backbone().model.state_dict().items() if k != "attn_mask"}
    missing = {"visual.proj", "text_projection", "token_embedding.weight"} - set(state)
    if missing:
        raise KeyError(f"open_clip state dict lacks OpenAI keys {sorted(missing)}")
    return state


def check_vision_weights(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Raise unless every vision weight of ``state`` landed in the official model (it loads non-strictly)."""
    loaded = model.state_dict()
    renamed = {"visual.positional_embedding": "visual.positional_embedding_frozen"}
    for key, value in state.items():
        if not key.startswith("visual.") or key == "visual.proj":
            continue
        if not torch.equal(loaded[renamed.get(key, key)], value):
            raise ValueError(f"official model did not load {key}")


def official_sca_state(head: torch.nn.Module, layers: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """zsadbench's SCA modules under the official names (``layer_attentions.layer_<l>.…``)."""
    renamed = {"anchors": "anchor_queries", "gate.weight": "gate.0.weight", "gate.bias": "gate.0.bias"}
    return {
        f"layer_attentions.layer_{layer}.{renamed.get(key, key)}": value.detach().clone()
        for layer, sca in zip(layers, head.sca)
        for key, value in sca.state_dict().items()
    }


def build_official(official: dict[str, Any], method) -> dict[str, Any]:
    """The official model, SCA and SAF modules (built as ``test.py`` builds them) holding zsadbench's weights."""
    cfg, head = ours.CONFIG, method.model_.head
    state = openai_state_dict()
    model = official["build_model"].build_model("tiny", dict(state))
    check_vision_weights(model, state)
    with torch.no_grad():
        model.visual.anomaly_token.copy_(head.anomaly_token)
        model.visual.normal_token.copy_(head.normal_token)
        model.visual.ln_post.load_state_dict(head.ln_post.state_dict())
    width = model.visual.embed_dim
    transforms = torch.nn.ModuleDict()
    for layer, saf in zip(cfg.layers, head.saf):
        transforms[f"layer_{layer}"] = official["feature_transform"].create_feature_transform(
            transform_type="mlp", input_dim=width, hidden_dim=saf.mlp[0].out_features, output_dim=width, dropout=0.0)
        transforms[f"layer_{layer}"].load_state_dict(saf.state_dict())
    cross_attn = official["spatial_cross_attention"].build_layer_adaptive_cross_attention(
        layers=list(cfg.layers), embed_dim=width, num_anchors=cfg.num_anchors, dropout=cfg.sca_dropout,
        res_scale_init=cfg.res_scale_init)
    cross_attn.load_state_dict(official_sca_state(head, cfg.layers))
    return {"model": model.eval(), "transforms": transforms.eval(), "cross_attn": cross_attn.eval()}


def normalize(images01: torch.Tensor, official: dict[str, Any]) -> torch.Tensor:
    """The official preprocessing's last step: OpenAI's mean and std."""
    constants = official["constants"]
    mean = torch.tensor(constants.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(constants.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    return (images01 - mean) / std


def official_forward(modules: dict[str, Any], image: torch.Tensor) -> dict[str, Any]:
    """The official encoder, SCA and SAF on normalised ``image`` in ``test.py``'s order: ``vision`` (the encoder's
    output), ``patches`` (patch tokens per layer), ``adapted`` (enhanced tokens per layer) and ``aligned`` (SAF
    outputs per layer, full sequences)."""
    layers = list(ours.CONFIG.layers)
    vision = modules["model"].encode_image(image, layers)
    patches = [tokens[:, PATCH_START:, :] for tokens in vision["patch_tokens"]]
    adapted = modules["cross_attn"](vision["anomaly_features"], vision["normal_features"], patches, layers)
    aligned = []
    for layer, tokens in zip(layers, vision["patch_tokens"]):
        batch, count, width = tokens.shape
        aligned.append(modules["transforms"][f"layer_{layer}"](tokens.view(-1, width)).view(batch, count, width))
    return {"vision": vision, "patches": patches, "adapted": adapted, "aligned": aligned}


def official_image(official: dict[str, Any], modules: dict[str, Any], image: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every inference stage of the official ``test.py`` for one normalised image ``[1, 3, S, S]``.

    ``layer_maps`` calls the official map function at the grid size, where bilinear resizing is the identity.
    """
    cfg, scoring = ours.CONFIG, official["scoring"]
    make_map = official["anomaly_detection"].generate_anomaly_map_from_tokens
    side = cfg.image_size // modules["model"].visual.conv1.kernel_size[0]
    out = official_forward(modules, image)
    grid_maps, maps = [], []
    for adapted, aligned in zip(out["adapted"], out["aligned"]):
        anomaly = F.normalize(adapted["anomaly"], dim=1, eps=1e-8)
        normal = F.normalize(adapted["normal"], dim=1, eps=1e-8)
        grid_maps.append(make_map(anomaly, normal, aligned[:, PATCH_START:, :], side))
        maps.append(make_map(anomaly, normal, aligned[:, PATCH_START:, :], cfg.image_size))
    final_map = torch.stack(maps).sum(dim=0).cpu()
    filtered = torch.from_numpy(gaussian_filter(final_map[0].numpy(), sigma=cfg.sigma)).unsqueeze(0)
    score = scoring.reduce_anomaly_map(filtered, mode="topk_mean", topk_ratio=scoring.DEFAULT_TOPK_RATIO)
    vision = out["vision"]
    return {
        "final_tokens": torch.stack([vision["anomaly_features"], vision["normal_features"]], dim=1),
        "patch_tokens": torch.stack(out["patches"]),
        "enhanced_tokens": torch.stack([torch.stack([a["anomaly"], a["normal"]], dim=1) for a in out["adapted"]]),
        "aligned_patches": torch.stack([a[:, PATCH_START:, :] for a in out["aligned"]]),
        "layer_maps": torch.stack(grid_maps),
        "anomaly_map": final_map,
        "smoothed_map": filtered,
        "image_score": score,
    }


def official_loss(official: dict[str, Any], modules: dict[str, Any], images: torch.Tensor) -> dict[str, torch.Tensor]:
    """The loss closure of the official ``train.py`` on one batch of normalised ``images`` with
    :func:`visualad_ours.input_masks` (dropout off): ``loss`` ``[total, seg, img, con]`` and ``token_grads``
    ``[2, C]``, the gradients of the total w.r.t. the two tokens before clipping."""
    train, cfg, model = official["train"], ours.CONFIG, modules["model"]
    loss_module = official["loss"]
    official["training_utils"].setup_model_training(model)
    model.zero_grad(set_to_none=True)
    gt, labels = ours.input_masks(), ours.input_labels().long()
    out = official_forward(modules, images)
    anomaly_last = F.normalize(out["adapted"][-1]["anomaly"], dim=1, eps=1e-8)
    normal_last = F.normalize(out["adapted"][-1]["normal"], dim=1, eps=1e-8)
    con = loss_module.ContrastiveLoss(temperature=0.1, margin=0.5)(anomaly_last, normal_last)
    similarity_maps, maps = [], []
    for adapted, aligned in zip(out["adapted"], out["aligned"]):
        anomaly = F.normalize(adapted["anomaly"], dim=1, eps=1e-8)
        normal = F.normalize(adapted["normal"], dim=1, eps=1e-8)
        patches = aligned[:, PATCH_START:, :]
        anomaly_map = train.generate_anomaly_map_from_tokens(anomaly, normal, patches, cfg.image_size)
        probability = torch.sigmoid(anomaly_map)
        similarity_maps.append(torch.stack([1 - probability, probability], dim=1))
        maps.append(anomaly_map)
    img = train.compute_classification_loss_V2(maps, labels, images.device)
    seg = official["training_utils"].compute_segmentation_loss(
        similarity_maps, gt, loss_module.FocalLoss(), loss_module.BinaryDiceLoss())
    total = sum([img, con, seg])
    total.backward()
    visual = model.visual
    grads = torch.stack([visual.anomaly_token.grad, visual.normal_token.grad]).clone()
    model.zero_grad(set_to_none=True)
    return {"loss": torch.stack([total, seg, img, con]).detach(), "token_grads": grads}


def official_stages(official: dict[str, Any], modules: dict[str, Any], images01: torch.Tensor) -> dict[str, np.ndarray]:
    """Every stage of :data:`visualad_ours.STAGES` from the official code, same layout as
    :func:`visualad_ours.our_stages`: the inference stages one image at a time, the loss on the whole batch."""
    images = normalize(images01, official)
    rows: dict[str, list[torch.Tensor]] = {}
    with torch.no_grad():
        for image in images:
            for name, value in official_image(official, modules, image[None]).items():
                rows.setdefault(name, []).append(value)
    batch_axis = {"patch_tokens": 1, "enhanced_tokens": 1, "aligned_patches": 1, "layer_maps": 1}
    stages = {name: torch.cat(values, dim=batch_axis.get(name, 0)) for name, values in rows.items()}
    stages.update(official_loss(official, modules, images))
    return {name: stages[name].float().numpy() for name in ours.STAGES}


def main(argv: list[str] | None = None) -> int:
    """Compare, write the npz of the official stages, print the table; returns the exit status."""
    args = arguments(__doc__, "github.com/7HHHHH/VisualAD", argv)
    args.out = args.out or DEFAULT_OUT
    torch.set_num_threads(1)
    official = import_official(args.official.resolve())
    method = ours.build_ours()
    modules = build_official(official, method)
    images = ours.input_images()
    theirs = official_stages(official, modules, images)
    mine = ours.our_stages(method, images)
    report(args, theirs, mine, ours)
    return 0


if __name__ == "__main__":
    sys.exit(main())
