"""The ``inctrl`` plugin: InCTRL (Zhu & Pang, CVPR 2024), few-shot after training on an auxiliary set.

``fit(FitData("auxiliary", ...))`` trains the adapter and score heads (one set per entry of ``train_shots``) on
episodes of the auxiliary set; the runner caches that state and, for each few-shot cell, restores it and calls
``fit(FitData("support", ...))`` with the cell's k normal images, which only become the prompts (nothing is
trained). ``predict`` returns InCTRL's image score and its patch residual map on the patch grid.
"""
from __future__ import annotations

from typing import Any, ClassVar

from zsadbench.errors import ConfigError, MethodError
from zsadbench.lazy import deferred
from zsadbench.method import FitData, Method
from zsadbench.types import Batch, Prediction

from .config import InCTRLConfig

torch = deferred("torch")
create_clip = deferred("zsadbench.backbones", "create_clip")
check_state = deferred("zsadbench.training", "check_state")
InCTRLModel = deferred(".model", "InCTRLModel", __package__)
Prompts = deferred(".model", "Prompts", __package__)
train = deferred(".training", "train", __package__)


class InCTRL(Method):
    """InCTRL on a frozen CLIP; see :class:`~.config.InCTRLConfig` for every hyper-parameter."""

    name: ClassVar[str] = "inctrl"
    version: ClassVar[str] = "1"
    label: ClassVar[str] = "InCTRL"
    settings: ClassVar[frozenset[str]] = frozenset({"few-shot"})
    shots: ClassVar[tuple[int, ...]] = (1, 2, 4)
    trains_on_auxiliary: ClassVar[bool] = True
    config_class: ClassVar[type[InCTRLConfig]] = InCTRLConfig
    default_pretrained: ClassVar[str] = "laion400m_e32"
    random_init_overrides: ClassVar[dict[str, Any]] = {
        "backbone": "ViT-B-16",
        "image_size": 128,
        "epochs": 1,
        "steps_per_epoch": 4,
        "batch_size": 8,
    }
    paper: ClassVar[str] = ("Toward Generalist Anomaly Detection via In-context Residual Learning with Few-shot "
                            "Sample Prompts (CVPR 2024)")

    config: InCTRLConfig
    model_: InCTRLModel | None = None
    prompts_: Prompts | None = None
    prompt_shots_: int = 0
    history_: list[dict[str, float]] | None = None

    def setup(self) -> "InCTRL":
        """Build the frozen CLIP (loading its weights) and freshly initialised heads; idempotent."""
        if self.model_ is None:
            cfg = self.config
            backbone = create_clip(cfg.backbone, self.pretrained_tag, image_size=cfg.image_size, device=self.device)
            self.model_ = InCTRLModel(backbone, cfg).to(self.device).eval()
        return self

    def fit(self, data: FitData) -> "InCTRL":
        """``auxiliary``: train the heads; ``support``: take the k normal images as the prompts of the heads
        trained with k (the heads as they stand: trained, restored, or freshly initialised)."""
        model = self.setup().model_
        if data.kind == "auxiliary":
            self.history_ = train(model, data, self.config, self.precision)
            self.prompts_, self.prompt_shots_ = None, 0
        elif data.kind == "support":
            self._take_prompts(data)
        else:
            raise MethodError(f"{self.name} fits on an auxiliary set, then on k support images; got kind {data.kind!r}")
        self.fitted_ = True
        return self

    def _take_prompts(self, data: FitData) -> None:
        images = torch.cat([b.image for b in data.batches(max(1, data.shots or data.num_images), shuffle=False,
                                                          seed=data.seed)])
        if not len(images):
            raise MethodError(f"{self.name} fit for {data.dataset}/{data.category}: the support set has no images")
        self._check_size(images, "support")
        shots = len(images)
        if str(shots) not in self.model_.heads:
            raise ConfigError(
                f"{type(self.config).__name__}.train_shots={self.config.train_shots} has no heads trained with "
                f"{shots} prompts; add {shots} to it (e.g. --set train_shots="
                f"{','.join(map(str, sorted({*self.config.train_shots, shots})))}) or run with --shots among "
                f"{','.join(map(str, self.config.train_shots))}"
            )
        tower = self.model_.tower(images, cache=data.features, precision=self.precision)
        self.prompts_, self.prompt_shots_ = Prompts.of(tower), shots

    def predict(self, batch: Batch) -> Prediction:
        """Final scores ``[B]`` and patch residual maps ``[B, h, w]`` on the patch grid (float32, CPU)."""
        self.check_fitted()
        if self.prompts_ is None:
            raise MethodError(f"{self.name} scores queries against k normal prompt images; fit it with "
                              "FitData('support', ...) on them before predict")
        self._check_size(batch.image, "batch")
        model = self.model_
        with torch.no_grad():
            query = model.tower(batch.image, precision=self.precision)
            text = model.text(batch.categories, self.precision)
            scores = model.scores(self.prompt_shots_, query, self.prompts_, text)
        grid = model.backbone.grid_size
        return Prediction(pred_score=scores.final.float().cpu(),
                          anomaly_map=scores.residual_map.reshape(-1, *grid).float().cpu())

    def _check_size(self, images: torch.Tensor, what: str) -> None:
        size = self.config.image_size
        if tuple(images.shape[-2:]) != (size, size):
            raise ConfigError(f"{self.name}: {what} images are {tuple(images.shape[-2:])} px but image_size is {size}; "
                              f"resize them to {size}x{size} or set image_size={images.shape[-1]}")

    def state_dict(self) -> dict[str, Any]:
        """The adapters and score heads (with their batch-norm statistics) as CPU tensors and, after a support fit,
        the prompt images' features (``prompt.*``)."""
        if self.model_ is None:
            raise MethodError(f"{self.name} has no trained state yet; call setup() and fit() first")
        state = {k: v.detach().cpu().clone() for k, v in self.model_.heads.state_dict().items()}
        if self.prompts_ is not None:
            state.update({f"prompt.patches.{i}": p.detach().cpu().clone() for i, p in enumerate(self.prompts_.patches)})
            state["prompt.tokens"] = self.prompts_.tokens.detach().cpu().clone()
            state["prompt.shots"] = torch.tensor(self.prompt_shots_)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output; without prompts in it, they come with the next support fit."""
        heads = self.setup().model_.heads
        own = {k: v for k, v in state.items() if not k.startswith("prompt.")}
        check_state(heads.state_dict(), own, self.name)
        heads.load_state_dict(own)
        self.prompts_, self.prompt_shots_ = None, 0
        if "prompt.tokens" in state:
            device = self.model_.backbone.device
            patches = [state[f"prompt.patches.{i}"].to(device) for i in range(len(self.config.layers))]
            self.prompts_ = Prompts(patches, state["prompt.tokens"].to(device))
            self.prompt_shots_ = int(state["prompt.shots"])
        self.fitted_ = True
