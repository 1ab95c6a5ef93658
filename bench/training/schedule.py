"""Learning-rate schedules of the pose recipes: step decay with linear warm-up (mmcv's
``policy='step'`` with ``warmup='linear'``), and the linear scaling rule for batch sizes
other than the reference one."""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class StepWarmupSchedule:
    base_lr: float
    milestones: Sequence[int]      # epochs at which the rate is multiplied by gamma
    gamma: float = 0.1
    warmup_iters: int = 0
    warmup_ratio: float = 0.001    # the rate starts at base_lr x warmup_ratio

    def lr(self, epoch: int, iteration: int) -> float:
        """Rate for ``epoch`` (0-based) at global ``iteration`` (0-based)."""
        regular = self.base_lr * self.gamma ** bisect_right(list(self.milestones), epoch)
        if iteration < self.warmup_iters:
            # mmcv: k = (1 - i / warmup_iters) (1 - ratio); lr = regular (1 - k)
            k = (1 - iteration / self.warmup_iters) * (1 - self.warmup_ratio)
            return regular * (1 - k)
        return regular


def scaled_lr(base_lr: float, batch_size: int, reference_batch_size: int) -> float:
    """Linear scaling rule (Goyal et al. 2017): the rate grows with the total batch."""
    if batch_size <= 0 or reference_batch_size <= 0:
        raise ValueError("batch sizes must be positive")
    return base_lr * batch_size / reference_batch_size
