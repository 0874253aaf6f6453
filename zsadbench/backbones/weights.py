"""Known backbone weights and the resolution of a ``--pretrained`` value to a file.

``pretrained`` is one of:

- ``"none"``: random initialisation (seeded from the model name); results are marked ``random``;
- a known tag of the architecture (``openai``, ``laion400m_e31``, ``laion400m_e32``, ``lvd142m`` ...): found in
  open_clip's / timm's cache, or downloaded where the network allows;
- a path to a local file (``.pt``/``.pth``/``.bin``/``.safetensors``; OpenAI's TorchScript archives too); a
  file in any other format is refused in one line naming it and the formats taken (:func:`read_checkpoint`).

Whatever is loaded, its sha256 goes into :class:`WeightsInfo`, which every result records. Missing weights
raise :class:`~zsadbench.errors.WeightsError` naming the file needed, where to put it and how to pass it.
"""
from __future__ import annotations

import hashlib
import os
import warnings
import zipfile
from collections.abc import Mapping
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


CHECKPOINT_FORMATS = (
    "a PyTorch state dict saved with torch.save (.pt/.pth/.bin, optionally under a 'state_dict' or 'model' key), "
    "a .safetensors file, or an OpenAI TorchScript CLIP archive"
)

# what a file that is no checkpoint most likely is, by its first bytes
_OTHER_FORMATS = (
    (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"\x1f\x8b", "a gzip archive"),
    (b"\x93NUMPY", "a NumPy .npy array"), (b"%PDF", "a PDF document"), (b"<", "an HTML or XML page"),
)


_CUT_SHORT = "the file is cut short or damaged: download it again"


def not_a_checkpoint(path: str | Path, why: str) -> str:
    """The one-line message for a ``--pretrained`` file that cannot be read as weights."""
    return f"{path} is not a checkpoint zsadbench can read ({why}); --pretrained takes {CHECKPOINT_FORMATS}"


def checkpoint_format(path: str | Path) -> str:
    """``"zip"`` (torch.save's format, TorchScript), ``"pickle"`` (torch.save's legacy format) or
    ``"safetensors"``, from the file's first bytes; any other content raises :class:`WeightsError`."""
    path = Path(path)
    with path.open("rb") as handle:
        head = handle.read(16)
    size = path.stat().st_size
    if not head:
        raise WeightsError(not_a_checkpoint(path, "the file is empty"))
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head[0] == 0x80 and len(head) > 1 and 2 <= head[1] <= 5:
        return "pickle"
    if len(head) > 8 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < size:
        return "safetensors"
    what = next((name for magic, name in _OTHER_FORMATS if head.startswith(magic)), None)
    if what is None:
        what = "a text file" if _is_text(head) else "unknown binary content"
    raise WeightsError(not_a_checkpoint(path, f"it looks like {what}"))


def _is_text(head: bytes) -> bool:
    try:
        return head.decode("utf-8").isprintable() or head.decode("utf-8").strip().isprintable()
    except UnicodeDecodeError:
        return False


def read_checkpoint(path: str | Path, *, mmap: bool = False) -> dict:
    """The tensors of a local checkpoint file (see :data:`CHECKPOINT_FORMATS`), on the CPU.

    Only tensors are unpickled (``weights_only``); a ``state_dict``/``model`` wrapper and a ``module.`` prefix
    (DataParallel) are removed. ``mmap`` maps a zip-format file instead of reading it, which makes a check of
    a large file cheap. Anything unreadable raises one :class:`WeightsError` line naming the file.
    """
    import torch

    path = Path(path)
    kind = checkpoint_format(path)
    if kind == "zip" and not zipfile.is_zipfile(path):
        raise WeightsError(not_a_checkpoint(path, f"{_CUT_SHORT}, or not a checkpoint"))
    try:
        if kind == "safetensors":
            from safetensors.torch import load_file

            loaded = load_file(str(path), device="cpu")
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # torch's note on unusual pickle protocols
                loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and kind == "zip")
    except Exception as exc:  # noqa: BLE001 - torch.load and safetensors raise many types for a bad file
        raise WeightsError(not_a_checkpoint(path, _load_failure(exc))) from exc
    return _tensors(loaded, path)


def check_checkpoint(path: str | Path) -> None:
    """Raise :class:`WeightsError` unless ``path`` is a readable checkpoint, cheaply (memory-mapped), for
    loaders that read the file themselves; those pick the safetensors reader by file name, so a safetensors
    file must end in ``.safetensors``."""
    read_checkpoint(path, mmap=True)
    if checkpoint_format(path) == "safetensors" and Path(path).suffix != ".safetensors":
        raise WeightsError(f"{path} is a safetensors file without the .safetensors extension; rename it to "
                           f"{Path(path).with_suffix('.safetensors').name}")


def _load_failure(exc: Exception) -> str:
    text = str(exc)
    if "weights_only" in text or "Unsupported global" in text:
        return "it holds Python objects besides tensors, e.g. a whole pickled model; save model.state_dict() instead"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if isinstance(exc, EOFError) or not first:
        return _CUT_SHORT
    return f"{type(exc).__name__}: {first[:160]}"


def _tensors(loaded: object, path: Path) -> dict:
    import torch

    if isinstance(loaded, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(loaded.get(key), Mapping):
                loaded = loaded[key]
                break
    if not isinstance(loaded, Mapping) or not any(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise WeightsError(not_a_checkpoint(path, f"it holds a {type(loaded).__name__}, not a mapping of names to "
                                                  "tensors"))
    state = {str(k): v for k, v in loaded.items() if isinstance(v, torch.Tensor)}
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state
