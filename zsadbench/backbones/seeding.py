"""Random initialisation that depends on the model alone.

A random-weight backbone (``pretrained="none"``) is built under a generator seeded from its architecture
name, inside a forked RNG state: the same name always gives the same weights, whatever the process ran
before, and the caller's generators are left untouched.
"""
from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

import torch


def init_seed(name: str) -> int:
    """The seed of ``name``'s random initialisation."""
    return int.from_bytes(hashlib.sha256(f"zsadbench-init|{name}".encode()).digest()[:8], "little") % 2**63


@contextlib.contextmanager
def seeded_init(name: str) -> Iterator[None]:
    """Run the body with torch's CPU generator seeded from ``name``, restoring the previous state after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed(name))
        yield
