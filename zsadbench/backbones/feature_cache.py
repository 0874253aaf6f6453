"""A cache for frozen computations (e.g. the visual taps of the auxiliary training set).

Entries are per image, keyed by the sha256 of canonical JSON holding the *namespace* (backbone name, weights
checksum or tag, input size, layers, flags: everything that changes the output) and the sha256 of the
image's own bytes, dtype and shape. So shuffled batches, later epochs and repeated runs all hit, and a change
of any key part misses. Entries are safetensors files under ``root/<2 hex>/<key>.safetensors``, written
atomically; an in-memory LRU (bounded in bytes) sits on top. ``root=None`` keeps the memory level only.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .taps import Intermediates

Features = dict[str, torch.Tensor]


def image_digest(image: torch.Tensor) -> str:
    """sha256 of one image tensor's dtype, shape and bytes (device independent)."""
    data = image.detach().cpu().contiguous()
    digest = hashlib.sha256(f"{data.dtype}|{tuple(data.shape)}|".encode())
    digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


def weights_fingerprint(module: torch.nn.Module) -> str:
    """sha256 of a module's parameters and buffers (used for random weights, which have no file checksum)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(image_digest(tensor).encode())
    return digest.hexdigest()


def backbone_namespace(backbone: Any, layers: Sequence[int] | int, **flags: Any) -> dict[str, Any]:
    """The key parts of a backbone's taps: name, weights, input size, layers and any extra flags
    (``vv_last``, ``norm``, ``project``, precision ...). Random weights are identified by their content."""
    info = backbone.weights
    if info.sha256 is not None:
        weights = info.sha256
    else:
        if getattr(backbone, "_zsad_fingerprint", None) is None:
            backbone._zsad_fingerprint = weights_fingerprint(backbone)
        weights = f"random:{backbone._zsad_fingerprint}"
    layer_list = layers if isinstance(layers, int) else [int(i) for i in layers]
    return {"backbone": backbone.name, "weights": weights, "image_size": backbone.image_size,
            "layers": layer_list, "flags": dict(sorted(flags.items()))}


class FeatureCache:
    """Per-image cache of feature tensors; see the module docstring for the key."""

    def __init__(self, root: str | Path | None = None, *, memory_bytes: int = 512 * 2**20) -> None:
        self.root = None if root is None else Path(root)
        self.memory_bytes = memory_bytes
        self._memory: OrderedDict[str, Features] = OrderedDict()
        self._memory_used = 0
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(namespace: Mapping[str, Any], digest: str) -> str:
        """sha256 of canonical JSON of the namespace plus an image digest."""
        text = json.dumps({"ns": namespace, "image": digest}, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def get(self, key: str) -> Features | None:
        """The stored tensors of ``key`` (memory first, then disk), or ``None``."""
        if key in self._memory:
            self._memory.move_to_end(key)
            return self._memory[key]
        path = self._path(key)
        if path is None or not path.is_file():
            return None
        features = load_file(str(path))
        self._remember(key, features)
        return features

    def put(self, key: str, features: Mapping[str, torch.Tensor]) -> None:
        """Store tensors (moved to CPU, made contiguous) under ``key``."""
        stored = {name: t.detach().to("cpu", copy=True).contiguous() for name, t in features.items()}
        path = self._path(key)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            os.close(handle)
            try:
                save_file(stored, tmp)
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        self._remember(key, stored)

    def batch(
        self,
        images: torch.Tensor,
        namespace: Mapping[str, Any],
        compute: Callable[[torch.Tensor], Mapping[str, torch.Tensor]],
    ) -> Features:
        """Features of a batch ``[B, ...]``: cached images are read, the others computed in one call of
        ``compute(images_subset)`` (which returns tensors with the subset's batch size first) and stored.
        Returns the per-image tensors stacked in the input order, on ``images``' device."""
        keys = [self.key(namespace, image_digest(image)) for image in images]
        found = [self.get(k) for k in keys]
        missing = [i for i, f in enumerate(found) if f is None]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            computed = compute(images[missing])
            for row, i in enumerate(missing):
                one = {name: t[row] for name, t in computed.items()}
                self.put(keys[i], one)
                found[i] = self._memory.get(keys[i]) or {n: t.detach().cpu() for n, t in one.items()}
        names = list(found[0].keys())
        return {name: torch.stack([f[name] for f in found]).to(images.device) for name in names}

    def clear_memory(self) -> None:
        """Forget the in-memory level (disk entries stay)."""
        self._memory.clear()
        self._memory_used = 0

    def _path(self, key: str) -> Path | None:
        return None if self.root is None else self.root / key[:2] / f"{key}.safetensors"

    def _remember(self, key: str, features: Features) -> None:
        size = sum(t.numel() * t.element_size() for t in features.values())
        if size > self.memory_bytes:
            return
        if key in self._memory:
            self._memory_used -= sum(t.numel() * t.element_size() for t in self._memory.pop(key).values())
        self._memory[key] = features
        self._memory_used += size
        while self._memory_used > self.memory_bytes:
            _, old = self._memory.popitem(last=False)
            self._memory_used -= sum(t.numel() * t.element_size() for t in old.values())


def cached_taps(
    cache: FeatureCache | None,
    backbone: Any,
    images: torch.Tensor,
    indices: int | Sequence[int],
    *,
    vv_last: int = 0,
    norm: bool = False,
    project: bool = False,
    precision: str = "fp32",
    attention_taps: Sequence[int] = (),
    final_patches: bool = True,
) -> Intermediates:
    """``backbone.forward_intermediates(images, indices, ...)`` of a frozen backbone, without gradients, in the
    run's ``precision``, through ``cache`` when one is given (no extra tokens: those are learnable, so nothing
    upstream of them is frozen). With a cache the result's ``final`` is ``None``: the whole final sequence is
    not stored. This is the one way methods read a frozen tower, in training and at test time alike.
    ``attention_taps`` join the cache key only when given, and ``final_patches`` only when False, so entries
    written without them keep their keys."""
    from .runtime import autocast

    def compute(subset: torch.Tensor) -> Intermediates:
        with torch.no_grad(), autocast(subset.device, precision):  # type: ignore[arg-type]
            trim = {} if final_patches else {"final_patches": False}
            return backbone.forward_intermediates(subset, indices, vv_last=vv_last, norm=norm, project=project,
                                                  attention_taps=attention_taps, **trim)

    if cache is None:
        return compute(images)

    def flat(subset: torch.Tensor) -> dict[str, torch.Tensor]:
        out = compute(subset)
        plain = {f"ordinary.{i}": p for i, p in zip(out.indices, out.ordinary)} if vv_last else {}
        attention = {f"attention.{i}": t for i, t in out.attention.items()}
        return {"cls": out.cls, **{f"patches.{i}": p for i, p in zip(out.indices, out.patches)}, **plain, **attention}

    extra_flags = {"attention_taps": sorted(set(int(i) for i in attention_taps))} if attention_taps else {}
    if not final_patches:
        extra_flags["final_patches"] = False
    namespace = backbone_namespace(backbone, indices, vv_last=vv_last, norm=norm, project=project, precision=precision,
                                   **extra_flags)
    found = cache.batch(images, namespace, flat)
    taken = sorted(int(k.split(".")[1]) for k in found if k.startswith("patches."))
    patches = [found[f"patches.{i}"] for i in taken]
    attended = sorted(int(k.split(".")[1]) for k in found if k.startswith("attention."))
    return Intermediates(
        indices=tuple(taken),
        patches=patches,
        ordinary=patches if vv_last == 0 else [found[f"ordinary.{i}"] for i in taken if final_patches],
        cls=found["cls"],
        extra=None,
        final=None,
        num_prefix=1 + int(getattr(backbone, "num_registers", 0)),
        attention={i: found[f"attention.{i}"] for i in attended},
    )
