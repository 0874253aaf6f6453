"""The MFSC schema, the records built from it, and one-line errors naming the file and the field."""
from __future__ import annotations

import copy
import json

import jsonschema
import pytest

from zsadbench.errors import ConfigError
from zsadbench.methods.finegrainedad.mfsc import (
    AttributeValue,
    CaptionsError,
    MFSCCaptions,
    attributes,
    load_captions,
    read_captions,
    schema,
    validate,
    vocabulary,
)
from zsadbench.methods.finegrainedad.mfsc.types import COMPONENT_ATTRIBUTES, ENTITY_ATTRIBUTES
from zsadbench.methods.finegrainedad.mfsc.validate import answer_schema, check


def _doc() -> dict:
    """A small valid document, written out here rather than taken from the shipped data."""
    return {
        "version": 1, "dataset": "toyset", "category": "widget", "source": {"kind": "written"},
        "image_view": {"foreground": "metal widget", "background": "plain white"},
        "foreground_view": {
            "entities": [
                {"name": "widget body", "number": "one", "location": "centre"},
                {"name": "bolts", "number": {"base": ["two", "three"], "joiner": "or"}, "location": "corners"},
            ],
            "relation": "One widget body sits in the centre with two or three bolts at its corners.",
        },
        "component_view": {"components": [
            {"entity": "widget body", "direction": "lying flat", "colour": {"base": ["silver", "black"], "joiner": "with"},
             "texture": "metallic", "shape": "square", "caption": "A silver square widget body with black marks."},
            {"entity": "bolts", "direction": "facing up", "colour": "silver", "texture": "threaded", "shape": "round",
             "caption": "Round silver bolts with threads sit at the corners."},
        ]},
        "summary": "A silver square metal widget with black marks and bolts at its corners on a white background.",
    }


def test_schema_is_a_valid_draft_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(schema())
    jsonschema.validate(_doc(), schema())


def test_record_field_names_are_the_schema_field_names():
    record = validate(_doc(), "doc")
    data = record.to_dict()
    defs = schema()["$defs"]
    assert set(data) == set(schema()["properties"])
    assert set(data["image_view"]) == set(defs["image_view"]["properties"])
    assert set(data["foreground_view"]) == set(defs["foreground_view"]["properties"])
    assert set(data["foreground_view"]["entities"][0]) == set(defs["entity"]["properties"])
    assert set(data["component_view"]["components"][0]) == set(defs["component"]["properties"])
    assert set(attributes()) == set(ENTITY_ATTRIBUTES + COMPONENT_ATTRIBUTES)


def test_round_trip_and_values():
    record = MFSCCaptions.from_dict(_doc())
    assert MFSCCaptions.from_dict(record.to_dict()) == record
    assert record.to_dict() == _doc()
    body = record.component_view.components[0]
    assert body.colour == AttributeValue(("silver", "black"), "with")
    assert body.colour.text == "silver with black" and body.colour.is_extension
    assert record.foreground_view.numbers[1].text == "two or three"
    assert record.foreground_view.names == ("widget body", "bolts")
    assert record.component_view.captions[1].startswith("Round silver bolts")
    assert record.values("colour") == ("silver", "black")  # distinct, in order of first use
    assert record.values("number") == ("one", "two", "three")


def test_abnormal_values_are_the_rest_of_the_vocabulary():
    record = validate(_doc(), "doc")
    colours = vocabulary("colour")
    expected = tuple(c for c in colours if c not in ("silver", "black"))
    assert record.abnormal_values("colour") == expected
    assert len(expected) == len(colours) - 2
    with pytest.raises(CaptionsError, match="'smell' is not an MFSC attribute"):
        record.values("smell")


def test_vocabularies_come_from_the_schema():
    for name in attributes():
        assert vocabulary(name) == tuple(schema()["$defs"][f"{name}_base"]["enum"])
        assert len(set(vocabulary(name))) == len(vocabulary(name))
    with pytest.raises(CaptionsError, match="not an MFSC attribute"):
        vocabulary("weight")


def _set(path, value):
    def mutate(doc):
        *parents, last = path
        target = doc
        for key in parents:
            target = target[key]
        if value is _DELETE:
            del target[last]
        else:
            target[last] = value
    return mutate


_DELETE = object()
_COLOUR = ("component_view", "components", 0, "colour")

VIOLATIONS = [
    (_set(_COLOUR, "purplish"), "component_view.components[0].colour", "'purplish' is not a colour base value"),
    (_set(_COLOUR, {"base": ["red"], "joiner": "and"}), "component_view.components[0].colour.base", "at least 2"),
    (_set(_COLOUR, {"base": ["red", "blue"], "joiner": "plus"}), "component_view.components[0].colour.joiner",
     "'plus' is not allowed"),
    (_set(_COLOUR, {"base": ["red", "bluish"], "joiner": "and"}), "component_view.components[0].colour.base[1]",
     "'bluish' is not a colour base value"),
    (_set(("component_view", "components", 1, "shape"), _DELETE), "component_view.components[1]",
     "missing field 'shape'"),
    (_set(("foreground_view", "extra"), 1), "foreground_view", "unknown field 'extra'"),
    (_set(("summary",), 3), "summary", "is a number, expected string"),
    (_set(("summary",), "x" * 400), "summary", "at most 280"),
    (_set(("image_view", "background"), " white"), "image_view.background", "no leading or trailing spaces"),
    (_set(("foreground_view", "entities", 0, "location"), "middle"), "foreground_view.entities[0].location",
     "'middle' is not a location base value"),
    (_set(("foreground_view", "entities"), []), "foreground_view.entities", "at least 1"),
    (_set(("version",), 2), "version", "must be 1"),
    (_set(("source",), {"kind": "generated"}), "source", "missing field 'model', 'image'"),
    (_set(("category",), "../escape"), "category", "wrong form; use letters, digits"),
    (_set(("component_view", "components", 1, "entity"), "nuts"), "component_view.components[1].entity",
     "one component per entity, in the same order"),
    (_set(("foreground_view", "entities", 1, "name"), "widget body"), "foreground_view.entities[1].name",
     "named twice"),
]


@pytest.mark.parametrize("mutate,field,words", VIOLATIONS)
def test_violations_name_the_file_and_the_field(mutate, field, words):
    doc = _doc()
    mutate(doc)
    with pytest.raises(CaptionsError) as info:
        validate(doc, "captions/toyset/widget.json")
    message = str(info.value)
    assert message.startswith(f"captions/toyset/widget.json: {field}: "), message
    assert words in message
    assert "\n" not in message
    assert isinstance(info.value, ConfigError)


@pytest.mark.parametrize("mutate,field,words", VIOLATIONS[:14])
def test_schema_violations_are_violations_for_jsonschema_too(mutate, field, words):
    """What the schema rejects, the reference validator rejects on the same file (one source of truth)."""
    doc = _doc()
    mutate(doc)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema())


def test_a_file_on_disk_is_named_in_its_errors(tmp_path):
    path = tmp_path / "toyset" / "widget.json"
    path.parent.mkdir()
    doc = _doc()
    doc["component_view"]["components"][0]["texture"] = "fluffy"
    path.write_text(json.dumps(doc))
    with pytest.raises(CaptionsError, match=rf"^{path}: component_view.components\[0\].texture: 'fluffy'"):
        load_captions("toyset", "widget", tmp_path)
    path.write_text('{"version": 1,\n  "dataset": }')
    with pytest.raises(CaptionsError, match=rf"^{path}: not valid JSON \(line 2, column 14"):
        read_captions(path)


def test_a_file_must_sit_where_its_fields_say(tmp_path):
    path = tmp_path / "toyset" / "gadget.json"
    path.parent.mkdir()
    path.write_text(json.dumps(_doc()))
    with pytest.raises(CaptionsError, match=r"gadget.json: category: the file says 'widget'"):
        load_captions("toyset", "gadget", tmp_path)


def test_answer_schema_drops_only_the_caller_fields():
    answer = {k: v for k, v in _doc().items() if k not in ("version", "dataset", "category", "source")}
    check(answer, "answer", answer=True)
    with pytest.raises(CaptionsError, match="^answer: .*missing field 'version'"):
        check(answer, "answer")
    assert set(answer_schema()["required"]) == {"image_view", "foreground_view", "component_view", "summary"}
    broken = copy.deepcopy(answer)
    del broken["summary"]
    with pytest.raises(CaptionsError, match=r"^answer: \(top level\): missing field 'summary'"):
        check(broken, "answer", answer=True)


def test_non_object_is_rejected():
    with pytest.raises(CaptionsError, match="^x.json: expected a JSON object with the MFSC fields, got an array$"):
        validate(["not", "an", "object"], "x.json")
