"""HRNet (Sun et al., CVPR 2019) for top-down pose estimation, and Small HRNet.

Serves HRNet's pose tables and the Small HRNet-W16 baseline of Lite-HRNet Tables 3, 5
and 6. Attribute names follow the official ``pose_hrnet.py`` (``conv1``, ``bn1``,
``layer1``, ``transition1``, ``stage2`` ... ``final_layer``) so its checkpoints load with
``strict=True``. The multi-resolution parts (transitions, fusion grid and forward) are
the shared ones in ``layers``; HRNet passes full 3x3 convolutions and the standard fusion.

Small HRNet-W16 is HRNet-Semantic-Segmentation's ``seg_hrnet_w18_small_v1`` depth
(one module per stage, one bottleneck in stage 1, two blocks per branch) with widths
16/32/64/128, used as a pose network (1x1 heatmap head on the highest resolution).
Under Lite-HRNet's counting convention it gives 1,284,961 parameters and 551.7M /
735.5M / 1.21G FLOPs at 256x192 / 256x256 / 384x288, the values Lite-HRNet prints.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import torch
from torch import nn

from ..registry import register_model
from .layers import (BLOCKS, BN_MOMENTUM, apply_transition, fuse_branches, full_conv3x3_bn,
                     init_pose_weights, make_fuse_layers, make_res_layer, make_transition)


@dataclass(frozen=True)
class HRNetSpec:
    widths: tuple[int, ...] = (32, 64, 128, 256)   # C, 2C, 4C, 8C of stages 2-4
    num_modules: tuple[int, ...] = (1, 4, 3)       # stages 2, 3, 4
    num_blocks: int = 4                            # basic blocks per branch per module
    stem_width: int = 64
    stage1_block: str = "BOTTLENECK"
    stage1_blocks: int = 4
    stage1_planes: int = 64
    num_joints: int = 17
    final_conv_kernel: int = 1

    def validate(self) -> None:
        if self.stage1_block not in BLOCKS:
            raise ValueError(f"stage1_block must be one of {sorted(BLOCKS)}")
        if len(self.widths) != len(self.num_modules) + 1:
            raise ValueError("need one width per branch: len(widths) == len(num_modules) + 1")

    def summary(self) -> str:
        return f"widths={'/'.join(map(str, self.widths))}; modules={'/'.join(map(str, self.num_modules))}; fusion=standard"


class HighResolutionModule(nn.Module):
    """Parallel branches of basic blocks, then the standard HRNet fusion."""

    def __init__(self, channels: Sequence[int], num_blocks: int, multi_scale_output: bool = True):
        super().__init__()
        self.branches = nn.ModuleList(
            make_res_layer(BLOCKS["BASIC"], c, c, num_blocks) for c in channels)
        self.fuse_layers = make_fuse_layers(
            channels, len(channels) if multi_scale_output else 1, full_conv3x3_bn)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        return fuse_branches(xs, self.fuse_layers, self.relu, "standard")


class PoseHighResolutionNet(nn.Module):
    def __init__(self, spec: HRNetSpec):
        super().__init__()
        w = spec.stem_width
        self.conv1 = nn.Conv2d(3, w, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(w, w, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(w, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        block = BLOCKS[spec.stage1_block]
        self.layer1 = make_res_layer(block, w, spec.stage1_planes, spec.stage1_blocks)
        channels_last = [spec.stage1_planes * block.expansion]
        self.num_stages = len(spec.num_modules)
        for s, num_modules in enumerate(spec.num_modules, start=2):
            channels = list(spec.widths[: s])
            setattr(self, f"transition{s - 1}",
                    make_transition(channels_last, channels, full_conv3x3_bn))
            last_stage = s == self.num_stages + 1
            setattr(self, f"stage{s}", nn.Sequential(*[
                HighResolutionModule(channels, spec.num_blocks,
                                     multi_scale_output=not (last_stage and m == num_modules - 1))
                for m in range(num_modules)]))
            channels_last = channels
        self.final_layer = nn.Conv2d(spec.widths[0], spec.num_joints, spec.final_conv_kernel,
                                     padding=spec.final_conv_kernel // 2)
        init_pose_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        branches = [self.layer1(x)]
        for s in range(2, self.num_stages + 2):
            branches = apply_transition(getattr(self, f"transition{s - 1}"), branches)
            branches = getattr(self, f"stage{s}")(branches)
        return self.final_layer(branches[0])


HRNET_W32 = HRNetSpec()
HRNET_W48 = replace(HRNET_W32, widths=(48, 96, 192, 384))
SMALL_HRNET_W16 = replace(HRNET_W32, widths=(16, 32, 64, 128), num_modules=(1, 1, 1),
                          num_blocks=2, stage1_blocks=1, stage1_planes=32)


@register_model(HRNET_W32)
def hrnet_w32(spec: HRNetSpec) -> PoseHighResolutionNet:
    """HRNet-W32 pose network (SimpleBaseline-style 1x1 head on the 1/4 branch)."""
    return PoseHighResolutionNet(spec)


@register_model(HRNET_W48)
def hrnet_w48(spec: HRNetSpec) -> PoseHighResolutionNet:
    """HRNet-W48 pose network."""
    return PoseHighResolutionNet(spec)


@register_model(SMALL_HRNET_W16)
def small_hrnet_w16(spec: HRNetSpec) -> PoseHighResolutionNet:
    """Small HRNet-W16 (Lite-HRNet's baseline): w18_small_v1 depth at widths 16-128."""
    return PoseHighResolutionNet(spec)
