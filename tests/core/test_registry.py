"""Registry behaviour that does not need a separate distribution (see test_plugins_entrypoints for those)."""
from __future__ import annotations

import pytest

from zsadbench import registry
from zsadbench.errors import PluginError
from zsadbench.method import Method
from zsadbench.registry import Entry, Registry

import toy_plugins

pytestmark = pytest.mark.usefixtures("fresh_registry")


def test_builtins_come_from_zsadbench_entry_points():
    names = registry.methods().names()
    assert {"winclip", "visualad"} <= set(names)
    entry = {e.name: e for e in registry.methods().entries()}["winclip"]
    assert entry.source == "builtin" and entry.value == "zsadbench.methods.winclip.method:WinCLIP"
    assert registry.methods().names("win*") == ["winclip"]


def test_the_same_entry_point_seen_twice_is_deduplicated_and_a_different_one_clashes():
    reg = Registry("method", "zsadbench.methods", Method)
    reg._scanned = True
    reg._add(Entry("toy", "toy_plugins:ToyMethod", "dist-a"))
    reg._add(Entry("toy", "toy_plugins:ToyMethod", "dist-a"))  # an editable install listed twice
    assert reg.get("toy") is toy_plugins.ToyMethod
    reg._add(Entry("toy", "toy_plugins:NaNMethod", "dist-b", "2.0"))
    reg._entries["toy"].obj = None
    with pytest.raises(PluginError, match=r"claimed by more than one plugin.*dist-a.*toy_plugins:NaNMethod \(from dist-b 2.0\)"):
        reg.get("toy")


def test_register_path_validates_the_class_and_its_api_version():
    name = registry.methods().register_path("toy_plugins:ToyMethod")
    assert name == "toy" and registry.methods().get("toy") is toy_plugins.ToyMethod
    with pytest.raises(PluginError, match="not a subclass of Method"):
        registry.methods().register_path("toy_plugins:ToyDataset")
    with pytest.raises(PluginError, match="must look like 'package.module:ClassName'"):
        registry.methods().register_path("toy_plugins.ToyMethod")
    with pytest.raises(PluginError, match="cannot import 'no_such_module'"):
        registry.methods().register_path("no_such_module:Thing")

    class OldApi(toy_plugins.ToyMethod):
        name = "oldapi"
        zsadbench_api = 0

    with pytest.raises(PluginError, match="zsadbench_api=0"):
        registry.methods().register("oldapi", OldApi)


def test_unknown_name_suggests_close_matches_and_lists_known_names():
    with pytest.raises(PluginError, match=r"unknown method 'wincip'\. Did you mean 'winclip'\?.*Known methods:"):
        registry.methods().get("wincip")
