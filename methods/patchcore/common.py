"""What the CNN memory-bank baselines (PatchCore, PaDiM, SPADE) share: the support images of a few-shot fit,
the backbone pass, exact nearest neighbours and the Gaussian smoothing of the maps."""
from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from zsadbench.backbones import autocast
from zsadbench.backbones.cnn import CnnBackbone
from zsadbench.errors import ConfigError, MethodError
from zsadbench.method import FitData

#: Support images encoded together during a fit.
SUPPORT_BATCH = 16
#: Entries of the ``queries × bank`` distance matrix computed at once (128 MB in float32).
DISTANCE_ENTRIES = 1 << 25


def check_image_size(method: str, images: torch.Tensor, size: int, what: str) -> None:
    """Raise :class:`ConfigError` unless ``images`` are ``size × size`` pixels."""
    if tuple(images.shape[-2:]) != (size, size):
        raise ConfigError(
            f"{method}: {what} images are {tuple(images.shape[-2:])} px but image_size is {size}; "
            f"resize them to {size}x{size} or set image_size={images.shape[-1]}"
        )


def support_images(data: FitData, method: str, size: int) -> Iterator[torch.Tensor]:
    """The support images of a few-shot fit, ``[b,3,size,size]`` batch by batch: the first ``data.shots``
    (every image when ``shots`` is 0). Raises :class:`MethodError` when there are none."""
    wanted = data.shots or data.num_images
    seen = 0
    step = max(1, min(wanted, SUPPORT_BATCH)) if wanted else SUPPORT_BATCH
    for batch in data.batches(batch_size=step, shuffle=False, seed=data.seed):
        check_image_size(method, batch.image, size, "support")
        images = batch.image[: wanted - seen] if wanted else batch.image
        seen += len(images)
        yield images
        if wanted and seen >= wanted:
            break
    if not seen:
        raise MethodError(f"{method} few-shot fit for {data.dataset}/{data.category}: the support set has no images")


def extract(backbone: CnnBackbone, images01: torch.Tensor, precision: str) -> list[torch.Tensor]:
    """The backbone's maps of ``images01`` under the run's ``precision``, as float32."""
    with torch.no_grad(), autocast(backbone.device, precision):  # type: ignore[arg-type]
        maps = backbone(images01)
    return [m.float() for m in maps]


def nearest_neighbours(queries: torch.Tensor, bank: torch.Tensor, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean distances ``[n, k]`` (ascending) and indices ``[n, k]`` of the ``k`` rows of ``bank`` ``[m, D]``
    nearest to each row of ``queries`` ``[n, D]``.

    Candidates come from the expanded form ``|q|² + |b|² − 2 q·b`` (one matrix product); the distances returned
    are recomputed as ``|q − b|`` for the chosen rows, so a query equal to a bank row gets exactly 0 where the
    expanded form leaves a rounding residue of ``~1e-3·|q|``.
    """
    if k < 1 or k > bank.shape[0]:
        raise ValueError(f"k={k} nearest neighbours asked from a bank of {bank.shape[0]} rows")
    bank_sq = bank.pow(2).sum(dim=1)
    distances, indices = [], []
    for chunk in queries.split(max(1, DISTANCE_ENTRIES // bank.shape[0])):
        squared = chunk.pow(2).sum(dim=1, keepdim=True) + bank_sq - 2.0 * chunk @ bank.T
        idx = squared.topk(k, dim=1, largest=False).indices
        exact = (chunk[:, None, :] - bank[idx]).norm(dim=-1)
        exact, order = exact.sort(dim=1)
        distances.append(exact)
        indices.append(idx.gather(1, order))
    return torch.cat(distances), torch.cat(indices)


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """The normalised 1-D Gaussian of ``sigma`` over ``2·int(4σ + 0.5) + 1`` taps (scipy's and anomalib's size)."""
    radius = int(4.0 * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return (kernel / kernel.sum()).float()


def blur_radius(sigma: float) -> int:
    """Half the width of the smoothing kernel of ``sigma`` (0 when ``sigma`` is 0)."""
    return int(4.0 * sigma + 0.5) if sigma > 0 else 0


def smooth(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian smoothing of ``[B, H, W]`` maps, as anomalib's ``GaussianBlur2d``: a kernel of
    ``2·int(4σ + 0.5) + 1`` taps and ``reflect`` padding (``d c b | a b c d``, scipy's ``mirror``). Separable, on
    the maps' device; ``sigma = 0`` returns them unchanged. Needs ``H, W`` larger than the kernel's radius."""
    if sigma <= 0:
        return maps
    radius = blur_radius(sigma)
    kernel = gaussian_kernel(sigma).to(maps.device, maps.dtype)
    x = F.pad(maps[:, None], (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))
    x = F.conv2d(x, kernel.view(1, 1, -1, 1))
    return x[:, 0]
