"""Evaluation of any task: the validation set sharded over ranks (no padding, every
sample once), the task's prediction with its test-time augmentation per batch, the
task's evaluator fed batch by batch and its results gathered on rank 0."""
from __future__ import annotations

from typing import Mapping, Optional

import torch
from torch.utils.data import DataLoader

from .distributed import DistInfo, all_gather_objects
from .sampler import EpochSampler


@torch.no_grad()
def evaluate(task, model: torch.nn.Module, dataset, protocol: Mapping, device: torch.device,
             dist_info: DistInfo = DistInfo(), amp: str = "off", channels_last: bool = False,
             num_workers: int = 2, batch_size: Optional[int] = None) -> Optional[dict]:
    """The task's metrics of ``model`` on ``dataset`` (on rank 0; None elsewhere)."""
    model.eval()
    sampler = EpochSampler(len(dataset), shuffle=False, rank=dist_info.rank,
                           world_size=dist_info.world_size, pad=False)
    loader = DataLoader(dataset, batch_size=batch_size or task.eval_batch_size(protocol),
                        sampler=sampler, num_workers=num_workers,
                        pin_memory=device.type == "cuda", collate_fn=task.collate_fn(train=False))
    evaluator = task.evaluator(dataset, protocol)
    for batch in loader:
        evaluator.process(task.predict(model, batch, dataset, protocol, device, amp=amp,
                                       channels_last=channels_last))
    gather = all_gather_objects if dist_info.distributed else None
    return evaluator.evaluate(gather, dist_info.is_main)


def evaluate_targets(task, dataset, protocol: Mapping) -> dict:
    """The metrics the dataset's own targets score through the task's prediction path
    (decoding, inverse transforms, flips): the target oracle of the smoke gate."""
    evaluator = task.evaluator(dataset, protocol)
    for predictions in task.target_predictions(dataset, protocol):
        evaluator.process(predictions)
    return evaluator.compute()
