"""Hyper-parameters of MPA (stage 1) and MPAMA (stage 1 + MoE stage 2), the paper's values as defaults.

The paper (``papers/mpama.md``, §3-§4.1) fixes: ViT-L/14@336 at 518 px, the top (layer-24) feature, E = 12
learnable tokens with a shared prefix of S = 2, perceptions {1, 2, 3, 4} with average pooling, hinge margins
0.5/0.5, λ = 5, Adam at 1e-3 (stage 1, 30 epochs) and 1e-6 (stage 2, 10 epochs), batch 8, 5 experts when
training on MVTec AD and 4 on VisA, 2 active. Everything else is our choice, documented in the README and
switchable here; every ablation of the paper is a field (see the README's table).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from zsadbench.config import MethodConfig
from zsadbench.constraints import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, Constraints, CrossCheck, CrossChecks, Interval, Items
from zsadbench.methods.anomalyclip import DEEP_TOKENS_FIT_CONTEXT, PROMPT_LEARNING_CONSTRAINTS


@dataclass(frozen=True)
class PromptLayout:
    """What the prompt switches resolve to: perception levels, decoupled global prompts, bridge, shared prefix."""

    levels: tuple[int, ...]
    decoupled: bool
    bridge: bool
    shared_prefix: int


@dataclass(frozen=True)
class MPAConfig(MethodConfig):
    """MPA (stage 1) settings.

    Backbone (AnomalyCLIP's): ``backbone``, ``image_size``, ``layer`` (the 1-based block whose V-V patches are
    scored; the paper's "top feature"), ``vv_last`` (V-V attention in that many top blocks).

    Prompts: ``n_ctx`` (E) learnable tokens before ``object`` / ``damaged object``, of which the first
    ``shared_prefix`` (S) are shared by the local prompts of all levels; ``deep_tokens``/``deep_depth``: deep
    text prompts as in AnomalyCLIP, shared by every prompt (``deep_depth`` 1 turns them off); ``init_std``.

    Ablation switches: ``perceptions`` (the set P of pooling sizes), ``multi_perception`` (off: only p = 1),
    ``decoupled`` (off: the global branch uses the local prompts, "coupled"), ``bridge`` (the cross-level bridge
    into the global prompts), ``prompt_strategy`` (``mpa`` uses the switches above; ``cp``/``dp``/``mpdp``/
    ``mpdpb`` are the presets of the paper's Fig. 6 and override them).

    Open choices: ``bridge_hidden_ratio`` (hidden width of the bridge MLP over the text width),
    ``pool_padding`` (border rule of the p×p pooling: ``valid`` averages the tokens inside the grid,
    ``replicate`` repeats the edge, ``zero`` pads zeros), ``pool_normalized`` (pool L2-normalised instead of
    raw projected tokens), ``map_weight`` (image score = (1 − w)·global probability + w·max of the map).

    Scoring and training: ``temperature`` 0.07, ``sigma`` of the Gaussian on the final map, Adam (``lr``,
    ``betas``) for ``epochs`` of ``batch_size``; loss Eq. 5 = global CE + Σ_p (focal + 2 Dice) +
    ``hinge_weight`` (λ) · Σ_p hinge with margins ``margin_normal`` (δ_n) and ``margin_anomaly`` (δ_a); the focal
    term's ``focal_gamma`` and ``focal_smooth`` and the Dice term's ``dice_smooth`` are AnomalyCLIP's.
    """

    backbone: str = "ViT-L-14-336-quickgelu"
    image_size: int = 518
    layer: int = 24
    vv_last: int = 19
    n_ctx: int = 12
    shared_prefix: int = 2
    deep_tokens: int = 4
    deep_depth: int = 9
    init_std: float = 0.02
    perceptions: tuple[int, ...] = (1, 2, 3, 4)
    multi_perception: bool = True
    decoupled: bool = True
    bridge: bool = True
    prompt_strategy: Literal["mpa", "cp", "dp", "mpdp", "mpdpb"] = "mpa"
    bridge_hidden_ratio: float = 1.0
    pool_padding: Literal["valid", "replicate", "zero"] = "valid"
    pool_normalized: bool = False
    map_weight: float = 0.5
    temperature: float = 0.07
    sigma: float = 4.0
    epochs: int = 30
    batch_size: int = 8
    lr: float = 1e-3
    betas: tuple[float, ...] = (0.5, 0.999)
    hinge_weight: float = 5.0
    margin_normal: float = 0.5
    margin_anomaly: float = 0.5
    focal_gamma: float = 2.0
    focal_smooth: float = 1e-5
    dice_smooth: float = 1.0

    _parameter_constraints: ClassVar[Constraints] = {
        **PROMPT_LEARNING_CONSTRAINTS,
        "layer": Interval(1, None, closed="left", note="a 1-based block number"),
        "shared_prefix": NON_NEGATIVE,
        "perceptions": Items(AT_LEAST_ONE, distinct=True, note="pooling sizes"),
        "bridge_hidden_ratio": POSITIVE,
        "map_weight": Interval(0, 1, closed="both"),
        "hinge_weight": NON_NEGATIVE,
        "margin_normal": NON_NEGATIVE,
        "margin_anomaly": NON_NEGATIVE,
    }
    _cross_checks: ClassVar[CrossChecks] = (
        CrossCheck(("shared_prefix", "n_ctx"), lambda c: c.shared_prefix <= c.n_ctx,
                   "shared_prefix={shared_prefix} shares context tokens, so it cannot exceed n_ctx={n_ctx}"),
        DEEP_TOKENS_FIT_CONTEXT,
    )

    def layout(self) -> PromptLayout:
        """The prompt structure the switches and ``prompt_strategy`` describe."""
        multi = tuple(self.perceptions)
        presets = {
            "cp": PromptLayout((1,), False, False, 0),
            "dp": PromptLayout((1,), True, False, 0),
            "mpdp": PromptLayout(multi, True, False, 0),
            "mpdpb": PromptLayout(multi, True, True, 0),
        }
        if self.prompt_strategy in presets:
            return presets[self.prompt_strategy]
        levels = multi if self.multi_perception else (1,)
        return PromptLayout(levels, self.decoupled, self.decoupled and self.bridge, self.shared_prefix)


@dataclass(frozen=True)
class MPAMAConfig(MPAConfig):
    """MPAMA settings: :class:`MPAConfig` (stage 1) plus the MoE adaptation of stage 2.

    ``moe`` (off: no stage 2, MPAMA equals MPA); ``experts``: size of the expert pool, frozen and zero experts
    included (1: the frozen one; 2: frozen + learnable; n ≥ 3: frozen + n − 2 learnable + zero); 0 applies
    the paper's rule: 4 when the auxiliary set is VisA, 5 otherwise (MVTec AD). ``single_expert``: the kind of
    a one-expert pool, ``frozen`` (MPAMA then equals MPA) or ``learnable`` (the projection itself fine-tuned in
    stage 2: the paper's Table 5 row "1"); it needs ``experts=1``. ``top_k`` experts per token
    (at most the pool size), ``routing`` ``pre`` (route AGG_p of the pre-projection tokens, per level) or
    ``post`` (route each token once, pool the outputs), ``renormalize`` the top-k gates to sum to 1 (off:
    the paper's formula, softmax over all experts masked to the top-k), ``router_init_std``.
    Training: ``stage2_epochs`` at ``stage2_lr`` (Adam, same betas and batch), loss Eq. 6 = Σ_p (focal + 2
    Dice) + λ·Σ_p hinge, plus ``balance_weight`` × a Switch-style load-balancing term (0: the paper's loss).
    """

    moe: bool = True
    experts: int = 0
    single_expert: Literal["frozen", "learnable"] = "frozen"
    top_k: int = 2
    routing: Literal["pre", "post"] = "pre"
    renormalize: bool = True
    router_init_std: float = 0.02
    stage2_epochs: int = 10
    stage2_lr: float = 1e-6
    balance_weight: float = 0.0

    _parameter_constraints: ClassVar[Constraints] = {
        "experts": Interval(0, None, closed="left", note="0 applies the paper's rule: 5 on MVTec AD, 4 on VisA"),
        "top_k": POSITIVE,
        "router_init_std": NON_NEGATIVE,
        "stage2_epochs": POSITIVE,
        "stage2_lr": POSITIVE,
        "balance_weight": NON_NEGATIVE,
    }
    _cross_checks: ClassVar[CrossChecks] = (
        CrossCheck(("single_expert", "experts"), lambda c: c.single_expert == "frozen" or c.experts == 1,
                   "single_expert={single_expert} sets the kind of a one-expert pool, so it needs experts=1, "
                   "got experts={experts}"),
    )

    def experts_for(self, auxiliary: str) -> int:
        """The pool size used when training on ``auxiliary``: ``experts``, or the paper's rule when it is 0."""
        if self.experts:
            return self.experts
        return 4 if auxiliary == "visa" else 5
