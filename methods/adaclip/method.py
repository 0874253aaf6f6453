"""The ``adaclip`` plugin: AdaCLIP, hybrid learnable prompts for zero-shot anomaly detection (Cao et al., ECCV 2024).

Zero-shot with training on an auxiliary set: ``fit`` learns the static prompts, the dynamic-prompt generators and
the projections on a frozen CLIP; ``predict`` returns the layer-averaged anomaly map (logits upsampled to
``image_size``, softmax, Gaussian σ = 4) and the image probability of the HSF-fused image feature.
"""
from __future__ import annotations

from typing import Any, ClassVar

from zsadbench.errors import MethodError
from zsadbench.lazy import deferred
from zsadbench.method import FitData, Method
from zsadbench.types import Batch, Prediction

from .config import AdaCLIPConfig

torch = deferred("torch")
create_clip = deferred("zsadbench.backbones", "create_clip")
check_state = deferred("zsadbench.training", "check_state")
smooth = deferred("zsadbench.maps", "smooth")
AdaCLIPModel = deferred(".model", "AdaCLIPModel", __package__)
upsample_logits = deferred(".model", "upsample_logits", __package__)
train = deferred(".training", "train", __package__)


class AdaCLIP(Method):
    """AdaCLIP on a frozen CLIP; see :class:`~.config.AdaCLIPConfig` for every hyper-parameter."""

    name: ClassVar[str] = "adaclip"
    version: ClassVar[str] = "1"
    label: ClassVar[str] = "AdaCLIP"
    settings: ClassVar[frozenset[str]] = frozenset({"zero-shot"})
    trains_on_auxiliary: ClassVar[bool] = True
    config_class: ClassVar[type[AdaCLIPConfig]] = AdaCLIPConfig
    default_pretrained: ClassVar[str] = "openai"
    random_init_overrides: ClassVar[dict[str, Any]] = {
        "backbone": "ViT-S-16-alt",
        "image_size": 160,
        "layers": (3, 6, 9, 12),
        "epochs": 1,
        "batch_size": 8,
    }
    paper: ClassVar[str] = ("AdaCLIP: Adapting CLIP with Hybrid Learnable Prompts for Zero-Shot Anomaly Detection "
                            "(ECCV 2024)")

    config: AdaCLIPConfig
    model_: AdaCLIPModel | None = None
    history_: list[dict[str, float]] | None = None

    def setup(self) -> "AdaCLIP":
        """Build the frozen CLIP (loading its weights) and a freshly initialised head; idempotent."""
        if self.model_ is None:
            cfg = self.config
            backbone = create_clip(cfg.backbone, self.pretrained_tag, image_size=cfg.image_size, device=self.device,
                                   activation=cfg.activation, pos_interpolation=cfg.pos_interpolation)
            self.model_ = AdaCLIPModel(backbone, cfg, self.precision).to(self.device).eval()
        return self

    def fit(self, data: FitData) -> "AdaCLIP":
        """Train the head on the auxiliary set for ``config.epochs`` epochs (resuming from checkpoints)."""
        model = self.setup().model_
        model.forget_text()
        self.history_ = train(model, data, self.config, self.device)
        self.fitted_ = True
        return self

    def predict(self, batch: Batch) -> Prediction:
        """Smoothed anomaly maps ``[B, S, S]`` and image anomaly probabilities ``[B]`` (float32, CPU)."""
        self.check_fitted()
        cfg, model = self.config, self.model_
        with torch.no_grad():
            output = model(batch.image.to(self.device, non_blocking=True), batch.categories)
            mean = torch.stack(output.patch_logits).mean(dim=0)
            maps = upsample_logits(mean, model.grid, cfg.image_size).softmax(dim=1)[:, 1]
            score = output.image_logits.softmax(dim=-1)[:, 1]
        return Prediction(pred_score=score.float().cpu(), anomaly_map=smooth(maps, cfg.sigma))

    def state_dict(self) -> dict[str, Any]:
        """The learned head (prompts, prompt generators, projections) as CPU tensors."""
        if self.model_ is None:
            raise MethodError(f"{self.name} has no trained state yet; call setup() and fit() first")
        return {k: v.detach().cpu().clone() for k, v in self.model_.head.state_dict().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the head from :meth:`state_dict`; the method then counts as fitted."""
        head = self.setup().model_.head
        check_state(head.state_dict(), state, self.name)
        head.load_state_dict(state)
        self.fitted_ = True
