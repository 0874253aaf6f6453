"""FAPrompt: fine-grained abnormality prompt learning for zero-shot anomaly detection (Zhu et al., ICCV 2025)."""
