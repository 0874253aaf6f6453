"""zsadbench's side of the FAPrompt comparison with the official code: the tiny model, the fixed inputs and
targets, and every stage of the computation, written with zsadbench's own functions.

Shared by ``faprompt.py`` (which runs the official code beside it and stores the official stages) and by
``tests/methods/test_official_outputs.py`` (which checks these stages against the stored ones).

The backbone is ``zsad-official-faprompt-tiny-14-336`` (the JSON file next to this module): the official prompt
learner fixes a 768-wide text tower and a 768-wide joint embedding (its prior network reads 10 × 768 inputs and
writes 768), so only the image tower is tiny (4 blocks of width 128, heads of width 64 as the official
``build_model`` requires); the text tower has 3 blocks. Its 24×24 positional grid is resized to the 8×8 grid of
the 112 px input by both codes.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from zsadbench.backbones.clip import ClipBackbone
from zsadbench.maps import smooth
from zsadbench.methods.anomalyclip import tower_features
from zsadbench.methods.faprompt.config import FAPromptConfig
from zsadbench.methods.faprompt.method import FAPrompt
from zsadbench.methods.faprompt.model import anomaly_map, image_score, text_pair
from zsadbench.methods.faprompt.training import losses

import common

BACKBONE = "zsad-official-faprompt-tiny-14-336"
#: The official design (5 normal tokens, 10 abnormality prompts of 2 tokens, a prior on 10 patches with hidden
#: width 1/16, deep prompts of 4 tokens cast to float16 as the official ``.half()`` does) on a 4-block image
#: tower and a 3-block text tower: V-V attention in the last 3 blocks (``DPAM_layer=4``), the map of block 4,
#: deep prompts before text blocks 2 and 3, the prior reading the first patches of the grid as the official code
#: does (``prior_selection="first"``), σ = 10.
CONFIG = FAPromptConfig(backbone=BACKBONE, image_size=112, layer=4, vv_last=3, deep_depth=3, deep_prompt_cast="fp16",
                        prior_selection="first")
PROMPT_SEED = 0
IMAGE_SEED = 1
NUM_IMAGES = 3
#: The images' labels in the loss stages; the anomalous ones carry the rectangles of :data:`MASK_BOXES`.
LABELS = (0, 1, 1)
MASK_BOXES = {1: (10, 40, 20, 70), 2: (60, 100, 5, 30)}
#: The stages compared, in the order of the official ``test.py``, then the loss terms of ``train.py`` on the
#: three images as one batch.
STAGES = ("text_features", "abnormal_features", "image_features", "patch_tokens", "free_probabilities",
          "prior_tokens", "prior", "conditioned_text", "conditioned_probabilities", "anomaly_map", "smoothed_map",
          "image_score", "loss_free", "loss_conditioned", "loss_global", "loss_score", "loss_orthogonal",
          "loss_prior", "loss_total")
#: The category the prompts name, and the record stored beside the official stages.
CATEGORY = "object"
RECORD = {"prompt_seed": PROMPT_SEED, "image_seed": IMAGE_SEED, "num_images": NUM_IMAGES}


def config_json() -> str:
    """:data:`CONFIG` as stored beside the official outputs."""
    return common.config_json(CONFIG)


def native_backbone() -> ClipBackbone:
    """The tiny backbone at its native 336 px, with the same seeded random weights as :func:`build_ours`'s."""
    return common.native_backbone(BACKBONE)


def build_ours(config: FAPromptConfig = CONFIG) -> FAPrompt:
    """zsadbench's FAPrompt on the tiny backbone (``config``, :data:`CONFIG` by default), prompts and prior
    network drawn after ``torch.manual_seed(PROMPT_SEED)``."""
    common.register_backbone(BACKBONE)
    torch.manual_seed(PROMPT_SEED)
    method = FAPrompt(config, pretrained="none", device="cpu").setup()
    method.load_state_dict(method.state_dict())
    return method


def query_images() -> torch.Tensor:
    """The fixed images: ``[NUM_IMAGES, 3, S, S]`` in ``[0, 1]`` from a generator seeded with ``IMAGE_SEED``."""
    return common.seeded_images(NUM_IMAGES, CONFIG.image_size, IMAGE_SEED)


def query_targets() -> tuple[torch.Tensor, torch.Tensor]:
    """The loss stages' binary masks ``[NUM_IMAGES, S, S]`` and labels ``[NUM_IMAGES]``."""
    masks = torch.zeros(NUM_IMAGES, CONFIG.image_size, CONFIG.image_size)
    for index, (top, bottom, left, right) in MASK_BOXES.items():
        masks[index, top:bottom, left:right] = 1.0
    return masks, torch.tensor(LABELS)


def our_stages(method: FAPrompt, images01: torch.Tensor) -> dict[str, np.ndarray]:
    """Every stage of zsadbench's FAPrompt on ``images01`` (float32 arrays).

    ``text_features`` ``[2, D]`` (prior-free normal and mean abnormality, L2-normalised), ``abnormal_features``
    ``[P, D]`` (raw), ``image_features`` ``[B, D]`` (final CLS @ proj), ``patch_tokens`` ``[B, N, D]`` (V-V
    stream → ``ln_post`` → proj), ``free_probabilities`` ``[B, N, 2]``, ``prior_tokens`` ``[B, k, D]`` (the
    normalised patches the prior reads), ``prior`` ``[B, W]``, ``conditioned_text`` ``[B, 2, D]``,
    ``conditioned_probabilities`` ``[B, N, 2]``, ``anomaly_map`` and ``smoothed_map`` ``[B, S, S]``,
    ``image_score`` ``[B]``, and the scalar loss terms of the images as one training batch.
    """
    model, cfg = method.model_, method.config
    masks, labels = query_targets()
    with torch.no_grad():
        tower = tower_features(model.backbone, images01, [cfg.layer], cfg.vv_last)
        normal, abnormal = model.free_text()
        out = model(tower, (normal, abnormal))
        patches = model.backbone.project(tower.patches[0])
        unit = F.normalize(patches, dim=-1)
        _, conditioned = model.prompts(model.encoder, out.prior, with_normal=False)
        summed = anomaly_map(out, cfg.image_size)
        stages = {
            "text_features": text_pair(normal, abnormal[None])[0],
            "abnormal_features": abnormal,
            "image_features": model.backbone.project(tower.cls),
            "patch_tokens": patches,
            "free_probabilities": out.free.flatten(2).transpose(1, 2),
            "prior_tokens": torch.gather(unit, 1, out.selected[..., None].expand(-1, -1, unit.shape[-1])),
            "prior": out.prior,
            "conditioned_text": text_pair(normal, conditioned),
            "conditioned_probabilities": out.conditioned.flatten(2).transpose(1, 2),
            "anomaly_map": summed,
            "smoothed_map": smooth(summed, cfg.sigma),
            "image_score": image_score(out, cfg),
        }
        stages.update({f"loss_{name}": value for name, value in losses(out, masks, labels, cfg).items()})
    return {name: value.float().cpu().numpy() for name, value in stages.items()}
