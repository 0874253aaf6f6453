"""``zsadbench predict`` on a folder of the user's own images: scores, maps at each image's size, overlays, the
few-shot and trained-state paths, and the one-line errors."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zsadbench import registry
from zsadbench.cli.main import main
from zsadbench.method import FitData
from zsadbench.methods.winclip.config import WinCLIPConfig
from zsadbench.methods.winclip.method import WinCLIP
from zsadbench.types import Batch

from runner_helpers import run

TINY = ["--method", "winclip", "--set", "backbone=zsad-tiny-16-240", "--set", "image_size=64", "--pretrained", "none"]
SIZES = {"widget/a.png": (40, 50), "widget/c.png": (64, 64), "widget/sub/b.png": (70, 30)}  # (height, width)


def predict(*args: str) -> int:
    registry.reset()
    return main(["predict", *args])


def smooth(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth RGB picture (random colours, bilinearly enlarged), ``uint8 [H,W,3]``."""
    low = np.random.default_rng(seed).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(low).resize((width, height), Image.BILINEAR))


def with_checker(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` with a black and white checker board over its lower right quarter."""
    out = pixels.copy()
    h, w = out.shape[:2]
    yy, xx = np.mgrid[: h - h // 2, : w - w // 2]
    out[h // 2 :, w // 2 :] = (((yy // 3 + xx // 3) % 2) * 255).astype(np.uint8)[..., None]
    return out


def rows_of(out: Path) -> list[list[str]]:
    with (out / "scores.csv").open(newline="") as handle:
        return list(csv.reader(handle))


def resized(path: Path) -> torch.Tensor:
    """The image as a run feeds it to a method at 64 px, computed here with PIL and torch alone."""
    pixels = np.asarray(Image.open(path).convert("RGB").resize((64, 64), Image.BICUBIC), dtype=np.float32)
    return torch.from_numpy(pixels).permute(2, 0, 1) / 255.0


@pytest.fixture()
def pictures(tmp_path) -> Path:
    for i, (name, (height, width)) in enumerate(SIZES.items()):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(smooth(height, width, i)).save(tmp_path / name)
    return tmp_path / "widget"


def test_zero_shot_writes_scores_maps_and_overlays_of_each_image(tmp_path, pictures):
    out = tmp_path / "out"
    assert predict(*TINY, "--batch-size", "2", "--write", str(out), str(pictures)) == 0
    rows = rows_of(out)
    assert rows[0] == ["path", "score"]
    names = [Path(path).relative_to(pictures.parent).as_posix() for path, _ in rows[1:]]
    assert names == ["widget/a.png", "widget/c.png", "widget/sub/b.png"]  # each folder sorted, then its sub-folders
    for name in names:
        inside = Path(name).relative_to("widget").as_posix()
        amap = np.load(out / "maps" / f"{inside}.npy")
        assert amap.dtype == np.float32 and amap.shape == SIZES[name]
        with Image.open(out / "overlays" / f"{inside}.png") as shown:
            assert shown.size == SIZES[name][::-1] and shown.mode == "RGB"
    readme = (out / "README.txt").read_text()
    assert "colour scale" in readme and "min" in readme and "random initialisation" in readme
    # the same scores from a method built here, on the same images resized here, one batch per folder
    method = WinCLIP(WinCLIPConfig(backbone="zsad-tiny-16-240", image_size=64), pretrained="none").setup()
    method.fit(FitData("none"))
    paths = [pictures.parent / name for name in names]
    expected = torch.cat([
        method.predict(Batch(image=torch.stack([resized(p) for p in paths[:2]]), category="widget")).pred_score,
        method.predict(Batch(image=resized(paths[2])[None], category="sub")).pred_score,
    ])
    scores = torch.tensor([float(score) for _, score in rows[1:]])
    torch.testing.assert_close(scores, expected, rtol=1e-6, atol=1e-7)


def test_few_shot_map_is_zero_shot_halved_where_the_query_is_the_support_image(tmp_path):
    support, queries = tmp_path / "normal", tmp_path / "queries"
    support.mkdir()
    queries.mkdir()
    pixels = smooth(48, 40, 7)
    Image.fromarray(pixels).save(support / "s.png")
    Image.fromarray(pixels).save(queries / "same.png")
    Image.fromarray(with_checker(pixels)).save(queries / "patched.png")
    common = [*TINY, "--category", "widget", str(queries)]
    assert predict(*common, "--write", str(tmp_path / "zero")) == 0
    assert predict(*common, "--support", str(support / "s.png"), "--write", str(tmp_path / "few")) == 0
    assert "support: 1 normal images" in (tmp_path / "few" / "README.txt").read_text()
    # WinCLIP+ averages the zero-shot map with the distance to the support's patches: that distance is 0 on the
    # support image itself, and not on the pasted checker board
    association = {}
    for name in ("same.png", "patched.png"):
        zero, few = (np.load(tmp_path / kind / "maps" / f"{name}.npy") for kind in ("zero", "few"))
        association[name] = 2 * few - zero
    assert np.abs(association["same.png"]).max() < 1e-5
    patched = association["patched.png"]
    assert patched[24:, 20:].max() > 2 * patched[:24, :20].max() > 0


def test_an_output_folder_inside_the_input_folder_is_not_read_again(pictures):
    out = pictures / "predictions"
    for _ in range(2):
        assert predict(*TINY, "--write", str(out), str(pictures)) == 0
        assert [Path(p).name for p, _ in rows_of(out)[1:]] == ["a.png", "c.png", "b.png"]


def test_a_trained_method_predicts_from_the_state_a_run_cached(tmp_path, data_root):
    out = tmp_path / "runs"
    assert run("--plugin", "toy_plugins:ToyTrainedMethod", "--method", "toytrained", "--datasets", "toy", "--aux",
               "toy", "--data-root", str(data_root), "--out", str(out)) == 0
    (state,) = (out / "cache" / "states").glob("*.pt")
    images = data_root / "toy" / "alpha" / "test"
    assert predict("--plugin", "toy_plugins:ToyTrainedMethod", "--method", "toytrained", "--state", str(state),
                   "--write", str(tmp_path / "pred"), str(images)) == 0
    assert len(rows_of(tmp_path / "pred")) == 1 + 6
    assert {p.name for p in (tmp_path / "pred" / "maps").iterdir()} == {"bad", "good"}


def test_an_unreadable_image_is_named_and_earlier_rows_stay(tmp_path, pictures, capsys):
    (pictures / "sub" / "z.png").write_bytes(b"not a picture")
    out = tmp_path / "out"
    assert predict(*TINY, "--batch-size", "1", "--write", str(out), str(pictures)) == 1
    err = capsys.readouterr().err
    assert "z.png" in err and "replace it" in err
    assert [Path(p).name for p, _ in rows_of(out)[1:]] == ["a.png", "c.png", "b.png"]
    assert (out / "maps" / "sub" / "b.png.npy").is_file()


TOY_TRAINED = ["--plugin", "toy_plugins:ToyTrainedMethod", "--method", "toytrained"]
TOY_IN_CONTEXT = ["--plugin", "toy_plugins:ToyInContextMethod", "--method", "toyincontext"]


@pytest.mark.parametrize(("args", "expected"), [
    ([*TINY, "{empty}"], "no images found in {empty}"),
    ([*TINY, "{tmp}/missing"], "{tmp}/missing does not exist"),
    ([*TINY, "{notes}"], "{notes} is not an image file"),
    ([*TINY, "--set", "temperature=0.07,0.1", "{pictures}"], "predict runs one"),
    ([*TINY, "--support", "{pictures}", "{pictures}"], "--support gives 3 images but winclip takes k in 1, 2, 4"),
    ([*TINY, "--state", "{state}", "{pictures}"], "winclip learns no state on an auxiliary set: leave out --state"),
    ([*TOY_TRAINED, "{pictures}"], "pass --state FILE, a trained state that `zsadbench run --method toytrained` "
                                   "cached in OUT/cache/states/"),
    ([*TOY_TRAINED, "--state", "{tmp}/gone.pt", "{pictures}"], "--state {tmp}/gone.pt: no such file"),
    ([*TOY_TRAINED, "--state", "{state}", "{pictures}"], "--state {state} is no state of toytrained"),
    ([*TOY_TRAINED, "--state", "{notes}", "{pictures}"], "--state {notes} cannot be read as a trained state"),
    ([*TOY_TRAINED, "--support", "{pictures}/a.png", "{pictures}"], "toytrained is a zero-shot method and takes no "
                                                                     "support images"),
    ([*TOY_IN_CONTEXT, "--state", "{state}", "{pictures}"], "toyincontext is a few-shot method: pass --support"),
    ([*TOY_IN_CONTEXT, "--support", "{pictures}/a.png", "{pictures}"], "toyincontext trains on an auxiliary set: "
                                                                       "pass --state FILE"),
])
def test_bad_input_is_one_line_naming_the_file_and_the_fix(tmp_path, pictures, capsys, args, expected):
    places = {"tmp": tmp_path, "pictures": pictures, "empty": tmp_path / "empty", "notes": tmp_path / "notes.txt",
              "state": tmp_path / "other.pt"}
    places["empty"].mkdir()
    places["notes"].write_text("not an image")
    torch.save({"something": torch.zeros(1)}, places["state"])
    assert predict(*[a.format(**places) for a in args], "--write", str(tmp_path / "out")) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert expected.format(**places) in err
    assert "Traceback" not in err
