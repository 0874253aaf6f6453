"""PaDiM: a patch distribution modeling framework for anomaly detection and localization (Defard et al., 2020)."""
