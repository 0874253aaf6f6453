"""Names bound now and imported on first use, so importing a plugin module does not load its model code.

``zsadbench list``, ``table`` and the other commands that compute nothing read the methods' class attributes
(name, settings, default weights); with the model libraries behind :func:`deferred` names, importing a method
class costs milliseconds instead of seconds of torch, open_clip and transformers.

>>> math = deferred("math")
>>> sqrt = deferred("math", "sqrt")
>>> math.pi == 3.141592653589793 and sqrt(4.0) == 2.0
True
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


class Deferred:
    """A module, or one of its attributes, imported when first called or looked into."""

    __slots__ = ("_module", "_name", "_package", "_value")

    def __init__(self, module: str, name: str | None = None, package: str | None = None) -> None:
        self._module, self._name, self._package = module, name, package
        self._value: Any = None

    def _resolve(self) -> Any:
        if self._value is None:
            module = importlib.import_module(self._module, self._package)
            self._value = module if self._name is None else getattr(module, self._name)
        return self._value

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._resolve(), attr)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._resolve()(*args, **kwargs)

    def __repr__(self) -> str:
        what = self._module if self._name is None else f"{self._module}.{self._name}"
        return f"<deferred {what}>"


def deferred(module: str, name: str | None = None, package: str | None = None) -> Any:
    """``module`` (or its attribute ``name``), imported on first use; ``package`` anchors a relative module."""
    return Deferred(module, name, package)


def surface(package: str, where: dict[str, str]) -> Callable[[str], Any]:
    """A package's module ``__getattr__`` (PEP 562): each name of ``where`` is imported from the module it
    maps to (relative to ``package``) on first access, then kept on the package."""

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name], package), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
