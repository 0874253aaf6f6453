"""Provenance recorded with every cell: versions, git SHA, device, weights, time and memory."""
from __future__ import annotations

import platform
import resource
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

_PACKAGES = ("zsadbench", "torch", "torchvision", "open_clip_torch", "timm", "numpy", "numba", "scikit-learn")


@lru_cache(maxsize=1)
def environment() -> dict[str, Any]:
    """Versions of Python and the packages that shape results, plus the zsadbench git SHA if any."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"python": platform.python_version(), "platform": platform.platform(), "packages": versions, "git_sha": git_sha()}


def git_sha() -> str | None:
    """The commit of the zsadbench checkout this code runs from (``None`` outside a git checkout)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def device_name(device: str) -> str:
    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(dev)
    return f"{platform.processor() or platform.machine()} ({dev.type})"


_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peak_memory(device: str) -> None:
    """Start a new peak-memory window (per cell): the resident-set high-water mark on Linux (``clear_refs``)
    and torch's CUDA peak counters."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        pass
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats(torch.device(device))


def _host_peak_mb() -> float:
    """Peak resident memory since the last :func:`reset_peak_memory` (Linux), else since the process began."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / 1024 if sys.platform != "darwin" else rss / 2**20, 1)


def peak_memory_mb(device: str) -> dict[str, float]:
    """Peak resident memory of this process and, on CUDA, peak allocated device memory (MiB), over the window
    opened by :func:`reset_peak_memory`."""
    peak = {"host_rss_mb": _host_peak_mb()}
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        peak["cuda_mb"] = round(torch.cuda.max_memory_allocated(torch.device(device)) / 2**20, 1)
    return peak
