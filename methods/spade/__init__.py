"""SPADE: sub-image anomaly detection with deep pyramid correspondences (Cohen and Hoshen, 2020)."""
