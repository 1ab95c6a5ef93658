"""Learning-rate schedules: step decay with linear warm-up (mmcv's ``policy='step'`` with
``warmup='linear'``; the pose recipes), poly decay by iteration (the segmentation
recipes; over ``epochs`` x iterations per epoch or a fixed ``iterations``), and the linear scaling rule for batch sizes
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


@dataclass(frozen=True)
class PolyWarmupSchedule:
    """Polynomial decay over all iterations (the Cityscapes recipes: lr (1 - t/T)^power),
    with the same linear warm-up as ``StepWarmupSchedule``."""
    base_lr: float
    total_iters: int
    power: float = 0.9
    min_lr: float = 0.0
    warmup_iters: int = 0
    warmup_ratio: float = 0.001
    lag: int = 0                   # step g runs at the rate of step max(g - lag, 0)
    # rate_epoch "samples": the counter is epoch x counted_epoch + max(i - lag, 0) for the
    # i-th step of an epoch of steps_per_epoch steps (total_iters = epochs x counted_epoch)
    counted_epoch: int | None = None
    steps_per_epoch: int | None = None

    def lr(self, epoch: int, iteration: int) -> float:
        if self.counted_epoch is not None:
            within = iteration - epoch * self.steps_per_epoch
            iteration = epoch * self.counted_epoch + max(within - self.lag, 0)
        else:
            iteration = max(iteration - self.lag, 0)
        progress = min(iteration, self.total_iters) / max(self.total_iters, 1)
        regular = (self.base_lr - self.min_lr) * (1 - progress) ** self.power + self.min_lr
        if iteration < self.warmup_iters:
            k = (1 - iteration / self.warmup_iters) * (1 - self.warmup_ratio)
            return regular * (1 - k)
        return regular


def build_schedule(schedule, base_lr: float, iters_per_epoch: int,
                   counted_epoch: int | None = None):
    """A protocol's ``schedule`` (mapping or ``bench.suite.Schedule``) -> an object with
    ``lr(epoch, global_iteration)``. ``base_lr`` is the rate after batch scaling;
    ``counted_epoch`` the iterations per epoch a ``rate_epoch: samples`` poly counts
    (floor(train samples / total batch))."""
    s = schedule.model_dump() if hasattr(schedule, "model_dump") else dict(schedule)
    warm = s.get("warmup") or {}
    if warm and warm.get("type", "linear") != "linear":
        raise ValueError(f"warm-up type {warm.get('type')!r} is not implemented (linear only)")
    warmup = {"warmup_iters": int(warm.get("iters", 0)),
              "warmup_ratio": float(warm.get("ratio", 0.001))} if warm else {}
    if s.get("policy", "step") == "poly":
        by_samples = s.get("rate_epoch", "steps") == "samples"
        if by_samples and not counted_epoch:
            raise ValueError("rate_epoch: samples needs the counted epoch length "
                             "(train samples // total batch)")
        per_epoch = counted_epoch if by_samples else iters_per_epoch
        total = int(s["iterations"]) if s.get("iterations") else int(s["epochs"]) * per_epoch
        return PolyWarmupSchedule(base_lr, total,
                                  float(s.get("power", 0.9)), float(s.get("min_lr", 0.0)),
                                  **warmup, lag=int(s.get("rate_lag", 0)),
                                  counted_epoch=counted_epoch if by_samples else None,
                                  steps_per_epoch=iters_per_epoch if by_samples else None)
    return StepWarmupSchedule(base_lr, tuple(s.get("milestones", ())),
                              float(s.get("gamma", 0.1)), **warmup)
