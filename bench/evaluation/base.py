"""The one evaluator interface of every task (pose, segmentation, detection).

An evaluator sees the predictions batch by batch (``process``), keeps what its metric
needs in ``self.results`` (a list of picklable, small items: per-sample keypoints, or a
confusion matrix per batch), and ``compute`` turns the results of *all* ranks into the
task's metrics. ``evaluate`` gathers ``results`` across ranks through the function it
is given (``bench.training.distributed.all_gather_objects`` under DDP) and computes on
the main rank, the pattern of mmengine's ``BaseMetric``. No torch here: reports and tests
import this module without it.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence


class Evaluator:
    """Subclasses implement ``process`` (append to ``self.results``) and
    ``compute_metrics(results)``; callers use ``process`` then ``evaluate`` (or
    ``compute`` in one process)."""

    def __init__(self) -> None:
        self.results: list[Any] = []

    def reset(self) -> None:
        self.results = []

    def __len__(self) -> int:
        return len(self.results)

    def process(self, predictions: Mapping[str, Any]) -> None:   # pragma: no cover - abstract
        raise NotImplementedError

    def compute_metrics(self, results: Sequence[Any]) -> dict[str, float]:   # pragma: no cover
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        """The metrics of what this process has seen."""
        return self.compute_metrics(self.results)

    def evaluate(self, gather: Optional[Callable[[Any], list]] = None,
                 is_main: bool = True) -> Optional[dict[str, float]]:
        """The metrics over every rank's results on the main rank (None elsewhere).
        ``gather(obj)`` returns the list of every rank's ``obj``."""
        if gather is None:
            return self.compute()
        parts = gather(self.results)
        if not is_main:
            return None
        return self.compute_metrics([item for part in parts for item in part])
