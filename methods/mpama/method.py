"""The ``mpa`` and ``mpama`` plugins: multi-perception prompt alignment (stage 1) and its MoE adaptation of
the visual projection (stage 2), from "Learning multi-granularity visual-textual alignment for zero-shot
anomaly detection" (ICLR 2026 submission; no public code).

Zero-shot with training on an auxiliary set. ``predict`` returns the mean of the levels' anomaly maps
(upsampled to ``image_size``, Gaussian σ) and ``(1 − w)·P(g̃_a, f) + w·max(map)`` (w = ½) as image score;
MPAMA adds the expert-usage counts ``stats["expert_usage"]`` (``LongTensor [levels, experts]``).
"""
from __future__ import annotations

from typing import Any, ClassVar

from zsadbench.errors import MethodError
from zsadbench.lazy import deferred
from zsadbench.method import FitData, Method
from zsadbench.types import Batch, Prediction

from .config import MPAConfig, MPAMAConfig

torch = deferred("torch")
create_clip = deferred("zsadbench.backbones", "create_clip")
smooth = deferred("zsadbench.maps", "smooth")
upsample = deferred("zsadbench.maps", "upsample")
tower_features = deferred("zsadbench.methods.anomalyclip", "tower_features")
EpochTrainer = deferred("zsadbench.training", "EpochTrainer")
check_state = deferred("zsadbench.training", "check_state")
MPAModel = deferred(".model", "MPAModel", __package__)
build_moe = deferred(".training", "build_moe", __package__)
stage1 = deferred(".training", "stage1", __package__)
stage2 = deferred(".training", "stage2", __package__)

PAPER = "Learning Multi-Granularity Visual-Textual Alignment for Zero-Shot Anomaly Detection (ICLR 2026 submission)"
DEMO: dict[str, Any] = {"backbone": "ViT-B-16", "image_size": 160, "layer": 12, "vv_last": 10, "epochs": 2}


class MPA(Method):
    """MPA: stage 1 only (prompts learn, the CLIP stays frozen); see :class:`~.config.MPAConfig`."""

    name: ClassVar[str] = "mpa"
    version: ClassVar[str] = "1"
    label: ClassVar[str] = "MPA"
    settings: ClassVar[frozenset[str]] = frozenset({"zero-shot"})
    trains_on_auxiliary: ClassVar[bool] = True
    config_class: ClassVar[type[MPAConfig]] = MPAConfig
    default_pretrained: ClassVar[str] = "openai"
    random_init_overrides: ClassVar[dict[str, Any]] = dict(DEMO)
    paper: ClassVar[str] = PAPER

    config: MPAConfig
    model_: MPAModel | None = None
    history_: dict[str, list[dict[str, float]]] | None = None
    _text: tuple[torch.Tensor, torch.Tensor] | None = None

    def setup(self) -> "MPA":
        """Build the frozen CLIP (loading its weights) and freshly initialised prompts; idempotent."""
        if self.model_ is None:
            cfg = self.config
            backbone = create_clip(cfg.backbone, self.pretrained_tag, image_size=cfg.image_size, device=self.device)
            self.model_ = MPAModel(backbone, cfg).to(self.device).eval()
        return self

    @property
    def total_epochs(self) -> int:
        return self.config.epochs

    @property
    def _adapts_projection(self) -> bool:
        """Whether the fit runs stage 2, the MoE adaptation of the projection (MPAMA with ``moe``)."""
        return False

    def fit(self, data: FitData) -> "MPA":
        """Train on the auxiliary set (stage 1; MPAMA: then stage 2), resuming from ``data.checkpoints``; the last
        epoch of each stage is kept."""
        self.history_ = self._train(data)
        self.fitted_ = True
        return self

    def _train(self, data: FitData) -> dict[str, list[dict[str, float]]]:
        """Stage 1, then (MPAMA with ``moe``) stage 2, under one trainer; the losses of each stage."""
        cfg = self.config
        model = self.setup().model_
        self._text = None
        model.moe = None
        trainer = EpochTrainer(data, self.label, self.total_epochs)
        model.train()
        try:
            history = {"stage1": trainer.fit(stage1(model, data, cfg, self.device, self.precision, self.label))}
            if self._adapts_projection:
                resumed = trainer.resumes_after(cfg.epochs)
                experts = int(trainer.saved("experts")) if resumed else cfg.experts_for(data.dataset)
                model.moe = build_moe(model, cfg, experts, data.seed)
                history["stage2"] = trainer.fit(stage2(model, data, cfg, self.device, self.precision, self.label))
        finally:
            model.eval()
        return history

    def predict(self, batch: Batch) -> Prediction:
        """Mean level map ``[B, S, S]`` (smoothed) and ``(1 − w)·global + w·max(map)`` scores ``[B]``."""
        self.check_fitted()
        cfg, model = self.config, self.model_
        with torch.no_grad():
            if self._text is None:
                self._text = model.text_features()
            local_text, global_text = self._text
            images = batch.image.to(self.device, non_blocking=True)  # pinned by the loader on CUDA
            tower = tower_features(model.backbone, images, [cfg.layer], cfg.vv_last, precision=self.precision)
            tokens, usage, _ = model.level_tokens(tower.patches[0])
            maps = torch.stack([m[:, 1] for m in model.level_maps(tokens, local_text)], dim=1).mean(dim=1, keepdim=True)
            global_prob = model.image_logits(tower.cls, global_text).softmax(dim=-1)[:, 1].float().cpu()
            anomaly_map = smooth(upsample(maps, cfg.image_size)[:, 0], cfg.sigma)
        score = (1.0 - cfg.map_weight) * global_prob + cfg.map_weight * anomaly_map.amax(dim=(1, 2))
        stats = {} if usage is None else {"expert_usage": usage.long().cpu()}
        return Prediction(pred_score=score, anomaly_map=anomaly_map, stats=stats)

    # -- state ------------------------------------------------------------------------------------
    def _expected_state(self) -> dict[str, torch.Tensor]:
        return {f"prompts.{k}": v for k, v in self.model_.prompts.state_dict().items()}

    def state_dict(self) -> dict[str, Any]:
        """The learned tensors as CPU copies: ``prompts.*`` (and ``moe.*`` plus ``moe_experts`` for MPAMA)."""
        if self.model_ is None:
            raise MethodError(f"{self.name} has no trained state yet; call setup() and fit() first")
        state = {f"prompts.{k}": v for k, v in self.model_.prompts.state_dict().items()}
        moe = self.model_.moe
        if moe is not None:
            state.update({f"moe.{k}": v for k, v in moe.state_dict().items()})
            state["moe_experts"] = torch.tensor(moe.experts)
        return {k: v.detach().cpu().clone() for k, v in state.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output (rebuilding the MoE with its stored size); counts as fitted."""
        model = self.setup().model_
        model.moe = None
        if "moe_experts" in state and isinstance(self.config, MPAMAConfig):
            model.moe = build_moe(model, self.config, int(state["moe_experts"]), 0)
        expected = self._expected_state()
        if model.moe is not None:
            expected.update({f"moe.{k}": v for k, v in model.moe.state_dict().items()})
            expected["moe_experts"] = torch.tensor(model.moe.experts)
        check_state(expected, state, self.name)
        model.prompts.load_state_dict({k[8:]: v for k, v in state.items() if k.startswith("prompts.")})
        if model.moe is not None:
            model.moe.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("moe.")})
        self._text = None
        self.fitted_ = True


class MPAMA(MPA):
    """MPAMA: stage 1 (MPA), then the MoE adaptation of the visual projection with the text frozen."""

    name: ClassVar[str] = "mpama"
    version: ClassVar[str] = "3"
    label: ClassVar[str] = "MPAMA"
    config_class: ClassVar[type[MPAMAConfig]] = MPAMAConfig
    random_init_overrides: ClassVar[dict[str, Any]] = {**DEMO, "stage2_epochs": 1}

    config: MPAMAConfig

    @property
    def total_epochs(self) -> int:
        return self.config.epochs + (self.config.stage2_epochs if self.config.moe else 0)

    @property
    def _adapts_projection(self) -> bool:
        return self.config.moe
