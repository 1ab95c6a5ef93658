"""What a task plugs into the task-agnostic trainer, job and runner.

A task (``pose``, ``segmentation``; ``detection`` next) owns everything that differs
between them: its datasets from a protocol, the loss as a dict of named, weighted terms,
prediction with its test-time augmentation, its evaluator (``bench.evaluation.base``),
the predictions its own targets give (the smoke gate's target oracle), its smoke-data
writer and the metric names it reports. The trainer's step is
``losses = task.loss(as_outputs(model(batch["image"])), batch, protocol); sum(losses)``.

Models return a tensor (the main output) or, in training mode, a mapping of the main
output under ``"out"`` plus named auxiliary outputs (GSTO's stage predictors);
``as_outputs`` makes both a mapping.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

import torch

from ..training.outputs import MAIN_OUTPUT, as_outputs, main_output  # noqa: F401  (re-exported)
from ..protocol import Protocol


def loss_precision(t):
    """``t`` in at least float32: half-precision outputs of autocast are cast up for the
    loss, a float64 run (the training golden tests) stays float64."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


class Task:
    """Base of the task plug-ins. ``bench.tasks.get_task`` makes one instance per task and
    gives it its ``spec`` (``bench.tasks.TaskSpec``): name, metric names, datasets."""

    spec = None     # set by bench.tasks.get_task

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def metric_names(self) -> tuple[str, ...]:
        return self.spec.metric_names

    @property
    def datasets(self) -> tuple[str, ...]:
        return self.spec.datasets

    # --- data -------------------------------------------------------------------------
    def build_dataset(self, protocol: Protocol, data_root, train: bool, seed: int = 0):
        raise NotImplementedError

    def collate_fn(self, train: bool):
        """The DataLoader's collate function (None: torch's default)."""
        return None

    def smoke_protocol(self, protocol):
        """The (typed) protocol as the smoke profile runs it on the generated data (sizes
        made to fit small images), of the same type; must be idempotent. Unchanged by
        default."""
        return protocol

    def write_smoke_data(self, root: Path, seed: int = 0) -> None:
        """Write small datasets in the official layouts this task reads under ``root``."""
        raise NotImplementedError

    # --- training ---------------------------------------------------------------------
    def loss(self, outputs: Mapping[str, Any], batch: Mapping[str, Any],
             protocol: Protocol) -> dict[str, Any]:
        """Named loss terms, already weighted; the trainer sums them."""
        raise NotImplementedError

    # --- evaluation -------------------------------------------------------------------
    def eval_batch_size(self, protocol: Protocol) -> int:
        return 1

    def predict(self, model, batch: Mapping[str, Any], dataset, protocol: Protocol, device,
                amp: str = "off", channels_last: bool = False) -> dict:
        """The predictions of one batch, in the form the task's evaluator ``process``es."""
        raise NotImplementedError

    def evaluator(self, dataset, protocol: Protocol):
        raise NotImplementedError

    def oracle_dataset(self, protocol: Protocol, data_root):
        """The dataset the target oracle runs on (the validation set by default; pose on
        COCO needs ground-truth boxes, since detections have no targets)."""
        return self.build_dataset(protocol, data_root, train=False)

    def target_predictions(self, dataset, protocol: Protocol) -> Iterable[dict]:
        """Batches of predictions made from the dataset's own targets, pushed through
        the prediction path (decoding, inverse transforms, flips): scored by the
        evaluator they must give the best score (the smoke gate's target oracle)."""
        raise NotImplementedError

    def extra_metrics(self, train_set, val_set, protocol: Protocol) -> Optional[dict]:
        """Reference scores a run reports beside its metrics (e.g. a mean-pose baseline)."""
        return None
