"""PromptAD: learning prompts with only normal samples for few-shot anomaly detection (Li et al., CVPR 2024)."""
