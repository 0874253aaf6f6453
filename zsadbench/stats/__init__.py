"""Statistics that say whether a difference between methods is real.

* :mod:`.bootstrap`: per-cell bootstrap confidence intervals, resampling test images (stratified by label),
  exact per resample (:mod:`.histograms` turns the stored 16-bit maps into per-image histograms);
* :mod:`.paired`: paired bootstrap of a difference per dataset, and DeLong's test for image AUROC;
* :mod:`.ranking`: Friedman's test across datasets with Nemenyi or Wilcoxon–Holm post-hoc tests;
* :mod:`.cd_diagram`: Demšar's critical-difference diagram;
* :mod:`.results` reads a results folder (variants, cells, artifacts) and :mod:`.cache` keeps the replicates in
  ``OUT/stats``.

Nothing here imports torch; the CLI commands are ``zsadbench compare``, ``rank`` and ``intervals``.
"""
