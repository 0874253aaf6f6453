"""Every built-in method still gives its stored outputs on fixed inputs and random weights (tiny configs).

The stored files and the inputs come from ``scripts/make_reference_outputs.py``; see
``tests/reference_outputs/README.md`` for when and how to regenerate them.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "make_reference_outputs.py"
STORED = ROOT / "tests" / "reference_outputs"
REGENERATE = f"python {SCRIPT.relative_to(ROOT)} --out {STORED.relative_to(ROOT)} --method {{name}}"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_reference_outputs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reference = _load_script()
BUILTINS = reference.builtin_methods()


def test_every_builtin_has_a_stored_reference() -> None:
    missing = [name for name in BUILTINS if not (STORED / f"{name}.npz").is_file()]
    assert not missing, (
        f"no stored reference outputs for {', '.join(missing)}: add a tiny configuration to TINY in "
        f"{SCRIPT.relative_to(ROOT)} and run " + "; ".join(REGENERATE.format(name=n) for n in missing)
    )


@pytest.mark.parametrize("name", BUILTINS)
def test_outputs_match_the_stored_reference(name: str) -> None:
    path = STORED / f"{name}.npz"
    assert path.is_file(), f"{path} missing: run python scripts/make_reference_outputs.py --out tests/reference_outputs"
    with np.load(path) as stored_file:
        stored = {key: stored_file[key] for key in stored_file.files}
    current = reference.run_method(name)
    hint = (f"{name} outputs changed (stored for version {stored['version']}, code is version {current['version']}); "
            f"if the change is intended, bump {name}'s version and run {REGENERATE.format(name=name)}")
    assert sorted(current) == sorted(stored), f"{hint}: settings differ"
    for key in sorted(set(current) - {"version"}):
        assert current[key].dtype == np.float32 and current[key].shape == stored[key].shape, f"{hint}: {key}"
        # Float reductions may be ordered differently across torch builds and CPUs, so allow a little slack;
        # on one machine the outputs are expected to be bitwise equal.
        np.testing.assert_allclose(current[key], stored[key], rtol=1e-5, atol=1e-6, err_msg=f"{hint}: {key}")
