"""Errors of the MFSC caption package; both are configuration errors of zsadbench."""
from __future__ import annotations

from zsadbench.errors import ConfigError


class CaptionsError(ConfigError):
    """A caption file or a generated answer that does not follow the MFSC schema, or a failed generation."""


class MissingCaptionsError(CaptionsError):
    """No caption file for a dataset/category in the user folder or the shipped data."""
