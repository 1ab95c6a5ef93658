"""Task heads shared by the model families.

``HeatmapHead`` is mmpose's ``TopDownSimpleHead`` without deconvolutions
(``num_deconv_layers=0``, ``final_conv_kernel=1``), the head Lite-HRNet uses: a 1x1 conv
from the highest-resolution features to one heatmap per joint (``final_layer``).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class HeatmapHead(nn.Module):
    def __init__(self, in_channels: int, num_joints: int, kernel_size: int = 1):
        super().__init__()
        self.final_layer = nn.Conv2d(in_channels, num_joints, kernel_size,
                                     padding=kernel_size // 2)

    def forward(self, x: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        if isinstance(x, (list, tuple)):
            x = x[0]
        return self.final_layer(x)
