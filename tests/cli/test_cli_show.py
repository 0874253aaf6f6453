"""``zsadbench show METHOD`` and the unknown ``--set`` key message: every option is discoverable."""
from __future__ import annotations

import dataclasses

import pytest

from zsadbench import registry
from zsadbench.cli.main import main

BUILTINS = ("winclip", "anomalyclip", "mpa", "mpama", "visualad", "promptad", "finegrainedad")


@pytest.mark.parametrize("name", BUILTINS)
def test_show_lists_every_field_with_its_default_demo_value_and_meaning(name, capsys):
    from zsadbench.cli.show import option_rows

    cls = registry.methods().get(name)
    fields = dataclasses.fields(cls.config_class)
    rows = {row[0]: row[1:] for row in option_rows(cls)}
    assert list(rows) == [f.name for f in fields]
    for field in fields:
        _, _, demo, _, meaning = rows[field.name]
        assert f"`{field.name}`" in meaning or field.name in meaning, f"{name}.{field.name}: {meaning!r}"
        if field.name in cls.random_init_overrides:
            value = cls.random_init_overrides[field.name]
            assert demo.split(",") == [str(v) for v in value] if isinstance(value, tuple) else demo == str(value)
        else:
            assert demo == ""
    assert main(["show", name]) == 0
    out = capsys.readouterr().out
    assert all(f.name in out for f in fields) and f"--set {name}.OPTION=VALUE" in out


def test_an_unknown_set_key_suggests_the_nearest_and_lists_the_options(capsys):
    assert main(["run", "-m", "winclip", "-d", "synthetic", "--pretrained", "none", "--dry-run",
                 "--set", "scale=2"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "--set scale: no selected method has an option 'scale'; did you mean 'scales'?" in err
    assert "options of winclip: backbone, image_size, object_agnostic, scales, temperature, window_stride" in err
    assert "`zsadbench show winclip` explains each" in err


def test_show_of_an_unknown_method_is_one_line(capsys):
    assert main(["show", "wincip"]) == 1
    assert capsys.readouterr().err.strip().startswith("PluginError: unknown method 'wincip'")
