"""Shared building blocks for every model family.

Attribute names follow the official implementations so that released checkpoints load
with ``strict=True``: ``ConvNormAct`` mirrors mmcv's ``ConvModule`` (``conv``, ``bn``,
``activate``), ``DepthwiseSeparableConv`` mirrors mmcv's ``DepthwiseSeparableConvModule``,
``BasicBlock``/``Bottleneck`` mirror the HRNet repositories (``conv1``, ``bn1`` ...).

The multi-resolution machinery (transitions that add a branch, the fusion grid and its
forward) is written once here; HRNet uses it with full 3x3 convolutions, Lite-HRNet with
separable ones, by passing the convolution that differs.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

BN_MOMENTUM = 0.1

FUSION_MODES = ("official", "standard")


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle: (N, g*c, H, W) -> interleave the g groups."""
    n, c, h, w = x.shape
    x = x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous()
    return x.view(n, c, h, w)


class ConvNormAct(nn.Module):
    """conv -> BatchNorm -> activation, named like mmcv's ConvModule.

    As in ConvModule with ``bias='auto'``, the convolution has a bias only when there
    is no normalisation after it.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1,
                 stride: int = 1, padding: int | None = None, groups: int = 1,
                 norm: bool = True, act: str | None = "relu"):
        super().__init__()
        if padding is None:
            padding = kernel_size // 2
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                              groups=groups, bias=not norm)
        if norm:
            self.bn = nn.BatchNorm2d(out_channels)
        if act == "relu":
            self.activate = nn.ReLU(inplace=True)
        elif act == "sigmoid":
            self.activate = nn.Sigmoid()
        elif act is not None:
            raise ValueError(f"unknown activation {act!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if hasattr(self, "bn"):
            x = self.bn(x)
        if hasattr(self, "activate"):
            x = self.activate(x)
        return x


class DepthwiseSeparableConv(nn.Module):
    """3x3 depthwise (BN, no activation) then 1x1 pointwise (BN, ReLU)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__()
        self.depthwise_conv = ConvNormAct(in_channels, in_channels, kernel_size,
                                          groups=in_channels, act=None)
        self.pointwise_conv = ConvNormAct(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    # padding = dilation keeps the spatial size (stride 1) for any dilation
    return nn.Conv2d(in_channels, out_channels, 3, stride, dilation, dilation=dilation, bias=False)


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convolutions), HRNet attribute names."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, dilation: int = 1):
        super().__init__()
        if dilation != 1:
            raise ValueError("BasicBlock supports no dilation (as in torchvision)")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """ResNet bottleneck (1x1, 3x3, 1x1; expansion 4), HRNet attribute names."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, dilation: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = conv3x3(planes, planes, stride, dilation)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


BLOCKS = {"BASIC": BasicBlock, "BOTTLENECK": Bottleneck}


def make_res_layer(block: type[nn.Module], inplanes: int, planes: int, num_blocks: int,
                   stride: int = 1, dilation: int = 1,
                   first_dilation: int | None = None) -> nn.Sequential:
    """A stack of residual blocks; the first gets a 1x1 projection when shapes change.
    With dilation (a dilated ResNet), the first block keeps the previous stage's
    ``first_dilation`` and the others use ``dilation``, as torchvision does."""
    downsample = None
    if stride != 1 or inplanes != planes * block.expansion:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, planes * block.expansion, 1, stride, bias=False),
            nn.BatchNorm2d(planes * block.expansion, momentum=BN_MOMENTUM),
        )
    first = dilation if first_dilation is None else first_dilation
    layers = [block(inplanes, planes, stride, downsample, dilation=first)]
    layers += [block(planes * block.expansion, planes, dilation=dilation)
               for _ in range(1, num_blocks)]
    return nn.Sequential(*layers)


# --- multi-resolution machinery -------------------------------------------------------
# ``ConvFactory(in_channels, out_channels, stride)`` returns the conv (+BN) part of one
# 3x3 step; HRNet passes a full 3x3 conv + BN, Lite-HRNet a depthwise 3x3 + BN + 1x1 + BN.
ConvFactory = Callable[[int, int, int], Sequence[nn.Module]]


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1,
                 dilation: int = 1) -> nn.Sequential:
    """conv (no bias, "same" padding) -> BN -> ReLU as a plain Sequential (keys 0, 1, 2):
    DPN's transitions, GSTO's PPM / ASPP branches, FlatteNet's regular 1x1 layer."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, stride,
                                   dilation * (kernel_size // 2), dilation, bias=False),
                         nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM), nn.ReLU(inplace=True))


def full_conv3x3_bn(in_channels: int, out_channels: int, stride: int) -> list[nn.Module]:
    return [conv3x3(in_channels, out_channels, stride),
            nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM)]


def separable_conv3x3_bn(in_channels: int, out_channels: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, in_channels, 3, stride, 1, groups=in_channels, bias=False),
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels)]


def make_transition(pre_channels: Sequence[int], cur_channels: Sequence[int],
                    conv: ConvFactory) -> nn.ModuleList:
    """Transition between stages: adapt existing branches, add new lower resolutions.

    Entry ``i`` is ``None`` where branch ``i`` passes through unchanged (kept as a hole
    in the ModuleList so that indices, and checkpoint keys, match the official code).
    A new branch is produced from the lowest existing one by strided steps; only the
    last step changes the width.
    """
    layers: list[nn.Module | None] = []
    for i, out_ch in enumerate(cur_channels):
        if i < len(pre_channels):
            if out_ch != pre_channels[i]:
                layers.append(nn.Sequential(*conv(pre_channels[i], out_ch, 1), nn.ReLU()))
            else:
                layers.append(None)
            continue
        steps = []
        for j in range(i + 1 - len(pre_channels)):
            in_ch = pre_channels[-1]
            step_out = out_ch if j == i - len(pre_channels) else in_ch
            steps.append(nn.Sequential(*conv(in_ch, step_out, 2), nn.ReLU()))
        layers.append(nn.Sequential(*steps))
    return nn.ModuleList(layers)


def apply_transition(transition: nn.ModuleList, branches: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    out = []
    for i, layer in enumerate(transition):
        if layer is None:
            out.append(branches[i])
        else:
            out.append(layer(branches[i] if i < len(branches) else branches[-1]))
    return out


def make_fuse_layers(channels: Sequence[int], num_outputs: int, conv: ConvFactory,
                     upsample: str = "nearest") -> nn.ModuleList:
    """The fusion grid: ``fuse[i][j]`` maps branch j onto branch i's resolution and width.

    j > i (lower resolution): 1x1 conv + BN + nearest upsampling by 2**(j-i) as a module
    (HRNet pose, Lite-HRNet); with ``upsample="bilinear"`` (HRNetV2 segmentation) the grid
    holds only 1x1 conv + BN and ``fuse_branches(resize="bilinear")`` resizes to branch i's
    exact size. The state-dict keys are the same either way.
    j < i (higher resolution): i-j strided 3x3 steps; ReLU after all but the last.
    j == i: None (identity).
    """
    grid = []
    for i in range(num_outputs):
        row: list[nn.Module | None] = []
        for j, cj in enumerate(channels):
            if j > i:
                up = [nn.Upsample(scale_factor=2 ** (j - i), mode="nearest")] if upsample == "nearest" else []
                row.append(nn.Sequential(
                    nn.Conv2d(cj, channels[i], 1, bias=False),
                    nn.BatchNorm2d(channels[i], momentum=BN_MOMENTUM), *up))
            elif j == i:
                row.append(None)
            else:
                steps = []
                for k in range(i - j):
                    if k == i - j - 1:
                        steps.append(nn.Sequential(*conv(cj, channels[i], 2)))
                    else:
                        steps.append(nn.Sequential(*conv(cj, cj, 2), nn.ReLU(inplace=True)))
                row.append(nn.Sequential(*steps))
        grid.append(nn.ModuleList(row))
    return nn.ModuleList(grid)


def fuse_branches(branches: list[torch.Tensor], fuse_layers: nn.ModuleList, relu: nn.Module,
                  mode: str = "standard", resize: str | None = None,
                  align_corners: bool = True) -> list[torch.Tensor]:
    """Exchange information across resolutions.

    ``standard`` (HRNet): output i = ReLU(sum_j fuse[i][j](x_j)), x_i itself for j == i.
    ``resize="bilinear"``: lower-resolution terms are resized to x_i's size with bilinear
    interpolation, corners aligned (HRNet-Semantic-Segmentation's ALIGN_CORNERS default;
    ``align_corners=False`` is what its released W48 configs set).

    ``official`` reproduces Lite-HRNet's released fusion loop, which differs in two ways:
    its inner loop starts again at j = 0, so branch 0 is added twice, and for output 0 it
    accumulates *in place* into x_0's own tensor (``y = x[0]; y += ...``). Output 0 is then
    ReLU(2 x_0 + sum_{j>0} up(x_j)), and every later output i reads the overwritten x_0
    twice: ReLU(2 down(x_0') + x_i + sum_{j>0, j!=i} fuse[i][j](x_j)) with
    x_0' = 2 x_0 + sum_{j>0} up(x_j). The released weights were trained with this.
    """
    if mode == "standard":
        out = []
        for i, row in enumerate(fuse_layers):
            y = branches[i]
            for j, x in enumerate(branches):
                if j == i:
                    continue
                term = row[j](x)
                if resize is not None and j > i:
                    term = F.interpolate(term, size=y.shape[-2:], mode=resize,
                                         align_corners=align_corners)
                y = y + term
            out.append(relu(y))
        return out
    if mode == "official":
        x = list(branches)
        out = []
        for i, row in enumerate(fuse_layers):
            y = x[0] if i == 0 else row[0](x[0])
            for j in range(len(x)):
                # in place on purpose: for i == 0, ``y`` *is* x[0]
                y += x[j] if i == j else row[j](x[j])
            out.append(relu(y))
        return out
    raise ValueError(f"unknown fusion mode {mode!r}; expected one of {FUSION_MODES}")


def init_pose_weights(module: nn.Module, std: float = 0.001) -> nn.Module:
    """The initialisation of the official pose code as we read it (HRNet ``init_weights``,
    mmpose's ``normal_init(std=0.001)`` in Lite-HRNet's backbone and head; the training
    goldens load their own init, so no test runs it): every (transposed) convolution
    ~ N(0, std^2) with zero bias, every norm layer weight 1 and bias 0.
    With PyTorch's default init instead, the initial heatmaps are large and the first
    iterations of the paper's recipe spend themselves on shrinking them."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.SyncBatchNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return module
