"""AnomalyCLIP: object-agnostic prompt learning for zero-shot anomaly detection (Zhou et al., ICLR 2024).

The names below are the extension surface of this method: what a method that extends AnomalyCLIP (MPA and
MPAMA in :mod:`zsadbench.methods.mpama`) builds on, kept stable for them and for third-party plugins. Import
them from this package, not from its modules; everything else here is internal.

- prompts: :class:`PromptTokens` (frozen token ids and embeddings of prompt strings, encoded with learnable
  context), :func:`prompt_texts`, :func:`deep_prompt_list`, :func:`check_text_depth`;
- the frozen tower: :func:`tower_features` / :class:`TowerFeatures` (raw CLS and ``ln_post`` V-V patches,
  through the feature cache), :func:`check_tower`;
- scoring: :func:`two_class_logits`, :func:`patch_probabilities`;
- losses: :func:`local_loss` (focal + two Dice terms), :func:`global_loss` (image cross-entropy);
- config: :data:`PROMPT_LEARNING_CONSTRAINTS` and :data:`DEEP_TOKENS_FIT_CONTEXT`, the allowed values of the
  fields an AnomalyCLIP-style config shares.
"""
from .config import DEEP_TOKENS_FIT_CONTEXT, PROMPT_LEARNING_CONSTRAINTS
from .losses import global_loss, local_loss
from .prompts import PromptTokens, check_text_depth, deep_prompt_list, prompt_texts
from .scoring import patch_probabilities, two_class_logits
from .visual import TowerFeatures, check_tower, tower_features

__all__ = [
    "DEEP_TOKENS_FIT_CONTEXT",
    "PROMPT_LEARNING_CONSTRAINTS",
    "PromptTokens",
    "TowerFeatures",
    "check_text_depth",
    "check_tower",
    "deep_prompt_list",
    "global_loss",
    "local_loss",
    "patch_probabilities",
    "prompt_texts",
    "tower_features",
    "two_class_logits",
]
