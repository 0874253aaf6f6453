"""Toy methods for the Ray executor tests: they record, in a trace file their config names, which process
fitted and which predicted each category, and can sleep in ``predict`` so a test can kill a worker mid-cell.

The settings live in the config (not in environment variables) because they must reach Ray worker processes.
"""
from __future__ import annotations

import dataclasses
import os
import time

from zsadbench.method import FitData
from zsadbench.types import Batch, Prediction

from toy_plugins import ToyConfig, ToyMethod, ToyTrainedMethod


@dataclasses.dataclass(frozen=True)
class TracedConfig(ToyConfig):
    sleep: float = 0.0
    trace: str = ""


def _trace(config: TracedConfig, event: str, what: str) -> None:
    if config.trace:
        with open(config.trace, "a") as handle:
            handle.write(f"{event} {os.getpid()} {what}\n")


class TracedToy(ToyMethod):
    """The training-free toy method, traced."""

    name = "tracedtoy"
    config_class = TracedConfig

    def predict(self, batch: Batch) -> Prediction:
        _trace(self.config, "predict", batch.category)
        time.sleep(self.config.sleep)
        return super().predict(batch)


class TracedTrained(ToyTrainedMethod):
    """The toy method that trains on an auxiliary set, traced."""

    name = "tracedtrained"
    config_class = TracedConfig

    def fit(self, data: FitData) -> "TracedTrained":
        _trace(self.config, "fit", data.dataset)
        return super().fit(data)

    def predict(self, batch: Batch) -> Prediction:
        _trace(self.config, "predict", batch.category)
        time.sleep(self.config.sleep)
        return super().predict(batch)
