"""The runner: plan the cells of a run, fit and evaluate each method, store every cell."""
from .execute import RunSummary, evaluate, execute_plan
from .plan import Cell, RunConfig, auxiliary_for
from .planner import Plan, build_plan

__all__ = ["Cell", "Plan", "RunConfig", "RunSummary", "auxiliary_for", "build_plan", "evaluate", "execute_plan"]
