"""VAND / APRIL-GAN: zero-/few-shot anomaly classification and segmentation with CLIP (Chen et al., 2023)."""
