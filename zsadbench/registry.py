"""Name → class registries for methods and dataset adapters.

Built-in and third-party plugins are discovered the same way: through the ``zsadbench.methods`` and
``zsadbench.datasets`` entry-point groups. Entries are loaded lazily (only the selected plugin is
imported), deduplicated on ``(name, value)``, and two different values claiming one name is an error
naming both distributions. Set ``ZSADBENCH_DISABLE_PLUGIN_AUTOLOAD=1`` to ignore every third-party entry
point (zsadbench's own stay); ``register_path("module:Class")`` loads one explicitly (``--plugin``).
"""
from __future__ import annotations

import difflib
import fnmatch
import importlib
import os
from dataclasses import dataclass, field
from importlib import metadata
from typing import Generic, TypeVar

from .errors import PluginError

T = TypeVar("T")

API_VERSION = 1
DISABLE_ENV = "ZSADBENCH_DISABLE_PLUGIN_AUTOLOAD"
OWN_DIST = "zsadbench"


@dataclass
class Entry:
    """One registered name: where it comes from and, once loaded, the class."""

    name: str
    value: str
    source: str
    version: str = ""
    clash: list[str] = field(default_factory=list)
    obj: type | None = None
    error: str | None = None

    @property
    def origin(self) -> str:
        return f"{self.source} {self.version}".strip()


def load_object(value: str) -> object:
    """Import and return the object named by ``"package.module:Attribute"``."""
    module_name, _, attr = value.partition(":")
    if not module_name or not attr:
        raise PluginError(f"plugin path {value!r} must look like 'package.module:ClassName'")
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - a broken plugin may raise anything on import, exit too
        raise PluginError(f"cannot import {module_name!r} for plugin {value!r}: {type(exc).__name__}: {exc}") from exc
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise PluginError(f"module {module_name!r} has no attribute {attr!r} (plugin {value!r})") from exc
    return obj


class Registry(Generic[T]):
    """A lazy registry of plugin classes of one kind (``method`` or ``dataset``)."""

    def __init__(self, kind: str, group: str, base: type) -> None:
        self.kind = kind
        self.group = group
        self.base = base
        self._entries: dict[str, Entry] = {}
        self._scanned = False

    # -- discovery -------------------------------------------------------------------------------
    def _scan(self) -> None:
        if self._scanned:
            return
        self._scanned = True
        autoload = os.environ.get(DISABLE_ENV, "").strip().lower() in ("", "0", "false", "no")
        own_found = False
        for ep in metadata.entry_points(group=self.group):
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else "unknown distribution"
            version = dist.version if dist is not None else ""
            is_own = (dist_name or "").lower() == OWN_DIST
            own_found = own_found or is_own
            if not is_own and not autoload:
                continue
            self._add(Entry(ep.name, ep.value, "builtin" if is_own else dist_name, version if not is_own else ""))
        if not own_found:
            raise PluginError(
                "zsadbench's own entry points were not found: the package is not installed. "
                "Run `pip install -e .` in the zsadbench checkout."
            )

    def _add(self, entry: Entry) -> None:
        known = self._entries.get(entry.name)
        if known is None:
            self._entries[entry.name] = entry
        elif known.value != entry.value:
            known.clash.append(f"{entry.value} (from {entry.origin})")

    def register(self, name: str, obj: type | str, *, source: str = "registered") -> None:
        """Register a class (or a lazy ``"module:Class"`` path) under ``name``, in this process only."""
        self._scan()
        value = obj if isinstance(obj, str) else f"{obj.__module__}:{obj.__qualname__}"
        if name in self._entries and self._entries[name].value != value:
            raise PluginError(
                f"{self.kind} {name!r} is already provided by {self._entries[name].value} "
                f"({self._entries[name].origin}); cannot register {value} ({source}) under the same name"
            )
        entry = Entry(name, value, source)
        if not isinstance(obj, str):
            entry.obj = self._validate(name, obj, value)
        self._entries[name] = entry

    def register_path(self, value: str) -> str:
        """Import ``"module:Class"`` now, register it under its ``name`` attribute and return that name."""
        obj = load_object(value)
        name = getattr(obj, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {value!r} has no string class attribute 'name'")
        self.register(name, self._validate(name, obj, value), source=f"--plugin {value}")
        return name

    # -- lookup ----------------------------------------------------------------------------------
    def _validate(self, name: str, obj: object, value: str) -> type:
        if not isinstance(obj, type) or not issubclass(obj, self.base):
            raise PluginError(f"{self.kind} plugin {name!r} ({value}) is not a subclass of {self.base.__qualname__}")
        api = getattr(obj, "zsadbench_api", None)
        if api != API_VERSION:
            raise PluginError(
                f"{self.kind} plugin {name!r} ({value}) declares zsadbench_api={api!r}; "
                f"this zsadbench speaks API {API_VERSION}"
            )
        return obj

    def get(self, name: str) -> type[T]:
        """Return the class registered under ``name``, importing it on first use."""
        self._scan()
        entry = self._entries.get(name)
        if entry is None:
            close = difflib.get_close_matches(name, self._entries, n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise PluginError(
                f"unknown {self.kind} {name!r}.{hint} Known {self.kind}s: {', '.join(sorted(self._entries))}"
            )
        if entry.clash:
            raise PluginError(
                f"{self.kind} name {name!r} is claimed by more than one plugin: {entry.value} (from "
                f"{entry.origin}) and {', '.join(entry.clash)}. Uninstall one, or load one explicitly with "
                f"--plugin and set {DISABLE_ENV}=1."
            )
        if entry.obj is None:
            try:
                entry.obj = self._validate(name, load_object(entry.value), entry.value)
            except PluginError as exc:
                entry.error = str(exc)
                raise PluginError(f"broken {self.kind} plugin {name!r} from {entry.origin}: {exc}") from exc
        return entry.obj  # type: ignore[return-value]

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style pattern, sorted."""
        self._scan()
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def entries(self) -> list[Entry]:
        """All entries (loaded or not), sorted by name."""
        self._scan()
        return [self._entries[n] for n in sorted(self._entries)]

    def __contains__(self, name: object) -> bool:
        self._scan()
        return name in self._entries


def _method_base() -> type:
    from .method import Method

    return Method


def _dataset_base() -> type:
    from .datasets.base import DatasetAdapter

    return DatasetAdapter


_REGISTRIES: dict[str, Registry] = {}


def methods() -> Registry:
    """The method registry (``zsadbench.methods`` entry points)."""
    if "method" not in _REGISTRIES:
        _REGISTRIES["method"] = Registry("method", "zsadbench.methods", _method_base())
    return _REGISTRIES["method"]


def datasets() -> Registry:
    """The dataset-adapter registry (``zsadbench.datasets`` entry points)."""
    if "dataset" not in _REGISTRIES:
        _REGISTRIES["dataset"] = Registry("dataset", "zsadbench.datasets", _dataset_base())
    return _REGISTRIES["dataset"]


def reset() -> None:
    """Forget every registry (tests use this after changing the installed plugins)."""
    _REGISTRIES.clear()
