"""Run zsadbench's FineGrainedAD beside the official code (github.com/RetoFan233/FineGrainedAD) on the same random
weights, captions, prompts, Query Former, support image and queries, store the official outputs of every inference
stage and print how far ours are from them.

The official model is built around the tiny backbone of the PromptAD comparison, in float32 (its ``precision``
argument). Its prompt learner takes every prompt text from its caption table, which is stood in for while it is
built: one official model per zsadbench level holds that level's texts as its caption (the caption sentence, the
handcrafted abnormal texts as its abnormal states), so the official caption path (prompt assembly, text tower,
means, normalisation) computes each level's anchors. The attribute gates of its Attr-MoE are set to
``sigmoid(-inf) = 0``, as zsadbench runs without attribute prompts here. The image level's model then receives the
other levels' anchors in its gallery (entities: the foreground relation and the components; caption: the image
level; background), zsadbench's Query Former weights under the official names, and the support memory, and runs
the official ``forward`` for ``seg``; a second set of models with three normal prompts runs ``cls``::

    python scripts/compare_official/finegrainedad.py --official /path/to/FineGrainedAD

writes ``tests/reference_outputs/official/finegrainedad.npz``, which ``tests/methods/test_official_outputs.py``
checks zsadbench against without the official code. Training is not compared; region clustering has its own
script, ``finegrainedad_regions.py``.
"""
from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any
from unittest import mock

import numpy as np
import torch

import finegrainedad_ours as ours
from common import arguments, report
from promptad import OFFICIAL_MEMORY_LAYERS, build_gallery, check_prompts, import_official, official_clip, \
    recorded_smoothing
from zsadbench.methods.finegrainedad.mfsc import load_captions
from zsadbench.methods.finegrainedad.mllp import level_names, mllp_texts
from zsadbench.methods.finegrainedad.queryformer import QueryFormer
from zsadbench.methods.promptad.prompts import GroupTexts, prompt_text

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "tests" / "reference_outputs" / "official" / "finegrainedad.npz"
#: The official prompt learner's Attr-MoE weights, whose sigmoid gates the attribute prompts.
GATES = tuple(f"{kind}_{attribute}_w" for kind in ("normal", "abnormal")
              for attribute in ("relation", "color", "texture", "shape"))


def official_order(levels: list[str]) -> list[str]:
    """zsadbench's levels in the official gallery's order: the entities, then the caption, then the background."""
    return [name for name in levels if name not in ("image", "background")] + ["image", "background"]


def caption_table(texts: GroupTexts, entities: int) -> dict[str, Any]:
    """The official caption tables for one category whose caption is ``texts``' normal sentence and whose abnormal
    states are its handcrafted abnormal texts (no ``{}``, so each replaces the whole caption). ``entities`` neutral
    entities give the gallery its size; attribute values and relation are neutral words (their gates are 0)."""
    caption = texts.normal[0].strip().rstrip(".")
    states = [text.strip().rstrip(".") for text in texts.handcrafted]
    values = [f"v{i}" for i in range(len(states) + 1)]
    entry = {
        "Level_1": [{"foreground": caption, "background": "plain"}],
        "Level_2": [{"entity": ["thing"] * entities, "number": ["1"] * entities, "location": ["center"] * entities,
                     "relation": "object"}],
        "Level_3": [{"entity_caption": ["thing"] * entities, "color": values[:1], "texture": values[:1],
                     "shape": values[:1]}],
        "caption": caption,
    }
    return {
        "fine_grained_normal_prompts_v3": [entry], "total_classes2id": {ours.CATEGORY: 0},
        "class_state_abnormal_refined": {ours.CATEGORY: states}, "fine_grained_color_list": values,
        "fine_grained_texture_list": values, "fine_grained_shape_list": values,
        "fine_grained_location_list": ["center", "left"], "fine_grained_number_list": ["1"],
    }


def official_model(official: ModuleType, clip: torch.nn.Module, n_pro: int, table: dict[str, Any],
                   ctx: dict[str, torch.Tensor]):
    """One official ``FineGrainedPatchAD`` in float32 around ``clip``, its captions from ``table``, holding the
    context vectors ``ctx`` and Attr-MoE gates of 0."""
    cfg = ours.CONFIG
    settings = dict(
        out_size_h=cfg.map_size, out_size_w=cfg.map_size, device="cpu", backbone="ViT-B-16-plus-240",
        pretrained_dataset="laion400m_e32", n_ctx=cfg.n_ctx, n_pro=n_pro, n_ctx_ab=cfg.n_ctx_ab,
        n_pro_ab=cfg.n_pro_ab, class_name=ours.CATEGORY, precision="fp32", k_shot=ours.NUM_SHOTS,
        img_resize=cfg.image_size, img_cropsize=cfg.image_size,
    )
    with mock.patch.object(official.CLIPAD, "create_model_and_transforms", lambda **_: (clip, None, None)), \
            mock.patch.multiple(official, **table):
        model = official.FineGrainedPatchAD(**settings)
    learner = model.prompt_learner
    learner.load_state_dict({**learner.state_dict(), **ctx, **{g: torch.full((1,), -torch.inf) for g in GATES}})
    model.eval_mode()
    return model


def prompt_tokens(texts: GroupTexts, tokenize) -> SimpleNamespace:
    """zsadbench's token ids of one level's prompts, as ``promptad.check_prompts`` reads them from a bank."""
    cfg = ours.CONFIG
    return SimpleNamespace(
        plain_tokens=tokenize([prompt_text(b, cfg.n_ctx) for b in texts.normal + texts.handcrafted]),
        learned_tokens=tokenize([prompt_text(b, cfg.n_ctx + cfg.n_ctx_ab) for b in texts.learned]),
    )


def caption_features(model) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Raw normal and abnormal features of the official caption prompts, encoded as
    ``build_text_feature_patch_gallery`` does, and the ``[2, D]`` anchors it stores."""
    normal, handcrafted, learned, *_ = model.prompt_learner()
    model.build_text_feature_patch_gallery()
    return (model.encode_text_embedding(normal, model.tokenized_normal_prompts),
            model.encode_text_embedding(torch.cat([handcrafted, learned]), model.tokenized_abnormal_prompts),
            model.text_features.clone())


def official_query_former(query: QueryFormer, order: list[int]) -> dict[str, torch.Tensor]:
    """zsadbench's Query Former weights under the official names: queries in the official level order, the
    attention's query projection as ``q_proj``, its key and value projections as ``kv_proj``."""
    dim = query.queries.shape[1]
    state = {"query_tokens": query.queries[order], "fuse_layer.weight": query.fuse.weight,
             "fuse_layer.bias": query.fuse.bias}
    for i, attention in enumerate((query.normal_attention, query.abnormal_attention), start=1):
        weight, bias = attention.in_proj_weight, attention.in_proj_bias
        state.update({
            f"cross_attn{i}.q_proj.weight": weight[:dim], f"cross_attn{i}.q_proj.bias": bias[:dim],
            f"cross_attn{i}.kv_proj.weight": weight[dim:], f"cross_attn{i}.kv_proj.bias": bias[dim:],
            f"cross_attn{i}.proj.weight": attention.out_proj.weight,
            f"cross_attn{i}.proj.bias": attention.out_proj.bias,
        })
    return {name: value.detach().clone() for name, value in state.items()}


def level_models(official: ModuleType, clip: torch.nn.Module, method, task: str, n_pro: int) -> dict[str, Any]:
    """One official model per zsadbench level, in zsadbench's level order, holding that level's texts as its caption
    and the ``task``'s context vectors (its prompt words checked against zsadbench's)."""
    captions = load_captions(ours.DATASET, ours.CATEGORY)
    texts = mllp_texts(captions, class_specific=ours.CONFIG.class_states, attribute_prompts=False)
    names = level_names(captions)
    ctx = {k.split(".")[1]: v for k, v in ours.promptad_ours.prompt_state(clip.token_embedding.embedding_dim).items()
           if k.startswith(f"{task}.")}
    models = {name: official_model(official, clip, n_pro, caption_table(texts[name], len(names) - 2), ctx)
              for name in names}
    for name, model in models.items():
        check_prompts(model, prompt_tokens(texts[name], method.backbone_.tokenize))
    return models


def task_model(official: ModuleType, clip: torch.nn.Module, method, task: str, n_pro: int,
               support: torch.Tensor) -> tuple[Any, dict[str, torch.Tensor]]:
    """The official model of one task (``seg`` or ``cls``): the image level's, given the other levels' anchors, the
    Query Former and the support memory; with the text stages in zsadbench's level order."""
    models = level_models(official, clip, method, task, n_pro)
    names = list(models)
    normal, abnormal, anchors = zip(*(caption_features(m) for m in models.values()))
    anchor = dict(zip(names, anchors))
    order = official_order(names)
    model = models["image"]
    model.entity_features_list.copy_(torch.stack([anchor[name] for name in order[:-2]]))
    model.background_features.copy_(anchor["background"])
    model.q_former.load_state_dict(official_query_former(method.head_.query, [names.index(n) for n in order]))
    build_gallery(model, support)
    return model, {
        f"{task}_text_normal": torch.cat(normal), f"{task}_text_abnormal": torch.cat(abnormal),
        f"{task}_normal_anchors": torch.stack([a[0] for a in anchors]),
        f"{task}_abnormal_anchors": torch.stack([a[1] for a in anchors]),
    }


@contextlib.contextmanager
def recorded_levels(model, into: dict[str, torch.Tensor]):
    """Record the Query Former's outputs and the level each feature picks in the official
    ``get_max_cosine_similarity_match`` (official level indices)."""
    match = model.get_max_cosine_similarity_match

    def record(tokens: torch.Tensor, intrinsic: torch.Tensor):
        matches = match(tokens, intrinsic)
        into["intrinsic"] = intrinsic.clone()
        into["levels"] = torch.tensor([[level for _, level in row] for row in matches])
        return matches

    with mock.patch.object(model, "get_max_cosine_similarity_match", record):
        yield


def normalised(official: ModuleType, images01: torch.Tensor) -> torch.Tensor:
    """``images01`` in ``[0, 1]`` normalised with the official mean and standard deviation."""
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (official.mean_train, official.std_train))
    return (images01 - mean) / std


def feature_stages(seg, queries: torch.Tensor) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
    """The official ``encode_image`` outputs of the queries and, as stages, them and the support galleries."""
    visual = seg.encode_image(queries)
    layers = OFFICIAL_MEMORY_LAYERS
    return visual, {
        **{f"gallery_{layer}": g.clone() for layer, g in zip(layers, (seg.feature_gallery1, seg.feature_gallery2))},
        "cls_feature": visual[0], "patch_tokens": visual[1],
        **{f"memory_{layer}": m for layer, m in zip(layers, visual[2:])},
    }


def map_stages(official: ModuleType, seg, visual: list[torch.Tensor], queries: torch.Tensor
               ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The official segmentation maps (text, memory, fused on the grid, fused at ``map_size`` before and after the
    Gaussian) and what the token-wise level choice recorded."""
    levels: dict[str, torch.Tensor] = {}
    with recorded_levels(seg, levels):
        text = seg.calculate_textual_patch_anomaly_score(visual, "seg")[:, 0]
    memory = seg.calculate_visual_anomaly_score(visual)[:, 0]
    unsmoothed: list[np.ndarray] = []
    with recorded_smoothing(official, unsmoothed):
        smoothed = seg(queries, "seg")
    return {
        "text_map": text, "memory_map": memory,
        "fused_grid": 1.0 / (1.0 / text + 1.0 / memory),  # the official forward's fusion
        "fused_map": torch.from_numpy(np.stack(unsmoothed)), "smoothed_map": torch.from_numpy(np.stack(smoothed)),
    }, levels


def score_stages(cls, queries: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The official classification outputs: the CLS text score, the largest memory score at ``map_size`` and their
    fusion by ``utils/metrics.py``; and what the CLS feature's level choice recorded."""
    levels: dict[str, torch.Tensor] = {}
    with recorded_levels(cls, levels):
        image_text, memory_maps = cls(queries, "cls")
    text = torch.from_numpy(np.stack(image_text))
    peak = torch.from_numpy(np.stack(memory_maps)).flatten(1).amax(dim=1)
    return {"image_text_score": text, "memory_max": peak, "image_score": 1.0 / (1.0 / peak + 1.0 / text)}, levels


def official_stages(official: ModuleType, method, support01: torch.Tensor, queries01: torch.Tensor
                    ) -> dict[str, np.ndarray]:
    """Every stage of the official fit-then-test order, same layout as :func:`finegrainedad_ours.our_stages`."""
    cfg = ours.CONFIG
    support, queries = normalised(official, support01), normalised(official, queries01)
    clip = official_clip(official)
    names = level_names(load_captions(ours.DATASET, ours.CATEGORY))
    order = official_order(names)
    back = [order.index(n) for n in names]  # the official index of each of zsadbench's levels
    to_ours = torch.tensor([names.index(n) for n in order])
    with torch.no_grad():
        seg, stages = task_model(official, clip, method, "seg", cfg.n_pro_seg, support)
        cls, cls_text = task_model(official, clip, method, "cls", cfg.n_pro_cls, support)
        visual, features = feature_stages(seg, queries)
        maps, seg_levels = map_stages(official, seg, visual, queries)
        scores, cls_levels = score_stages(cls, queries)
    stages.update({
        **cls_text, **features, **maps, **scores,
        "seg_intrinsic": seg_levels["intrinsic"][back], "cls_intrinsic": cls_levels["intrinsic"][back],
        "token_level": to_ours[seg_levels["levels"]].reshape(maps["text_map"].shape),
        "cls_level": to_ours[cls_levels["levels"][:, 0]],
    })
    return {name: stages[name].float().numpy() for name in ours.STAGES}


def main(argv: list[str] | None = None) -> int:
    """Compare, write the npz of the official stages, print the table; returns the exit status."""
    args = arguments(__doc__, "github.com/RetoFan233/FineGrainedAD", argv)
    args.out = args.out or DEFAULT_OUT
    torch.set_num_threads(1)
    official = import_official(args.official.resolve())
    method = ours.build_ours()
    support, queries = ours.input_images()
    with contextlib.redirect_stdout(io.StringIO()):  # the official code prints shapes as it goes
        theirs = official_stages(official, method, support, queries)
    report(args, theirs, ours.our_stages(method, queries), ours)
    return 0


if __name__ == "__main__":
    sys.exit(main())
