"""``--pretrained FILE`` where FILE is no checkpoint: one line naming the file and the formats accepted."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from zsadbench.backbones.clip_factory import create_clip
from zsadbench.backbones.dinov2 import create_dinov2
from zsadbench.backbones.weights import CHECKPOINT_FORMATS, checkpoint_format, read_checkpoint
from zsadbench.errors import WeightsError

CLIP, DINO = "zsad-tiny-16-240", "zsad-tiny-dinov2"


def _text(path):
    path.write_text("model: ViT-L-14-336\nlr: 0.001\n")


def _image(path):
    Image.new("RGB", (8, 8)).save(path, format="PNG")


def _numpy_pickle(path):
    path.write_bytes(pickle.dumps({"weights": np.zeros(3)}))


def _whole_module(path):
    torch.save(torch.nn.Linear(2, 2), path)


def _list_of_tensors(path):
    torch.save([torch.zeros(2)], path)


def _empty(path):
    path.write_bytes(b"")


def _cut_short(path):
    torch.save({"w": torch.zeros(4096)}, path)
    path.write_bytes(path.read_bytes()[:2000])


BAD_FILES = {
    "notes.pt": (_text, "looks like a text file"),
    "weights.pt": (_image, "looks like a PNG image"),
    "numpy.pkl": (_numpy_pickle, "Python objects besides tensors"),
    "model.pth": (_whole_module, "save model.state_dict() instead"),
    "list.pt": (_list_of_tensors, "holds a list"),
    "empty.bin": (_empty, "the file is empty"),
    "partial.pt": (_cut_short, "cut short or damaged: download it again"),
}


@pytest.mark.parametrize("create, arch", [(create_clip, CLIP), (create_dinov2, DINO)])
@pytest.mark.parametrize("filename", list(BAD_FILES))
def test_a_file_that_is_no_checkpoint_gives_one_line_naming_it_and_the_formats(create, arch, filename, tmp_path):
    write, why = BAD_FILES[filename]
    path = tmp_path / filename
    write(path)
    with pytest.raises(WeightsError) as info:
        create(arch, pretrained=str(path))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path} is not a checkpoint zsadbench can read")
    assert why in message and CHECKPOINT_FORMATS in message
    assert "weights_only" not in message  # torch's paragraph stays out


def test_wrapped_and_data_parallel_state_dicts_are_unwrapped(tmp_path):
    state = {"a.weight": torch.ones(2, 2), "a.bias": torch.zeros(2)}
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, tmp_path / "c.pt")
    loaded = read_checkpoint(tmp_path / "c.pt")
    assert loaded.keys() == state.keys() and torch.equal(loaded["a.weight"], state["a.weight"])


def test_safetensors_is_recognised_by_content(tmp_path):
    source = create_clip(CLIP)
    path = tmp_path / "tiny.bin"  # a safetensors file under another name still loads into CLIP
    save_file({k: v.contiguous() for k, v in source.model.state_dict().items()}, path)
    assert checkpoint_format(path) == "safetensors"
    loaded = create_clip(CLIP, pretrained=str(path))
    for key, value in source.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value)


def test_dinov2_names_the_extension_timm_needs_for_safetensors(tmp_path):
    path = tmp_path / "dino.bin"
    save_file({k: v.contiguous() for k, v in create_dinov2(DINO, image_size=224).model.state_dict().items()}, path)
    with pytest.raises(WeightsError, match=r"dino\.bin is a safetensors file .* rename it to dino\.safetensors"):
        create_dinov2(DINO, pretrained=str(path), image_size=224)
    renamed = path.rename(tmp_path / "dino.safetensors")
    assert create_dinov2(DINO, pretrained=str(renamed), image_size=224).weights.path == str(renamed)
