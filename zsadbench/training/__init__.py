"""Training machinery shared by every method that learns: the epoch engine, losses, targets and state checks.

- :class:`EpochTrainer` runs a fit's :class:`Stage` objects with per-epoch checkpoints, resume after a kill,
  the RNG states, progress and a finite-loss check; :func:`epoch_seed` derives each epoch's shuffling seed;
- :func:`focal_loss`, :func:`dice_loss` and :func:`targets` (binary masks and labels of a training batch);
- :class:`FrozenBackboneModel`, the base of a network around a frozen backbone, and :func:`check_layers`;
- :func:`check_state`, the check of a learned state before it is loaded.

A frozen tower's outputs come from :func:`zsadbench.backbones.cached_taps` through ``FitData.features``.
"""
from .engine import EpochTrainer, Stage, epoch_seed, restore_rng, rng_state
from .frozen import FrozenBackboneModel, check_layers
from .losses import dice_loss, focal_loss
from .state import check_state
from .targets import targets

__all__ = [
    "EpochTrainer",
    "FrozenBackboneModel",
    "Stage",
    "check_layers",
    "check_state",
    "dice_loss",
    "epoch_seed",
    "focal_loss",
    "restore_rng",
    "rng_state",
    "targets",
]
