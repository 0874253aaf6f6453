"""The folder tree keeps its promises: the framework imports no method, and a method imports another only
through that method's documented extension surface (its package, which lists the names in ``__all__``)."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every absolute import in a file, ``from X import a`` giving ``X``, and of every
    absolute module named to :func:`zsadbench.lazy.deferred` (an import on first use)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "deferred" and node.args
              and isinstance(node.args[0], ast.Constant) and not str(node.args[0].value).startswith(".")):
            found.append((node.lineno, str(node.args[0].value)))
    return found


def test_the_framework_imports_no_method():
    offending = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sorted((ROOT / "zsadbench").rglob("*.py"))
        for line, module in _imports(path)
        if module == "zsadbench.methods" or module.startswith("zsadbench.methods.")
    ]
    assert not offending, offending


def test_methods_import_each_other_only_through_the_extension_surface():
    offending = []
    used_surfaces = set()
    for path in sorted((ROOT / "methods").rglob("*.py")):
        own = path.relative_to(ROOT / "methods").parts[0]
        for line, module in _imports(path):
            parts = module.split(".")
            if parts[:2] != ["zsadbench", "methods"] or len(parts) < 3 or parts[2] == own:
                continue
            if len(parts) > 3:
                offending.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
            used_surfaces.add(module)
    assert not offending, "import the other method's package, whose __all__ is its extension surface: " + str(offending)
    for surface in used_surfaces:
        package = importlib.import_module(surface)
        assert package.__all__ and package.__doc__ and "extension surface" in package.__doc__, surface
        assert all(hasattr(package, name) for name in package.__all__), surface


def test_the_training_engine_lives_in_the_framework():
    assert (ROOT / "zsadbench" / "training" / "engine.py").is_file()
    trainers = [p.relative_to(ROOT) for p in (ROOT / "methods").rglob("*.py") if "def run_epochs" in p.read_text()
                or "checkpoints.save(" in p.read_text()]
    assert not trainers, f"methods keep their own epoch loops: {trainers}"


def test_the_architecture_check_sees_deferred_imports(tmp_path):
    source = tmp_path / "plugin.py"
    source.write_text('from zsadbench.lazy import deferred\nx = deferred("zsadbench.methods.anomalyclip.visual", "y")\n'
                      'z = deferred(".model", "M", __package__)\n')
    assert _imports(source) == [(1, "zsadbench.lazy"), (2, "zsadbench.methods.anomalyclip.visual")]
