"""Exceptions raised by zsadbench.

Every error a user can cause derives from :class:`ZsadError`; the CLI prints it as
``ClassName: message`` and exits with status 1, without a traceback.
"""
from __future__ import annotations


class ZsadError(Exception):
    """Base class of all user-facing zsadbench errors."""


class ConfigError(ZsadError):
    """A bad option, config value or command-line argument."""


class PluginError(ZsadError):
    """An unknown, broken or clashing method/dataset plugin."""


class DataError(ZsadError):
    """A dataset root that is missing, has the wrong layout, or holds unreadable files."""


class WeightsError(ZsadError):
    """Pretrained weights that are missing or do not match their checksum."""


class MethodError(ZsadError):
    """A method that misbehaved while running a cell (NaN output, wrong shapes, not fitted)."""


class NotFittedError(MethodError):
    """``predict`` was called before ``fit``."""


class MetricError(ZsadError, ValueError):
    """Inputs a metric cannot be computed on (shape mismatch, NaN/inf scores, empty arrays, bad options)."""


class StoreError(ZsadError):
    """A results folder that cannot be read or written (corrupt or foreign store, full disk)."""


class DataWarning(UserWarning):
    """Data that is read, but not as it is stored (e.g. 12-bit samples in a 16-bit file, rescaled)."""
