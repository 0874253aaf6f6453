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
  :func:`margin_loss`, :func:`mean_alignment_loss`, :func:`token_summed_triplet_loss`, :func:`triplet_loss`, :func:`v2t_loss`.
"""
from zsadbench.lazy import surface

#: Where each name of the surface lives; it is imported from there on first use.
_WHERE = {
    "GroupFeatures": ".prompts",
    "GroupTexts": ".prompts",
    "Phase": ".training",
    "PromptAD": ".method",
    "PromptADConfig": ".config",
    "PromptBank": ".prompts",
    "Scores": ".model",
    "VisualFeatures": ".features",
    "abnormal_states": ".states",
    "extract": ".features",
    "logit_scale": ".model",
    "margin_loss": ".losses",
    "mean_alignment_loss": ".losses",
    "memory_score": ".scoring",
    "text_score": ".scoring",
    "token_summed_triplet_loss": ".losses",
    "triplet_loss": ".losses",
    "v2t_loss": ".losses",
}

__all__ = sorted(_WHERE)

__getattr__ = surface(__name__, _WHERE)
