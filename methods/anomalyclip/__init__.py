"""AnomalyCLIP: object-agnostic prompt learning for zero-shot anomaly detection (Zhou et al., ICLR 2024)."""
