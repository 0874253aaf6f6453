"""Hyper-parameters of WinCLIP / WinCLIP+, with the values of anomalib's re-implementation as defaults."""
from __future__ import annotations

from dataclasses import dataclass

from zsadbench.config import MethodConfig
from zsadbench.errors import ConfigError


@dataclass(frozen=True)
class WinCLIPConfig(MethodConfig):
    """WinCLIP settings.

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

    def __post_init__(self) -> None:
        if not self.scales or any(s < 1 for s in self.scales):
            raise ConfigError(f"WinCLIPConfig.scales must be positive window sizes in patches, got {self.scales!r}")
        if self.window_stride < 1:
            raise ConfigError(f"WinCLIPConfig.window_stride must be >= 1, got {self.window_stride!r}")
        if self.temperature <= 0:
            raise ConfigError(f"WinCLIPConfig.temperature must be > 0, got {self.temperature!r}")
        if self.image_size < 1:
            raise ConfigError(f"WinCLIPConfig.image_size must be a positive number of pixels, got {self.image_size!r}")
