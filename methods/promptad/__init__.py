"""PromptAD: learning prompts with only normal samples for few-shot anomaly detection (Li et al., CVPR 2024).

The names below are the extension surface of this method: what a method that extends PromptAD
(FineGrainedAD in :mod:`zsadbench.methods.finegrainedad`) builds on, kept stable for it and for third-party
plugins. Import them from this package, not from its modules; everything else here is internal.

- the method and its config: :class:`PromptAD` (subclasses override ``_build_head``, ``_phases``,
  ``_trained_modules``, ``_extra_state``), :class:`PromptADConfig`;
- training: :class:`Phase` (one full-batch SGD phase);
- visual features: :class:`VisualFeatures`, :func:`extract` (through the feature cache);
- prompts: :class:`GroupTexts`, :class:`GroupFeatures`, :class:`PromptBank`, :func:`abnormal_states`;
- scoring and losses: :class:`Scores`, :func:`logit_scale`, :func:`memory_score`, :func:`text_score`,
  :func:`mean_alignment_loss`, :func:`token_summed_triplet_loss`, :func:`triplet_loss`, :func:`v2t_loss`.
"""
from .config import PromptADConfig
from .features import VisualFeatures, extract
from .losses import mean_alignment_loss, token_summed_triplet_loss, triplet_loss, v2t_loss
from .method import PromptAD
from .model import Scores, logit_scale
from .prompts import GroupFeatures, GroupTexts, PromptBank
from .scoring import memory_score, text_score
from .states import abnormal_states
from .training import Phase

__all__ = [
    "GroupFeatures",
    "GroupTexts",
    "Phase",
    "PromptAD",
    "PromptADConfig",
    "PromptBank",
    "Scores",
    "VisualFeatures",
    "abnormal_states",
    "extract",
    "logit_scale",
    "mean_alignment_loss",
    "memory_score",
    "text_score",
    "token_summed_triplet_loss",
    "triplet_loss",
    "v2t_loss",
]
