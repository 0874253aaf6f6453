"""The runner: plan the cells of a run, fit and evaluate each method, store every cell.

The names below are imported on first use, so ``rescore`` and the other modules of this package that compute
no model never load torch.
"""
from ..lazy import surface

_WHERE = {
    "Cell": ".plan",
    "Plan": ".planner",
    "RunConfig": ".plan",
    "RunSummary": ".execute",
    "auxiliary_for": ".plan",
    "build_plan": ".planner",
    "evaluate": ".execute",
    "execute_plan": ".execute",
}

__all__ = sorted(_WHERE)

__getattr__ = surface(__name__, _WHERE)
