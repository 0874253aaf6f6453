"""The ``patchcore`` plugin: few-shot PatchCore (Roth et al., "Towards Total Recall in Industrial Anomaly
Detection", CVPR 2022) on a frozen WideResNet-50-2.

Training-free: ``fit(FitData("support", ...))`` fills the memory bank with the coreset of the k support images'
patch features (the coreset's random choices come from a generator seeded with ``FitData.seed``).
"""
from __future__ import annotations

from typing import Any, ClassVar

from zsadbench.errors import MethodError
from zsadbench.lazy import deferred
from zsadbench.method import FitData

from .base import CnnBaseline
from .config import PatchCoreConfig

torch = deferred("torch")
create_cnn = deferred("zsadbench.backbones.cnn", "create_cnn")
PatchCoreModel = deferred(".model", "PatchCoreModel", __package__)
support_images = deferred(".common", "support_images", __package__)


class PatchCore(CnnBaseline):
    """PatchCore: a coreset memory bank of locally aware CNN patch features, nearest-neighbour scores."""

    name: ClassVar[str] = "patchcore"
    label: ClassVar[str] = "PatchCore"
    version: ClassVar[str] = "1"
    config_class: ClassVar[type[PatchCoreConfig]] = PatchCoreConfig
    # a random WideResNet-50-2 measures nothing; ResNet-18 at the synthetic set's own 128 px runs in seconds
    random_init_overrides: ClassVar[dict[str, Any]] = {"backbone": "resnet18", "image_size": 128}
    paper: ClassVar[str] = "Towards Total Recall in Industrial Anomaly Detection (CVPR 2022)"

    config: PatchCoreConfig
    model_: PatchCoreModel | None = None

    def setup(self) -> "PatchCore":
        """Build the backbone (loading its weights); idempotent."""
        if self.model_ is not None:
            return self
        cfg = self.config
        backbone = create_cnn(cfg.backbone, cfg.layers, self.pretrained_tag, device=self.device)
        self.model_ = PatchCoreModel(backbone, cfg.patch_size, cfg.layer_dim, cfg.feature_dim, cfg.num_neighbors,
                                     cfg.upsample, cfg.blur_sigma).eval()
        return self

    def fit(self, data: FitData) -> "PatchCore":
        """Fill the memory bank from the k support images (``kind="support"``)."""
        model = self.setup().model_
        cfg = self.config
        generator = torch.Generator().manual_seed(int(data.seed))
        model.fit(support_images(data, self.name, cfg.image_size), cfg.coreset_ratio, cfg.projection_eps, generator,
                  self.precision)
        self.fitted_ = True
        return self


    # -- state ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The memory bank ``[M, D]`` (empty before fit)."""
        if self.model_ is None or self.model_.memory_bank is None:
            return {}
        return {"memory_bank": self.model_.memory_bank.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a memory bank from :meth:`state_dict`."""
        model = self.setup().model_
        bank = state.get("memory_bank")
        if bank is None or bank.ndim != 2 or bank.shape[1] != model.embedding_dim or not len(bank):
            found = None if bank is None else tuple(bank.shape)
            raise MethodError(
                f"patchcore state holds a memory bank of shape {found}; this config needs [M, {model.embedding_dim}] "
                "with M >= 1; load it with the backbone, layers, layer_dim and feature_dim it was saved with"
            )
        model.memory_bank = bank.to(model.backbone.device, torch.float32)
        self.fitted_ = True
