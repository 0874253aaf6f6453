"""FineGrainedAD: few-shot anomaly detection with multi-level fine-grained semantic captions (MFSC)."""
