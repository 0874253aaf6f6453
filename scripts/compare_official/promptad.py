"""Run zsadbench's PromptAD beside the official code (github.com/FuNz-0/PromptAD) on the same random weights,
prompts, support image and queries, store the official outputs of every stage and print how far ours are from them.

The official model is built around zsadbench's tiny backbone (``promptad_ours.py``): the official CLIP class is
made from the same architecture and handed zsadbench's state dict (open_clip and the official copy of it name
the parameters alike), and zsadbench's seeded context vectors go into the official prompt learners. Two official
``PromptAD`` models share that CLIP, as the official segmentation run (one normal prompt) and classification run
(three) are separate. Both run in float32: the official wrapper forces float16, so its prompt learner is rebuilt
with the official class in its float32 mode and its buffers are cast back. The stages follow the official order:
the support image's features become the memory gallery, the prompts are encoded into the text gallery, then
the queries go through the official ``forward`` of each task::

    python scripts/compare_official/promptad.py --official /path/to/PromptAD

writes ``tests/reference_outputs/official/promptad.npz``, which ``tests/methods/test_official_promptad.py``
checks zsadbench against without the official code.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F

import promptad_ours as ours
from common import arguments, differences, report, table

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "tests" / "reference_outputs" / "official" / "promptad.npz"
#: The official tower reads its memory after these blocks (hooks on ``resblocks[2]`` and ``resblocks[7]``).
OFFICIAL_MEMORY_LAYERS = (3, 8)


def import_official(path: Path) -> ModuleType:
    """The official ``PromptAD.model`` module, imported from the checkout at ``path``."""
    sys.path.insert(0, str(path))
    return importlib.import_module("PromptAD.model")


def official_clip(official: ModuleType) -> torch.nn.Module:
    """The official CLIP class built from the tiny architecture, holding zsadbench's weights (strict load)."""
    architecture = json.loads(ours.CONFIG_FILE.read_text())
    clip = importlib.import_module(f"{official.__package__}.CLIPAD.model").CLIP(**architecture)
    clip.load_state_dict(ours.native_backbone().model.state_dict())
    return clip.eval()


def official_model(official: ModuleType, clip: torch.nn.Module, n_pro: int, ctx: dict[str, torch.Tensor]):
    """One official ``PromptAD`` wrapper around ``clip`` with ``n_pro`` normal prompts, in float32, holding the
    context vectors ``ctx`` (``normal_ctx``, ``abnormal_ctx``)."""
    cfg = ours.CONFIG
    settings = dict(
        out_size_h=cfg.map_size, out_size_w=cfg.map_size, device="cpu", backbone="ViT-B-16-plus-240",
        pretrained_dataset="laion400m_e32", n_ctx=cfg.n_ctx, n_pro=n_pro, n_ctx_ab=cfg.n_ctx_ab,
        n_pro_ab=cfg.n_pro_ab, class_name=ours.CATEGORY, k_shot=ours.NUM_SHOTS,
        img_resize=cfg.image_size, img_cropsize=cfg.image_size,
    )
    with mock.patch.object(official.CLIPAD, "create_model_and_transforms", lambda **_: (clip, None, None)):
        model = official.PromptAD(**settings)
    model.prompt_learner = official.PromptLearner(cfg.n_ctx, n_pro, cfg.n_ctx_ab, cfg.n_pro_ab, ours.CATEGORY,
                                                  clip, "fp32")
    model.precision = "fp32"
    model.float()
    model.prompt_learner.load_state_dict({**model.prompt_learner.state_dict(), **ctx})
    model.eval_mode()
    return model


def check_prompts(model, bank: torch.nn.Module) -> None:
    """The official prompts and zsadbench's are the same tokens after the context slots (so the same words and
    end-of-text positions); the slots themselves are overwritten by the context vectors on both sides."""
    cfg = ours.CONFIG
    pairs = (
        (torch.cat([model.tokenized_normal_prompts, model.tokenized_abnormal_prompts_handle]), bank.plain_tokens,
         1 + cfg.n_ctx),
        (model.tokenized_abnormal_prompts_learned, bank.learned_tokens, 1 + cfg.n_ctx + cfg.n_ctx_ab),
    )
    for theirs, mine, start in pairs:
        if not torch.equal(torch.unique(theirs[:, start:], dim=0), torch.unique(mine[:, start:], dim=0)):
            raise RuntimeError("the official prompt words differ from zsadbench's for this category")


def text_stages(model, prefix: str) -> dict[str, torch.Tensor]:
    """Raw normal and abnormal features of the official prompt learner, encoded as ``build_text_feature_gallery``
    does, and the normalised anchors that it stores."""
    normal, handcrafted, learned = model.prompt_learner()
    model.build_text_feature_gallery()
    return {
        f"{prefix}_text_normal": model.encode_text_embedding(normal, model.tokenized_normal_prompts),
        f"{prefix}_text_abnormal": model.encode_text_embedding(torch.cat([handcrafted, learned]),
                                                               model.tokenized_abnormal_prompts),
        f"{prefix}_text_anchors": model.text_features.clone(),
    }


def loss_stages(official: ModuleType, model, support: torch.Tensor, task: str) -> dict[str, torch.Tensor]:
    """The three loss terms of one official training step at the initial prompts, as ``train_seg.py`` (patch
    tokens) and ``train_cls.py`` (CLS feature) compute them, in float32: the official ``TripletLoss`` with
    their margin 0, ``nn.CrossEntropyLoss`` and the alignment term times ``--lambda1``'s default."""
    triplet = importlib.import_module(f"{official.__package__}").TripletLoss(margin=0.0)
    normal, handcrafted, learned = model.prompt_learner()
    normal = model.encode_text_embedding(normal, model.tokenized_normal_prompts)
    handcrafted = model.encode_text_embedding(handcrafted, model.tokenized_abnormal_prompts_handle)
    learned = model.encode_text_embedding(learned, model.tokenized_abnormal_prompts_learned)
    abnormal = torch.cat([handcrafted, learned])
    align = (F.normalize(handcrafted, dim=-1).mean(dim=0) - F.normalize(learned, dim=-1).mean(dim=0)).norm(dim=0) ** 2
    cls_feature, feature_map, _, _ = model.encode_image(support)
    z = feature_map if task == "seg" else cls_feature[:, None]
    normal_anchor = F.normalize(normal.mean(dim=0, keepdim=True), dim=-1)
    abnormal_anchor = F.normalize(abnormal.mean(dim=0, keepdim=True), dim=-1)
    logits = torch.cat([z @ normal_anchor.T, z @ F.normalize(abnormal, dim=-1).T], dim=-1) * model.model.logit_scale
    v2t = torch.nn.CrossEntropyLoss()(logits.transpose(1, 2), torch.zeros(logits.shape[:2], dtype=torch.long))
    eam = triplet(feature_map if task == "seg" else cls_feature, normal_anchor, abnormal_anchor)
    return {f"{task}_loss_v2t": v2t, f"{task}_loss_eam": eam, f"{task}_loss_align": align * ours.CONFIG.lambda_align}


def build_gallery(model, support: torch.Tensor) -> None:
    """The official fit's memory: the support images' tapped tokens, normalised into the feature galleries."""
    _, _, first, second = model.encode_image(support)
    model.build_image_feature_gallery(first, second)


@contextlib.contextmanager
def recorded_smoothing(official: ModuleType, into: list[np.ndarray]):
    """Record each map the official ``forward`` hands to ``gaussian_filter`` (its map before smoothing)."""
    smooth = official.gaussian_filter

    def record(array: np.ndarray, *args: Any, **kwargs: Any) -> np.ndarray:
        into.append(np.array(array, copy=True))
        return smooth(array, *args, **kwargs)

    with mock.patch.object(official, "gaussian_filter", record):
        yield


def official_stages(official: ModuleType, method, support01: torch.Tensor, queries01: torch.Tensor
                    ) -> dict[str, np.ndarray]:
    """Every stage of the official fit-then-test order, same layout as :func:`promptad_ours.our_stages`."""
    cfg = ours.CONFIG
    mean = torch.tensor(official.mean_train).view(1, 3, 1, 1)
    std = torch.tensor(official.std_train).view(1, 3, 1, 1)
    support, queries = (support01 - mean) / std, (queries01 - mean) / std
    clip = official_clip(official)
    ctx = ours.prompt_state(int(clip.token_embedding.embedding_dim))
    models = {task: official_model(official, clip, n_pro, {k.split(".")[1]: v for k, v in ctx.items()
                                                            if k.startswith(f"{task}.")})
              for task, n_pro in (("seg", cfg.n_pro_seg), ("cls", cfg.n_pro_cls))}
    stages: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for task, model in models.items():
            check_prompts(model, getattr(method.head_, task))
            build_gallery(model, support)
            stages.update(text_stages(model, task))
            stages.update(loss_stages(official, model, support, task))
        seg, cls = models["seg"], models["cls"]
        stages.update({f"gallery_{layer}": getattr(seg, f"feature_gallery{i}").clone()
                       for i, layer in enumerate(OFFICIAL_MEMORY_LAYERS, start=1)})
        visual = seg.encode_image(queries)
        stages.update({"cls_feature": visual[0], "patch_tokens": visual[1],
                       **{f"memory_{layer}": visual[i] for i, layer in enumerate(OFFICIAL_MEMORY_LAYERS, start=2)}})
        text_map = seg.calculate_textual_anomaly_score(visual, "seg")[:, 0]
        memory_map = seg.calculate_visual_anomaly_score(visual)[:, 0]
        unsmoothed: list[np.ndarray] = []
        with recorded_smoothing(official, unsmoothed):
            smoothed = seg(queries, "seg")
        image_text, memory_maps = cls(queries, "cls")
    memory_max = np.stack(memory_maps).reshape(len(memory_maps), -1).max(axis=1)
    image_text = np.stack(image_text)
    stages.update({
        "text_map": text_map, "memory_map": memory_map,
        "fused_grid": 1.0 / (1.0 / text_map + 1.0 / memory_map),  # the official forward's fusion
        "fused_map": torch.from_numpy(np.stack(unsmoothed)), "smoothed_map": torch.from_numpy(np.stack(smoothed)),
        "image_text_score": torch.from_numpy(image_text), "memory_max": torch.from_numpy(memory_max),
        "image_score": torch.from_numpy(1.0 / (1.0 / memory_max + 1.0 / image_text)),  # metric_cal_img's fusion
    })
    return {name: stages[name].float().numpy() for name in ours.STAGES}


def block_tap_rows(theirs: dict[str, np.ndarray], queries01: torch.Tensor) -> list[tuple[str, float, float]]:
    """The differences with ``memory_tap="block"`` (block L's output alone), for the stages it changes."""
    mine = ours.our_stages(ours.build_ours(dataclasses.replace(ours.CONFIG, memory_tap="block")), queries01)
    changed = {name for name in ours.STAGES if name.startswith(("gallery_", "memory_", "fused_", "smoothed_", "image_"))}
    return [row for row in differences(mine, theirs, ours.STAGES) if row[0] in changed - {"image_text_score"}]


def main(argv: list[str] | None = None) -> int:
    """Compare, write the npz of the official stages, print the tables; returns the exit status."""
    args = arguments(__doc__, "github.com/FuNz-0/PromptAD", argv)
    args.out = args.out or DEFAULT_OUT
    torch.set_num_threads(1)
    if ours.CONFIG.memory_layers != OFFICIAL_MEMORY_LAYERS:
        raise SystemExit(f"the official code reads memory layers {OFFICIAL_MEMORY_LAYERS}; CONFIG has "
                         f"{ours.CONFIG.memory_layers}")
    official = import_official(args.official.resolve())
    method = ours.build_ours()
    support, queries = ours.input_images()
    theirs = official_stages(official, method, support, queries)
    mine = ours.our_stages(method, queries)
    report(args, theirs, mine, ours)
    print('\nwith memory_tap="block" (block L\'s output alone), for comparison:\n')
    print(table(block_tap_rows(theirs, queries), theirs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
