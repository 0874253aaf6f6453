"""The ``vand`` plugin: VAND / APRIL-GAN (Chen et al., 2023), zero-shot and few-shot.

Both settings train on an auxiliary set first (``fit`` with ``kind="auxiliary"``: the linear layers that map
four blocks' patch tokens into CLIP's joint space). Zero-shot ``predict`` returns the summed per-layer anomaly
probability maps and the image feature's anomaly probability. Few-shot cells restore that trained state and
``fit`` again with ``kind="support"``: the k support images' raw patch tokens become a memory whose distance
maps are added, and the image score takes in the map's maximum.
"""
from __future__ import annotations

from typing import Any, ClassVar

from zsadbench.errors import MethodError
from zsadbench.lazy import deferred
from zsadbench.method import FitData, Method
from zsadbench.types import Batch, Prediction

from .config import VANDConfig

torch = deferred("torch")
check_state = deferred("zsadbench.training", "check_state")
smooth = deferred("zsadbench.maps", "smooth")
VANDModel = deferred(".model", "VANDModel", __package__)
build_tower = deferred(".tower", "build_tower", __package__)
read_tower = deferred(".tower", "read_tower", __package__)
train = deferred(".training", "train", __package__)

ADAPTERS = "adapters."
MEMORY = "memory."


class VAND(Method):
    """VAND / APRIL-GAN on a frozen CLIP; see :class:`~.config.VANDConfig` for every hyper-parameter."""

    name: ClassVar[str] = "vand"
    version: ClassVar[str] = "1"
    label: ClassVar[str] = "VAND"
    settings: ClassVar[frozenset[str]] = frozenset({"zero-shot", "few-shot"})
    shots: ClassVar[tuple[int, ...]] = (1, 2, 4)
    trains_on_auxiliary: ClassVar[bool] = True
    config_class: ClassVar[type[VANDConfig]] = VANDConfig
    default_pretrained: ClassVar[str] = "openai"
    random_init_overrides: ClassVar[dict[str, Any]] = {
        "backbone": "ViT-B-16",
        "image_size": 160,
        "layers": (3, 6, 9, 12),
        "memory_layers": (3, 6, 9, 12),
        "epochs": 1,
    }
    paper: ClassVar[str] = ("A Zero-/Few-Shot Anomaly Classification and Segmentation Method for CVPR 2023 VAND "
                            "Workshop Challenge Tracks 1&2 (Chen, Han and Zhang, arXiv 2305.17382)")

    config: VANDConfig
    model_: VANDModel | None = None
    history_: list[dict[str, float]] | None = None
    memory_: dict[int, torch.Tensor] | None = None

    def setup(self) -> "VAND":
        """Build the frozen CLIP (loading its weights) and freshly initialised linear layers; idempotent."""
        if self.model_ is None:
            backbone = build_tower(self.config, self.pretrained_tag, self.device)
            self.model_ = VANDModel(backbone, self.config).to(self.device).eval()
        return self

    def fit(self, data: FitData) -> "VAND":
        """``auxiliary``: train the linear layers (resuming from checkpoints) and drop any memory. ``support``:
        remember the support images' raw patch tokens of ``config.memory_layers``; the linear layers stay."""
        model = self.setup().model_
        if data.kind == "support":
            self.memory_ = self._memory(data)
        else:
            self.history_ = train(model, data, self.config, self.device, self.precision)
            self.memory_ = None
        self.fitted_ = True
        return self

    def _memory(self, data: FitData) -> dict[int, torch.Tensor]:
        cfg, backbone = self.config, self.model_.backbone
        rows: dict[int, list[torch.Tensor]] = {layer: [] for layer in cfg.memory_layers}
        for batch in data.batches(cfg.batch_size):
            patches, _ = read_tower(backbone, batch.image.to(self.device), cfg.memory_layers, cache=data.features,
                                    precision=self.precision)
            for layer in cfg.memory_layers:
                rows[layer].append(patches[layer].reshape(-1, patches[layer].shape[-1]))
        if not rows[cfg.memory_layers[0]]:
            raise MethodError(f"vand few-shot fit for {data.dataset}/{data.category}: the support set has no images")
        return {layer: torch.cat(found) for layer, found in rows.items()}

    def predict(self, batch: Batch) -> Prediction:
        """Maps ``[B, S, S]`` (sum of the layer maps, plus the memory maps when few-shot) and scores ``[B]``."""
        self.check_fitted()
        cfg, model = self.config, self.model_
        with torch.no_grad():
            images = batch.image.to(self.device, non_blocking=True)  # pinned by the loader on CUDA
            layers = cfg.layers + cfg.memory_layers if self.memory_ else cfg.layers
            patches, cls = read_tower(model.backbone, images, layers, precision=self.precision)
            text = model.texts(batch.categories)
            amap = sum(model.layer_probabilities(patches, text))
            score = model.image_probability(cls, text)
            if self.memory_:
                amap = amap + sum(model.memory_maps(patches, self.memory_))
                score = 0.5 * (score + amap.flatten(1).amax(dim=1) / cfg.fewshot_map_range)
        return Prediction(pred_score=score.float().cpu(), anomaly_map=smooth(amap, cfg.sigma))

    def state_dict(self) -> dict[str, Any]:
        """The trained linear layers (``adapters.*``) and, after a support fit, the memory (``memory.<block>``),
        as CPU tensors."""
        if self.model_ is None:
            raise MethodError(f"{self.name} has no trained state yet; call setup() and fit() first")
        state = {ADAPTERS + k: v.detach().cpu().clone() for k, v in self.model_.adapters.state_dict().items()}
        state.update({f"{MEMORY}{layer}": rows.cpu().clone() for layer, rows in (self.memory_ or {}).items()})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s linear layers and memory (none when it holds none); the method then
        counts as fitted."""
        adapters = self.setup().model_.adapters
        memory = {key: value for key, value in state.items() if key.startswith(MEMORY)}
        expected = {ADAPTERS + k: v for k, v in adapters.state_dict().items()}
        check_state(expected, {k: v for k, v in state.items() if k not in memory}, self.name)
        layers = {f"{MEMORY}{layer}" for layer in self.config.memory_layers}
        if memory and set(memory) != layers:
            raise MethodError(f"{self.name} state holds a memory of {sorted(memory)}, but this config's memory_layers "
                              f"are {list(self.config.memory_layers)}; load it with the config it was fitted with")
        adapters.load_state_dict({k[len(ADAPTERS):]: v for k, v in state.items() if k.startswith(ADAPTERS)})
        self.memory_ = {int(k[len(MEMORY):]): v.to(self.device) for k, v in memory.items()} or None
        self.fitted_ = True
