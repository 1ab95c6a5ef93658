"""Parameter counts: the total and per module (every prefix of the module tree)."""
from __future__ import annotations

from collections import defaultdict

from torch import nn


def count_params(model: nn.Module, trainable_only: bool = False,
                 convention: str | None = None) -> int:
    """Number of parameters (shared tensors counted once; buffers never). With a
    ``convention`` that names the module types its paper counted (``param_modules``),
    only those modules' own parameters are added up."""
    if convention is not None:
        from .conventions import get_convention
        conv = get_convention(convention)
        if conv.param_modules is not None:
            seen: set[int] = set()
            total = 0
            for module in model.modules():
                if not conv.counts_params_of(module):
                    continue
                for p in module.parameters(recurse=False):
                    if id(p) not in seen and (p.requires_grad or not trainable_only):
                        seen.add(id(p))
                        total += p.numel()
            return total
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def params_by_module(model: nn.Module) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for name, p in model.named_parameters():
        parts = name.split(".")[:-1]
        totals[""] += p.numel()
        for k in range(1, len(parts) + 1):
            totals[".".join(parts[:k])] += p.numel()
    return dict(totals)
