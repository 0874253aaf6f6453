"""Hyper-parameters of WinCLIP / WinCLIP+, with the values of anomalib's re-implementation as defaults."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from zsadbench.config import MethodConfig
from zsadbench.constraints import AT_LEAST_ONE, POSITIVE, Constraints, Interval, Items


@dataclass(frozen=True)
class WinCLIPConfig(MethodConfig):
    """WinCLIP settings.

    ``backbone`` is the open_clip architecture, run at ``image_size`` px (anomalib's ViT-B-16-plus-240 at 240).

    ``scales`` are the side lengths, in patches, of the square sliding windows (stride ``window_stride``).
    ``temperature`` divides the cosine similarities before the normal/anomalous softmax (CLIP's 0.07).
    ``object_agnostic`` puts the word "object" into the prompts instead of the category name.
    """

    backbone: str = "ViT-B-16-plus-240"
    image_size: int = 240
    scales: tuple[int, ...] = (2, 3)
    window_stride: int = 1
    temperature: float = 0.07
    object_agnostic: bool = False

    _parameter_constraints: ClassVar[Constraints] = {
        "image_size": Interval(1, None, closed="left", note="pixels"),
        "scales": Items(AT_LEAST_ONE, note="window sizes in patches"),
        "window_stride": AT_LEAST_ONE,
        "temperature": POSITIVE,
    }
