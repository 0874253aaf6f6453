"""WinCLIP's compositional prompt ensemble: state words × photo templates.

The lists follow anomalib's WinCLIP (``prompting.py``), itself taken from the paper's supplementary
material. The template "a jpeg corrupted photo of the {}." appears twice there; the duplicate is kept so
that the class embeddings (means over the ensemble) weigh the prompts exactly as the reference does.
"""
from __future__ import annotations

NORMAL_STATES: tuple[str, ...] = (
    "{}",
    "flawless {}",
    "perfect {}",
    "unblemished {}",
    "{} without flaw",
    "{} without defect",
    "{} without damage",
)

ANOMALOUS_STATES: tuple[str, ...] = (
    "damaged {}",
    "{} with flaw",
    "{} with defect",
    "{} with damage",
)

TEMPLATES: tuple[str, ...] = (
    "a cropped photo of the {}.",
    "a close-up photo of a {}.",
    "a close-up photo of the {}.",
    "a bright photo of a {}.",
    "a bright photo of the {}.",
    "a dark photo of the {}.",
    "a dark photo of a {}.",
    "a jpeg corrupted photo of the {}.",
    "a jpeg corrupted photo of the {}.",
    "a blurry photo of the {}.",
    "a blurry photo of a {}.",
    "a photo of a {}.",
    "a photo of the {}.",
    "a photo of a small {}.",
    "a photo of the small {}.",
    "a photo of a large {}.",
    "a photo of the large {}.",
    "a photo of the {} for visual inspection.",
    "a photo of a {} for visual inspection.",
    "a photo of the {} for anomaly detection.",
    "a photo of a {} for anomaly detection.",
)


def prompt_name(category: str, object_agnostic: bool = False) -> str:
    """The word(s) put into the prompts: ``"object"``, or the category with underscores as spaces."""
    name = category.replace("_", " ").strip()
    return "object" if object_agnostic or not name else name


def prompt_ensemble(name: str) -> tuple[list[str], list[str]]:
    """All normal and all anomalous prompts for ``name``, grouped by state (state-major order)."""
    normal = [t.format(s.format(name)) for s in NORMAL_STATES for t in TEMPLATES]
    anomalous = [t.format(s.format(name)) for s in ANOMALOUS_STATES for t in TEMPLATES]
    return normal, anomalous
