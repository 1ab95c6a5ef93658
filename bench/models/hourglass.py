"""Stacked Hourglass (Newell et al., ECCV 2016), the 8-stack network.

Serves the "8-stage Hourglass" rows of HRNet Tables 1 and 4 and Lite-HRNet Table 3
(printed: 25.1M parameters, 14.3 GFLOPs at 256x192, 19.1 GFLOPs at 256x256).

Key names follow bearpaw/pytorch-pose's ``hg``. The default is the network of the paper's
text; ``residual_after_hourglass=True`` with ``stem="pytorch_pose"`` is our port of
bearpaw's network.

Design reasoning, readings and measurements: docs/design-notes.md, "Module notes",
bench/models/hourglass.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register_model
from .layers import init_pose_weights

STEMS = ("pytorch_pose", "newell")


@dataclass(frozen=True)
class HourglassSpec:
    num_stacks: int = 8
    num_features: int = 256
    depth: int = 4             # poolings inside one hourglass (64x64 -> 4x4 at 256x256)
    num_blocks: int = 1        # residual modules per location
    stem: str = "newell"       # "newell" (hg.lua) | "pytorch_pose" (bearpaw's port)
    residual_after_hourglass: bool = False   # hg.lua / bearpaw: True; the paper's text: False
    num_joints: int = 17

    def validate(self) -> None:
        if self.stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {self.stem!r}")
        if self.num_features % 2:
            raise ValueError("num_features must be even (the bottleneck halves it)")
        if self.num_stacks < 1 or self.depth < 1 or self.num_blocks < 1:
            raise ValueError("num_stacks, depth and num_blocks must be positive")

    def summary(self) -> str:
        return (f"stacks={self.num_stacks}; blocks={self.num_blocks}; stem={self.stem}; "
                f"residual_after_hourglass={self.residual_after_hourglass}")


class PreActBottleneck(nn.Module):
    """Newell's residual module: three BN-ReLU-conv steps (1x1 halving the width, 3x3,
    1x1 to ``out_channels``), added to the input or to its 1x1 projection."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        mid = out_channels // 2
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, mid, 1)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_channels, 1)
        self.relu = nn.ReLU(inplace=True)
        if in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.downsample(x) if hasattr(self, "downsample") else x
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + shortcut


def residual_stack(in_channels: int, out_channels: int, num_blocks: int) -> nn.Sequential:
    return nn.Sequential(PreActBottleneck(in_channels, out_channels),
                         *[PreActBottleneck(out_channels, out_channels) for _ in range(num_blocks - 1)])


class Hourglass(nn.Module):
    """One hourglass. ``hg[level - 1]`` holds the modules of the level that pools from
    resolution r to r/2: [skip branch at r, after pooling, after the inner hourglass],
    plus, at the innermost level, the module that replaces the inner hourglass."""

    def __init__(self, channels: int, depth: int, num_blocks: int):
        super().__init__()
        self.depth = depth
        self.hg = nn.ModuleList(
            nn.ModuleList(residual_stack(channels, channels, num_blocks)
                          for _ in range(4 if level == 0 else 3))
            for level in range(depth))

    def _level(self, level: int, x: torch.Tensor) -> torch.Tensor:
        skip, down, up = self.hg[level - 1][:3]
        low = down(F.max_pool2d(x, 2, stride=2))
        low = self._level(level - 1, low) if level > 1 else self.hg[0][3](low)
        return skip(x) + F.interpolate(up(low), scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._level(self.depth, x)


class StackedHourglass(nn.Module):
    def __init__(self, spec: HourglassSpec):
        super().__init__()
        f, joints, blocks = spec.num_features, spec.num_joints, spec.num_blocks
        self.num_stacks = spec.num_stacks
        self.size_multiple = 4 * 2 ** spec.depth   # stem /4, then one halving per level
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = residual_stack(64, 128, 1)
        self.maxpool = nn.MaxPool2d(2, stride=2)
        if spec.stem == "pytorch_pose":
            self.layer2 = residual_stack(128, f, 1)
            self.layer3 = residual_stack(f, f, 1)
        else:
            self.layer2 = residual_stack(128, 128, 1)
            self.layer3 = residual_stack(128, f, 1)
        n = spec.num_stacks
        self.hg = nn.ModuleList(Hourglass(f, spec.depth, blocks) for _ in range(n))
        if spec.residual_after_hourglass:
            self.res = nn.ModuleList(residual_stack(f, f, blocks) for _ in range(n))
        self.fc = nn.ModuleList(
            nn.Sequential(nn.Conv2d(f, f, 1), nn.BatchNorm2d(f), nn.ReLU(inplace=True))
            for _ in range(n))
        self.score = nn.ModuleList(nn.Conv2d(f, joints, 1) for _ in range(n))
        self.fc_ = nn.ModuleList(nn.Conv2d(f, f, 1) for _ in range(n - 1))
        self.score_ = nn.ModuleList(nn.Conv2d(joints, f, 1) for _ in range(n - 1))
        init_pose_weights(self)

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The heatmaps of every stack (intermediate supervision), first to last."""
        if x.shape[-2] % self.size_multiple or x.shape[-1] % self.size_multiple:
            raise ValueError(f"input size {tuple(x.shape[-2:])} must be a multiple of "
                             f"{self.size_multiple} (4 x 2**depth)")
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.maxpool(self.layer1(x))))
        heatmaps = []
        for i in range(self.num_stacks):
            y = self.hg[i](x)
            if hasattr(self, "res"):
                y = self.res[i](y)
            y = self.fc[i](y)
            score = self.score[i](y)
            heatmaps.append(score)
            if i < self.num_stacks - 1:
                x = x + self.fc_[i](y) + self.score_[i](score)
        return heatmaps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The last stack's heatmaps."""
        return self.forward_all(x)[-1]


@register_model(HourglassSpec())
def hourglass_8stack(spec: HourglassSpec) -> StackedHourglass:
    """8-stack Hourglass (Newell et al.), as the paper's text describes it (see module doc)."""
    return StackedHourglass(spec)
