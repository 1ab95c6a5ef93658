"""A tiny top-down pose network, written as any user would write one: plain PyTorch,
nothing from HRBench. A suite row names its builder as ``mypkg.mymodule:build``; the
builder's keyword arguments are what a row (or a protocol's ``num_joints``) can set."""
from __future__ import annotations

from torch import nn


def conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class TinyPoseNet(nn.Module):
    """Two stride-2 stem convolutions, ``blocks`` 3x3 convolutions at 1/4 resolution and
    a 1x1 head: one heatmap per joint at a quarter of the input size."""

    def __init__(self, width: int = 16, num_joints: int = 17, blocks: int = 2):
        super().__init__()
        self.stem = nn.Sequential(conv_bn_relu(3, width, 2), conv_bn_relu(width, width, 2))
        self.body = nn.Sequential(*[conv_bn_relu(width, width) for _ in range(blocks)])
        self.head = nn.Conv2d(width, num_joints, 1)

    def forward(self, x):
        return self.head(self.body(self.stem(x)))


def build(width: int = 16, num_joints: int = 17, blocks: int = 2) -> nn.Module:
    """TinyPoseNet: stride-4 heatmaps from two stems, ``blocks`` 3x3 blocks, a 1x1 head."""
    return TinyPoseNet(width, num_joints, blocks)
