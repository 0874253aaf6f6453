"""zsadbench's side of the comparison of FineGrainedAD's released region clustering (``as_shipped``): the fixed
support tokens, the entity and background features, and zsadbench's stages, written with its own functions.

Shared by ``finegrainedad_regions.py`` (which runs the official clustering beside it and stores the official stages)
and by ``tests/methods/test_official_regions.py`` (which checks these stages against the stored ones).

The similarities are quantised to eighths, so many tokens coincide: the ties of the released density arithmetic
(every density is 1 in the first stage, where k = 1 counts only the token itself) are what is compared, and all
the distances stay exact in float32 on any machine.
"""
from __future__ import annotations

import numpy as np
import torch

from zsadbench.methods.finegrainedad.regions import effective_k, shipped_labels

SEED = 0
NOISE_SEED = 1
SHOTS = 3
TOKENS = 64
WIDTH = 16
ENTITIES = 3
K1, K2 = 8, 5  # the released CTM's k of its two stages
STAGES = ("stage1", "foreground", "labels")
RECORD = {"seed": SEED, "noise_seed": NOISE_SEED, "shots": SHOTS, "tokens": TOKENS, "width": WIDTH,
          "entities": ENTITIES, "k1": K1, "k2": K2}


def inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(tokens [SHOTS, TOKENS, WIDTH], anchors [ENTITIES + 1, WIDTH], sim [SHOTS, TOKENS, ENTITIES + 1])``: each
    token is an anchor plus noise, the background for the first third of the tokens, but for the last third in the
    last shot (so that shot keeps its own split in the released code); ``sim`` their cosine similarities rounded to
    eighths."""
    generator = torch.Generator().manual_seed(SEED)
    anchors = torch.nn.functional.normalize(torch.randn(ENTITIES + 1, WIDTH, generator=generator), dim=-1)
    owner = torch.randint(0, ENTITIES + 1, (SHOTS, TOKENS), generator=generator)
    owner[:-1, : TOKENS // 3] = ENTITIES
    owner[-1, -(TOKENS // 3):] = ENTITIES
    tokens = anchors[owner] + 0.4 * torch.randn(SHOTS, TOKENS, WIDTH, generator=generator)
    unit = torch.nn.functional.normalize(tokens, dim=-1)
    sim = torch.round(unit @ anchors.T * 8) / 8
    return tokens, anchors, sim


def stage1_labels(sim: torch.Tensor) -> torch.Tensor:
    """The first stage alone (two clusters, the released k), with the noise drawn after seeding ``NOISE_SEED``."""
    from zsadbench.clustering import dpc_knn

    generator = torch.Generator().manual_seed(NOISE_SEED)
    return dpc_knn(sim, 2, k=effective_k(K1, 2), include_self=True, assign="nearest", scale=sim.shape[-1] ** -0.5,
                   density_noise=1e-6, generator=generator, density="tcformer").labels


def our_stages() -> dict[str, np.ndarray]:
    """zsadbench's stage-1 labels ``[K, T]``, foreground ``[K, T]`` (as 0/1) and stage-2 labels ``[K, T]``."""
    tokens, anchors, sim = inputs()
    foreground, labels = shipped_labels(sim, tokens, anchors[-1], K1, K2, torch.Generator().manual_seed(NOISE_SEED))
    stages = {"stage1": stage1_labels(sim), "foreground": foreground.long(), "labels": labels}
    return {name: stages[name].numpy() for name in STAGES}
