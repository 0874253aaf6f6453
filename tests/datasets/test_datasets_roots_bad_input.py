"""A data root that is the dataset's own folder, and config-file keys nothing reads."""
from __future__ import annotations

from pathlib import Path

import pytest

import fake_trees as ft
from zsadbench.cli.main import main
from zsadbench.datasets import roots
from zsadbench.datasets.roots import resolve_root

ENV = ("ZSADBENCH_DATA_ROOT", "ZSADBENCH_CONFIG", "ZSADBENCH_ROOT_MVTEC", "ZSADBENCH_ROOT_VISA")


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    roots.note.cache_clear()
    return monkeypatch


def test_a_data_root_holding_the_categories_of_the_dataset_is_used_as_its_folder(tmp_path, clean_env, capsys):
    copy = ft.make_mvtec(tmp_path / "my_copy")  # any name: recognised by its layout and category names
    assert resolve_root("mvtec", copy) == copy
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"data root {copy} is itself a MVTec AD folder" in err
    # another MVTec-like dataset is not taken for it
    assert resolve_root("mpdd", copy) == copy / "mpdd"
    assert resolve_root("dtd", copy) == copy / "dtd"


def test_official_layout_of_visa_is_recognised_as_the_root(tmp_path, clean_env):
    copy = ft.make_visa(tmp_path / "downloads")
    assert resolve_root("visa", copy) == copy
    assert resolve_root("mvtec", copy) == copy / "mvtec"


def test_a_root_named_like_the_dataset_is_used_for_single_category_datasets(tmp_path, clean_env):
    ft.make_kvasir(tmp_path)
    folder = tmp_path / "Kvasir-SEG"  # the archive's own folder name
    assert resolve_root("kvasir", folder) == folder
    # images/ + masks/ alone does not make a folder a copy of another polyp set
    assert resolve_root("clinicdb", folder) == folder / "clinicdb"


def test_a_root_holding_one_folder_per_dataset_is_unchanged(tmp_path, clean_env, capsys):
    ft.make_fake_data_root(tmp_path / "data", ["mvtec", "visa"])
    assert resolve_root("mvtec", tmp_path / "data") == tmp_path / "data" / "mvtec"
    assert resolve_root("btad", tmp_path / "data") == tmp_path / "data" / "btad"
    assert capsys.readouterr().err == ""


def test_data_check_on_the_dataset_folder_itself_succeeds(tmp_path, clean_env, capsys):
    copy = ft.make_mvtec(tmp_path / "mvtec_ad_v2")
    assert main(["data", "check", "--datasets", "mvtec", "--data-root", str(copy)]) == 0
    captured = capsys.readouterr()
    assert "dataset folder not found" not in captured.out
    assert "is itself a MVTec AD folder" in captured.err


@pytest.mark.parametrize(("text", "key", "suggestion"), [
    ('[data]\nrot = "/data"\n', "data.rot", "data.root"),
    ('[data]\nroot = "/data"\n[data.rots]\nmvtec = "/m"\n', "data.rots", "data.roots"),
    ('[data.roots]\nmvtek = "/m"\n', "data.roots.mvtek", "data.roots.mvtec"),
    ('root = "/data"\n', "root", "data.root"),
    ('[dataset]\nroot = "/data"\n', "dataset", "data"),
])
def test_unknown_config_keys_are_named_with_the_file_and_the_nearest_key(text, key, suggestion, tmp_path,
                                                                         clean_env, capsys):
    config = tmp_path / "config.toml"
    config.write_text(text)
    clean_env.setenv("ZSADBENCH_CONFIG", str(config))
    resolve_root("mvtec", tmp_path)
    resolve_root("visa", tmp_path)  # read again: the warning is not repeated
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"warning: unknown key '{key}' in {config} is ignored; did you mean '{suggestion}'?"]


def test_a_key_like_nothing_known_lists_the_known_keys(tmp_path, clean_env, capsys):
    config = tmp_path / "config.toml"
    config.write_text('[data]\nroot = "/data"\ncolour_scheme = "dark"\n')
    clean_env.setenv("ZSADBENCH_CONFIG", str(config))
    assert resolve_root("mvtec") == Path("/data/mvtec")
    err = capsys.readouterr().err.strip()
    assert err == (f"warning: unknown key 'data.colour_scheme' in {config} is ignored; known keys: [data] root, "
                   "[data.roots] <dataset> = path")


def test_a_config_of_known_keys_is_read_silently(tmp_path, clean_env, capsys):
    config = tmp_path / "config.toml"
    config.write_text('[data]\nroot = "/data"\n[data.roots]\nmvtec = "/m"\nrealiad = "/r"\n')
    clean_env.setenv("ZSADBENCH_CONFIG", str(config))
    assert str(resolve_root("mvtec")) == "/m"
    assert capsys.readouterr().err == ""
