"""AdaCLIP: hybrid (static + dynamic) learnable prompts for zero-shot anomaly detection (Cao et al., ECCV 2024)."""
