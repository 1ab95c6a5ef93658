"""Optimisers of the pose and segmentation recipes, built from a protocol's
``optimizer`` entry (``bench.suite.Optimizer``): Adam (HRNet, Lite-HRNet, DPN,
FlatteNet, GSTO pose), SGD with momentum (GSTO Cityscapes) and AdamW.

Weight decay is passed to the optimiser, so it is applied whenever the protocol sets it:
as an L2 term added to the gradient for Adam and SGD (PyTorch's ``weight_decay``, what
the reference code used), decoupled for AdamW.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch


def _as_dict(cfg) -> dict[str, Any]:
    return cfg.model_dump() if hasattr(cfg, "model_dump") else dict(cfg)


def build_optimizer(params, cfg: Mapping[str, Any] | Any, lr: float | None = None
                    ) -> torch.optim.Optimizer:
    """``params``: a module or an iterable of parameters. ``lr`` overrides ``cfg['lr']``
    (the rate after batch scaling)."""
    c = _as_dict(cfg)
    if isinstance(params, torch.nn.Module):
        params = [p for p in params.parameters() if p.requires_grad]
    lr = float(c["lr"] if lr is None else lr)
    wd = float(c.get("weight_decay", 0.0))
    kind = c.get("type", "adam")
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, betas=tuple(c.get("betas", (0.9, 0.999))),
                                weight_decay=wd)
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=tuple(c.get("betas", (0.9, 0.999))),
                                 weight_decay=wd)
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=float(c.get("momentum", 0.9)),
                               nesterov=bool(c.get("nesterov", False)), weight_decay=wd)
    raise ValueError(f"unknown optimizer type {kind!r}; known: adam, adamw, sgd")


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
