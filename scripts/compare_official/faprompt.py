"""Run zsadbench's FAPrompt beside the official code (github.com/mala-lab/FAPrompt) on the same random weights,
prompts, prior network, images and targets, store the official outputs of every stage and print how far ours
are from them.

Both models hold the weights of the tiny backbone of ``faprompt_ours.py``: zsadbench's state dict is handed to
the official ``build_model`` (open_clip and OpenAI name CLIP's parameters alike), and zsadbench's prompt tensors
and prior network are loaded into the official ``FAPrompt`` module. The inference stages are computed in the
order of the official ``test.py`` (batch size 1, one image at a time); the loss terms follow ``train.py`` on the
three images as one batch, with the official loss classes of ``loss.py``. Nothing in the official code is
edited; its ``pkg_resources`` and ``iopath`` imports get stand-ins when those packages are missing::

    python scripts/compare_official/faprompt.py --official /path/to/FAPrompt

writes ``tests/reference_outputs/official/faprompt.npz``, which ``tests/methods/test_official_outputs.py``
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

import faprompt_ours as ours
from common import arguments, report, report_variant

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "tests" / "reference_outputs" / "official" / "faprompt.npz"
#: V-V attention in the last ``vv_last`` blocks is the official ``DPAM_layer = vv_last + 1``.
DPAM_LAYER = ours.CONFIG.vv_last + 1
DESIGN = {
    "Prompt_length": 12,  # train.sh's n_ctx; the FAPrompt module does not read it
    "learnabel_text_embedding_depth": ours.CONFIG.deep_depth,
    "learnabel_text_embedding_length": ours.CONFIG.deep_tokens,
}
#: The official ``train.py`` total: map losses, conditioned map losses × 0.5, CE, score focal, 0.1 × orthogonality,
#: prior (the same weights as :data:`faprompt_ours.CONFIG`'s defaults).
CONDITIONED_WEIGHT, ORTHOGONAL_WEIGHT = 0.5, 0.1


def _stand_in(name: str, **attributes: Any) -> None:
    """Put an empty module (and its parents) with ``attributes`` into ``sys.modules``."""
    parts = name.split(".")
    for depth in range(1, len(parts) + 1):
        sys.modules.setdefault(".".join(parts[:depth]), types.ModuleType(".".join(parts[:depth])))
    vars(sys.modules[name]).update(attributes)


def import_official(path: Path) -> dict[str, Any]:
    """The official modules used here, imported from the checkout at ``path``.

    ``pkg_resources`` (used only for ``packaging.version``) and ``iopath`` (a path manager used only to read
    downloaded weights) get stand-ins when they are not installed.
    """
    if importlib.util.find_spec("pkg_resources") is None:
        import packaging.version

        sys.modules["pkg_resources"] = types.SimpleNamespace(packaging=packaging)
    if importlib.util.find_spec("iopath") is None:
        _stand_in("iopath.common.file_io", PathManagerFactory=types.SimpleNamespace(get=lambda key=None: None))
    sys.path.insert(0, str(path))
    lib = importlib.import_module("AnomalyCLIP_lib")
    from AnomalyCLIP_lib.build_model import build_model
    from AnomalyCLIP_lib.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    return {"lib": lib, "build_model": build_model, "FAPrompt": importlib.import_module("FAPrompt").FAPrompt,
            "loss": importlib.import_module("loss"), "mean": OPENAI_DATASET_MEAN, "std": OPENAI_DATASET_STD}


def openai_state_dict(backbone: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The backbone's weights in OpenAI's layout: open_clip keeps OpenAI's names, minus the metadata keys."""
    return {k: v.clone() for k, v in backbone.model.state_dict().items() if k != "attn_mask"}


def official_learner_state(learner: torch.nn.Module, method) -> dict[str, torch.Tensor]:
    """The official ``FAPrompt`` module's state with zsadbench's prompts and prior network put in (its unused
    ``compound_prompt_projections`` keep their values)."""
    prompts, prior = method.model_.prompts, method.model_.prior
    state = learner.state_dict()
    state["ctx_pos"] = prompts.ctx_normal.detach().reshape(state["ctx_pos"].shape).clone()
    state["ctx_neg"] = prompts.ctx_abnormal.detach().reshape(state["ctx_neg"].shape).clone()
    for i, tensor in enumerate(prompts.deep):
        state[f"compound_prompts_text.{i}"] = tensor.detach().clone()
    for ours_name, theirs in (("net.0", "linear1"), ("net.2", "linear2")):
        for kind in ("weight", "bias"):
            state[f"patch_meta_net.{theirs}.{kind}"] = prior.state_dict()[f"{ours_name}.{kind}"].clone()
    return state


def build_official(official: dict[str, Any], method) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The official AnomalyCLIP model and FAPrompt module with zsadbench's weights, prompts and prior network."""
    with contextlib.redirect_stdout(io.StringIO()):  # the official constructors print shapes
        model = official["build_model"]("tiny", openai_state_dict(ours.native_backbone()), DESIGN)
        learner = official["FAPrompt"](model, DESIGN)
    learner.load_state_dict(official_learner_state(learner, method))
    model.visual.DAPM_replace(DPAM_layer=DPAM_LAYER)
    return model.eval(), learner.eval()


def _text(model, learner, selected_tokens: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(normal, abnormal, bias)`` raw text features of one official prompt-learner call (``test.py``'s lines)."""
    prompts_pos, prompts_neg, tokenized_pos, tokenized_neg, deep, bias = learner.forward(selected_tokens=selected_tokens)
    normal = model.encode_text_learn(prompts_pos, tokenized_pos, deep).float()
    abnormal = model.encode_text_learn(prompts_neg, tokenized_neg, deep).float()
    return normal, abnormal, bias


def _selected_tokens(similarity: torch.Tensor, patch_features: torch.Tensor) -> torch.Tensor:
    """The official selection loop as written: ``topk`` indices are computed, then patch ``k`` (not the k-th
    index) is taken for each rank ``k``."""
    _, pk_indx = torch.topk(similarity[1:, :, 1], k=ours.CONFIG.prior_patches, dim=0, largest=True, sorted=True)
    pk_indx = pk_indx.permute(1, 0)
    selected_tokens = []
    for i in range(len(pk_indx)):
        row = [patch_features[1:, :, :].permute(1, 0, 2)[i, k, :] for k in range(len(pk_indx[0]))]
        selected_tokens.append(torch.stack(row))
    return torch.stack(selected_tokens)


def official_stages(official: dict[str, Any], model, learner, images01: torch.Tensor) -> dict[str, np.ndarray]:
    """Every stage of the official ``test.py`` on ``images01`` (one image per step) and the loss terms of one
    ``train.py`` step on them as a batch; same layout as :func:`faprompt_ours.our_stages`."""
    lib, cfg = official["lib"], ours.CONFIG
    mean = torch.tensor(official["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(official["std"]).view(1, 3, 1, 1)
    normalized = (images01 - mean) / std
    rows: dict[str, list[torch.Tensor]] = {name: [] for name in ours.STAGES[2:12]}
    with torch.no_grad():
        normal, abnormal, _ = _text(model, learner)
        text_features = torch.cat([normal, abnormal.mean(dim=0, keepdim=True)])
        text_features = torch.stack(torch.chunk(text_features, dim=0, chunks=2), dim=1)
        text_features = text_features / text_features.norm(dim=-1, keepdim=True)
        for image in normalized:
            image_features, patch_features = model.encode_image(image[None], [cfg.layer], DPAM_layer=DPAM_LAYER)
            rows["image_features"].append(image_features)
            rows["patch_tokens"].append(patch_features[1:, 0][None])
            image_features = image_features / image_features.norm(dim=-1, keepdim=True)
            patch_features = patch_features / patch_features.norm(dim=-1, keepdim=True)
            similarity, _ = lib.compute_similarity_ori(patch_features, text_features[0])
            rows["free_probabilities"].append(similarity[1:, 0][None])
            map1 = lib.get_similarity_map(similarity[1:, :], cfg.image_size).squeeze(0)
            max1 = similarity[1:, :, 1].max(dim=0).values
            selected_tokens = _selected_tokens(similarity, patch_features)
            rows["prior_tokens"].append(selected_tokens)
            normal_i, abnormal_i, bias = _text(model, learner, selected_tokens[0])
            rows["prior"].append(bias)
            conditioned = torch.cat([normal_i, abnormal_i.mean(dim=0, keepdim=True)])[None]
            conditioned = conditioned / conditioned.norm(dim=-1, keepdim=True)
            rows["conditioned_text"].append(conditioned)
            text_probs = image_features @ conditioned.permute(0, 2, 1)
            text_probs = (text_probs / cfg.temperature).softmax(-1)[:, 0, 1]
            similarity, _ = lib.compute_similarity(patch_features, conditioned)
            rows["conditioned_probabilities"].append(similarity[1:, 0][None])
            max2 = similarity[1:, :, 1].max(dim=0).values
            map2 = lib.get_similarity_map(similarity[1:, :], cfg.image_size).squeeze(0)
            anomaly_map = (map1[1, :] + 1 - map1[0, :] + map2[1, :] + 1 - map2[0, :]) / 4.0
            rows["anomaly_map"].append(anomaly_map[None])
            smoothed = gaussian_filter(anomaly_map[None, None].numpy(), sigma=cfg.sigma)
            rows["smoothed_map"].append(torch.from_numpy(smoothed)[0])
            rows["image_score"].append(0.5 * (text_probs + (2 * max1 + max2) / 3))
        stages = {"text_features": text_features[0], "abnormal_features": abnormal}
        stages.update({name: torch.cat(values) for name, values in rows.items()})
        stages.update(official_losses(official, model, learner, normalized))
    return {name: value.float().numpy() for name, value in stages.items()}


def official_losses(official: dict[str, Any], model, learner, normalized: torch.Tensor) -> dict[str, torch.Tensor]:
    """The loss terms of one official ``train.py`` step on the images as one batch, with ``faprompt_ours``'s
    masks and labels (``loss_conditioned`` unweighted; ``loss_total`` with the official weights)."""
    lib, loss, cfg = official["lib"], official["loss"], ours.CONFIG
    gt, label = ours.query_targets()
    loss_focal, loss_dice, loss_fun = loss.FocalLoss(), loss.BinaryDiceLoss(), loss.BinaryFocalLoss()
    loss_mse = torch.nn.MSELoss()
    image_features, patch_features = model.encode_image(normalized, [cfg.layer], DPAM_layer=DPAM_LAYER)
    image_features = image_features / image_features.norm(dim=-1, keepdim=True)
    normal, abnormal, _ = _text(model, learner)
    loss_ab = 0
    for k in range(len(abnormal) - 1):
        for m in range(k + 1, len(abnormal)):
            loss_ab = loss_ab + abs(torch.dot(abnormal[k], abnormal[m]) / (torch.norm(abnormal[k]) * torch.norm(abnormal[m])))
    text_features = torch.cat([normal, torch.mean(abnormal, dim=0, keepdim=True)])
    text_features = torch.stack(torch.chunk(text_features, dim=0, chunks=2), dim=1)
    text_features = text_features / text_features.norm(dim=-1, keepdim=True)
    patch_features = patch_features / patch_features.norm(dim=-1, keepdim=True)
    similarity, _ = lib.compute_similarity_ori(patch_features, text_features[0])
    map1 = lib.get_similarity_map(similarity[1:, :], cfg.image_size)
    max1 = similarity[1:, :, 1].max(dim=0).values
    selected_tokens = _selected_tokens(similarity, patch_features)
    conditioned, loss_bias = [], 0.0
    for i in range(len(selected_tokens)):
        normal_i, abnormal_i, bias = _text(model, learner, selected_tokens[i])
        conditioned.append(torch.cat([normal_i, torch.mean(abnormal_i, dim=0, keepdim=True)]))
        if label[i] == 0:
            loss_bias = loss_bias + loss_mse(bias.squeeze(0), torch.zeros(bias.shape[-1]))
    text_features = torch.stack(conditioned)
    text_features = text_features / text_features.norm(dim=-1, keepdim=True)
    similarity, _ = lib.compute_similarity(patch_features, text_features)
    map2 = lib.get_similarity_map(similarity[1:, :], cfg.image_size)
    max2 = similarity[1:, :, 1].max(dim=0).values
    text_probs = (image_features.unsqueeze(1) @ text_features.permute(0, 2, 1))[:, 0, ...] / cfg.temperature
    image_loss = F.cross_entropy(text_probs.squeeze(), label.long())
    score = 0.5 * (text_probs.softmax(-1)[:, 1] + (2 * max1 + max2) / 3)
    image_loss2 = loss_fun(score, label.float())
    free = loss_focal(map1, gt) + loss_dice(map1[:, 1, :, :], gt) + loss_dice(map1[:, 0, :, :], 1 - gt)
    conditioned_loss = loss_focal(map2, gt) + loss_dice(map2[:, 1, :, :], gt) + loss_dice(map2[:, 0, :, :], 1 - gt)
    total = free + CONDITIONED_WEIGHT * conditioned_loss + image_loss + image_loss2 + ORTHOGONAL_WEIGHT * loss_ab + loss_bias
    values = {"free": free, "conditioned": conditioned_loss, "global": image_loss, "score": image_loss2,
              "orthogonal": loss_ab, "prior": loss_bias, "total": total}
    return {f"loss_{name}": torch.as_tensor(value) for name, value in values.items()}


def main(argv: list[str] | None = None) -> int:
    """Compare, write the npz of the official stages, print the table; returns the exit status."""
    args = arguments(__doc__, "github.com/mala-lab/FAPrompt", argv)
    args.out = args.out or DEFAULT_OUT
    torch.set_num_threads(1)
    official = import_official(args.official.resolve())
    method = ours.build_ours()
    model, learner = build_official(official, method)
    images = ours.query_images()
    theirs = official_stages(official, model, learner, images)
    mine = ours.our_stages(method, images)
    report(args, theirs, mine, ours)
    report_variant(ours, theirs, images, 'deep_prompt_cast="fp32" (the default: deep prompts not rounded)',
                   deep_prompt_cast="fp32")
    return 0


if __name__ == "__main__":
    sys.exit(main())
