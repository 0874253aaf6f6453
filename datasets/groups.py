"""Named groups of datasets for ``--datasets``: ``all``, ``industrial``, ``medical`` and comma lists."""
from __future__ import annotations

import difflib
from collections.abc import Iterable

from zsadbench import registry
from zsadbench.errors import ConfigError, PluginError

#: the 15 datasets of the zero-shot protocol, in the order of the MPAMA paper's tables
ZSAD_DATASETS = (
    "mvtec", "visa", "mpdd", "btad", "sdd", "dagm", "dtd",
    "isic", "clinicdb", "colondb", "kvasir", "endo", "headct", "brainmri", "br35h",
)
GROUPS: dict[str, tuple[str, ...]] = {
    "all": ZSAD_DATASETS,
    "industrial": ZSAD_DATASETS[:7],
    "medical": ZSAD_DATASETS[7:],
}


def expand_datasets(spec: str | Iterable[str]) -> list[str]:
    """Dataset names of a spec such as ``"industrial,isic"``: groups expanded, duplicates dropped, order kept.

    Any registered dataset name is valid (``realiad``, ``synthetic``, ``meta_json`` and third-party plugins are
    only selected by name); an unknown one raises :class:`~zsadbench.errors.PluginError` with suggestions.
    """
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names: list[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        if item.lower() in GROUPS:
            names += GROUPS[item.lower()]
            continue
        datasets = registry.datasets()
        if item not in datasets and item.lower() in datasets:
            item = item.lower()
        if item not in datasets:
            close = difflib.get_close_matches(item.lower(), GROUPS, n=1)
            if close:
                raise PluginError(f"unknown dataset or group {item!r}. Did you mean the group {close[0]!r}?")
        datasets.get(item)
        names.append(item)
    if not names:
        raise ConfigError(f"no dataset named in {spec!r}; use a name, a comma list, or one of {', '.join(GROUPS)}")
    return list(dict.fromkeys(names))
