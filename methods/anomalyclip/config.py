"""Hyper-parameters of AnomalyCLIP in its fixed official configuration (reference code at commit 45ed4dd).

Defaults are the values of the release scripts ``train.sh``/``test.sh`` after the 2025-04-13 fixes: one
layer-24 map, local-loss weight 4, 12 context tokens, deep text prompts of 4 tokens in text blocks 2-9,
V-V attention in the last 19 visual blocks, Adam 1e-3 with betas (0.5, 0.999), 15 epochs, batch 8, 518 px.
"""
from __future__ import annotations

from dataclasses import dataclass

from zsadbench.config import MethodConfig
from zsadbench.errors import ConfigError


@dataclass(frozen=True)
class AnomalyCLIPConfig(MethodConfig):
    """AnomalyCLIP settings.

    Backbone: ``backbone`` (open_clip architecture; ``ViT-L-14-336-quickgelu`` is OpenAI's ViT-L/14@336px),
    ``image_size`` (518 gives a 37×37 grid), ``layers`` (1-based visual blocks whose V-V patches make maps;
    official: only 24), ``vv_last`` (blocks, counted from the top, whose attention runs the V-V path; 19 is
    ``DPAM_layer=20``).

    Prompts: ``n_ctx`` learnable context tokens before ``object`` / ``damaged object``; ``deep_tokens``
    tokens overwrite positions 1.. of the text sequence entering blocks 2..``deep_depth`` (``deep_depth`` 1
    switches deep prompts off); ``init_std`` of every learnable tensor.

    Scoring: ``temperature`` of the two-class softmax (fixed 0.07), ``sigma`` of the Gaussian on the final
    map at ``image_size`` (0 turns it off).

    Training: Adam (``lr``, ``betas``) for ``epochs`` epochs of ``batch_size`` images; loss
    ``local_weight · Σ_layers [focal + Dice(anomaly, gt) + Dice(normal, 1 − gt)] + CE(global)`` with the focal
    constants ``focal_gamma``/``focal_smooth`` and ``dice_smooth``.
    """

    backbone: str = "ViT-L-14-336-quickgelu"
    image_size: int = 518
    layers: tuple[int, ...] = (24,)
    vv_last: int = 19
    n_ctx: int = 12
    deep_tokens: int = 4
    deep_depth: int = 9
    init_std: float = 0.02
    temperature: float = 0.07
    sigma: float = 4.0
    epochs: int = 15
    batch_size: int = 8
    lr: float = 1e-3
    betas: tuple[float, ...] = (0.5, 0.999)
    local_weight: float = 4.0
    focal_gamma: float = 2.0
    focal_smooth: float = 1e-5
    dice_smooth: float = 1.0

    def __post_init__(self) -> None:
        check_common(self)
        name = type(self).__name__
        if not self.layers or len(set(self.layers)) != len(self.layers) or any(i < 1 for i in self.layers):
            raise ConfigError(f"{name}.layers must be distinct 1-based block numbers such as 24, got {self.layers!r}")
        if self.deep_tokens > self.n_ctx:
            raise ConfigError(
                f"{name}.deep_tokens={self.deep_tokens} overwrite context slots, so they cannot exceed n_ctx={self.n_ctx}"
            )


def check_common(cfg: MethodConfig) -> None:
    """Checks shared by the AnomalyCLIP-style configs (AnomalyCLIP, MPA, MPAMA): positive sizes, valid optimiser."""
    name = type(cfg).__name__
    for key in ("image_size", "n_ctx", "epochs", "batch_size", "lr", "temperature", "deep_depth"):
        if not getattr(cfg, key) > 0:
            raise ConfigError(f"{name}.{key} must be > 0, got {getattr(cfg, key)!r}")
    for key in ("vv_last", "deep_tokens", "init_std", "sigma", "focal_gamma", "dice_smooth"):
        if getattr(cfg, key) < 0:
            raise ConfigError(f"{name}.{key} must be >= 0, got {getattr(cfg, key)!r}")
    if len(cfg.betas) != 2 or not all(0.0 <= b < 1.0 for b in cfg.betas):
        raise ConfigError(f"{name}.betas must be two numbers in [0, 1) such as 0.5,0.999, got {cfg.betas!r}")
    if not 0.0 <= cfg.focal_smooth < 0.5:
        raise ConfigError(f"{name}.focal_smooth must be in [0, 0.5), got {cfg.focal_smooth!r}")
