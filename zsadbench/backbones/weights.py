"""Known backbone weights and the resolution of a ``--pretrained`` value to a file.

``pretrained`` is one of:

- ``"none"``: random initialisation (seeded by the caller's torch seed); results are marked ``random``;
- a known tag of the architecture (``openai``, ``laion400m_e31``, ``laion400m_e32``, ``lvd142m`` ...): found in
  open_clip's / timm's cache, or downloaded where the network allows;
- a path to a local file (``.pt``/``.pth``/``.bin``/``.safetensors``; OpenAI's TorchScript archives too).

Whatever is loaded, its sha256 goes into :class:`WeightsInfo`, which every result records. Missing weights
raise :class:`~zsadbench.errors.WeightsError` naming the file needed, where to put it and how to pass it.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from zsadbench.errors import WeightsError

OPENCLIP_URL_CACHE = Path(os.path.expanduser("~/.cache/clip"))
TORCH_HUB_CACHE = Path(os.path.expanduser("~/.cache/torch/hub/checkpoints"))


@dataclass(frozen=True)
class WeightsInfo:
    """Provenance of the weights a backbone runs with.

    ``tag`` is what the user asked for (``none``, a tag, or the file name of a local path), ``path`` the
    file actually loaded (``None`` for random weights), ``sha256`` its full hex digest (``None`` for random
    weights), ``random`` whether the weights are a random initialisation.
    """

    tag: str
    path: str | None
    sha256: str | None
    random: bool

    def as_dict(self) -> dict[str, object]:
        return {"tag": self.tag, "path": self.path, "sha256": self.sha256, "random": self.random}


@dataclass(frozen=True)
class KnownWeights:
    """One entry of the weights table: where a tag's file comes from and how to check it.

    ``sha256`` may be a full digest or the published prefix (open_clip's LAION file names carry the first
    8 hex digits); ``openai_format`` marks OpenAI checkpoints, which need the QuickGELU architecture.
    """

    arch: str
    tag: str
    filename: str
    url: str
    sha256: str | None = None
    openai_format: bool = False
    source: str = "open_clip"


def _entry(arch: str, tag: str, url: str, sha: str | None, *, openai: bool = False, source: str = "open_clip"):
    return KnownWeights(arch, tag, url.rsplit("/", 1)[-1], url, sha, openai, source)


def _dinov2(size: str, letter: str, registers: bool) -> KnownWeights:
    """The official DINOv2 checkpoint of one size, with or without four registers (timm converts it)."""
    reg = "_reg4" if registers else ""
    url = f"{_DINO}/dinov2_vit{letter}14/dinov2_vit{letter}14{reg}_pretrain.pth"
    return _entry(f"vit_{size}_patch14{reg}_dinov2", "lvd142m", url, None, source="timm")


_OPENAI = "https://openaipublic.azureedge.net/clip/models"
_LAION = "https://github.com/mlfoundations/open_clip/releases/download/v0.2-weights"
_DINO = "https://dl.fbaipublicfiles.com/dinov2"

KNOWN_WEIGHTS: tuple[KnownWeights, ...] = (
    _entry(
        "ViT-L-14-336", "openai",
        f"{_OPENAI}/3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02/ViT-L-14-336px.pt",
        "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02", openai=True,
    ),
    _entry(
        "ViT-B-16", "openai",
        f"{_OPENAI}/5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt",
        "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f", openai=True,
    ),
    _entry("ViT-B-16-plus-240", "laion400m_e31", f"{_LAION}/vit_b_16_plus_240-laion400m_e31-8fb26589.pt", "8fb26589"),
    _entry("ViT-B-16-plus-240", "laion400m_e32", f"{_LAION}/vit_b_16_plus_240-laion400m_e32-699c4b84.pt", "699c4b84"),
    _entry("ViT-B-16", "laion400m_e31", f"{_LAION}/vit_b_16-laion400m_e31-00efa78f.pt", "00efa78f"),
    _entry("ViT-B-16", "laion400m_e32", f"{_LAION}/vit_b_16-laion400m_e32-55e67d44.pt", "55e67d44"),
    *(
        _dinov2(size, letter, registers)
        for registers in (False, True)
        for size, letter in (("small", "s"), ("base", "b"), ("large", "l"))
    ),
)


def base_arch(name: str) -> str:
    """The architecture name without the ``-quickgelu`` suffix (weights are listed under the base name)."""
    return name[: -len("-quickgelu")] if name.endswith("-quickgelu") else name


def known_weights(arch: str, tag: str) -> KnownWeights | None:
    """The table entry of ``(arch, tag)``, or ``None`` (the ``-quickgelu`` suffix is ignored)."""
    arch = base_arch(arch)
    return next((w for w in KNOWN_WEIGHTS if w.arch == arch and w.tag == tag), None)


def known_by_sha256(digest: str) -> KnownWeights | None:
    """The table entry whose (full or prefix) checksum matches ``digest``."""
    return next((w for w in KNOWN_WEIGHTS if w.sha256 and digest.startswith(w.sha256)), None)


def list_weights(arch_pattern: str = "*") -> list[tuple[str, str]]:
    """``(arch, tag)`` pairs of the known weights whose architecture matches a shell pattern."""
    import fnmatch

    return [(w.arch, w.tag) for w in KNOWN_WEIGHTS if fnmatch.fnmatch(w.arch, arch_pattern)]


_SHA_MEMO: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | Path) -> str:
    """Full sha256 hex digest of a file (memoised per path, size and modification time)."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_MEMO:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
        _SHA_MEMO[key] = digest.hexdigest()
    return _SHA_MEMO[key]


def check_sha256(path: str | Path, expected: str | None, what: str) -> str:
    """Hash ``path`` and compare with the expected (full or prefix) digest; return the full digest."""
    digest = sha256_file(path)
    if expected and not digest.startswith(expected):
        raise WeightsError(
            f"{path}: sha256 {digest[:12]}… does not match {expected[:12]}… expected for {what}; "
            "the file is corrupt or not these weights: delete it and download it again"
        )
    return digest


def missing_weights_message(arch: str, tag: str, reason: str = "") -> str:
    """One message that says which file is needed, where it comes from, where to put it and how to pass it."""
    entry = known_weights(arch, tag)
    why = f" ({reason})" if reason else ""
    if entry is None:
        return (
            f"weights {tag!r} for {arch} could not be loaded{why}. Pass a known tag, a local checkpoint file "
            f"(--pretrained /path/to/weights.pt) or --pretrained none for random weights"
        )
    checksum = f", sha256 {entry.sha256[:12]}…" if entry.sha256 else ""
    if entry.source == "open_clip":
        where = f"Download it to {OPENCLIP_URL_CACHE}/ (where open_clip looks)"
    else:
        where = f"Download it to {TORCH_HUB_CACHE}/ (where timm looks; its Hugging Face copy works too)"
    return (
        f"weights {arch}/{tag} not found{why}: need {entry.filename}{checksum} from {entry.url}. "
        f"{where}, or pass the file with --pretrained /path/to/{entry.filename}; "
        "--pretrained none runs with random weights"
    )
