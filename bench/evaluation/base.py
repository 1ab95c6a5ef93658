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

import math
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np


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


def finite_or_none(value) -> Optional[float]:
    """A metric as a float, or None when it is not a finite number (JSON has no NaN)."""
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def batch_columns(predictions: Mapping[str, Any], keys: Sequence[str], who: str
                  ) -> dict[str, np.ndarray]:
    """``predictions[k]`` as numpy arrays for ``keys``, all of one batch length; a missing
    key is an error naming it and the evaluator."""
    missing = [k for k in keys if k not in predictions]
    if missing:
        raise KeyError(f"{who}.process: the predictions have no {', '.join(map(repr, missing))} "
                       f"(got {', '.join(map(str, predictions))})")
    cols = {k: np.asarray(predictions[k]) for k in keys}
    sizes = {k: len(v) for k, v in cols.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"{who}.process: columns of different lengths {sizes}")
    return cols


def unique_by_index(results: Sequence[Mapping[str, Any]], num_samples: int | None = None,
                    who: str = "evaluator") -> list:
    """Per-sample results with one item per dataset ``index`` (the first seen: a
    distributed sampler pads the last shard with repeats), in index order.

    With ``num_samples`` every index ``0 .. num_samples - 1`` must be there exactly once
    after this, so a prediction pass that lost samples fails instead of scoring them as
    misses."""
    if not results:
        raise ValueError(f"{who}: no predictions processed")
    first: dict[int, Any] = {}
    for item in results:
        first.setdefault(int(item["index"]), item)
    order = sorted(first)
    if num_samples is not None and (len(order) != num_samples or order[0] < 0
                                    or order[-1] >= num_samples):
        raise ValueError(f"{who}: {len(order)} predictions (indices {order[0]}..{order[-1]}) "
                         f"for {num_samples} samples")
    return [first[i] for i in order]


class KeypointsByIndex(Evaluator):
    """Pose evaluators that score each sample's keypoints against the split's ground
    truth (MPII, LSP): ``process`` keeps ``preds`` (B, K, 2) by dataset ``index``;
    ``compute_metrics`` gets them deduplicated and in index order from ``ordered``."""

    num_samples: Optional[int] = None

    def process(self, predictions: Mapping[str, Any]) -> None:
        """One batch: ``preds`` (B, K, 2) image pixels and ``index`` (B,)."""
        c = batch_columns(predictions, ("preds", "index"), type(self).__name__)
        if c["preds"].ndim != 3 or c["preds"].shape[2] < 2:
            raise ValueError(f"preds must be B x K x 2, got {c['preds'].shape}")
        for i in range(len(c["preds"])):
            self.results.append({"index": int(c["index"][i]),
                                 "preds": c["preds"][i, :, :2].copy()})

    def ordered(self, results: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """(N, K, 2) predictions in index order, one per sample."""
        items = unique_by_index(results, self.num_samples, type(self).__name__)
        return np.stack([r["preds"] for r in items])
