"""Hyper-parameters of PromptAD, with the values of the public code (``FuNz-0/PromptAD`` @ ``0f86ce0``) as defaults.

The official code trains the segmentation prompts (patch tokens, ``n_pro=1``) and the classification prompts
(CLS token, ``n_pro=3``) in two separate runs; here one fit trains both sets, one after the other, on the same
k support images (``epochs_cls=0`` scores images with the segmentation prompts instead).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from zsadbench.config import MethodConfig
from zsadbench.constraints import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, Constraints, Interval, Items


@dataclass(frozen=True)
class PromptADConfig(MethodConfig):
    """PromptAD settings.

    Backbone: ``backbone`` (open_clip architecture) at ``image_size``; V-V attention in every block gives the
    patch tokens; ``memory_layers`` (1-based) are the blocks whose ordinary-stream tokens form the visual memory.
    ``memory_tap`` says where memory layer L is read: ``official`` is block L's output plus block L+1's attention
    residual, what the official code stores (it keeps a view of block L's output, to which block L+1 adds its
    attention residual in place), so L must be below the last block; ``block`` is block L's output alone. The
    default is ``official`` because every published PromptAD and FineGrainedAD number came from that code.

    Prompts (semantic concatenation): ``n_ctx`` learnable normal context vectors in each of ``n_pro_seg`` /
    ``n_pro_cls`` normal prompts ``"[ctx] {class}."``; the handcrafted abnormal prompts put the same context before
    each abnormal state phrase (the generic ones, plus the category's own when ``class_states``); the learned
    abnormal prompts ``"[ctx][abnormal ctx] {class}."`` pair each normal context with each of ``n_pro_ab``
    abnormal contexts of ``n_ctx_ab`` vectors. Context vectors start as ``N(0, ctx_init_std²)``.

    Losses: cross-entropy of every token (or the CLS feature) against ``[normal mean, each abnormal prompt]``,
    the explicit anomaly margin with ``eam_margin`` and ``lambda_align`` times the squared distance of the mean
    handcrafted and mean learned abnormal features. ``margin_form`` is the margin loss's form: ``token_summed``,
    the official code's (its ``TripletLoss`` on a token map ``[K, N, D]`` sums the squared differences over the
    tokens, then takes ``relu(· + eam_margin)`` per channel and the mean; on CLS features it is the squared
    distance per feature), which produced the published numbers (hence the default); ``euclidean``, the paper's
    ``relu(‖z−n̄‖ − ‖z−ā‖ + eam_margin)`` per token; ``squared``, the same on squared distances. Logits are cosines times CLIP's
    ``logit_scale``: ``raw`` takes the stored parameter itself (ln 100 ≈ 4.6 for LAION weights), as the official
    code does, ``exp`` its exponential (CLIP's own temperature).

    Training: ``epochs_seg`` epochs for the segmentation prompts, then ``epochs_cls`` for the classification
    prompts (0: images are scored with the segmentation prompts); SGD (``lr``, ``momentum``, ``weight_decay``),
    cosine annealing to ``eta_min`` over the epochs, one step per epoch on all k shots. The last epoch is kept.

    Maps: harmonic fusion of the text and memory maps on the patch grid, bilinear to ``map_size`` px, Gaussian
    ``sigma`` (in ``map_size`` pixels; 0 turns it off). Image score: harmonic fusion of the CLS text score and the
    largest memory score, taken over the memory map bilinearly upsampled (not smoothed) to ``image_score_size`` px,
    as the official code takes it at its 400 px output resolution where the published numbers came from (hence the
    default); 0 takes it over the token grid.

    ``test_colour_order``: ``rgb`` scores the test images as they are; ``bgr`` swaps their red and blue channels
    first, as the official test loop does (its images are read in BGR order and converted for training only).
    """

    backbone: str = "ViT-B-16-plus-240"
    image_size: int = 240
    memory_layers: tuple[int, ...] = (3, 8)
    memory_tap: Literal["official", "block"] = "official"
    n_ctx: int = 4
    n_ctx_ab: int = 1
    n_pro_seg: int = 1
    n_pro_cls: int = 3
    n_pro_ab: int = 4
    ctx_init_std: float = 0.02
    class_states: bool = True
    logit_scale: Literal["raw", "exp"] = "raw"
    eam_margin: float = 0.0
    margin_form: Literal["token_summed", "euclidean", "squared"] = "token_summed"
    lambda_align: float = 0.001
    epochs_seg: int = 100
    epochs_cls: int = 100
    lr: float = 0.002
    momentum: float = 0.9
    weight_decay: float = 5e-4
    eta_min: float = 1e-5
    map_size: int = 400
    sigma: float = 4.0
    image_score_size: int = 400
    test_colour_order: Literal["rgb", "bgr"] = "rgb"

    _parameter_constraints: ClassVar[Constraints] = {
        "image_size": POSITIVE,
        "memory_layers": Items(AT_LEAST_ONE, distinct=True, note="1-based block numbers"),
        "n_ctx": POSITIVE,
        "n_ctx_ab": POSITIVE,
        "n_pro_seg": POSITIVE,
        "n_pro_cls": POSITIVE,
        "n_pro_ab": POSITIVE,
        "ctx_init_std": NON_NEGATIVE,
        "lambda_align": NON_NEGATIVE,
        "epochs_seg": POSITIVE,
        "epochs_cls": NON_NEGATIVE,
        "lr": POSITIVE,
        "momentum": NON_NEGATIVE,
        "weight_decay": NON_NEGATIVE,
        "eta_min": NON_NEGATIVE,
        "map_size": POSITIVE,
        "sigma": NON_NEGATIVE,
        "image_score_size": Interval(0, None, closed="left", note="px; 0 = over the token grid"),
    }
