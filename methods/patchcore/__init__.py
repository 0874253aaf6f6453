"""PatchCore: towards total recall in industrial anomaly detection (Roth et al., CVPR 2022), few-shot.

The names below are the extension surface of this method: what the other CNN memory-bank baselines (PaDiM in
:mod:`zsadbench.methods.padim`, SPADE in :mod:`zsadbench.methods.spade`) share with it, kept stable for them and
for third-party plugins. Import them from this package, not from its modules; everything else here is internal.

- the plugin class: :class:`CnnBaseline` (few-shot, the torchvision weights, ``predict`` and ``weights_info``);
- config: :data:`CNN_CONSTRAINTS` (the allowed ``layers``, ``image_size`` and ``blur_sigma``) and
  :data:`BLUR_FITS` (the smoothing kernel fits the map);
- fitting: :func:`support_images` (the k support images, batch by batch), :func:`check_image_size`;
- features and scores: :func:`extract` (the backbone pass under the run's precision),
  :func:`nearest_neighbours` (exact Euclidean k nearest rows), :func:`smooth` (anomalib's Gaussian blur).
"""
from zsadbench.lazy import surface

#: Where each name of the surface lives; it is imported from there on first use.
_WHERE = {
    "BLUR_FITS": ".config",
    "CnnBaseline": ".base",
    "CNN_CONSTRAINTS": ".config",
    "check_image_size": ".common",
    "extract": ".common",
    "nearest_neighbours": ".common",
    "smooth": ".common",
    "support_images": ".common",
}

__all__ = sorted(_WHERE)

__getattr__ = surface(__name__, _WHERE)
