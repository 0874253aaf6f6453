"""Sweep files: ``zsadbench run --config sweep.yaml`` reads a run's options from YAML, ``--print-config`` writes the
file that reproduces a command line, and every run stores its own under ``OUT/sweeps/``.

A sweep file is a mapping of ``run``'s options by name (``eval_size`` or ``eval-size``): a scalar for a value, a
list for a comma list (``method``, ``datasets``, ``shots``, ``seeds``, ``categories``) or a repeated option
(``plugin``), ``true``/``false`` for a flag, and ``set`` a mapping of method options to a value or a list of values
(a grid; a list of lists for a tuple option). Options given on the command line win over the file's.
"""
from __future__ import annotations

import argparse
import difflib
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError

#: options of ``run`` that are about this invocation, not about what it computes
NOT_STORED = ("config", "print_config", "dry_run", "command", "debug", "_module")
REPEATED = ("plugin",)


def expand_config(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """``argv`` with a ``run --config FILE`` replaced by the file's options, placed before the command line's own
    so that those win; a ``--set KEY=…`` of the command line replaces the file's for that key."""
    if not argv or argv[0] != "run":
        return argv
    rest = list(argv[1:])
    path = None
    for i, token in enumerate(rest):
        if token == "--config" and i + 1 < len(rest):
            path = rest[i + 1]
            del rest[i : i + 2]
            break
        if token.startswith("--config="):
            path = token.partition("=")[2]
            del rest[i]
            break
    if path is None:
        return argv
    given = {token.partition("=")[0] for flag, token in zip(rest, rest[1:]) if flag == "--set"}
    tokens = file_tokens(Path(path), parser)
    kept: list[str] = []
    i = 0
    while i < len(tokens):
        if tokens[i] == "--set" and tokens[i + 1].partition("=")[0] in given:
            i += 2
            continue
        kept.append(tokens[i])
        i += 1
    return ["run", *kept, *rest]


def file_tokens(path: Path, parser: argparse.ArgumentParser) -> list[str]:
    """The command-line tokens of the sweep file at ``path`` for ``run``'s ``parser``."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--config {path}: no such file; write one with `zsadbench run ... --print-config > {path}`")
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"--config {path}: not a YAML file ({' '.join(str(exc).split())}); fix the file") from None
    if data is None:
        return []
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: expected a mapping of run options (method: ..., datasets: ...), "
                          f"got {type(data).__name__}")
    actions = {a.dest: a for a in _run_parser(parser)._actions if a.option_strings}
    tokens: list[str] = []
    for key, value in data.items():
        dest = str(key).replace("-", "_")
        dest = "overrides" if dest == "set" else dest
        action = actions.get(dest)
        if action is None or dest in NOT_STORED:
            names = sorted(k.replace("_", "-") for k in actions if k not in NOT_STORED)
            close = difflib.get_close_matches(str(key).replace("_", "-"), names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"--config {path}: {key!r} is not an option of zsadbench run; {hint}see "
                              "`zsadbench run --help`")
        tokens += _tokens(action, value, path, str(key))
    return tokens


def _tokens(action: argparse.Action, value: Any, path: Path, key: str) -> list[str]:
    flag = action.option_strings[-1] if action.option_strings[-1].startswith("--") else action.option_strings[0]
    if value is None or value == [] or value == {}:
        return []
    if isinstance(action, argparse._StoreTrueAction):
        if not isinstance(value, bool):
            raise ConfigError(f"--config {path}: {key} is a flag; give true or false, not {value!r}")
        return [flag] if value else []
    if action.dest == "overrides":
        if not isinstance(value, dict):
            raise ConfigError(f"--config {path}: set must be a mapping of method options, e.g. set: {{gain: [1, 2]}}")
        return [token for name, v in value.items() for token in (flag, f"{name}={_set_value(v)}")]
    if action.dest in REPEATED:
        return [token for item in (value if isinstance(value, list) else [value]) for token in (flag, str(item))]
    if isinstance(value, (dict, bool)):
        raise ConfigError(f"--config {path}: {key} takes a value or a list, not {value!r}")
    return [flag, ",".join(map(str, value)) if isinstance(value, list) else str(value)]


def _set_value(value: Any) -> str:
    """A ``--set`` value: a list is a grid; a list of lists a grid of tuple values (``|`` between them)."""
    if isinstance(value, list):
        if any(isinstance(v, list) for v in value):
            return "|".join(",".join(map(str, v)) if isinstance(v, list) else str(v) for v in value)
        return ",".join(map(str, value))
    return str(value).lower() if isinstance(value, bool) else str(value)


def _run_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices["run"]
    return parser


def config_text(args: argparse.Namespace) -> str:
    """The sweep file that reproduces ``args`` (a parsed ``run`` command line), every option written out."""
    import yaml

    out: dict[str, Any] = {}
    for key, value in vars(args).items():
        if key in NOT_STORED:
            continue
        name = "set" if key == "overrides" else key
        if key == "overrides":
            value = {k: v for k, v in value}
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, Path):
            value = str(value)
        out[name] = value
    return "# zsadbench run --config FILE\n" + yaml.safe_dump(out, sort_keys=False, allow_unicode=True)


def store_config(args: argparse.Namespace, out: Path) -> Path:
    """Write this run's sweep file as ``OUT/sweeps/run-<time>.yaml`` and return its path."""
    folder = Path(out) / "sweeps"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = folder / f"run-{stamp}.yaml"
    n = 1
    while path.exists():
        n += 1
        path = folder / f"run-{stamp}-{n}.yaml"
    path.write_text(config_text(args), encoding="utf-8")
    return path
