"""Frozen timm CNNs (ResNets, WideResNets, ...) as multi-stage feature extractors.

:func:`create_cnn` builds timm's model of ``name`` and keeps its stages up to the last one asked for (timm's
``FeatureListNet``); :class:`CnnBackbone` returns the feature maps of the named stages (``layer1`` … ``layer4``
for a ResNet) of a ``[0,1]`` RGB batch, normalised with the ImageNet mean and std. Weights are ``none``
(random, seeded from the model name like every backbone), a timm pretrained tag of the architecture
(``tv_in1k``: the torchvision ImageNet weights) or a checkpoint file.

The backbone holds fp32 weights; a method runs it under :func:`~zsadbench.backbones.autocast` for ``--precision
bf16``, as it runs the CLIP and DINOv2 towers.
"""
from __future__ import annotations

import difflib
import re
from pathlib import Path

import timm
import torch
import torch.nn as nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import FeatureListNet

from zsadbench.errors import ConfigError, WeightsError

from .seeding import seeded_init
from .taps import NormalizingBackbone
from .weights import TORCH_HUB_CACHE, WeightsInfo, check_sha256, read_checkpoint


class CnnBackbone(NormalizingBackbone):
    """A frozen timm CNN returning the maps of ``layers``, in the order given.

    Attributes: ``model`` (timm's ``FeatureListNet``), ``name``, ``weights``, ``mean``/``std`` (ImageNet's),
    ``layers`` (stage names), ``channels`` and ``reductions`` (each stage's width and stride).
    """

    def __init__(self, model: nn.Module, name: str, weights: WeightsInfo, layers: tuple[str, ...]) -> None:
        super().__init__(model, name, weights, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)
        self.layers = tuple(layers)
        info = model.feature_info
        # timm returns the stages in network order; _order[i] is where layers[i] comes in that output
        computed = info.module_name()
        self._order = [computed.index(layer) for layer in self.layers]
        self.channels = tuple(int(info.channels()[i]) for i in self._order)
        self.reductions = tuple(int(info.reduction()[i]) for i in self._order)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def forward(self, images01: torch.Tensor) -> list[torch.Tensor]:
        """The ``[B, C_l, H_l, W_l]`` maps of each stage of ``layers`` for ``[B,3,H,W]`` images in ``[0,1]``."""
        if images01.ndim != 4 or images01.shape[1] != 3:
            raise ConfigError(f"{self.name} takes [B,3,H,W] RGB images, got {tuple(images01.shape)}")
        maps = self.model(self.normalize(images01.to(self.device, torch.float32)))
        return [maps[i] for i in self._order]


def create_cnn(
    name: str,
    layers: tuple[str, ...] | list[str],
    pretrained: str = "none",
    *,
    device: str | torch.device = "cpu",
    frozen: bool = True,
) -> CnnBackbone:
    """A frozen, eval-mode CNN returning the maps of ``layers`` (timm stage names, e.g. ``("layer2", "layer3")``).

    ``name`` is a timm architecture (``wide_resnet50_2``, ``resnet18``, ...). ``pretrained`` is ``none`` (random
    weights, seeded from ``name``), a timm pretrained tag of the architecture (``tv_in1k`` for the torchvision
    ImageNet weights; read from torch's hub cache, timm's Hugging Face copy, or downloaded where the network
    allows) or the path of a checkpoint of the whole classifier.
    """
    _check_arch(name)
    tag = (pretrained or "none").strip()
    tag = "none" if tag.lower() == "none" else tag
    path = None if tag == "none" else _weights_file(name, tag)
    with seeded_init(name):
        model = timm.create_model(name, pretrained=False)
    stages = [info["module"] for info in model.feature_info]
    unknown = [layer for layer in layers if layer not in stages]
    if unknown or not layers:
        what = f"has no stage {', '.join(map(repr, unknown))}" if unknown else "needs at least one stage"
        raise ConfigError(f"layers {list(layers)}: {name} {what}; choose from {', '.join(stages)}")
    digest = None
    if path is not None:
        digest = check_sha256(path, _published_prefix(path), str(path))
        _load(model, path, name)
    features = FeatureListNet(model, out_indices=tuple(sorted({stages.index(layer) for layer in layers})))
    features.eval()
    if frozen:
        features.requires_grad_(False)
    info = WeightsInfo(tag=tag if path is None or tag in _pretrained_tags(name) else path.name,
                       path=None if path is None else str(path), sha256=digest, random=path is None)
    return CnnBackbone(features, name, info, tuple(layers)).eval().to(device)


def _check_arch(name: str) -> None:
    if name in timm.list_models():
        return
    known = timm.list_models("*resnet*")
    close = difflib.get_close_matches(name, known, n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ConfigError(f"unknown CNN {name!r}.{hint} Give a timm architecture such as wide_resnet50_2 or resnet18")


def _pretrained_tags(name: str) -> list[str]:
    return [full.split(".", 1)[1] for full in timm.list_pretrained(f"{name}.*")]


def _weights_file(name: str, tag: str) -> Path:
    """The checkpoint of ``tag``: a local file, or the tag's file from torch's hub cache or the Hugging Face hub."""
    tags = _pretrained_tags(name)
    if tag not in tags:
        path = Path(tag).expanduser()
        if not path.is_file():
            raise WeightsError(
                f"--pretrained {tag!r} is neither a pretrained tag of {name} (known: {', '.join(tags) or 'none'}) "
                "nor an existing file; pass a tag, the path of a checkpoint, or none for random weights"
            )
        return path
    cfg = timm.models.get_pretrained_cfg(f"{name}.{tag}")
    url = getattr(cfg, "url", None) or ""
    cached = TORCH_HUB_CACHE / url.rsplit("/", 1)[-1] if url else None
    if cached is not None and cached.is_file():
        return cached
    repo = getattr(cfg, "hf_hub_id", None) or f"timm/{name}.{tag}"
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(repo_id=repo, filename="model.safetensors"))
    except Exception as exc:  # noqa: BLE001 - offline hubs raise many types
        where = f" or {url} into {TORCH_HUB_CACHE}/" if url else ""
        raise WeightsError(
            f"weights {name}/{tag} not found ({type(exc).__name__} from the Hugging Face hub): need model.safetensors "
            f"of the Hugging Face repository {repo}{where}; or pass a local checkpoint with --pretrained "
            "/path/to/weights.pth, or --pretrained none for random weights"
        ) from exc


def _published_prefix(path: Path) -> str | None:
    """The sha256 prefix torchvision puts into its file names (``wide_resnet50_2-95faca4d.pth``), if any."""
    match = re.search(r"-([0-9a-f]{8,})\.pth?$", path.name)
    return match.group(1) if match else None


def _load(model: nn.Module, path: Path, name: str) -> None:
    """Load a whole-classifier checkpoint strictly (timm's and torchvision's ResNets share their key names)."""
    state = read_checkpoint(path)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise WeightsError(f"{path} does not fit {name} ({lines[-1][:200]}); pass the matching model name") from exc
    problems = list(result.missing_keys) + list(result.unexpected_keys)
    if problems:
        raise WeightsError(
            f"{path} does not fit {name}: {len(result.missing_keys)} missing and {len(result.unexpected_keys)} "
            f"unexpected keys (first: {problems[0]}); pass the matching model name"
        )
