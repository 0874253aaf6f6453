"""Checks of a learned state against the modules it is loaded into."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..errors import MethodError


def check_state(expected: Mapping[str, torch.Tensor], state: Mapping[str, Any], name: str) -> None:
    """Raise :class:`~zsadbench.errors.MethodError` naming the first key when ``state`` does not fit ``expected``
    (missing, unexpected or mis-shaped tensors); ``name`` is the method's."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or wrong:
        first = (missing or unexpected or wrong)[0]
        raise MethodError(
            f"{name} state does not fit this config ({len(missing)} missing, {len(unexpected)} unexpected, "
            f"{len(wrong)} mis-shaped keys, first {first!r}); load it with the config it was trained with"
        )
