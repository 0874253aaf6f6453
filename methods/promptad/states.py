"""The words of PromptAD's prompts: class names as CLIP reads them, and the abnormal state phrases.

Generic states (PromptAD's eight) apply to every category; MVTec AD and VisA categories add their own defect
phrases from ``class_states.json``. Other datasets use the generic states only.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources

GENERIC_STATES: tuple[str, ...] = (
    "damaged {}", "flawed {}", "abnormal {}", "imperfect {}", "blemished {}",
    "{} with flaw", "{} with defect", "{} with damage",
)

# names whose words CLIP would not recognise as they stand in the dataset
_RENAMED = {
    "pcb1": "printed circuit board", "pcb2": "printed circuit board", "pcb3": "printed circuit board",
    "pcb4": "printed circuit board", "chewinggum": "chewing gum", "macaroni1": "macaroni", "macaroni2": "macaroni",
    "capsules": "capsules", "pipe_fryum": "pipe fryum",
}


def class_name(category: str) -> str:
    """The category as words: known renames, otherwise underscores and dashes become spaces and trailing digits go.

    >>> class_name("metal_nut"), class_name("pcb3"), class_name("Class1")
    ('metal nut', 'printed circuit board', 'class')
    """
    if category in _RENAMED:
        return _RENAMED[category]
    words = re.sub(r"[_\-]+", " ", category).strip()
    return re.sub(r"\s*\d+$", "", words).lower() or category


@lru_cache(maxsize=1)
def _table() -> dict[str, dict[str, list[str]]]:
    text = resources.files(__package__).joinpath("class_states.json").read_text(encoding="utf-8")
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_")}


def abnormal_states(dataset: str, category: str, *, class_specific: bool = True) -> tuple[str, ...]:
    """The abnormal state templates (``'{}'`` = class name) of ``dataset``/``category``: generic, then the category's."""
    own = _table().get(dataset, {}).get(category, []) if class_specific else []
    return GENERIC_STATES + tuple(s for s in own if s not in GENERIC_STATES)
