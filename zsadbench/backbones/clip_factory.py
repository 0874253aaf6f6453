"""Build a :class:`~zsadbench.backbones.clip.ClipBackbone`: architecture, weights, QuickGELU, input size."""
from __future__ import annotations

import logging
import os
import warnings
import zipfile
from pathlib import Path

import open_clip
from open_clip.transformer import QuickGELU
import torch

from zsadbench.errors import ConfigError, WeightsError

from .clip import OPENAI_MEAN, OPENAI_STD, ClipBackbone, check_arch
from .seeding import seeded_init
from .weights import (
    OPENCLIP_URL_CACHE,
    WeightsInfo,
    base_arch,
    check_sha256,
    known_by_sha256,
    known_weights,
    missing_weights_message,
    not_a_checkpoint,
    read_checkpoint,
)

# constants some checkpoints carry besides the weights (OpenAI's metadata, a scripted model's causal mask)
_IGNORED_KEYS = ("input_resolution", "context_length", "vocab_size", "attn_mask")


def create_clip(
    name: str,
    pretrained: str = "none",
    *,
    image_size: int | None = None,
    device: str | torch.device = "cpu",
    frozen: bool = True,
    activation: str = "auto",
    pos_interpolation: str = "bilinear",
) -> ClipBackbone:
    """A frozen, eval-mode CLIP backbone.

    ``name`` is an open_clip architecture (``ViT-L-14-336``, ``ViT-L-14-336-quickgelu``,
    ``ViT-B-16-plus-240``, ``ViT-B-16``) or a tiny test configuration (``zsad-tiny-16-240``,
    ``zsad-tiny-14-336``). ``pretrained`` is ``none`` (random, seeded from the architecture name), a tag
    (``openai``, ``laion400m_e31``, ``laion400m_e32``) or a checkpoint path. OpenAI weights (the ``openai``
    tag, a TorchScript archive from OpenAI, or a file whose sha256 is a known OpenAI one) are loaded into the
    ``-quickgelu`` variant of the architecture, which :attr:`ClipBackbone.name` then reports.
    ``image_size`` other than the native one resizes the positional embedding (``pos_interpolation``:
    ``bilinear``, or ``bicubic`` as open_clip's own resize does; fp32). ``activation`` ``gelu`` or ``quickgelu``
    replaces the MLP activation of both towers (``auto`` keeps the architecture's): some official loaders build
    their model from the plain config and so run OpenAI's weights with GELU. A choice other than the defaults is
    part of :attr:`ClipBackbone.name`, so cached features of differently built towers never mix.
    """
    if activation not in ("auto", "gelu", "quickgelu"):
        raise ConfigError(f"activation must be auto, gelu or quickgelu, got {activation!r}")
    check_arch(name)
    tag = (pretrained or "none").strip()
    tag = "none" if tag.lower() == "none" else tag
    path, digest, openai_format = _resolve(name, tag)
    arch = _quickgelu_arch(name) if openai_format else name
    with seeded_init(arch):
        model = _build_quietly(arch)
    if path is not None:
        _load_weights(model, path, arch)
    model.eval()
    if frozen:
        model.requires_grad_(False)
    pcfg = open_clip.get_pretrained_cfg(base_arch(arch), tag) if path is not None else {}
    weights = WeightsInfo(
        tag=tag if path is None or _is_tag(name, tag) else Path(tag).name,
        path=None if path is None else str(path),
        sha256=digest,
        random=path is None,
    )
    backbone = ClipBackbone(
        model,
        arch,
        weights,
        pcfg.get("mean", OPENAI_MEAN),
        pcfg.get("std", OPENAI_STD),
        open_clip.get_tokenizer(arch),
    )
    if activation != "auto":
        _set_activation(model, activation)
    if image_size is not None:
        backbone.set_image_size(int(image_size), pos_interpolation)
    built = [c for c, default in ((activation, "auto"), (f"{pos_interpolation} positions", "bilinear positions"))
             if c != default]
    if built:
        backbone.name = f"{backbone.name} ({', '.join(built)})"
    return backbone.eval().to(device)


def _set_activation(model: torch.nn.Module, activation: str) -> None:
    """Put ``activation`` into the MLP of every transformer block of both towers."""
    kind = {"gelu": torch.nn.GELU, "quickgelu": QuickGELU}[activation]
    for module in model.modules():
        mlp = getattr(module, "mlp", None)
        if isinstance(getattr(mlp, "gelu", None), torch.nn.Module) and not isinstance(mlp.gelu, kind):
            mlp.gelu = kind()


def _build_quietly(arch: str) -> torch.nn.Module:
    """open_clip's model with random weights, without its "initialized randomly" warning (we load next)."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        return open_clip.create_model(arch, pretrained=None, device="cpu")
    finally:
        logging.disable(previous)


def _is_tag(arch: str, tag: str) -> bool:
    return bool(open_clip.get_pretrained_cfg(base_arch(arch), tag)) or known_weights(arch, tag) is not None


def _quickgelu_arch(name: str) -> str:
    config = open_clip.get_model_config(name) or {}
    if config.get("quick_gelu"):
        return name
    variant = f"{name}-quickgelu"
    if open_clip.get_model_config(variant) is None:
        raise ConfigError(
            f"OpenAI weights need QuickGELU but open_clip has no {variant!r} architecture; "
            f"pass a QuickGELU model name instead of {name!r}"
        )
    return variant


def _resolve(name: str, tag: str) -> tuple[Path | None, str | None, bool]:
    """``(file, sha256, is_openai_format)`` for a ``pretrained`` value; ``(None, None, False)`` for ``none``."""
    if tag == "none":
        return None, None, False
    if _is_tag(name, tag):
        path = _find_tag_file(name, tag)
        entry = known_weights(name, tag)
        digest = check_sha256(path, expected_sha256(name, tag, path), f"{base_arch(name)}/{tag}")
        return path, digest, bool(entry and entry.openai_format) or tag == "openai"
    path = Path(os.path.expanduser(tag))
    if not path.is_file():
        known = sorted(open_clip.list_pretrained_tags_by_model(base_arch(name)))
        raise WeightsError(
            f"--pretrained {tag!r} is neither a known tag of {name} (known: {', '.join(known) or 'none'}) nor an "
            "existing file; pass a tag, the path of a checkpoint, or none for random weights"
        )
    digest = check_sha256(path, None, str(path))
    entry = known_by_sha256(digest)
    return path, digest, _is_torchscript(path) or bool(entry and entry.openai_format)


def expected_sha256(name: str, tag: str, path: Path) -> str | None:
    """The published checksum of a tag's file, when ``path`` is that file: the Hugging Face copies open_clip
    prefers are other files (safetensors in open_clip's layout) with no published checksum."""
    entry = known_weights(name, tag)
    return entry.sha256 if entry is not None and path.name == entry.filename else None


def _find_tag_file(name: str, tag: str) -> Path:
    """A tag's file: open_clip's URL cache first, then open_clip's resolver (HF cache, then download)."""
    entry = known_weights(name, tag)
    if entry is not None and (OPENCLIP_URL_CACHE / entry.filename).is_file():
        return OPENCLIP_URL_CACHE / entry.filename
    pcfg = open_clip.get_pretrained_cfg(base_arch(name), tag)
    if not pcfg:
        raise WeightsError(missing_weights_message(name, tag, "open_clip has no download entry for it"))
    try:
        found = open_clip.download_pretrained(pcfg)
    except Exception as exc:  # noqa: BLE001 - network and hub failures come in many types
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
        raise WeightsError(missing_weights_message(name, tag, reason)) from exc
    if not found or not Path(found).is_file():
        raise WeightsError(missing_weights_message(name, tag, "download returned no file"))
    return Path(found)


def _is_torchscript(path: Path) -> bool:
    """OpenAI's released checkpoints are TorchScript archives (a zip holding ``constants.pkl``)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(n.endswith("constants.pkl") for n in archive.namelist())


def _load_weights(model: torch.nn.Module, path: Path, arch: str) -> None:
    """Load a checkpoint (state dict, ``{"state_dict": ...}``, safetensors or TorchScript) strictly."""
    if _is_torchscript(path):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
                state = torch.jit.load(str(path), map_location="cpu").state_dict()
        except Exception as exc:  # noqa: BLE001 - torch.jit.load raises many types for a bad file
            raise WeightsError(not_a_checkpoint(path, f"a TorchScript archive torch cannot load: "
                                                      f"{type(exc).__name__}")) from exc
    else:
        state = read_checkpoint(path)
    state = {k: v for k, v in state.items() if k not in _IGNORED_KEYS}
    if "logit_scale" in state and state["logit_scale"].ndim != model.logit_scale.ndim:
        state["logit_scale"] = state["logit_scale"].reshape(model.logit_scale.shape)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise WeightsError(f"{path} does not fit architecture {arch} ({first}); pass the matching model name") from exc
    problems = list(result.missing_keys) + list(result.unexpected_keys)
    if problems:
        raise WeightsError(
            f"{path} does not fit architecture {arch}: {len(result.missing_keys)} missing and "
            f"{len(result.unexpected_keys)} unexpected keys (first: {problems[0]}); pass the matching model name"
        )
    logging.getLogger(__name__).info("loaded %s into %s", path, arch)
