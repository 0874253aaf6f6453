"""The ``spade`` plugin: few-shot SPADE (Cohen and Hoshen, "Sub-Image Anomaly Detection with Deep Pyramid
Correspondences", 2020) on a frozen WideResNet-50-2.

Training-free: ``fit(FitData("support", ...))`` keeps the k support images' pooled features and feature maps.
"""
from __future__ import annotations

from typing import Any, ClassVar

from zsadbench.errors import MethodError
from zsadbench.lazy import deferred
from zsadbench.methods.patchcore import CnnBaseline
from zsadbench.method import FitData

from .config import SPADEConfig

create_cnn = deferred("zsadbench.backbones.cnn", "create_cnn")
support_images = deferred("zsadbench.methods.patchcore", "support_images")
SPADEModel = deferred(".model", "SPADEModel", __package__)
Gallery = deferred(".model", "Gallery", __package__)


class SPADE(CnnBaseline):
    """SPADE: K nearest support images by pooled features, then per-position nearest features in their maps."""

    name: ClassVar[str] = "spade"
    label: ClassVar[str] = "SPADE"
    version: ClassVar[str] = "1"
    config_class: ClassVar[type[SPADEConfig]] = SPADEConfig
    # a random WideResNet-50-2 measures nothing; ResNet-18 at the synthetic set's own 128 px runs in seconds
    random_init_overrides: ClassVar[dict[str, Any]] = {"backbone": "resnet18", "image_size": 128}
    paper: ClassVar[str] = "Sub-Image Anomaly Detection with Deep Pyramid Correspondences (2020)"

    config: SPADEConfig
    model_: SPADEModel | None = None

    def setup(self) -> "SPADE":
        """Build the backbone (loading its weights); idempotent."""
        if self.model_ is not None:
            return self
        cfg = self.config
        backbone = create_cnn(cfg.backbone, (*cfg.layers, cfg.global_layer), self.pretrained_tag, device=self.device)
        self.model_ = SPADEModel(backbone, cfg.top_k, cfg.pixel_k, cfg.blur_sigma).eval()
        return self

    def fit(self, data: FitData) -> "SPADE":
        """Keep the features of the k support images (``kind="support"``)."""
        model = self.setup().model_
        model.fit(support_images(data, self.name, self.config.image_size), self.precision)
        self.fitted_ = True
        return self


    # -- state ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The support images' pooled features ``[N, C]`` and pixel-layer maps; empty before fit."""
        if self.model_ is None or self.model_.gallery is None:
            return {}
        gallery = self.model_.gallery
        return {"pooled": gallery.pooled.cpu(), "maps": [m.cpu() for m in gallery.maps]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the support features from :meth:`state_dict`."""
        model = self.setup().model_
        channels = model.backbone.channels
        pooled, maps = state.get("pooled"), list(state.get("maps", []))
        found = None if pooled is None else [pooled.shape[1], *(m.shape[1] for m in maps)]
        if found != [channels[-1], *channels[:-1]] or any(len(m) != len(pooled) for m in maps):
            raise MethodError(
                f"spade state holds features of {found} channels, this config needs {[channels[-1], *channels[:-1]]} "
                "(pooled, then each pixel layer) for every support image; load it with the backbone, layers and "
                "global_layer it was saved with"
            )
        model.gallery = Gallery(pooled, maps).to(model.backbone.device)
        self.fitted_ = True
