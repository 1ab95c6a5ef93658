"""Parameter counts: the total and per module (every prefix of the module tree)."""
from __future__ import annotations

from collections import defaultdict

from torch import nn


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (shared tensors counted once; buffers never)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def params_by_module(model: nn.Module) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for name, p in model.named_parameters():
        parts = name.split(".")[:-1]
        totals[""] += p.numel()
        for k in range(1, len(parts) + 1):
            totals[".".join(parts[:k])] += p.numel()
    return dict(totals)
