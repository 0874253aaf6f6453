"""InCTRL's training on the auxiliary set: one stage of the framework's epoch engine per number of prompts.

Stage ``k`` trains ``heads["k"]`` (AdamW) on episodes of k prompts per query; the loss is the binary focal loss of
the final score plus that of the image-level residual score. The frozen tower reads each image through
``FitData.features``, so it runs once per image whatever the number of epochs and episodes.
"""
from __future__ import annotations

import dataclasses

import torch

from zsadbench.method import FitData
from zsadbench.training import EpochTrainer, Stage

from .config import InCTRLConfig
from .episodes import AuxiliaryPool, Episode, Episodes
from .model import InCTRLModel, Prompts, Scores
from .scoring import binary_focal_loss

OWNER = "InCTRL"


def episode_scores(model: InCTRLModel, episode: Episode, pool: AuxiliaryPool, data: FitData,
                   precision: str) -> Scores:
    """The :class:`~.model.Scores` of an episode's queries against their own prompts."""
    shots = episode.prompts.shape[1]
    unique, inverse = torch.unique(torch.cat([episode.rows, episode.prompts.flatten()]), return_inverse=True)
    tower = model.tower(pool.images[unique], cache=data.features, precision=precision)
    batch = len(episode.rows)
    query = tower.take(inverse[:batch].to(tower.token.device))
    prompts = Prompts.of(tower.take(inverse[batch:].reshape(batch, shots).to(tower.token.device)))
    return model.scores(shots, query, prompts, model.text(episode.categories, precision))


def train(model: InCTRLModel, data: FitData, cfg: InCTRLConfig, precision: str) -> list[dict[str, float]]:
    """Train every ``heads["k"]`` for ``cfg.epochs`` epochs, resuming from ``data.checkpoints``; the epoch losses."""
    pool = AuxiliaryPool.collect(data, cfg.batch_size, OWNER)
    episodes = Episodes(pool, cfg.steps_per_epoch, cfg.train_shots[0])
    dealt = dataclasses.replace(data, batches=episodes.batches, num_images=cfg.steps_per_epoch * cfg.batch_size)
    trainer = EpochTrainer(dealt, OWNER, cfg.epochs * len(cfg.train_shots))

    def loss(episode: Episode) -> dict[str, torch.Tensor]:
        scores = episode_scores(model, episode, pool, data, precision)
        labels = episode.gt_label.to(scores.final.device).float()
        final = binary_focal_loss(scores.final, labels, cfg.focal_alpha, cfg.focal_gamma)
        image = binary_focal_loss(scores.image, labels, cfg.focal_alpha, cfg.focal_gamma)
        return {"total": final + image, "final": final, "image": image}

    history: list[dict[str, float]] = []
    trained: dict[str, torch.nn.Module] = {}
    model.train()
    try:
        for shots in cfg.train_shots:
            heads = model.heads[str(shots)]
            trained[f"heads.{shots}"] = heads
            episodes.shots = shots
            optimizer = torch.optim.AdamW(heads.parameters(), lr=cfg.lr, betas=tuple(cfg.betas),
                                          weight_decay=cfg.weight_decay)
            stage = Stage(f"{shots}-shot", cfg.epochs, dict(trained), optimizer, loss, batch_size=cfg.batch_size)
            history += trainer.fit(stage)
    finally:
        model.eval()
    return history
