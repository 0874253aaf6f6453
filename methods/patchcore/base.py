"""The plugin class the CNN memory-bank baselines share: few-shot on a frozen timm CNN whose model, built by
``setup``, maps a batch to ``(scores [B], maps [B, S, S])``."""
from __future__ import annotations

from typing import Any, ClassVar

from zsadbench.lazy import deferred
from zsadbench.method import Method
from zsadbench.types import Batch, Prediction

check_image_size = deferred(".common", "check_image_size", __package__)


class CnnBaseline(Method):
    """Few-shot k = 1, 2, 4 with the torchvision ImageNet weights by default; subclasses build ``model_`` in
    ``setup`` (its ``backbone`` a :class:`~zsadbench.backbones.cnn.CnnBackbone`) and fill it in ``fit``."""

    settings: ClassVar[frozenset[str]] = frozenset({"few-shot"})
    shots: ClassVar[tuple[int, ...]] = (1, 2, 4)
    default_pretrained: ClassVar[str] = "tv_in1k"
    model_: Any = None

    def predict(self, batch: Batch) -> Prediction:
        """Scores ``[B]`` and maps ``[B,S,S]`` at the input size (float32, CPU)."""
        self.check_fitted()
        check_image_size(self.name, batch.image, self.config.image_size, "batch")
        scores, maps = self.model_(batch.image, self.precision)
        return Prediction(pred_score=scores.float().cpu(), anomaly_map=maps.float().cpu())
