"""The ``faprompt`` plugin: FAPrompt (Zhu et al., ICCV 2025), fine-grained abnormality prompts on AnomalyCLIP.

Zero-shot with training on an auxiliary set: ``fit`` learns the compound abnormality prompts and the
abnormality prior network on the frozen CLIP; ``predict`` returns the mean of the prior-free and the
prior-conditioned anomaly maps (upsampled to ``image_size``, Gaussian σ = 10) and the global probability
mixed with the maps' maxima as the image score.
"""
from __future__ import annotations

from typing import Any, ClassVar

from zsadbench.errors import MethodError
from zsadbench.lazy import deferred
from zsadbench.method import FitData, Method
from zsadbench.types import Batch, Prediction

from .config import FAPromptConfig

torch = deferred("torch")
create_clip = deferred("zsadbench.backbones", "create_clip")
smooth = deferred("zsadbench.maps", "smooth")
check_state = deferred("zsadbench.training", "check_state")
tower_features = deferred("zsadbench.methods.anomalyclip", "tower_features")
FAPromptModel = deferred(".model", "FAPromptModel", __package__)
anomaly_map = deferred(".model", "anomaly_map", __package__)
image_score = deferred(".model", "image_score", __package__)
train = deferred(".training", "train", __package__)


class FAPrompt(Method):
    """FAPrompt on a frozen CLIP; see :class:`~.config.FAPromptConfig` for every hyper-parameter."""

    name: ClassVar[str] = "faprompt"
    version: ClassVar[str] = "1"
    label: ClassVar[str] = "FAPrompt"
    settings: ClassVar[frozenset[str]] = frozenset({"zero-shot"})
    trains_on_auxiliary: ClassVar[bool] = True
    config_class: ClassVar[type[FAPromptConfig]] = FAPromptConfig
    default_pretrained: ClassVar[str] = "openai"
    random_init_overrides: ClassVar[dict[str, Any]] = {
        "backbone": "ViT-B-16",
        "image_size": 160,
        "layer": 12,
        "vv_last": 10,
        "abnormal_prompts": 4,
        "epochs": 2,
    }
    paper: ClassVar[str] = "Fine-grained Abnormality Prompt Learning for Zero-shot Anomaly Detection (ICCV 2025)"

    config: FAPromptConfig
    model_: FAPromptModel | None = None
    history_: list[dict[str, float]] | None = None
    _free: tuple[torch.Tensor, torch.Tensor] | None = None

    def setup(self) -> "FAPrompt":
        """Build the frozen CLIP (loading its weights), fresh prompts and prior network; idempotent."""
        if self.model_ is None:
            cfg = self.config
            backbone = create_clip(cfg.backbone, self.pretrained_tag, image_size=cfg.image_size, device=self.device)
            self.model_ = FAPromptModel(backbone, cfg).to(self.device).eval()
        return self

    def fit(self, data: FitData) -> "FAPrompt":
        """Train the prompts and the prior network on the auxiliary set for ``config.epochs`` epochs (resuming
        from checkpoints)."""
        model = self.setup().model_
        self._free = None
        self.history_ = train(model, data, self.config, self.device, self.precision)
        self.fitted_ = True
        return self

    def predict(self, batch: Batch) -> Prediction:
        """Smoothed anomaly maps ``[B, S, S]`` and image scores ``[B]``."""
        self.check_fitted()
        cfg, model = self.config, self.model_
        with torch.no_grad():
            if self._free is None:
                self._free = model.free_text()
            images = batch.image.to(self.device, non_blocking=True)  # pinned by the loader on CUDA
            tower = tower_features(model.backbone, images, [cfg.layer], cfg.vv_last, precision=self.precision)
            out = model(tower, self._free)
            score = image_score(out, cfg)
            maps = anomaly_map(out, cfg.image_size)
        return Prediction(pred_score=score.float().cpu(), anomaly_map=smooth(maps, cfg.sigma))

    def state_dict(self) -> dict[str, Any]:
        """The learned prompts (normal and abnormal tokens, deep prompts) and prior network as CPU tensors."""
        if self.model_ is None:
            raise MethodError(f"{self.name} has no trained state yet; call setup() and fit() first")
        return {k: v.detach().cpu().clone() for k, v in self.model_.learned.state_dict().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the prompts and prior network from :meth:`state_dict`; the method then counts as fitted."""
        learned = self.setup().model_.learned
        check_state(learned.state_dict(), state, self.name)
        learned.load_state_dict(state)
        self._free = None
        self.fitted_ = True
