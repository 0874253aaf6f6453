"""The captions as FineGrainedAD releases them: ``PromptAD/fine_grained_prompts.py`` of its repository.

That file is Python, so it is parsed, never run: only its literal assignments are read (``ast.literal_eval``).
It holds ``fine_grained_normal_prompts_v3`` (one record per category: ``Level_1`` foreground and background,
``Level_2`` entities with number, location and relation, ``Level_3`` direction, colour, texture and shape lists
with a caption per entity, and a ``caption``), ``total_classes2id`` (category → record index) and the attribute
lists the official code draws abnormal values from (``fine_grained_color_list`` …).

Each record becomes an :class:`~.types.MFSCCaptions` with the file's attribute lists as its vocabularies. A
``Level_3`` list with one value per entity gives each entity its value; a longer list for a single entity (e.g. a
two-coloured capsule) becomes one value joining them with "and"; a single value for several entities is shared.
"""
from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import CaptionsError, MissingCaptionsError
from .types import (
    AttributeValue,
    Component,
    ComponentView,
    Entity,
    ForegroundView,
    ImageView,
    MFSCCaptions,
    Source,
)

FILE_NAME = "fine_grained_prompts.py"
RECORDS = "fine_grained_normal_prompts_v3"
INDEX = "total_classes2id"
#: our attribute → the released list of its values
VOCABULARIES = {"colour": "fine_grained_color_list", "texture": "fine_grained_texture_list",
                "shape": "fine_grained_shape_list", "location": "fine_grained_location_list",
                "number": "fine_grained_number_list"}
#: our component attribute → the released Level_3 key
LEVEL_3 = {"direction": "direction", "colour": "color", "texture": "texture", "shape": "shape"}


def is_released(path: Path | str) -> bool:
    """Whether ``captions_dir`` names the released file (or a folder holding it, e.g. a checkout's ``PromptAD``)."""
    path = Path(path).expanduser()
    return path.suffix == ".py" or (path / FILE_NAME).is_file()


def released_file(path: Path | str) -> Path:
    """The released file ``path`` names: itself, or ``FILE_NAME`` in it."""
    path = Path(path).expanduser()
    return path if path.suffix == ".py" else path / FILE_NAME


def load_released(path: Path | str, dataset: str, category: str) -> MFSCCaptions:
    """The captions of ``category`` from the released file at ``path`` (recorded under ``dataset``).

    Raises :class:`MissingCaptionsError` when the file has no record for the category and :class:`CaptionsError`
    naming the file, the category and the field when it cannot be read.
    """
    file = released_file(path).resolve()
    tables = _tables(file)
    index = tables[INDEX]
    if category not in index:
        raise MissingCaptionsError(f"{file}: {INDEX} has no {category!r} (it has {', '.join(sorted(index))})")
    records = tables[RECORDS]
    position = index[category]
    if not isinstance(position, int) or not 0 <= position < len(records):
        raise CaptionsError(f"{file}: {INDEX}[{category!r}] = {position!r} is not an index of {RECORDS} "
                            f"({len(records)} records); fix the index")
    vocabularies = tuple((ours, tuple(tables[name])) for ours, name in VOCABULARIES.items() if name in tables)
    return _captions(records[position], f"{file}: {RECORDS}[{position}] ({category})", dataset, category,
                     vocabularies)


def _tables(file: Path) -> dict[str, Any]:
    """The literal top-level assignments of the released file (parsed once per version of the file)."""
    try:
        stat = file.stat()
    except FileNotFoundError:
        raise CaptionsError(f"{file}: no such file; set captions_dir to FineGrainedAD's {FILE_NAME} (or the folder "
                            "holding it) or to a folder of caption JSON files") from None
    return _parsed(file, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=4)
def _parsed(file: Path, mtime_ns: int, size: int) -> dict[str, Any]:
    try:
        tree = ast.parse(file.read_text(encoding="utf-8"), str(file))
    except (OSError, UnicodeDecodeError, SyntaxError) as exc:
        raise CaptionsError(f"{file}: cannot be read as the released caption file ({exc}); check the file") from None
    tables: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in (RECORDS, INDEX, *VOCABULARIES.values()):
                try:
                    tables[name] = ast.literal_eval(node.value)
                except ValueError:
                    raise CaptionsError(f"{file}: {name} is not a literal (line {node.lineno}); the released file "
                                        "holds plain lists and dicts") from None
    for name, kind in ((RECORDS, list), (INDEX, dict)):
        if not isinstance(tables.get(name), kind):
            raise CaptionsError(f"{file}: no {kind.__name__} assigned to {name}; is this FineGrainedAD's {FILE_NAME}?")
    return tables


def _field(record: dict[str, Any], level: str, key: str, where: str) -> Any:
    try:
        return record[level][0][key]
    except (KeyError, IndexError, TypeError):
        raise CaptionsError(f"{where}: {level}[0].{key} is missing; the released records have it") from None


def _texts(values: Any, where: str) -> list[str]:
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v.strip() for v in values):
        raise CaptionsError(f"{where}: expected a non-empty list of words, got {values!r}")
    return [v.strip() for v in values]


def _per_entity(values: list[str], count: int, where: str) -> list[AttributeValue]:
    if len(values) == count:
        return [AttributeValue((v,)) for v in values]
    if len(values) == 1:
        return [AttributeValue((values[0],))] * count
    if count == 1:
        return [AttributeValue(tuple(dict.fromkeys(values)), "and")]
    raise CaptionsError(f"{where}: {len(values)} values for {count} entities; give one per entity or one for all")


def _captions(record: Any, where: str, dataset: str, category: str,
              vocabularies: tuple[tuple[str, tuple[str, ...]], ...]) -> MFSCCaptions:
    if not isinstance(record, dict):
        raise CaptionsError(f"{where}: expected a dict with Level_1, Level_2, Level_3 and caption")
    names = _texts(_field(record, "Level_2", "entity", where), f"{where}: Level_2[0].entity")
    count = len(names)
    numbers = _per_entity(_texts(_field(record, "Level_2", "number", where), f"{where}: Level_2[0].number"),
                          count, f"{where}: Level_2[0].number")
    locations = _per_entity(_texts(_field(record, "Level_2", "location", where), f"{where}: Level_2[0].location"),
                            count, f"{where}: Level_2[0].location")
    level_3 = {ours: _per_entity(_texts(_field(record, "Level_3", key, where), f"{where}: Level_3[0].{key}"), count,
                                 f"{where}: Level_3[0].{key}")
               for ours, key in LEVEL_3.items()}
    try:
        entity_captions = record["Level_3"][0]["entity_caption"]
    except (KeyError, IndexError, TypeError):
        entity_captions = _field(record, "Level_2", "entity_caption", where)
    entity_captions = _texts(entity_captions, f"{where}: entity_caption")
    if len(entity_captions) != count:
        raise CaptionsError(f"{where}: {len(entity_captions)} entity captions for {count} entities; give one each")
    summary = record.get("caption")
    if not isinstance(summary, str) or not summary.strip():
        raise CaptionsError(f"{where}: caption is missing; the released records end with the image's caption")
    relation = _field(record, "Level_2", "relation", where)
    return MFSCCaptions(
        dataset=dataset,
        category=category,
        source=Source("released"),
        image_view=ImageView(str(_field(record, "Level_1", "foreground", where)),
                             str(_field(record, "Level_1", "background", where))),
        foreground_view=ForegroundView(tuple(Entity(n, num, loc) for n, num, loc in zip(names, numbers, locations)),
                                       str(relation)),
        component_view=ComponentView(tuple(
            Component(name, level_3["direction"][i], level_3["colour"][i], level_3["texture"][i],
                      level_3["shape"][i], entity_captions[i].strip())
            for i, name in enumerate(names))),
        summary=summary.strip(),
        vocabularies=vocabularies,
    )
