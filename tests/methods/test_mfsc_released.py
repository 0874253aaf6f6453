"""Captions in the format FineGrainedAD releases them (``PromptAD/fine_grained_prompts.py``): read without running
the file, mapped onto the MFSC levels, with the file's own attribute lists as the abnormal vocabularies."""
from __future__ import annotations

import pytest

from zsadbench.methods.finegrainedad.mfsc import CaptionsError, MissingCaptionsError, load_captions
from zsadbench.methods.finegrainedad.mllp import level_names, mllp_texts

#: a small file in the released layout: two categories, a two-coloured single entity, three entities with one
#: value each, the attribute lists, comments, a __main__ block and a statement that must never run
RELEASED = '''
class_mapping = {"metal_nut": "metal nut"}
# 这里放所有类别的细粒度描述
fine_grained_normal_prompts_v3 = [
    {
    "Level_1": [{"foreground": "capsule", "background": "white"}],
    "Level_2": [{"entity": ["capsule"], "number": ["1"], "location": ["center"],
                 "relation": "The capsule is centrally located in the image."}],
    "Level_3": [{"direction": ["None"], "color": ["black", "orange"], "texture": ["smooth"],
                 "shape": ["cylindrical"],
                 "entity_caption": ["A black and orange capsule lies in the center, smooth and cylindrical."]}],
    "caption": "A single two-toned capsule, black and orange, is centered on a white background.",
    },
    {
    "Level_1": [{"foreground": "cable", "background": "pure black"}],
    "Level_2": [{"entity": ["yellow wire", "blue wire", "brown wire"], "number": ["1", "1", "1"],
                 "location": ["top right", "bottom left", "bottom right"],
                 "relation": "The yellow wire is above the blue wire and the brown wire."}],
    "Level_3": [{"direction": ["None", "None", "None"], "color": ["yellow", "blue", "brown"],
                 "texture": ["smooth", "smooth", "smooth"], "shape": ["cylindrical"],
                 "entity_caption": ["A yellow wire at the top right.", "A blue wire at the bottom left.",
                                    "A brown wire at the bottom right."]}],
    "caption": "A cable cut open shows a yellow, a blue and a brown wire on a pure black background.",
    },
]
total_classes2id = {'capsule': 0, 'cable': 1}
fine_grained_color_list = ['black', 'blue', 'brown', 'green', 'light beige', 'orange', 'yellow']
fine_grained_texture_list = ['rough', 'smooth', 'woven']
fine_grained_shape_list = ['cylindrical', 'flat', 'kidney-shaped']
fine_grained_location_list = ['bottom left', 'bottom right', 'center', 'top right', 'throughout']
fine_grained_number_list = ['1', '2', 'multiple']
open(MARKER, "w").write("ran")
if __name__ == '__main__':
    print(sorted(total_classes2id))
'''


@pytest.fixture
def released(tmp_path):
    folder = tmp_path / "PromptAD"
    folder.mkdir()
    marker = tmp_path / "marker"
    path = folder / "fine_grained_prompts.py"
    path.write_text(RELEASED.replace("MARKER", repr(str(marker))), encoding="utf-8")
    yield path
    assert not marker.exists(), "the released file was executed"


def test_a_released_record_maps_onto_the_levels(released):
    capsule = load_captions("mvtec", "capsule", released)
    assert (capsule.dataset, capsule.category, capsule.source.kind) == ("mvtec", "capsule", "released")
    assert (capsule.image_view.foreground, capsule.image_view.background) == ("capsule", "white")
    assert capsule.foreground_view.names == ("capsule",)
    assert capsule.foreground_view.relation == "The capsule is centrally located in the image."
    (component,) = capsule.component_view.components
    assert component.colour.text == "black and orange"  # two colours of one entity: one value joining them
    assert (component.texture.text, component.shape.text, component.direction.text) == ("smooth", "cylindrical", "None")
    assert component.caption.startswith("A black and orange capsule")
    assert capsule.summary.startswith("A single two-toned capsule")
    # abnormal values come from the file's list, in its order, without the entity's own
    assert capsule.abnormal_values("colour") == ("blue", "brown", "green", "light beige", "yellow")
    assert capsule.abnormal_values("shape") == ("flat", "kidney-shaped")


def test_several_entities_get_their_own_values_and_share_a_single_one(released):
    cable = load_captions("mvtec", "cable", released.parent)  # the folder holding the file works too
    components = cable.component_view.components
    assert [c.entity for c in components] == ["yellow wire", "blue wire", "brown wire"]
    assert [c.colour.text for c in components] == ["yellow", "blue", "brown"]
    assert [c.shape.text for c in components] == ["cylindrical"] * 3
    assert [e.location.text for e in cable.foreground_view.entities] == ["top right", "bottom left", "bottom right"]
    assert level_names(cable) == ["image", "foreground", "background", "component:0", "component:1", "component:2"]
    groups = mllp_texts(cable, n_attr_abnormal=10)
    abnormal = {t.removesuffix(" yellow wire") for t in groups["attr:0:colour"].handcrafted}
    assert abnormal == {"black", "green", "light beige", "orange"}  # the file's colours the cable does not have
    assert groups["component:1"].normal == ("A blue wire at the bottom left.",)


def test_a_category_the_file_lacks_falls_back_to_the_shipped_captions(released):
    assert load_captions("mvtec", "bottle", released) == load_captions("mvtec", "bottle")
    with pytest.raises(MissingCaptionsError, match="has no 'teapot'.*fine_grained_prompts.py"):
        load_captions("mvtec", "teapot", released)


@pytest.mark.parametrize("category,edit,message", [
    ("capsule", ('"relation": "The capsule is centrally located in the image."', '"where": "centre"'),
     r"\[0\] \(capsule\): Level_2\[0\].relation is missing"),
    ("cable", ('"color": ["yellow", "blue", "brown"]', '"color": ["yellow", "blue"]'),
     r"\[1\] \(cable\): Level_3\[0\].color: 2 values for 3 entities"),
    ("cable", ("total_classes2id = {'capsule': 0, 'cable': 1}", "total_classes2id = {'capsule': 0, 'cable': 7}"),
     r"total_classes2id\['cable'\] = 7 is not an index"),
    ("cable", ("total_classes2id = {'capsule': 0, 'cable': 1}", "total_classes2id = dict(capsule=0, cable=1)"),
     "total_classes2id is not a literal"),
])
def test_a_broken_file_names_the_file_the_record_and_the_field(released, category, edit, message):
    load_captions("mvtec", category, released)  # read once intact: an edited file is read again
    text = released.read_text()
    assert edit[0] in text
    released.write_text(text.replace(*edit))
    with pytest.raises(CaptionsError, match=message) as info:
        load_captions("mvtec", category, released)
    assert str(released) in str(info.value)


def test_finegrainedad_builds_its_levels_from_the_released_file(released):
    from promptad_helpers import TINY

    from zsadbench.methods.finegrainedad.config import FineGrainedADConfig
    from zsadbench.methods.finegrainedad.method import FineGrainedAD

    cfg = FineGrainedADConfig(backbone=TINY, image_size=64, memory_layers=(1, 2), cluster_size=128, query_heads=2,
                              captions_dir=str(released))
    head = FineGrainedAD(cfg, pretrained="none").setup()._build_head("mvtec", "cable", [], state={})
    assert head.levels == level_names(load_captions("mvtec", "cable", released))
    assert len(head.components) == 3  # the shipped captions of mvtec/cable have four components
