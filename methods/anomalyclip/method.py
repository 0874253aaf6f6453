"""The ``anomalyclip`` plugin: AnomalyCLIP (Zhou et al., ICLR 2024) in its fixed official configuration.

Zero-shot with training on an auxiliary set: ``fit`` learns the object-agnostic prompts on the frozen CLIP;
``predict`` returns the layer-24 anomaly probability map (upsampled to ``image_size``, Gaussian σ = 4) and the
global branch's anomaly probability as the image score.
"""
from __future__ import annotations

from typing import Any, ClassVar

from zsadbench.errors import MethodError
from zsadbench.lazy import deferred
from zsadbench.method import FitData, Method
from zsadbench.types import Batch, Prediction

from .config import AnomalyCLIPConfig

torch = deferred("torch")
create_clip = deferred("zsadbench.backbones", "create_clip")
check_state = deferred("zsadbench.training", "check_state")
AnomalyCLIPModel = deferred(".model", "AnomalyCLIPModel", __package__)
smooth = deferred(".scoring", "smooth", __package__)
upsample = deferred(".scoring", "upsample", __package__)
train = deferred(".training", "train", __package__)
tower_features = deferred(".visual", "tower_features", __package__)


class AnomalyCLIP(Method):
    """AnomalyCLIP on a frozen CLIP; see :class:`~.config.AnomalyCLIPConfig` for every hyper-parameter."""

    name: ClassVar[str] = "anomalyclip"
    version: ClassVar[str] = "1"
    label: ClassVar[str] = "AnomalyCLIP"
    settings: ClassVar[frozenset[str]] = frozenset({"zero-shot"})
    trains_on_auxiliary: ClassVar[bool] = True
    config_class: ClassVar[type[AnomalyCLIPConfig]] = AnomalyCLIPConfig
    default_pretrained: ClassVar[str] = "openai"
    random_init_overrides: ClassVar[dict[str, Any]] = {
        "backbone": "ViT-B-16",
        "image_size": 160,
        "layers": (12,),
        "vv_last": 10,
        "epochs": 2,
    }
    paper: ClassVar[str] = "AnomalyCLIP: Object-agnostic Prompt Learning for Zero-shot Anomaly Detection (ICLR 2024)"

    config: AnomalyCLIPConfig
    model_: AnomalyCLIPModel | None = None
    history_: list[dict[str, float]] | None = None
    _text: torch.Tensor | None = None

    def setup(self) -> "AnomalyCLIP":
        """Build the frozen CLIP (loading its weights) and freshly initialised prompts; idempotent."""
        if self.model_ is None:
            cfg = self.config
            backbone = create_clip(cfg.backbone, self.pretrained_tag, image_size=cfg.image_size, device=self.device)
            self.model_ = AnomalyCLIPModel(backbone, cfg).to(self.device).eval()
        return self

    def fit(self, data: FitData) -> "AnomalyCLIP":
        """Train the prompts on the auxiliary set for ``config.epochs`` epochs (resuming from checkpoints)."""
        model = self.setup().model_
        self._text = None
        self.history_ = train(model, data, self.config, self.device, self.precision)
        self.fitted_ = True
        return self

    def predict(self, batch: Batch) -> Prediction:
        """Smoothed anomaly maps ``[B, S, S]`` (sum of the layer maps) and global anomaly probabilities ``[B]``."""
        self.check_fitted()
        cfg, model = self.config, self.model_
        with torch.no_grad():
            if self._text is None:
                self._text = model.text_features()
            images = batch.image.to(self.device, non_blocking=True)  # pinned by the loader on CUDA
            tower = tower_features(model.backbone, images, cfg.layers, cfg.vv_last, precision=self.precision)
            maps = sum(probs[:, 1:2] for probs in model.patch_maps(tower, self._text))
            score = model.image_logits(tower, self._text).softmax(dim=-1)[:, 1]
            summed = upsample(maps, cfg.image_size)[:, 0]
        return Prediction(pred_score=score.float().cpu(), anomaly_map=smooth(summed, cfg.sigma))

    def state_dict(self) -> dict[str, Any]:
        """The learned prompts (context vectors and deep prompts) as CPU tensors."""
        if self.model_ is None:
            raise MethodError(f"{self.name} has no trained state yet; call setup() and fit() first")
        return {k: v.detach().cpu().clone() for k, v in self.model_.prompts.state_dict().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the prompts from :meth:`state_dict`; the method then counts as fitted."""
        prompts = self.setup().model_.prompts
        check_state(prompts.state_dict(), state, self.name)
        prompts.load_state_dict(state)
        self._text = None
        self.fitted_ = True
