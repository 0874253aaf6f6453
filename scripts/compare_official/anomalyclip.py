"""Run zsadbench's AnomalyCLIP beside the official code (github.com/zqhang/AnomalyCLIP) on the same random
weights, prompts and images, store the official outputs of every stage and print how far ours are from them.

Both models hold the weights of the tiny backbone of ``anomalyclip_ours.py``: zsadbench's state dict is handed
to the official ``build_model`` (open_clip and OpenAI name CLIP's parameters alike), and zsadbench's prompt
tensors are loaded into the official prompt learner. The official stages are computed in the order of its
``test.py`` (batch size 1, one image at a time)::

    python scripts/compare_official/anomalyclip.py --official /path/to/AnomalyCLIP

writes ``tests/reference_outputs/official/anomalyclip.npz``, which
``tests/methods/test_official_anomalyclip.py`` checks zsadbench against without the official code.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

import anomalyclip_ours as ours
from common import arguments, report, report_variant

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "tests" / "reference_outputs" / "official" / "anomalyclip.npz"
#: V-V attention in the last ``vv_last`` blocks is the official ``DPAM_layer = vv_last + 1``.
DPAM_LAYER = ours.CONFIG.vv_last + 1
DESIGN = {
    "Prompt_length": ours.CONFIG.n_ctx,
    "learnabel_text_embedding_depth": ours.CONFIG.deep_depth,
    "learnabel_text_embedding_length": ours.CONFIG.deep_tokens,
}


def import_official(path: Path) -> dict[str, Any]:
    """The official modules used here, imported from the checkout at ``path``.

    Its ``pkg_resources`` import (used only for ``packaging.version``) gets a stand-in when setuptools no
    longer ships that module.
    """
    if importlib.util.find_spec("pkg_resources") is None:
        import packaging.version

        sys.modules["pkg_resources"] = types.SimpleNamespace(packaging=packaging)
    sys.path.insert(0, str(path))
    import AnomalyCLIP_lib
    from AnomalyCLIP_lib.build_model import build_model
    from AnomalyCLIP_lib.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    from prompt_ensemble import AnomalyCLIP_PromptLearner

    return {"lib": AnomalyCLIP_lib, "build_model": build_model, "PromptLearner": AnomalyCLIP_PromptLearner,
            "mean": OPENAI_DATASET_MEAN, "std": OPENAI_DATASET_STD}


def openai_state_dict(backbone: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The backbone's weights in OpenAI's layout: open_clip keeps OpenAI's names, minus the metadata keys."""
    state = {k: v.clone() for k, v in backbone.model.state_dict().items() if k != "attn_mask"}
    missing = {"visual.proj", "text_projection", "token_embedding.weight"} - set(state)
    if missing:
        raise KeyError(f"open_clip state dict lacks OpenAI keys {sorted(missing)}")
    return state


def official_prompt_state(learner: torch.nn.Module, prompts: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The official prompt learner's state with zsadbench's context vectors and deep prompts put in."""
    state = learner.state_dict()
    state["ctx_pos"] = prompts.ctx_pos.detach().reshape(state["ctx_pos"].shape).clone()
    state["ctx_neg"] = prompts.ctx_neg.detach().reshape(state["ctx_neg"].shape).clone()
    for i, tensor in enumerate(prompts.deep):
        state[f"compound_prompts_text.{i}"] = tensor.detach().clone()
    return state


def build_official(official: dict[str, Any], method) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The official AnomalyCLIP model and prompt learner with zsadbench's weights and prompts."""
    with contextlib.redirect_stdout(io.StringIO()):  # the official constructors print shapes
        model = official["build_model"]("tiny", openai_state_dict(ours.native_backbone()), DESIGN)
        learner = official["PromptLearner"](model, DESIGN)
    learner.load_state_dict(official_prompt_state(learner, method.model_.prompts))
    model.visual.DAPM_replace(DPAM_layer=DPAM_LAYER)
    return model.eval(), learner.eval()


def official_stages(official: dict[str, Any], model, learner, images01: torch.Tensor) -> dict[str, np.ndarray]:
    """Every stage of the official ``test.py`` on ``images01`` (one image per step), same layout as
    :func:`anomalyclip_ours.our_stages`."""
    lib, cfg = official["lib"], ours.CONFIG
    mean = torch.tensor(official["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(official["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        prompts, tokenized_prompts, compound_prompts_text = learner(cls_id=None)
        text_features = model.encode_text_learn(prompts, tokenized_prompts, compound_prompts_text).float()
        text_features = torch.stack(torch.chunk(text_features, dim=0, chunks=2), dim=1)
        text_features = text_features / text_features.norm(dim=-1, keepdim=True)
    rows: dict[str, list[torch.Tensor]] = {name: [] for name in ours.STAGES[1:]}
    for image in (images01 - mean) / std:
        with torch.no_grad():
            image_features, patch_features = model.encode_image(image[None], list(cfg.layers), DPAM_layer=DPAM_LAYER)
            rows["image_features"].append(image_features)
            image_features = image_features / image_features.norm(dim=-1, keepdim=True)
            text_probs = image_features @ text_features.permute(0, 2, 1)
            text_probs = (text_probs / cfg.temperature).softmax(-1)[:, 0, 1]
            tokens, probabilities, maps = [], [], []
            for patch_feature in patch_features:
                tokens.append(patch_feature[:, 1:])
                patch_feature = patch_feature / patch_feature.norm(dim=-1, keepdim=True)
                similarity, _ = lib.compute_similarity(patch_feature, text_features[0])
                probabilities.append(similarity[:, 1:])
                similarity_map = lib.get_similarity_map(similarity[:, 1:, :], cfg.image_size)
                maps.append((similarity_map[..., 1] + 1 - similarity_map[..., 0]) / 2.0)
            anomaly_map = torch.stack(maps).sum(dim=0)
            smoothed = torch.stack([torch.from_numpy(gaussian_filter(m, sigma=cfg.sigma)) for m in anomaly_map])
        rows["patch_tokens"].append(torch.stack(tokens))
        rows["patch_probabilities"].append(torch.stack(probabilities))
        rows["anomaly_map"].append(anomaly_map)
        rows["smoothed_map"].append(smoothed)
        rows["image_score"].append(text_probs)
    stages = {"text_features": text_features[0]}
    stages.update({name: torch.cat(values, dim=1 if name.startswith("patch_") else 0) for name, values in rows.items()})
    return {name: value.float().numpy() for name, value in stages.items()}


def main(argv: list[str] | None = None) -> int:
    """Compare, write the npz of the official stages, print the table; returns the exit status."""
    args = arguments(__doc__, "github.com/zqhang/AnomalyCLIP", argv)
    args.out = args.out or DEFAULT_OUT
    torch.set_num_threads(1)
    official = import_official(args.official.resolve())
    method = ours.build_ours()
    model, learner = build_official(official, method)
    images = ours.input_images()
    theirs = official_stages(official, model, learner, images)
    mine = ours.our_stages(method, images)
    report(args, theirs, mine, ours)
    report_variant(ours, theirs, images, 'deep_prompt_cast="fp32" (the default: deep prompts not rounded)',
                   deep_prompt_cast="fp32")
    return 0


if __name__ == "__main__":
    sys.exit(main())
