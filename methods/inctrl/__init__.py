"""InCTRL: generalist anomaly detection by in-context residual learning with few-shot sample prompts (Zhu and
Pang, CVPR 2024)."""
