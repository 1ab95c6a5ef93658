"""Heatmap loss of the top-down pose papers (HRNet, SimpleBaseline, Lite-HRNet, GSTO, DPN,
FlatteNet pose tables)."""
from __future__ import annotations

import torch
from torch import nn


def joints_mse(pred: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor | None = None,
               factor: float = 0.5) -> torch.Tensor:
    """HRNet's JointsMSELoss: 0.5 x mean squared error over batch, joints and pixels, each
    joint's heatmaps multiplied by its target weight (0 for unlabelled joints). mmpose's
    JointsMSELoss is the same without the half: ``factor=1.0``.

    The reference loops over joints, averages each joint's MSE over batch and pixels, and
    averages over joints; with equal sizes that is one mean over everything.
    """
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    diff = pred - target
    if target_weight is not None:
        w = target_weight.reshape(*target_weight.shape[:2], *([1] * (pred.dim() - 2)))
        diff = diff * w
    return factor * diff.pow(2).mean()


class JointsMSELoss(nn.Module):
    def __init__(self, use_target_weight: bool = True):
        super().__init__()
        self.use_target_weight = use_target_weight

    def forward(self, pred, target, target_weight=None):
        return joints_mse(pred, target, target_weight if self.use_target_weight else None)
