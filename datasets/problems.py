"""Problems found while indexing a dataset tree, each naming the file at fault and the fix.

Adapters report through a :class:`ProblemLog`. In strict mode (what a run uses) the first *error* raises a
:class:`~zsadbench.errors.DataError`; in lenient mode (what ``zsadbench data check`` uses) every problem is
collected so one walk lists them all. *Warnings* (a stray folder, a short count) never raise.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from zsadbench.errors import DataError

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset copy: where, what, and how to fix it."""

    severity: Severity
    path: Path
    message: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}"
        return f"{text}. Fix: {self.fix}" if self.fix else text


@dataclass
class ProblemLog:
    """Collects problems; raises on the first error when ``strict``."""

    dataset: str = ""
    strict: bool = True
    problems: list[Problem] = field(default_factory=list)
    #: category -> why the index leaves it out (e.g. its folder holds no test images)
    skipped: dict[str, str] = field(default_factory=dict)

    def skip(self, category: str, reason: str) -> None:
        """Record that ``category`` is left out of the index and why (a warning, never an error)."""
        self.skipped.setdefault(category, reason)

    def clear(self) -> None:
        self.problems.clear()
        self.skipped.clear()

    def error(self, path: Path, message: str, fix: str = "") -> None:
        problem = Problem("error", Path(path), message, fix)
        if self.strict:
            prefix = f"{self.dataset}: " if self.dataset else ""
            raise DataError(prefix + str(problem))
        self.problems.append(problem)

    def warn(self, path: Path, message: str, fix: str = "") -> None:
        self.problems.append(Problem("warning", Path(path), message, fix))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]
