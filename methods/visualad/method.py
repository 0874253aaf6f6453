"""The ``visualad`` plugin: VisualAD, language-free zero-shot anomaly detection (Hou et al., CVPR 2026).

Zero-shot with training on an auxiliary set: ``fit(FitData("auxiliary", ...))`` trains the two tokens,
``ln_post``, SCA and SAF on a frozen ViT (CLIP ViT-L/14@336 by default, or DINOv2 through timm); the runner
caches :meth:`VisualAD.state_dict` and reuses it across datasets and runs. ``predict`` returns the
summed layer maps, upsampled to ``image_size`` and smoothed (Gaussian ``sigma``), and the mean of their top
``topk_ratio`` pixels as the image score.
"""
from __future__ import annotations

from typing import Any, ClassVar

from zsadbench.config import MethodConfig
from zsadbench.errors import ConfigError, MethodError
from zsadbench.lazy import deferred
from zsadbench.method import FitData, Method
from zsadbench.types import Batch, Prediction

from .config import VisualADConfig

torch = deferred("torch")
create_backbone = deferred("zsadbench.backbones", "create_backbone")
check_state = deferred("zsadbench.training", "check_state")
smooth = deferred("zsadbench.maps", "smooth")
topk_mean = deferred("zsadbench.maps", "topk_mean")
upsample = deferred("zsadbench.maps", "upsample")
VisualADHead = deferred(".model", "VisualADHead", __package__)
VisualADModel = deferred(".model", "VisualADModel", __package__)
final_norm_of = deferred(".model", "final_norm_of", __package__)
train = deferred(".training", "train", __package__)

DINOV2_DEFAULT_TAG = "lvd142m"


class VisualAD(Method):
    """VisualAD on a frozen ViT; see :class:`~.config.VisualADConfig` for every hyper-parameter."""

    name: ClassVar[str] = "visualad"
    version: ClassVar[str] = "1"
    label: ClassVar[str] = "VisualAD"
    settings: ClassVar[frozenset[str]] = frozenset({"zero-shot"})
    trains_on_auxiliary: ClassVar[bool] = True
    config_class: ClassVar[type[VisualADConfig]] = VisualADConfig
    default_pretrained: ClassVar[str] = "openai"
    random_init_overrides: ClassVar[dict[str, Any]] = {
        "backbone": "ViT-B-16",
        "image_size": 224,
        "layers": (3, 6, 9, 12),
        "epochs": 1,
    }
    paper: ClassVar[str] = "VisualAD: Language-Free Zero-Shot Anomaly Detection via Vision Transformer (CVPR 2026)"

    config: VisualADConfig
    model_: VisualADModel | None = None
    history_: list[dict[str, float]] | None = None

    @classmethod
    def resolve_weights(cls, config: MethodConfig, pretrained: str | None) -> str:
        """``openai`` for CLIP and ``lvd142m`` for DINOv2 when the user asked for the default weights."""
        if pretrained in ("default", "", None) and config.is_dinov2:
            return DINOV2_DEFAULT_TAG
        return super().resolve_weights(config, pretrained)

    def setup(self) -> "VisualAD":
        """Build the frozen backbone (loading its weights) and a freshly initialised head; idempotent."""
        if self.model_ is not None:
            return self
        cfg = self.config
        backbone = create_backbone(cfg.backbone, self.pretrained_tag, image_size=cfg.image_size, device=self.device)
        grid_h, grid_w = backbone.grid_size
        if grid_h * grid_w > cfg.max_patches:
            raise ConfigError(
                f"VisualADConfig.max_patches={cfg.max_patches} is below the {grid_h}x{grid_w} patch grid of "
                f"{cfg.backbone} at image_size={cfg.image_size}; raise max_patches or lower image_size"
            )
        head = VisualADHead(
            backbone.width,
            len(cfg.layers),
            final_norm_of(backbone),
            token_init_scale=cfg.token_init_scale,
            num_anchors=cfg.num_anchors,
            sca_dropout=cfg.sca_dropout,
            max_patches=cfg.max_patches,
            res_scale_init=cfg.res_scale_init,
            sca_init_std=cfg.sca_init_std,
            saf_hidden_ratio=cfg.saf_hidden_ratio,
            saf_dropout=cfg.saf_dropout,
        )
        self.model_ = VisualADModel(backbone, head, cfg.layers, self.precision).to(self.device).eval()
        return self

    def fit(self, data: FitData) -> "VisualAD":
        """Train on the auxiliary set (``kind="auxiliary"``) for ``config.epochs`` epochs; the last epoch is kept."""
        model = self.setup().model_
        self.history_ = train(model, data, self.config, self.device)
        self.fitted_ = True
        return self

    def predict(self, batch: Batch) -> Prediction:
        """Smoothed maps ``[B, S, S]`` at ``image_size`` and top-k image scores ``[B]`` (float32, CPU)."""
        self.check_fitted()
        cfg = self.config
        model = self.model_
        model.eval()
        norm = final_norm_of(model.backbone) if cfg.test_ln_post == "original" else None
        with torch.no_grad():
            output = model(batch.image.to(self.device, non_blocking=True), norm)
            summed = upsample(output.maps.sum(dim=1, keepdim=True), cfg.image_size)[:, 0]
        maps = smooth(summed, cfg.sigma)
        return Prediction(pred_score=topk_mean(maps, cfg.topk_ratio), anomaly_map=maps)

    # -- state ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The trained parameters only (tokens, ``ln_post``, SCA, SAF) as CPU tensors."""
        if self.model_ is None:
            raise MethodError("visualad has no trained state yet; call setup() and fit() first")
        return {key: value.detach().cpu().clone() for key, value in self.model_.head.state_dict().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the head from :meth:`state_dict`; the method then counts as fitted."""
        head = self.setup().model_.head
        check_state(head.state_dict(), state, self.name)
        head.load_state_dict(state)
        self.fitted_ = True
