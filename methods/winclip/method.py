"""The ``winclip`` plugin: zero-shot WinCLIP and few-shot WinCLIP+ (Jeong et al., CVPR 2023).

Training-free. Zero-shot (``fit(FitData("none"))``) scores images and windows against the prompt
ensemble of the batch's category; few-shot (``fit(FitData("support", ...))``) also remembers the k normal
support images and adds the visual association maps, as anomalib's re-implementation does.
"""
from __future__ import annotations

from typing import Any, ClassVar

from zsadbench.errors import ConfigError, MethodError
from zsadbench.lazy import deferred
from zsadbench.method import FitData, Method
from zsadbench.types import Batch, Prediction

from .config import WinCLIPConfig

torch = deferred("torch")
autocast = deferred("zsadbench.backbones", "autocast")
create_clip = deferred("zsadbench.backbones", "create_clip")
WinCLIPModel = deferred(".model", "WinCLIPModel", __package__)
prompt_name = deferred(".prompts", "prompt_name", __package__)


class WinCLIP(Method):
    """WinCLIP / WinCLIP+ on an open_clip ViT (``ViT-B-16-plus-240``, LAION-400M epoch 31 by default)."""

    name: ClassVar[str] = "winclip"
    version: ClassVar[str] = "1"
    settings: ClassVar[frozenset[str]] = frozenset({"zero-shot", "few-shot"})
    shots: ClassVar[tuple[int, ...]] = (1, 2, 4)
    trains_on_auxiliary: ClassVar[bool] = False
    config_class: ClassVar[type[WinCLIPConfig]] = WinCLIPConfig
    default_pretrained: ClassVar[str] = "laion400m_e31"
    # a random tower measures nothing at paper size; ViT-B/16 at 160 px (10 x 10 patches) keeps both window scales
    random_init_overrides: ClassVar[dict[str, Any]] = {"backbone": "ViT-B-16", "image_size": 160}
    paper: ClassVar[str] = "WinCLIP: Zero-/Few-Shot Anomaly Classification and Segmentation (CVPR 2023)"

    config: WinCLIPConfig
    model_: WinCLIPModel | None = None

    def setup(self) -> "WinCLIP":
        """Build the backbone (loading its weights) and the window layout; idempotent."""
        if self.model_ is not None:
            return self
        cfg = self.config
        backbone = create_clip(cfg.backbone, self.pretrained_tag, image_size=cfg.image_size, device=self.device)
        grid = min(backbone.grid_size)
        too_big = [s for s in cfg.scales if s > grid]
        if too_big:
            raise ConfigError(
                f"WinCLIPConfig.scales {list(cfg.scales)}: windows of {too_big} patches do not fit the "
                f"{grid}x{grid} patch grid of {cfg.backbone} at image_size={cfg.image_size}; use sizes <= {grid}"
            )
        self.model_ = WinCLIPModel(backbone, cfg.scales, cfg.window_stride, cfg.temperature).eval()
        return self

    def fit(self, data: FitData) -> "WinCLIP":
        """Zero-shot (``kind="none"``): nothing to learn. Few-shot (``"support"``): remember the k images."""
        model = self.setup().model_
        if data.kind == "support":
            model.remember(self._support_images(data))
        else:
            model.forget()
        self.fitted_ = True
        return self

    def _support_images(self, data: FitData) -> torch.Tensor:
        wanted = data.shots or data.num_images
        images: list[torch.Tensor] = []
        for batch in data.batches(batch_size=max(1, wanted), shuffle=False, seed=data.seed):
            self._check_size(batch.image, "support")
            images.extend(batch.image)
            if wanted and len(images) >= wanted:
                break
        if not images:
            raise MethodError(f"winclip few-shot fit for {data.dataset}/{data.category}: the support set has no images")
        return torch.stack(images[:wanted] if wanted else images)

    def _check_size(self, image: torch.Tensor, what: str) -> None:
        size = self.config.image_size
        if tuple(image.shape[-2:]) != (size, size):
            raise ConfigError(
                f"winclip: {what} images are {tuple(image.shape[-2:])} px but WinCLIPConfig.image_size is {size}; "
                f"resize them to {size}x{size} or set image_size={image.shape[-1]}"
            )

    def predict(self, batch: Batch) -> Prediction:
        """Scores ``[B]`` and maps ``[B,S,S]`` at the input size (float32, CPU)."""
        self.check_fitted()
        self._check_size(batch.image, "batch")
        name = prompt_name(batch.category, self.config.object_agnostic)
        with autocast(self.device, self.precision):
            scores, maps = self.model_(batch.image, name)
        return Prediction(pred_score=scores.float().cpu(), anomaly_map=maps.float().cpu())

    # -- state ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The WinCLIP+ memory bank (reference patch tokens and window embeddings); empty when zero-shot."""
        model = self.model_
        if model is None or model.reference_patches is None:
            return {}
        return {
            "scales": list(self.config.scales),
            "reference_patches": model.reference_patches.cpu(),
            "reference_windows": [w.cpu() for w in model.reference_windows],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a memory bank from :meth:`state_dict` (an empty dict means zero-shot)."""
        model = self.setup().model_
        if not state:
            model.forget()
        else:
            if list(state.get("scales", [])) != list(self.config.scales):
                raise MethodError(
                    f"winclip state was saved with scales {state.get('scales')} but the config has "
                    f"{list(self.config.scales)}; use the config it was saved with"
                )
            patches = state["reference_patches"]
            windows = list(state["reference_windows"])
            expected = [(model.num_patches, model.backbone.width)] + [(len(idx),) for idx in model.windows]
            found = [tuple(patches.shape[1:])] + [tuple(w.shape[1:2]) for w in windows]
            if found != expected:
                raise MethodError(
                    f"winclip state holds memory of shapes {found}, this config and backbone need {expected}; "
                    "load it with the config and backbone it was saved with"
                )
            model.reference_patches = patches.to(model.device)
            model.reference_windows = [w.to(model.device) for w in windows]
        self.fitted_ = True
