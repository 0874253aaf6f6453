"""Data-root resolution and dataset groups."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest

from zsadbench import registry
from zsadbench.datasets.base import DatasetAdapter
from zsadbench.datasets.groups import expand_datasets
from zsadbench.datasets.roots import resolve_root
from zsadbench.errors import ConfigError, PluginError

ENV = ("ZSADBENCH_DATA_ROOT", "ZSADBENCH_CONFIG", "ZSADBENCH_ROOT_MVTEC", "ZSADBENCH_ROOT_META_JSON", "HOME")


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return monkeypatch


def write_config(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_resolution_order(tmp_path, clean_env):
    config = write_config(tmp_path / "cfg" / "config.toml",
                          '[data]\nroot = "cfgroot"\n[data.roots]\nvisa = "/visa/here"\n')
    # nothing set: the default under the home folder
    assert resolve_root("mvtec") == tmp_path / "home" / "zsadbench-data" / "mvtec"
    clean_env.setenv("ZSADBENCH_CONFIG", str(config))
    assert resolve_root("mvtec") == tmp_path / "cfg" / "cfgroot" / "mvtec"  # relative to the config file
    clean_env.setenv("ZSADBENCH_DATA_ROOT", str(tmp_path / "envroot"))
    assert resolve_root("mvtec") == tmp_path / "envroot" / "mvtec"
    assert resolve_root("mvtec", tmp_path / "argroot") == tmp_path / "argroot" / "mvtec"
    assert resolve_root("visa", tmp_path / "argroot") == Path("/visa/here")  # per-dataset config override
    clean_env.setenv("ZSADBENCH_ROOT_MVTEC", str(tmp_path / "only_mvtec"))
    assert resolve_root("mvtec", tmp_path / "argroot") == tmp_path / "only_mvtec"
    clean_env.setenv("ZSADBENCH_ROOT_META_JSON", str(tmp_path / "m.json"))
    assert resolve_root("meta_json") == tmp_path / "m.json"


def test_default_config_file_is_read(tmp_path, clean_env):
    write_config(tmp_path / "home" / ".config" / "zsadbench" / "config.toml", '[data]\nroot = "~/data"\n')
    assert resolve_root("btad") == tmp_path / "home" / "data" / "btad"


def test_official_folder_names_are_accepted_as_aliases(tmp_path, clean_env):
    (tmp_path / "mvtec_anomaly_detection").mkdir()
    (tmp_path / "visa_20220922").mkdir()  # other letter case
    assert resolve_root("mvtec", tmp_path) == tmp_path / "mvtec_anomaly_detection"
    assert resolve_root("visa", tmp_path) == tmp_path / "visa_20220922"
    (tmp_path / "mvtec").mkdir()
    assert resolve_root("mvtec", tmp_path) == tmp_path / "mvtec"  # the plain name wins


def test_bad_config_files_raise_config_errors_naming_the_file(tmp_path, clean_env):
    clean_env.setenv("ZSADBENCH_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="missing.toml"):
        resolve_root("mvtec")
    clean_env.setenv("ZSADBENCH_CONFIG", str(write_config(tmp_path / "bad.toml", "[data\nroot=")))
    with pytest.raises(ConfigError, match="bad.toml"):
        resolve_root("mvtec")
    clean_env.setenv("ZSADBENCH_CONFIG", str(write_config(tmp_path / "typed.toml", "[data]\nroot = 3\n")))
    with pytest.raises(ConfigError, match="root must be a string"):
        resolve_root("mvtec")


class _Generated(DatasetAdapter):
    name: ClassVar[str] = "fake_generated"

    @classmethod
    def default_root(cls) -> Path:
        return Path("/cache/generated")

    def index(self):
        return []


def test_generated_datasets_use_their_own_default_root(tmp_path, clean_env):
    registry.datasets().register("fake_generated", _Generated)
    try:
        assert resolve_root("fake_generated", tmp_path) == Path("/cache/generated")
    finally:
        registry.reset()


def test_groups_expand_in_paper_order():
    every = expand_datasets("all")
    assert every == ["mvtec", "visa", "mpdd", "btad", "sdd", "dagm", "dtd", "isic", "clinicdb", "colondb",
                     "kvasir", "endo", "headct", "brainmri", "br35h"]
    assert expand_datasets("industrial") + expand_datasets("medical") == every
    assert all(registry.datasets().get(n).domain == "industrial" for n in expand_datasets("industrial"))
    assert all(registry.datasets().get(n).domain == "medical" for n in expand_datasets("medical"))


def test_comma_lists_mix_groups_and_names_without_duplicates():
    assert expand_datasets("isic, mvtec,medical,realiad,MVTec") == [
        "isic", "mvtec", "clinicdb", "colondb", "kvasir", "endo", "headct", "brainmri", "br35h", "realiad"]
    assert expand_datasets(["meta_json", "all"])[:2] == ["meta_json", "mvtec"]
    assert "realiad" not in expand_datasets("all")


def test_unknown_names_get_suggestions_and_empty_specs_are_refused():
    with pytest.raises(PluginError, match="Did you mean 'mvtec'"):
        expand_datasets("mvtek")
    with pytest.raises(ConfigError):
        expand_datasets(" , ")
