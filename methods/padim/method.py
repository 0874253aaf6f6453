"""The ``padim`` plugin: few-shot PaDiM (Defard et al., "PaDiM: a Patch Distribution Modeling Framework for
Anomaly Detection and Localization", ICPR workshops 2020) on a frozen WideResNet-50-2.

Training-free: ``fit(FitData("support", ...))`` fits one Gaussian per feature-map position to the k support
images.
"""
from __future__ import annotations

from typing import Any, ClassVar

from zsadbench.errors import ConfigError, MethodError
from zsadbench.lazy import deferred
from zsadbench.methods.patchcore import CnnBaseline
from zsadbench.method import FitData

from .config import PaDiMConfig

torch = deferred("torch")
create_cnn = deferred("zsadbench.backbones.cnn", "create_cnn")
support_images = deferred("zsadbench.methods.patchcore", "support_images")
PaDiMModel = deferred(".model", "PaDiMModel", __package__)
Gaussians = deferred(".model", "Gaussians", __package__)
channel_indices = deferred(".model", "channel_indices", __package__)

_STATE_KEYS = ("channels", "mean", "basis", "weights", "eps")


class PaDiM(CnnBaseline):
    """PaDiM: a Gaussian per position of randomly reduced multi-layer CNN features, Mahalanobis scores."""

    name: ClassVar[str] = "padim"
    label: ClassVar[str] = "PaDiM"
    version: ClassVar[str] = "1"
    config_class: ClassVar[type[PaDiMConfig]] = PaDiMConfig
    # a random WideResNet-50-2 measures nothing; ResNet-18 with the paper's 100 channels for it, at 128 px
    random_init_overrides: ClassVar[dict[str, Any]] = {"backbone": "resnet18", "image_size": 128, "n_features": 100}
    paper: ClassVar[str] = ("PaDiM: a Patch Distribution Modeling Framework for Anomaly Detection and Localization "
                            "(2020)")

    config: PaDiMConfig
    model_: PaDiMModel | None = None

    def setup(self) -> "PaDiM":
        """Build the backbone (loading its weights) and draw the kept channels; idempotent."""
        if self.model_ is not None:
            return self
        cfg = self.config
        backbone = create_cnn(cfg.backbone, cfg.layers, self.pretrained_tag, device=self.device)
        total = sum(backbone.channels)
        if cfg.n_features > total:
            raise ConfigError(
                f"PaDiMConfig.n_features={cfg.n_features} exceeds the {total} channels of {cfg.backbone} "
                f"{', '.join(cfg.layers)}; use n_features <= {total} (the paper: 100 for resnet18, 550 for "
                "wide_resnet50_2)"
            )
        channels = channel_indices(total, cfg.n_features, cfg.channel_seed)
        self.model_ = PaDiMModel(backbone, channels, cfg.covariance_eps, cfg.blur_sigma).eval()
        return self

    def fit(self, data: FitData) -> "PaDiM":
        """Fit the per-position Gaussians to the k support images (``kind="support"``)."""
        model = self.setup().model_
        model.fit(support_images(data, self.name, self.config.image_size), self.precision)
        self.fitted_ = True
        return self


    # -- state ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The kept channels and the Gaussians (mean, directions, weights, eps; float64); empty before fit."""
        if self.model_ is None or self.model_.gaussians is None:
            return {}
        g = self.model_.gaussians
        return {"channels": self.model_.channels.cpu(), "mean": g.mean.cpu(), "basis": g.basis.cpu(),
                "weights": g.weights.cpu(), "eps": torch.tensor(g.eps, dtype=torch.float64)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the Gaussians from :meth:`state_dict`."""
        model = self.setup().model_
        missing = [key for key in _STATE_KEYS if key not in state]
        if missing:
            raise MethodError(f"padim state lacks {', '.join(missing)}; pass what PaDiM.state_dict() returned")
        if not torch.equal(state["channels"].cpu(), model.channels.cpu()):
            raise MethodError(
                "padim state was fitted on other feature channels than this config keeps; load it with the "
                "backbone, layers, n_features and channel_seed it was saved with"
            )
        device = model.backbone.device
        model.gaussians = Gaussians(state["mean"].to(device), state["basis"].to(device),
                                    state["weights"].to(device), float(state["eps"]))
        self.fitted_ = True
