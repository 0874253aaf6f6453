"""Where each dataset lives on disk.

:func:`resolve_root` looks, in order, at

1. a per-dataset override: the environment variable ``ZSADBENCH_ROOT_<NAME>`` (``ZSADBENCH_ROOT_MVTEC``), then
   the ``[data.roots]`` table of the config file (``mvtec = "/data/mvtec_anomaly_detection"``);
2. the ``data_root`` argument (``--data-root``);
3. the environment variable ``ZSADBENCH_DATA_ROOT``;
4. ``root`` in the ``[data]`` table of the config file;
5. ``~/zsadbench-data``.

The config file is ``$ZSADBENCH_CONFIG`` or ``~/.config/zsadbench/config.toml``; relative paths in it are
relative to the file. Under a data root a dataset lives in ``<root>/<name>``; when that folder is absent, the
official folder names of the dataset (its adapter's ``aliases``, e.g. ``mvtec_anomaly_detection``) are tried,
in any letter case. When none exists but the data root is itself a copy of the dataset (``--data-root
/data/mvtec --datasets mvtec``, the way anomalib and the AnomalyCLIP scripts take a path: the root is named
like the dataset, or the adapter recognises its layout and categories in it), the root is used, with a note on
stderr. Generated datasets (adapters with a ``default_root`` classmethod, such as ``synthetic``) are not looked
up here: their own cache folder is returned.

Keys of the config file other than ``[data] root`` and ``[data.roots] <dataset> = path`` are ignored with a
one-line warning on stderr naming the key and the file and suggesting the nearest known key.
"""
from __future__ import annotations

import difflib
import os
import sys
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from zsadbench import registry
from zsadbench.errors import ConfigError

ENV_DATA_ROOT = "ZSADBENCH_DATA_ROOT"
ENV_CONFIG = "ZSADBENCH_CONFIG"
ENV_ROOT_PREFIX = "ZSADBENCH_ROOT_"
DEFAULT_CONFIG = Path("~/.config/zsadbench/config.toml")
DEFAULT_DATA_ROOT = Path("~/zsadbench-data")


@dataclass(frozen=True)
class DataConfig:
    """The ``[data]`` part of the config file."""

    path: Path | None = None
    root: Path | None = None
    roots: dict[str, Path] = field(default_factory=dict)


def config_path() -> tuple[Path, bool]:
    """The config file to read and whether the user named it explicitly (``$ZSADBENCH_CONFIG``)."""
    named = os.environ.get(ENV_CONFIG, "").strip()
    return (Path(named).expanduser(), True) if named else (DEFAULT_CONFIG.expanduser(), False)


def load_data_config() -> DataConfig:
    """Read ``[data]`` and ``[data.roots]`` from the config file (an absent default file is an empty config)."""
    path, explicit = config_path()
    if not path.is_file():
        if explicit:
            raise ConfigError(f"{ENV_CONFIG}={path} does not exist; create it or unset {ENV_CONFIG}")
        return DataConfig()
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML ({exc}); fix or remove it") from exc
    data = document.get("data", {})
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: 'data' must be a table, e.g. [data] root = \"/data\"")
    root = data.get("root")
    roots = data.get("roots", {})
    if root is not None and not isinstance(root, str):
        raise ConfigError(f"config file {path}: [data] root must be a string path, got {root!r}")
    if not isinstance(roots, dict) or not all(isinstance(v, str) for v in roots.values()):
        raise ConfigError(f"config file {path}: [data.roots] must map dataset names to string paths")
    _warn_unknown_keys(document, path)
    return DataConfig(path, _anchor(root, path), {k: _anchor(v, path) for k, v in roots.items()})


def _warn_unknown_keys(document: dict, path: Path) -> None:
    """One warning per key the config file holds but nothing reads, with the nearest known key."""
    data = document.get("data", {})
    roots = data.get("roots", {})
    datasets = registry.datasets().names()
    unknown = [k for k in document if k != "data"]
    unknown += [f"data.{k}" for k in data if k not in ("root", "roots")]
    unknown += [f"data.roots.{k}" for k in roots if k not in datasets]
    known = ["data", "data.root", "data.roots", *(f"data.roots.{n}" for n in datasets)]
    for key in unknown:
        close = _nearest(key, known)
        hint = f"did you mean '{close}'?" if close else "known keys: [data] root, [data.roots] <dataset> = path"
        note(f"warning: unknown key '{key}' in {path} is ignored; {hint}")


def _nearest(key: str, known: list[str]) -> str | None:
    """The known key spelled most like ``key``, comparing whole dotted keys, then their last parts."""
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return close[0]
    by_last = {k.rsplit(".", 1)[-1]: k for k in reversed(known)}
    close = difflib.get_close_matches(key.rsplit(".", 1)[-1], list(by_last), n=1, cutoff=0.6)
    return by_last[close[0]] if close else None


@lru_cache(maxsize=None)
def note(text: str) -> None:
    """Print ``text`` as one line on stderr, once per process (resolution runs once per dataset)."""
    print(text, file=sys.stderr)


def _anchor(value: str | None, config: Path) -> Path | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else (config.parent / path).resolve()


def base_root(data_root: str | Path | None = None, config: DataConfig | None = None) -> Path:
    """The data root: ``data_root`` if given, else ``$ZSADBENCH_DATA_ROOT``, the config file, the default."""
    if data_root not in (None, ""):
        return Path(data_root).expanduser()
    env = os.environ.get(ENV_DATA_ROOT, "").strip()
    if env:
        return Path(env).expanduser()
    config = config if config is not None else load_data_config()
    return config.root if config.root is not None else DEFAULT_DATA_ROOT.expanduser()


def dataset_folder(base: Path, name: str, aliases: tuple[str, ...] = ()) -> Path:
    """``base/name`` if present, else the first alias present (exact spelling, then any case), else ``base/name``."""
    for candidate in (name, *aliases):
        if (base / candidate).is_dir():
            return base / candidate
    if base.is_dir():
        wanted = [c.lower() for c in (name, *aliases)]
        by_lower = {p.name.lower(): p for p in sorted(base.iterdir()) if p.is_dir()}
        for candidate in wanted:
            if candidate in by_lower:
                return by_lower[candidate]
    return base / name


def resolve_root(name: str, data_root: str | Path | None = None) -> Path:
    """The folder of dataset ``name`` (see the module docstring for the search order)."""
    cls = registry.datasets().get(name)
    default_root = getattr(cls, "default_root", None)
    if callable(default_root):
        return Path(default_root())
    env = os.environ.get(ENV_ROOT_PREFIX + name.upper().replace("-", "_"), "").strip()
    if env:
        return Path(env).expanduser()
    config = load_data_config()
    if name in config.roots:
        return config.roots[name]
    base = base_root(data_root, config)
    aliases = tuple(getattr(cls, "aliases", ()))
    folder = dataset_folder(base, name, aliases)
    if not folder.exists() and is_dataset_folder(cls, base):
        note(f"note: data root {base} is itself a {getattr(cls, 'title', '') or name} folder; reading {name} "
             f"from it (a data root normally holds one sub-folder per dataset, e.g. {base / name})")
        return base
    return folder


def is_dataset_folder(cls: type, folder: Path) -> bool:
    """True when ``folder`` is a copy of dataset ``cls`` itself: it bears the dataset's name or one of its
    official folder names, or the adapter recognises it (:meth:`~zsadbench.datasets.base.DatasetAdapter.recognises`)."""
    if not folder.is_dir():
        return False
    names = {n.lower() for n in (cls.name, *getattr(cls, "aliases", ()))}
    recognises = getattr(cls, "recognises", None)
    return folder.name.lower() in names or (callable(recognises) and bool(recognises(folder)))
