"""The ``promptad`` plugin: PromptAD, few-shot (k = 1, 2, 4) on ViT-B-16-plus-240 / LAION-400M epoch 32.

``fit(FitData("support", ...))`` builds the category's prompts, trains them on the k normal shots (only normal
images, as in the paper) and stores the shots' memory-layer tokens; ``predict`` fuses the text and memory scores.
Each fit starts from fresh context vectors drawn from the global torch RNG, which the runner seeds per cell.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ClassVar

from zsadbench.errors import ConfigError, MethodError
from zsadbench.lazy import deferred
from zsadbench.method import FitData, Method
from zsadbench.types import Batch, Prediction

from .config import PromptADConfig

torch = deferred("torch")
nn = deferred("torch.nn")
ClipBackbone = deferred("zsadbench.backbones", "ClipBackbone")
create_clip = deferred("zsadbench.backbones", "create_clip")
VisualFeatures = deferred(".features", "VisualFeatures", __package__)
check_layers = deferred(".features", "check_layers", __package__)
check_memory_tap = deferred(".features", "check_memory_tap", __package__)
extract = deferred(".features", "extract", __package__)
PromptADHead = deferred(".model", "PromptADHead", __package__)
fuse = deferred(".model", "fuse", __package__)
Phase = deferred(".training", "Phase", __package__)
Schedule = deferred(".training", "Schedule", __package__)
run_phases = deferred(".training", "run_phases", __package__)


class PromptAD(Method):
    """PromptAD; see :class:`~.config.PromptADConfig` for every hyper-parameter."""

    name: ClassVar[str] = "promptad"
    version: ClassVar[str] = "3"
    label: ClassVar[str] = "PromptAD"
    settings: ClassVar[frozenset[str]] = frozenset({"few-shot"})
    shots: ClassVar[tuple[int, ...]] = (1, 2, 4)
    config_class: ClassVar[type[PromptADConfig]] = PromptADConfig
    default_pretrained: ClassVar[str] = "laion400m_e32"
    random_init_overrides: ClassVar[dict[str, Any]] = {
        "backbone": "ViT-B-16",
        "image_size": 224,
        "memory_layers": (3, 8),
        "epochs_seg": 5,
        "epochs_cls": 5,
        "map_size": 224,
    }
    paper: ClassVar[str] = "PromptAD: Learning Prompts with only Normal Samples for Few-Shot Anomaly Detection (CVPR 2024)"

    config: PromptADConfig
    backbone_: ClipBackbone | None = None
    head_: nn.Module | None = None
    history_: list[dict[str, float]] | None = None

    # -- lifecycle --------------------------------------------------------------------------------
    def setup(self) -> "PromptAD":
        """Build the frozen backbone (loading its weights); idempotent."""
        if self.backbone_ is None:
            cfg = self.config
            backbone = create_clip(cfg.backbone, self.pretrained_tag, image_size=cfg.image_size, device=self.device)
            check_layers(backbone, cfg.memory_layers, f"{type(cfg).__name__}.memory_layers")
            check_memory_tap(backbone, cfg.memory_layers, cfg.memory_tap, f"{type(cfg).__name__}.memory_layers")
            self.backbone_ = backbone
        return self

    def fit(self, data: FitData) -> "PromptAD":
        """Train the prompts of ``data.category`` on its k support images (``kind="support"``)."""
        self.setup()
        images, originals = self._support(data)
        shots = self._features(images, data)
        self.head_ = self._build_head(data.dataset, data.category or "object", originals)
        self.head_.remember(shots)
        self.history_ = run_phases(self._phases(shots), self._trained_modules(), self._schedule(), data, self.name)
        self.head_.freeze()
        self.fitted_ = True
        return self

    def predict(self, batch: Batch) -> Prediction:
        """Image scores ``[B]`` and smoothed maps ``[B, map_size, map_size]`` (float32, CPU)."""
        self.check_fitted()
        self._check_batch(batch)
        query = self._features(self._query_images(batch), None)
        scores = self.head_.scores(query)
        cfg = self.config
        image, maps = fuse(scores, self.backbone_.grid_size, cfg.map_size, cfg.sigma, cfg.image_score_size)
        return Prediction(pred_score=image, anomaly_map=maps, stats=scores.stats)

    def _query_images(self, batch: Batch) -> torch.Tensor:
        """The batch's images in the channel order ``test_colour_order`` asks for (``bgr``: the official test loop's)."""
        return batch.image.flip(1) if self.config.test_colour_order == "bgr" else batch.image

    # -- pieces subclasses change ------------------------------------------------------------------
    def _build_head(self, dataset: str, category: str, originals: list[Callable[[], torch.Tensor]],
                    state: dict | None = None) -> nn.Module:
        """The category's learnable head; ``originals`` load the shots at full resolution, ``state`` is set when
        restoring from :meth:`state_dict` (then there are no shots)."""
        return PromptADHead(self.backbone_, self.config, dataset, category).to(self.device)

    def _phases(self, shots: VisualFeatures) -> list[Phase]:
        head, cfg = self.head_, self.config
        phases = [Phase("seg", cfg.epochs_seg, list(head.seg.parameters()), lambda: head.seg_loss(shots))]
        if head.cls is not None:
            phases.append(Phase("cls", cfg.epochs_cls, list(head.cls.parameters()), lambda: head.cls_loss(shots)))
        return phases

    def _trained_modules(self) -> dict[str, nn.Module]:
        return {"head": self.head_}

    def _schedule(self) -> Schedule:
        cfg = self.config
        return Schedule(lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, eta_min=cfg.eta_min)

    # -- helpers ----------------------------------------------------------------------------------
    def _support(self, data: FitData) -> tuple[torch.Tensor, list[Callable[[], torch.Tensor]]]:
        """The k shots at the input size, and loaders of each at its file's resolution (the input-size image when
        the batch cannot load originals)."""
        wanted = data.shots or data.num_images
        batches = list(data.batches(batch_size=max(1, wanted), shuffle=False, seed=data.seed))
        images = torch.cat([b.image for b in batches])[: wanted or None] if batches else torch.empty(0)
        if not len(images):
            raise MethodError(f"{self.name} fit for {data.dataset}/{data.category}: the support set has no images")
        self._check_size(images, "support")
        originals = [
            functools.partial(b.original, i) if b.load_original is not None else functools.partial(b.image.__getitem__, i)
            for b in batches for i in range(len(b))
        ][: len(images)]
        return images, originals

    def _features(self, images: torch.Tensor, data: FitData | None) -> VisualFeatures:
        cache = data.features if data is not None else None
        cfg = self.config
        return extract(self.backbone_, images, cfg.memory_layers, memory_tap=cfg.memory_tap, cache=cache,
                       precision=self.precision)

    def _check_size(self, images: torch.Tensor, what: str) -> None:
        size = self.config.image_size
        if tuple(images.shape[-2:]) != (size, size):
            raise ConfigError(
                f"{self.name}: {what} images are {tuple(images.shape[-2:])} px but image_size is {size}; "
                f"resize them to {size}x{size} or set image_size={images.shape[-1]}"
            )

    def _check_batch(self, batch: Batch) -> None:
        self._check_size(batch.image, "batch")
        fitted = self.head_.category
        if batch.category not in (fitted, "object"):
            raise MethodError(f"{self.name} was fitted on category {fitted!r} but got a batch of {batch.category!r}; "
                              "fit it on that category's support images first")

    # -- state ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The trained prompts, the visual memory and the category they belong to (CPU tensors)."""
        if self.head_ is None:
            raise MethodError(f"{self.name} has no trained state yet; call setup() and fit() first")
        return {
            "dataset": self.head_.dataset,
            "category": self.head_.category,
            "head": {k: v.detach().cpu().clone() for k, v in self.head_.state_dict().items()},
            "memory": [m.cpu() for m in self.head_.memory],
            **self._extra_state(),
        }

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (rebuilding the category's prompts first)."""
        self.setup()
        head = self._build_head(state["dataset"], state["category"], [], state)
        try:
            head.load_state_dict(state["head"])
        except RuntimeError as exc:
            raise MethodError(f"{self.name} state does not fit this config ({str(exc).splitlines()[0]}); "
                              "load it with the config it was trained with") from exc
        head.memory = [m.to(self.device) for m in state["memory"]]
        head.freeze()
        self.head_ = head
        self.fitted_ = True
