"""Deferred names and lazy extension surfaces import their module on first use, not before."""
from __future__ import annotations

import sys

import pytest

from zsadbench.lazy import deferred, surface


@pytest.fixture
def modules(tmp_path, monkeypatch):
    """A package ``lazypkg`` with a module ``heavy`` that records its import."""
    package = tmp_path / "lazypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "heavy.py").write_text("import builtins\nbuiltins.heavy_imports = getattr(builtins, 'heavy_imports', 0) + 1\n"
                                      "def double(x):\n    return 2 * x\nclass Thing:\n    size = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield package
    for name in [n for n in sys.modules if n.startswith("lazypkg")]:
        del sys.modules[name]
    import builtins

    if hasattr(builtins, "heavy_imports"):
        del builtins.heavy_imports


def test_a_deferred_name_imports_its_module_on_first_use(modules):
    import builtins

    double = deferred(".heavy", "double", "lazypkg")
    module = deferred("lazypkg.heavy")
    assert "lazypkg.heavy" not in sys.modules and not hasattr(builtins, "heavy_imports")
    assert double(21) == 42 and module.Thing.size == 3
    assert builtins.heavy_imports == 1 and "lazypkg.heavy" in sys.modules


def test_a_lazy_surface_imports_a_name_when_asked_and_refuses_others(modules):
    import builtins

    package = sys.modules.setdefault("lazypkg", __import__("lazypkg"))
    package.__getattr__ = surface("lazypkg", {"Thing": ".heavy"})
    assert not hasattr(builtins, "heavy_imports")
    from lazypkg import Thing

    assert Thing.size == 3 and package.Thing is Thing and builtins.heavy_imports == 1
    with pytest.raises(AttributeError, match="no attribute 'Other'"):
        package.Other
