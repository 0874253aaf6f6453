"""The method plugin interface shared by zero-shot, few-shot and training-free methods.

scikit-learn discipline: ``__init__`` only stores its arguments; :meth:`Method.setup` builds the model and
loads weights; :meth:`Method.fit` adapts it (training on an auxiliary set, or remembering k support images)
and returns ``self``; :meth:`Method.predict` maps a :class:`~zsadbench.types.Batch` to a
:class:`~zsadbench.types.Prediction`. Learned state ends in ``_`` and is exported by :meth:`state_dict`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from .config import MethodConfig
from .errors import ConfigError, NotFittedError
from .types import Batch, Prediction

if TYPE_CHECKING:
    from .backbones.feature_cache import FeatureCache
    from .store.checkpoints import EpochCheckpoints

Setting = Literal["zero-shot", "few-shot"]
FitKind = Literal["auxiliary", "support", "none"]
Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")


@dataclass
class FitData:
    """What :meth:`Method.fit` receives.

    ``kind`` is ``"auxiliary"`` for zero-shot training (labelled images and masks of the auxiliary dataset,
    ``dataset`` names it), ``"support"`` for few-shot (``shots`` normal images of ``category``) and ``"none"``
    for zero-shot methods that do not train. ``batches(batch_size, shuffle, seed)`` yields
    :class:`~zsadbench.types.Batch` objects with ``gt_label``, ``gt_mask`` (at the method's input size) and
    each image's category name.

    ``checkpoints`` (when the runner trains) saves and restores per-epoch state so a killed run resumes from
    its last finished epoch; ``features`` is a :class:`~zsadbench.backbones.FeatureCache` for the outputs of a
    frozen backbone (use :func:`~zsadbench.backbones.cached_taps`), so the tower runs once per image rather
    than once per epoch. Both are ``None`` when a method is fitted by hand.
    """

    kind: FitKind
    batches: Callable[..., Iterator[Batch]] = field(repr=False, default=lambda *a, **k: iter(()))
    num_images: int = 0
    dataset: str = ""
    category: str | None = None
    shots: int = 0
    seed: int = 0
    progress: Callable[[str, float], None] | None = field(default=None, repr=False)
    checkpoints: "EpochCheckpoints | None" = field(default=None, repr=False)
    features: "FeatureCache | None" = field(default=None, repr=False)

    def report(self, message: str, fraction: float) -> None:
        """Report training progress (``fraction`` in ``[0,1]``) to the runner's display, if any."""
        if self.progress is not None:
            self.progress(message, fraction)


def is_random_weights(tag: str) -> bool:
    """Whether a resolved weights tag means a random initialisation: the one place that decides it."""
    return tag == "none"


def fit_kind(cls: type[Method], shots: int) -> FitKind:
    """The :class:`FitData` kind ``cls.fit`` gets for ``shots`` (0: zero-shot): ``support`` for few-shot,
    ``auxiliary`` for a zero-shot method that trains on an auxiliary set, else ``none``. A few-shot method that
    also trains on an auxiliary set (:func:`trains_then_adapts`) gets ``support`` after its auxiliary training. Raises
    :class:`ConfigError` when the method's ``settings`` and ``shots`` do not take that setting, so no method
    needs to check the kind it is fitted with."""
    name = getattr(cls, "name", cls.__name__)
    if shots > 0:
        if "few-shot" not in cls.settings:
            raise ConfigError(f"{name} is not a few-shot method (settings: {', '.join(sorted(cls.settings))}); "
                              "run it with --shots 0")
        if cls.shots and shots not in cls.shots:
            raise ConfigError(f"{name} does not take {shots}-shot; it takes k in {', '.join(map(str, cls.shots))}")
        return "support"
    if "zero-shot" not in cls.settings:
        raise ConfigError(f"{name} is not a zero-shot method (settings: {', '.join(sorted(cls.settings))}); "
                          "run it with --shots K")
    return "auxiliary" if cls.trains_on_auxiliary else "none"


def trains_then_adapts(cls: type[Method], shots: int) -> bool:
    """Whether a ``shots``-shot cell of ``cls`` first trains on the auxiliary set and then adapts to its support
    images: a few-shot cell of a method with ``trains_on_auxiliary`` (e.g. InCTRL, or VAND's few-shot mode).
    The runner then trains once per auxiliary set and seed (``fit`` with ``kind="auxiliary"``, cached as the
    state), and for each cell restores that state and calls ``fit`` again with ``kind="support"``."""
    return shots > 0 and cls.trains_on_auxiliary


class Method(ABC):
    """Base class of every anomaly-detection method, built-in or third-party.

    Subclasses set the class attributes below and implement :meth:`setup` and :meth:`predict`
    (plus :meth:`fit`, :meth:`state_dict` and :meth:`load_state_dict` when they learn anything).
    ``precision`` is the run's ``--precision``; it reaches the frozen backbone's forward passes one way: as
    ``precision=self.precision`` to :func:`~zsadbench.backbones.cached_taps` or
    :func:`~zsadbench.backbones.autocast`.
    """

    zsadbench_api: ClassVar[int] = 1
    name: ClassVar[str]
    #: Every method sets its own (``"1"`` at first) and bumps it with any change that changes its outputs for the
    #: same config and weights (a fix, a changed default). It is part of every cell id and trained-state key, so
    #: bumping it recomputes those cells and states instead of reusing stale ones.
    version: ClassVar[str] = "1"
    settings: ClassVar[frozenset[str]] = frozenset({"zero-shot"})
    shots: ClassVar[tuple[int, ...]] = ()
    trains_on_auxiliary: ClassVar[bool] = False
    config_class: ClassVar[type[MethodConfig]] = MethodConfig
    default_pretrained: ClassVar[str] = ""  # "" = the method loads no pretrained weights
    #: Config fields replaced when the backbone runs with random weights (``--pretrained none``) and the user did
    #: not set them: with random weights the paper-size backbone measures nothing, so demos and smoke runs use a
    #: configuration that fits a CPU. The stored config (and its hash) records what actually ran.
    random_init_overrides: ClassVar[dict[str, Any]] = {}
    paper: ClassVar[str] = ""

    def __init__(
        self,
        config: MethodConfig | None = None,
        *,
        pretrained: str = "default",
        device: str = "cpu",
        precision: Precision = "fp32",
    ) -> None:
        """Store the arguments, nothing else: :meth:`check_params` checks them and :meth:`setup` builds."""
        self.config = config if config is not None else self.config_class()
        self.pretrained = pretrained
        self.device = device
        self.precision = precision

    def check_params(self) -> "Method":
        """Raise :class:`ConfigError` unless the stored config and precision fit this method; returns ``self``.

        The config's own fields were checked when it was built; the runner calls this before :meth:`setup`.
        """
        if not isinstance(self.config, self.config_class):
            raise ConfigError(
                f"{type(self).__name__} takes a {self.config_class.__name__}, got {type(self.config).__name__}"
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        return self

    # -- lifecycle --------------------------------------------------------------------------------
    @classmethod
    def resolve_weights(cls, config: MethodConfig, pretrained: str | None) -> str:
        """The weights ``pretrained`` asks for with ``config``: :attr:`default_pretrained` for ``default`` (or
        empty), else ``pretrained`` itself. The runner resolves it once per method variant, without building the
        method; override it when the default depends on the config."""
        return cls.default_pretrained if pretrained in ("default", "", None) else pretrained

    @property
    def pretrained_tag(self) -> str:
        """The weights actually asked for (see :meth:`resolve_weights`)."""
        return self.resolve_weights(self.config, self.pretrained)

    @property
    def is_random_init(self) -> bool:
        """True when the backbone runs with random weights (``--pretrained none``)."""
        return is_random_weights(self.pretrained_tag)

    @property
    def input_size(self) -> int:
        """Side of the square images the method takes (``config.image_size``)."""
        return int(getattr(self.config, "image_size"))

    @abstractmethod
    def setup(self) -> "Method":
        """Build the model and load its weights; idempotent; returns ``self``."""

    def fit(self, data: FitData) -> "Method":
        """Adapt to ``data`` (see :class:`FitData`); training-free methods keep this default."""
        self.fitted_ = True
        return self

    @abstractmethod
    def predict(self, batch: Batch) -> Prediction:
        """Anomaly scores ``[B]`` and maps ``[B,H,W]`` (float32, higher = more anomalous)."""

    def check_fitted(self) -> None:
        """Raise :class:`NotFittedError` unless :meth:`fit` has run."""
        if not getattr(self, "fitted_", False):
            raise NotFittedError(f"{type(self).__name__}.predict called before fit(); call setup() and fit() first")

    # -- state ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Learned state to cache and reuse across datasets and runs (empty for training-free methods)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned; the method counts as fitted afterwards."""
        self.fitted_ = True

    def weights_info(self) -> dict[str, Any]:
        """Provenance of the backbone weights: at least ``tag``, ``sha256`` (or ``None``) and ``random``.

        Once set up, a method whose built backbone is ``self.model_.backbone`` or ``self.backbone_`` (a zsadbench
        backbone, which keeps its weights record) reports that record: tag, path, sha256, random. Before that, or
        for other methods, the tag asked for; override this when the weights are loaded another way.
        """
        backbone = getattr(getattr(self, "model_", None), "backbone", None) or getattr(self, "backbone_", None)
        weights = getattr(backbone, "weights", None)
        if weights is not None and hasattr(weights, "as_dict"):
            return weights.as_dict()
        return {"tag": self.pretrained_tag, "sha256": None, "random": self.is_random_init}

    @classmethod
    def describe(cls) -> str:
        """One line for ``zsadbench list``."""
        shots = f" k={','.join(map(str, cls.shots))}" if cls.shots else ""
        return f"{'/'.join(sorted(cls.settings))}{shots}"

