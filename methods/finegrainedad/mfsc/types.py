"""The MFSC caption records: frozen dataclasses mirroring ``schema.json``, with a dict round trip.

``from_dict`` validates against the schema first (see :mod:`.validate`); ``to_dict`` writes the same layout
back, so ``MFSCCaptions.from_dict(c.to_dict()) == c``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import CaptionsError


@dataclass(frozen=True)
class AttributeValue:
    """One attribute value: a single base value, or an extension joining 2-4 base values.

    ``base`` holds vocabulary words of the attribute; ``joiner`` ("and", "or", "with") is ``None`` for a
    single base value. ``text`` is the phrase used in prompts, e.g. ``"silver with black"``.
    """

    base: tuple[str, ...]
    joiner: str | None = None

    @property
    def is_extension(self) -> bool:
        """True when the value joins several base values."""
        return self.joiner is not None

    @property
    def text(self) -> str:
        """The value as a phrase: the base values joined by the joiner."""
        return f" {self.joiner} ".join(self.base) if self.joiner else self.base[0]

    def to_json(self) -> str | dict[str, Any]:
        """A base value as its string; an extension as ``{"base": [...], "joiner": ...}``."""
        return {"base": list(self.base), "joiner": self.joiner} if self.joiner else self.base[0]

    @classmethod
    def from_json(cls, value: str | dict[str, Any]) -> AttributeValue:
        """The inverse of :meth:`to_json` (on already validated data)."""
        if isinstance(value, str):
            return cls((value,))
        return cls(tuple(value["base"]), value["joiner"])


@dataclass(frozen=True)
class Source:
    """Where the captions come from: ``kind`` "written" or "generated" (then with ``model`` and ``image``), or
    "released" (read from FineGrainedAD's released caption file, see :mod:`.released`)."""

    kind: str
    model: str | None = None
    image: str | None = None

    def to_dict(self) -> dict[str, str]:
        return {k: v for k, v in (("kind", self.kind), ("model", self.model), ("image", self.image)) if v is not None}


@dataclass(frozen=True)
class ImageView:
    """Level 1: the foreground and the background of the image, as short phrases."""

    foreground: str
    background: str


@dataclass(frozen=True)
class Entity:
    """A visual component of the foreground with its count and location."""

    name: str
    number: AttributeValue
    location: AttributeValue


@dataclass(frozen=True)
class ForegroundView:
    """Level 2: the foreground's entities and the logical relation between them."""

    entities: tuple[Entity, ...]
    relation: str

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.entities)

    @property
    def numbers(self) -> tuple[AttributeValue, ...]:
        return tuple(e.number for e in self.entities)

    @property
    def locations(self) -> tuple[AttributeValue, ...]:
        return tuple(e.location for e in self.entities)


@dataclass(frozen=True)
class Component:
    """Level 3 for one entity: its direction, colour, texture and shape, and a one-sentence caption."""

    entity: str
    direction: AttributeValue
    colour: AttributeValue
    texture: AttributeValue
    shape: AttributeValue
    caption: str


@dataclass(frozen=True)
class ComponentView:
    """Level 3: one :class:`Component` per foreground entity, in the entities' order."""

    components: tuple[Component, ...]

    @property
    def captions(self) -> tuple[str, ...]:
        return tuple(c.caption for c in self.components)


#: the attribute fields, grouped by the record that holds them
ENTITY_ATTRIBUTES = ("number", "location")
COMPONENT_ATTRIBUTES = ("direction", "colour", "texture", "shape")


@dataclass(frozen=True)
class MFSCCaptions:
    """The MFSC captions of one category of one dataset.

    ``vocabularies`` (attribute → values) replaces the schema's vocabulary of those attributes: the released
    captions bring their own lists, from which the official code draws abnormal values.
    """

    dataset: str
    category: str
    source: Source
    image_view: ImageView
    foreground_view: ForegroundView
    component_view: ComponentView
    summary: str
    vocabularies: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def values(self, attribute: str) -> tuple[str, ...]:
        """The distinct base values of ``attribute`` over every entity, in order of first use.

        ``attribute`` is one of number, location, direction, colour, texture, shape.
        """
        if attribute in ENTITY_ATTRIBUTES:
            records: tuple[Any, ...] = self.foreground_view.entities
        elif attribute in COMPONENT_ATTRIBUTES:
            records = self.component_view.components
        else:
            raise CaptionsError(f"{attribute!r} is not an MFSC attribute; use one of "
                           f"{', '.join(ENTITY_ATTRIBUTES + COMPONENT_ATTRIBUTES)}")
        return tuple(dict.fromkeys(b for r in records for b in getattr(r, attribute).base))

    def abnormal_values(self, attribute: str) -> tuple[str, ...]:
        """The base values of ``attribute``'s vocabulary that no entity of this category has, in vocabulary order
        (the replacement values of abnormal handcrafted prompts)."""
        from .validate import vocabulary

        own = set(self.values(attribute))
        values = dict(self.vocabularies).get(attribute) or vocabulary(attribute)
        return tuple(v for v in values if v not in own)

    def to_dict(self) -> dict[str, Any]:
        """The file layout of ``schema.json``."""
        fg = self.foreground_view
        return {
            "version": 1,
            "dataset": self.dataset,
            "category": self.category,
            "source": self.source.to_dict(),
            "image_view": {"foreground": self.image_view.foreground, "background": self.image_view.background},
            "foreground_view": {
                "entities": [
                    {"name": e.name, "number": e.number.to_json(), "location": e.location.to_json()}
                    for e in fg.entities
                ],
                "relation": fg.relation,
            },
            "component_view": {
                "components": [
                    {"entity": c.entity, **{a: getattr(c, a).to_json() for a in COMPONENT_ATTRIBUTES},
                     "caption": c.caption}
                    for c in self.component_view.components
                ],
            },
            "summary": self.summary,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "captions") -> MFSCCaptions:
        """Validate ``data`` against the schema (errors name ``where``) and build the record."""
        from .validate import validate

        return validate(data, where)


def build(data: dict[str, Any]) -> MFSCCaptions:
    """The record of a dict already checked against the schema."""
    attr = AttributeValue.from_json
    fg, comp = data["foreground_view"], data["component_view"]
    return MFSCCaptions(
        dataset=data["dataset"],
        category=data["category"],
        source=Source(**data["source"]),
        image_view=ImageView(data["image_view"]["foreground"], data["image_view"]["background"]),
        foreground_view=ForegroundView(
            tuple(Entity(e["name"], attr(e["number"]), attr(e["location"])) for e in fg["entities"]),
            fg["relation"],
        ),
        component_view=ComponentView(tuple(
            Component(c["entity"], *(attr(c[a]) for a in COMPONENT_ATTRIBUTES), c["caption"])
            for c in comp["components"]
        )),
        summary=data["summary"],
    )
