"""Multi-level learnable prompts (MLLP): the prompt bodies of every level, built from a category's MFSC captions.

Levels (in this order, which is also the order of the Query Former's queries): ``image`` (the summary),
``foreground`` (the logical relation of the entities), ``background`` and one ``component:<i>`` per entity (its
caption). Each level has normal handcrafted prompts (the caption itself), abnormal handcrafted prompts and
abnormal learnable prompts (the caption after the learnable abnormal context); every prompt starts with the
shared learnable normal context. Abnormal handcrafted prompts come from two mechanisms:

- *concatenation*: the foreground, an entity or the background followed by an abnormal state
  (``"{entity} with flaw"``, the category's own defect phrases for MVTec AD and VisA);
- *replacement*: an attribute value of the caption (colour, texture, shape, number) swapped for a value of the
  attribute's vocabulary that no entity of the category has, chosen by a generator seeded from the category.

With attribute prompts, each component also gets one group per attribute: normal ``"{value} {entity}"`` and
abnormal ``"{other value} {entity}"``; :class:`~.model.AttributeMixer` weighs them into the component's features.
"""
from __future__ import annotations

import random
import re

from zsadbench.methods.promptad import GroupTexts, abnormal_states

from .mfsc import MFSCCaptions

COMPONENT_ATTRIBUTES = ("colour", "texture", "shape", "direction")
_REPLACED = ("colour", "texture", "shape")


def level_names(captions: MFSCCaptions) -> list[str]:
    """``image``, ``foreground``, ``background``, then ``component:0`` .. ``component:E-1``."""
    return ["image", "foreground", "background"] + [f"component:{i}" for i in range(len(captions.component_view.components))]


def _swap(text: str, old: str, new: str) -> str | None:
    """``text`` with the first whole-word occurrence of ``old`` (any case) replaced by ``new``; None if absent."""
    pattern = re.compile(rf"\b{re.escape(old)}\b", re.IGNORECASE)
    return pattern.sub(new, text, count=1) if pattern.search(text) else None


def _concatenated(text: str, target: str, states: tuple[str, ...]) -> list[str]:
    """Concatenation: ``target`` in ``text`` becomes ``state(target)``; when absent, the state phrase is appended."""
    out = []
    for state in states:
        phrase = state.format(target)
        swapped = _swap(text, target, phrase)
        out.append(swapped if swapped is not None else f"{text.rstrip('.')}, {phrase}")
    return out


def _replaced(text: str, captions: MFSCCaptions, attributes: tuple[str, ...], rng: random.Random) -> list[str]:
    """Replacement: each attribute value found in ``text`` swapped for a random abnormal value of that attribute."""
    out = []
    for attribute in attributes:
        others = captions.abnormal_values(attribute)
        for value in captions.values(attribute):
            swapped = _swap(text, value, rng.choice(others)) if others else None
            if swapped is not None:
                out.append(swapped)
    return out


def mllp_texts(captions: MFSCCaptions, *, class_specific: bool = True, attribute_prompts: bool = True,
               n_attr_abnormal: int = 4) -> dict[str, GroupTexts]:
    """Every prompt group of a category: the levels of :func:`level_names`, then ``attr:<i>:<attribute>`` groups."""
    rng = random.Random(f"{captions.dataset}/{captions.category}")
    states = abnormal_states(captions.dataset, captions.category, class_specific=class_specific)
    generic = abnormal_states("", "")
    foreground = captions.image_view.foreground
    background = f"{captions.image_view.background} background"
    summary = captions.summary
    relation = captions.foreground_view.relation
    groups = {
        "image": GroupTexts(
            (summary,),
            tuple(_concatenated(summary, foreground, states) + _replaced(summary, captions, _REPLACED, rng)),
            (summary,),
        ),
        "foreground": GroupTexts(
            (relation,),
            tuple(name for entity in captions.foreground_view.names for name in _concatenated(relation, entity, generic))
            + tuple(_replaced(relation, captions, ("number",), rng)),
            (relation,),
        ),
        "background": GroupTexts((background,), tuple(s.format(background) for s in generic), (background,)),
    }
    for i, component in enumerate(captions.component_view.components):
        caption = component.caption
        groups[f"component:{i}"] = GroupTexts(
            (caption,),
            tuple(_concatenated(caption, component.entity, generic) + _replaced(caption, captions, _REPLACED, rng)),
            (caption,),
        )
    if attribute_prompts:
        for i, component in enumerate(captions.component_view.components):
            for attribute in COMPONENT_ATTRIBUTES:
                others = list(captions.abnormal_values(attribute))
                rng.shuffle(others)
                value = getattr(component, attribute).text
                abnormal = tuple(f"{v} {component.entity}" for v in others[:n_attr_abnormal])
                if abnormal:
                    groups[f"attr:{i}:{attribute}"] = GroupTexts((f"{value} {component.entity}",), abnormal, ())
    return groups
