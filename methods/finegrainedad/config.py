"""Hyper-parameters of FineGrainedAD, with the values of the public code (``RetoFan233/FineGrainedAD`` @ ``aa6b041``)
and, where the code is silent or degenerate, of the paper (arXiv 2510.26464) as defaults.

It extends :class:`~zsadbench.methods.promptad.PromptADConfig` (backbone, prompts, schedule, maps); the
margin of the triplet loss is 1 (PromptAD: 0) and the classification prompts train for 50 epochs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from zsadbench.constraints import AT_LEAST_ONE, NON_NEGATIVE, Constraints, CrossCheck, CrossChecks
from zsadbench.methods.promptad import PromptADConfig


@dataclass(frozen=True)
class FineGrainedADConfig(PromptADConfig):
    """FineGrainedAD settings, beyond PromptAD's.

    Captions: ``captions_dir`` is a folder of MFSC caption files (``<dir>/<dataset>/<category>.json``) looked in
    before the shipped ones, or the captions as FineGrainedAD releases them (its ``PromptAD/fine_grained_prompts.py``,
    or the folder holding it; read, never run).

    MLLP: ``attribute_prompts`` adds the colour, texture, shape and direction prompts of each component, mixed
    into the component features with learnable weights in (0, 1) (Attr-MoE); ``n_attr_abnormal`` abnormal values
    per attribute; ``attr_weight_init_std`` the std of the weights' logits.

    Region aggregation: the support shots are resized to ``cluster_size`` px (a multiple of ``image_size``), cut
    into tiles of ``image_size`` and encoded tile by tile; the stitched tokens are clustered in two stages
    (foreground/background with ``cluster_k_stage1`` neighbours, then components with ``cluster_k_stage2``). A
    region's tokens get the loss weight ``1 + region_weight`` (the paper's γ), others 1.

    Losses: ``eam_margin`` (ε) of the triplet loss, on Euclidean distances per token as the paper states it
    (``margin_form="euclidean"``; PromptAD's other forms are there too), ``lambda_align`` for the mean loss,
    ``lambda_reg`` for the regularisation loss, ``lambda_query`` for the Query Former's cosine loss.

    Inference: ``token_wise`` assigns each token the level whose Query Former output is most similar (off: the mean
    of all levels' scores); ``query_heads`` heads of the Query Former's cross-attention; ``image_reweight``
    multiplies the token scores by ``N · softmax`` of the image-level scores over the ``N`` tokens (Eq. 6).

    Image score ``1 / (1/max M + 1/S_i)``, the maximum over ``M`` at ``image_score_size`` px as PromptAD's:
    ``image_score="released"`` takes ``M`` the memory map (PromptAD's rule, what the released code computes),
    ``"eq8"`` the fused pixel map of Eq. 7 (the paper's Eq. 8).
    ``S_i``, the CLS feature's text score: ``cls_level="query_former"`` scores it with the level whose Query Former
    output is most similar, as the tokens (the released code; the classification prompts then cover every level),
    ``"image"`` with the image-level prompts (the paper's Eq. 8).

    ``as_shipped`` reproduces the released code where it departs from the paper: clustering on similarities to the
    components and background in both stages, with the code's effective k (1 when two clusters are asked for,
    counting the token itself), TCFormer's nearest-centre assignment and tie noise, no prompt-chosen centres, the
    first shot's foreground for every shot; region weights applied by scaling the features; the margin loss summed
    over tokens; a Query Former whose queries each see one key and which is never trained. It requires the released
    image score and CLS level (their defaults) and the token-summed margin loss (``margin_form`` ``euclidean``, the
    default, is read as it; ``squared`` is refused).
    """

    eam_margin: float = 1.0
    margin_form: Literal["token_summed", "euclidean", "squared"] = "euclidean"
    epochs_cls: int = 50
    captions_dir: str = ""
    attribute_prompts: bool = True
    n_attr_abnormal: int = 4
    attr_weight_init_std: float = 1.0
    cluster_size: int = 960
    cluster_k_stage1: int = 8
    cluster_k_stage2: int = 5
    region_weight: float = 1.5
    lambda_reg: float = 1.0
    lambda_query: float = 1.0
    query_heads: int = 8
    token_wise: bool = True
    image_reweight: bool = False
    image_score: Literal["released", "eq8"] = "released"
    cls_level: Literal["query_former", "image"] = "query_former"
    as_shipped: bool = False

    _parameter_constraints: ClassVar[Constraints] = {
        "n_attr_abnormal": AT_LEAST_ONE,
        "attr_weight_init_std": NON_NEGATIVE,
        "cluster_k_stage1": AT_LEAST_ONE,
        "cluster_k_stage2": AT_LEAST_ONE,
        "region_weight": NON_NEGATIVE,
        "lambda_reg": NON_NEGATIVE,
        "lambda_query": NON_NEGATIVE,
        "query_heads": AT_LEAST_ONE,
    }
    _cross_checks: ClassVar[CrossChecks] = (
        CrossCheck(("cluster_size", "image_size"), lambda c: c.cluster_size % c.image_size == 0,
                   "cluster_size={cluster_size} must be a multiple of image_size={image_size}, such as 4 × {image_size}"),
        CrossCheck(("image_score", "as_shipped"), lambda c: not c.as_shipped or c.image_score == "released",
                   "image_score={image_score!r} contradicts as_shipped=True, which reproduces the released code's "
                   "image score ('released')"),
        CrossCheck(("cls_level", "as_shipped"), lambda c: not c.as_shipped or c.cls_level == "query_former",
                   "cls_level={cls_level!r} contradicts as_shipped=True, which reproduces the released code's "
                   "CLS level ('query_former')"),
        CrossCheck(("margin_form", "as_shipped"), lambda c: not c.as_shipped or c.margin_form != "squared",
                   "margin_form={margin_form!r} contradicts as_shipped=True, which reproduces the released code's "
                   "token-summed margin loss ('token_summed')"),
    )
