"""Figures from a results folder (matplotlib, PNG and PDF).

* ``scale``: the scale-wise analysis of the MPAMA paper's Fig. 4 for any method: anomalous test images binned by
  the quartiles of their anomaly area, pixel AUROC and AUPRO per bin;
* ``experts``: expert usage (its Fig. 5) from the counts a method stores in ``method_stats["expert_usage"]``;
* ``shots``: a metric against the number of shots, mean ± std over seeds, each seed shown, for few-shot methods.
"""
from __future__ import annotations

from .experts import expert_usage, plot_experts
from .scale import plot_scale, scale_bins
from .shots import plot_shots, shot_curves
from .write import KINDS, write_plots

__all__ = ["KINDS", "expert_usage", "plot_experts", "plot_scale", "plot_shots", "scale_bins", "shot_curves",
           "write_plots"]
