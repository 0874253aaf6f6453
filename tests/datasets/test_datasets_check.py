"""``zsadbench data check`` / ``export-meta``: broken copies are reported naming the file, exit codes."""
from __future__ import annotations

import argparse
import json

import pytest

import fake_trees as ft
from zsadbench import registry
from zsadbench.cli import data as data_cli
from zsadbench.datasets.check import check_dataset
from zsadbench.errors import ConfigError, DataError


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="zsadbench data")
    data_cli.add_arguments(parser)
    return data_cli.execute(parser.parse_args(list(argv)))


def error_texts(report) -> list[str]:
    return [str(p) for p in report.errors]


@pytest.fixture
def mvtec(tmp_path):
    return ft.make_mvtec(tmp_path / "data" / "mvtec")


def test_complete_copy_is_usable_and_counts_match(tmp_path):
    root = ft.make_btad(tmp_path / "btad")
    report = check_dataset("btad", root, deep=True)
    assert report.usable and not report.errors
    assert [(c.name, c.train, c.found, c.masks) for c in report.categories] == [
        ("01", 1, (2, 2), 2), ("02", 1, (2, 2), 2), ("03", 1, (2, 2), 2)]
    assert report.expected == (451, 290) and report.totals == (6, 6)
    # a short copy is a warning (counts vs the paper's table), not an error
    assert any("451 and 290" in str(p) for p in report.warnings)


def test_missing_mask_is_reported_naming_the_image(mvtec):
    (mvtec / "bottle" / "ground_truth" / "cut" / "000_mask.png").unlink()
    report = check_dataset("mvtec", mvtec)
    assert not report.usable
    assert any("bottle/test/cut/000.png: no mask" in t for t in error_texts(report))
    with pytest.raises(DataError, match=r"bottle/test/cut/000\.png"):
        registry.datasets().get("mvtec")(mvtec).samples


def test_unpaired_mask_is_reported_naming_the_mask(mvtec):
    ft.save(mvtec / "grid" / "ground_truth" / "crack" / "007_mask.png", ft.mask_pixels((32, 32), ft.box(0)))
    report = check_dataset("mvtec", mvtec)
    assert any("grid/ground_truth/crack/007_mask.png: mask has no image" in t for t in error_texts(report))


def test_corrupt_image_is_reported_naming_the_file(mvtec):
    broken = mvtec / "bottle" / "test" / "good" / "001.png"
    broken.write_bytes(b"this is not a png")
    report = check_dataset("mvtec", mvtec)
    assert [t for t in error_texts(report) if "unreadable image" in t and "bottle/test/good/001.png" in t]


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_a_file_cut_short_is_found_from_its_last_bytes_without_the_deep_check(tmp_path, suffix):
    root = ft.make_mvtec(tmp_path / "mvtec", ext=suffix)
    target = root / "bottle" / "test" / "good" / f"000{suffix}"
    ft.save(target, ft.pixels("big", (256, 256)))
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])  # header intact, pixel data and end marker cut off
    report = check_dataset("mvtec", root)
    marker = "PNG" if suffix == ".png" else "JPEG"
    assert not report.usable
    assert [t for t in error_texts(report)] == [
        f"{target}: image file is cut short: no {marker} end marker in its last bytes. "
        "Fix: replace it with a good copy from the archive"]


def test_damage_inside_complete_pixel_data_needs_the_deep_check(mvtec):
    target = mvtec / "bottle" / "test" / "good" / "000.png"
    ft.save(target, ft.pixels("big", (256, 256)))
    data = bytearray(target.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)  # the end marker stays: only decoding finds it
    target.write_bytes(bytes(data))
    assert check_dataset("mvtec", mvtec).usable
    deep = check_dataset("mvtec", mvtec, deep=True)
    assert any("bottle/test/good/000.png" in t for t in error_texts(deep))


def test_wrong_folder_names_are_reported(mvtec):
    (mvtec / "grid" / "test").rename(mvtec / "grid" / "Test")
    (mvtec / "bottle" / "ground_truth").rename(mvtec / "bottle" / "groundtruth")
    texts = error_texts(check_dataset("mvtec", mvtec))
    assert any("grid/test: category folder 'grid' has no 'test' folder (found 'Test')" in t for t in texts)
    assert any("bottle/ground_truth/crack: mask folder missing" in t and "'groundtruth'" in t for t in texts)


def test_mask_of_the_wrong_size_is_reported(mvtec):
    ft.save(mvtec / "bottle" / "ground_truth" / "crack" / "000_mask.png", ft.mask_pixels((16, 16), (0, 0, 4, 4)))
    texts = error_texts(check_dataset("mvtec", mvtec))
    image = mvtec / "bottle" / "test" / "crack" / "000.png"
    assert any(f"crack/000_mask.png: mask is 16x16 but its image {image} is 32x32" in t for t in texts)


def test_absent_dataset_is_unusable_with_a_fix(tmp_path):
    report = check_dataset("visa", tmp_path / "nowhere")
    assert not report.exists and not report.usable
    assert "VisA_20220922" in report.errors[0].fix


def test_cli_check_exit_codes_and_report(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ZSADBENCH_ROOT_MVTEC", raising=False)
    data = ft.make_fake_data_root(tmp_path / "data", ["mvtec", "headct"])
    assert run_cli("check", "--data-root", str(data)) == 0
    out = capsys.readouterr().out
    assert "MVTec AD" in out and "HeadCT" in out and "2 dataset(s) usable" in out
    assert "not found, not checked" in out and "visa" in out
    assert run_cli("check", "--datasets", "mvtec,visa", "--data-root", str(data)) == 1
    assert "unusable: visa" in capsys.readouterr().out
    (data / "mvtec" / "bottle" / "ground_truth" / "crack" / "000_mask.png").unlink()
    assert run_cli("check", "--datasets", "industrial", "--data-root", str(data), "--deep") == 1
    out = capsys.readouterr().out
    assert "bottle/test/crack/000.png: no mask" in out


def test_cli_export_meta(tmp_path, capsys):
    data = ft.make_fake_data_root(tmp_path / "data", ["dagm"])
    assert run_cli("export-meta", "--dataset", "dagm", "--data-root", str(data)) == 0
    written = data / "dagm" / "meta.json"
    info = json.loads(written.read_text())
    assert sorted(info["test"]) == ["Class1", "Class2"] and len(info["test"]["Class1"]) == 4
    assert all(r["anomaly"] == 0 for r in info["train"]["Class1"])
    with pytest.raises(ConfigError, match="already exists"):
        run_cli("export-meta", "--dataset", "dagm", "--data-root", str(data))
    assert run_cli("export-meta", "-d", "dagm", "--data-root", str(data), "-o", str(tmp_path), "--force") == 0
    assert json.loads((tmp_path / "meta.json").read_text())["test"]["Class2"][0]["img_path"].startswith("data/dagm/")
