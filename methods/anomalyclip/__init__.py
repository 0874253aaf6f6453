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
from zsadbench.lazy import surface

#: Where each name of the surface lives; it is imported from there on first use.
_WHERE = {
    "DEEP_TOKENS_FIT_CONTEXT": ".config",
    "PROMPT_LEARNING_CONSTRAINTS": ".config",
    "PromptTokens": ".prompts",
    "TowerFeatures": ".visual",
    "check_text_depth": ".prompts",
    "check_tower": ".visual",
    "deep_prompt_list": ".prompts",
    "global_loss": ".losses",
    "local_loss": ".losses",
    "patch_probabilities": ".scoring",
    "prompt_texts": ".prompts",
    "tower_features": ".visual",
    "two_class_logits": ".scoring",
}

__all__ = sorted(_WHERE)

__getattr__ = surface(__name__, _WHERE)
