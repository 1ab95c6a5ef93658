"""Task heads shared by the model families.

``HeatmapHead`` is mmpose's ``TopDownSimpleHead`` without deconvolutions
(``num_deconv_layers=0``, ``final_conv_kernel=1``), the head Lite-HRNet uses: a 1x1 conv
from the highest-resolution features to one heatmap per joint (``final_layer``).

``DeconvHeatmapHead`` is the SimpleBaseline head (Xiao et al. 2018) in mmpose's naming
(``deconv_layers``, ``final_layer``): stride-2 transposed convolutions, each followed by
BatchNorm and ReLU, then the 1x1 heatmap conv. By our reading of mmpose's configs (no
mmpose mobile network is run by a test) it is the head of the MobileNetV2 and
ShuffleNetV2 rows of Lite-HRNet Tables 3 and 5. SimpleBaseline's own ``PoseResNet``
keeps the same two modules at its top level (``baselines_official.json``), built here
by ``make_deconv_layers``.

``CenterNetHead`` is CenterNet's detection head (centre heatmaps, box sizes, offsets), used
by FlatteNet's detector (FlatteNet Tables IX, X).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def deconv_padding(kernel_size: int) -> tuple[int, int]:
    """(padding, output_padding) that make a stride-2 transposed conv exactly double the
    size: out = 2 (in - 1) - 2 p + k + op = 2 in  <=>  2 p - op = k - 2."""
    rules = {4: (1, 0), 3: (1, 1), 2: (0, 0)}
    if kernel_size not in rules:
        raise ValueError(f"deconvolution kernel must be 2, 3 or 4, got {kernel_size}")
    return rules[kernel_size]


def make_deconv_layers(in_channels: int, filters: Sequence[int], kernels: Sequence[int],
                       bias: bool = False) -> nn.Sequential:
    """[ConvTranspose2d(stride 2), BatchNorm2d, ReLU] per entry of ``filters``, flat in one
    Sequential so that the official keys are ``deconv_layers.{3i}`` / ``.{3i+1}``."""
    if len(filters) != len(kernels):
        raise ValueError(f"{len(filters)} deconv filters but {len(kernels)} kernels")
    layers: list[nn.Module] = []
    for planes, kernel in zip(filters, kernels):
        padding, output_padding = deconv_padding(kernel)
        layers += [nn.ConvTranspose2d(in_channels, planes, kernel, stride=2, padding=padding,
                                      output_padding=output_padding, bias=bias),
                   nn.BatchNorm2d(planes),
                   nn.ReLU(inplace=True)]
        in_channels = planes
    return nn.Sequential(*layers)


class DeconvHeatmapHead(nn.Module):
    """Low-resolution features -> heatmaps: len(filters) doublings, then a 1x1 conv."""

    def __init__(self, in_channels: int, num_joints: int,
                 filters: Sequence[int] = (256, 256, 256), kernels: Sequence[int] = (4, 4, 4),
                 final_conv_kernel: int = 1):
        super().__init__()
        self.deconv_layers = make_deconv_layers(in_channels, filters, kernels)
        width = filters[-1] if filters else in_channels
        self.final_layer = nn.Conv2d(width, num_joints, final_conv_kernel,
                                     padding=final_conv_kernel // 2)

    def forward(self, x: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        if isinstance(x, (list, tuple)):
            x = x[-1]
        return self.final_layer(self.deconv_layers(x))


class HeatmapHead(nn.Module):
    def __init__(self, in_channels: int, num_joints: int, kernel_size: int = 1):
        super().__init__()
        self.final_layer = nn.Conv2d(in_channels, num_joints, kernel_size,
                                     padding=kernel_size // 2)

    def forward(self, x: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        if isinstance(x, (list, tuple)):
            x = x[0]
        return self.final_layer(x)


class CenterNetHead(nn.Module):
    """CenterNet's heads (Zhou et al., "Objects as Points") as we read its
    resnet_dcn.py (no test runs CenterNet's own head): for each output, a 3x3 conv of
    ``head_conv`` channels with bias, ReLU, and a 1x1 conv: ``hm`` (one centre heatmap
    per class, logits), ``wh`` (box width and height), ``reg`` (sub-pixel centre offset).
    Returns the tuple (hm, wh, reg)."""

    OUTPUTS = ("hm", "wh", "reg")
    HEATMAP_PRIOR = -2.19    # CenterNet's hm bias as we read it: sigmoid(-2.19) ~ 0.1

    def __init__(self, in_channels: int, num_classes: int, head_conv: int = 64):
        super().__init__()
        for name, out in zip(self.OUTPUTS, (num_classes, 2, 2)):
            setattr(self, name, nn.Sequential(
                nn.Conv2d(in_channels, head_conv, 3, padding=1, bias=True),
                nn.ReLU(inplace=True),
                nn.Conv2d(head_conv, out, 1, bias=True)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every conv N(0, 0.001^2) with zero bias, then the heatmap logits' bias at the
        prior. As we read resnet_dcn.py, this is CenterNet's init of ``wh`` and ``reg``
        only: its ``hm`` convs keep PyTorch's default init, and only the last ``hm`` bias
        is set to -2.19 (training_centernet_voc_ctdet.json, differences_seen[3])."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
                nn.init.zeros_(m.bias)
        nn.init.constant_(self.hm[-1].bias, self.HEATMAP_PRIOR)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return tuple(getattr(self, name)(x) for name in self.OUTPUTS)
