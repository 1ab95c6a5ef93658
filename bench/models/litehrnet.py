"""Lite-HRNet (Yu et al., CVPR 2021): shuffle blocks and conditional channel weighting.

Serves Lite-HRNet Tables 1, 2, 6 and 7 (and the Lite-HRNet rows of 3-5):

* ``litehrnet_18`` / ``litehrnet_30``: stem (stride-2 3x3 conv + shuffle block), three
  stages of modules made of two conditional-channel-weighting (CCW) blocks and a fusion
  block, widths 40/80/160/320, 2/4/2 (18) or 3/8/3 (30) modules (Table 1).
* ``naive_litehrnet_18`` (widths 30/60/120/240) and ``wider_naive_litehrnet_18``
  (40/80/160/320): ShuffleNet-V2 blocks instead of CCW blocks (Sec. 3.1, Table 6).
  ``drop_pointwise=1|2`` removes one or both 1x1 convolutions of each shuffle block.
* ``weighting='spatial'|'cross_resolution'`` keeps only one of CCW's two weightings
  (Table 7).
* ``table2_*``: the single operators of Table 2 on the 64x64x40 + 32x32x80 example,
  each with the paper's closed-form complexity as ``theory_macs``.
* ``litehrnet_18_seg`` / ``litehrnet_30_seg`` (Table 8, Cityscapes): the same backbone,
  iterative head included, and a 1x1 classifier to ``num_classes`` logits at 1/4 of the
  input (see ``LiteHRNetSegmentation``).

Module attribute names follow the official code (github.com/HRNet/Lite-HRNet, mmpose
TopDown with a ``TopDownSimpleHead``), so released checkpoints load with ``strict=True``.
``fusion='official'`` (default) computes what the released fusion loop computes;
``fusion='standard'`` is HRNet's plain sum (see ``layers.fuse_branches``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register_model
from .heads import HeatmapHead
from .layers import (FUSION_MODES, ConvNormAct, DepthwiseSeparableConv, apply_transition,
                     channel_shuffle, fuse_branches, make_fuse_layers, make_transition,
                     init_pose_weights, separable_conv3x3_bn)

WEIGHTINGS = ("both", "spatial", "cross_resolution")


@dataclass(frozen=True)
class LiteHRNetBackboneSpec:
    num_modules: tuple[int, ...] = (2, 4, 2)     # per stage (stages 2, 3, 4 of Table 1)
    num_blocks: int = 2                          # CCW / shuffle blocks per module
    widths: tuple[int, ...] = (40, 80, 160, 320)  # branch widths C, 2C, 4C, 8C
    stem_channels: int = 32
    stem_expand_ratio: float = 1.0
    block: str = "ccw"                           # "ccw" (Lite-HRNet) | "shuffle" (naive)
    reduce_ratio: int = 8                        # cross-resolution weighting bottleneck
    spatial_ratio: int = 4                       # spatial weighting bottleneck
    weighting: str = "both"                      # CCW variants of Table 7
    drop_pointwise: int = 0                      # shuffle blocks: 1x1 convs removed (Table 6)
    fusion: str = "official"                     # "official" | "standard"

    def summary(self) -> str:
        parts = [f"block={self.block}", f"fusion={self.fusion}"]
        if self.weighting != "both":
            parts.append(f"weighting={self.weighting}")
        if self.drop_pointwise:
            parts.append(f"drop_pointwise={self.drop_pointwise}")
        return "; ".join(parts)

    def validate(self) -> None:
        if self.block not in ("ccw", "shuffle"):
            raise ValueError(f"block must be 'ccw' or 'shuffle', got {self.block!r}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {self.weighting!r}")
        if self.fusion not in FUSION_MODES:
            raise ValueError(f"fusion must be one of {FUSION_MODES}, got {self.fusion!r}")
        if self.drop_pointwise not in (0, 1, 2):
            raise ValueError(f"drop_pointwise must be 0, 1 or 2, got {self.drop_pointwise!r}")
        if self.drop_pointwise and self.block != "shuffle":
            raise ValueError("drop_pointwise applies to shuffle blocks (naive Lite-HRNet) only")
        if self.weighting != "both" and self.block != "ccw":
            raise ValueError("weighting applies to CCW blocks (Lite-HRNet) only")
        if len(self.widths) != len(self.num_modules) + 1:
            raise ValueError("need one width per branch: len(widths) == len(num_modules) + 1")


@dataclass(frozen=True)
class LiteHRNetSpec(LiteHRNetBackboneSpec):
    num_joints: int = 17


@dataclass(frozen=True)
class LiteHRNetSegSpec(LiteHRNetBackboneSpec):
    num_classes: int = 19                        # Cityscapes


# --- blocks ----------------------------------------------------------------------------

class SpatialWeighting(nn.Module):
    """F_s: GAP -> 1x1 (ReLU) -> 1x1 (sigmoid); weights shared by all positions (Eq. 6)."""

    def __init__(self, channels: int, ratio: int = 4):
        super().__init__()
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.conv1 = ConvNormAct(channels, int(channels / ratio), norm=False, act="relu")
        self.conv2 = ConvNormAct(int(channels / ratio), channels, norm=False, act="sigmoid")

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(self.global_avgpool(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weights(x)


class CrossResolutionWeighting(nn.Module):
    """H_s: pool every branch to the lowest resolution, 1x1-ReLU-1x1-sigmoid over the
    concatenation, split, upsample each weight map back to its branch (Eq. 3-4)."""

    def __init__(self, channels: Sequence[int], ratio: int = 8):
        super().__init__()
        self.channels = tuple(channels)
        total = sum(channels)
        self.conv1 = ConvNormAct(total, int(total / ratio), act="relu")
        self.conv2 = ConvNormAct(int(total / ratio), total, act="sigmoid")

    def weights(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        size = xs[-1].shape[-2:]
        pooled = [F.adaptive_avg_pool2d(x, size) for x in xs[:-1]] + [xs[-1]]
        w = self.conv2(self.conv1(torch.cat(pooled, dim=1)))
        return [F.interpolate(a, size=x.shape[-2:], mode="nearest")
                for x, a in zip(xs, torch.split(w, self.channels, dim=1))]

    def forward(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [x * w for x, w in zip(xs, self.weights(xs))]


class ConditionalChannelWeighting(nn.Module):
    """CCW block (Fig. 1b): split; cross-resolution weighting, 3x3 depthwise, spatial
    weighting on one half; concatenate; shuffle."""

    def __init__(self, in_channels: Sequence[int], reduce_ratio: int, spatial_ratio: int = 4,
                 weighting: str = "both"):
        super().__init__()
        branch_channels = [c // 2 for c in in_channels]
        if weighting in ("both", "cross_resolution"):
            self.cross_resolution_weighting = CrossResolutionWeighting(branch_channels, reduce_ratio)
        self.depthwise_convs = nn.ModuleList(
            ConvNormAct(c, c, 3, groups=c, act=None) for c in branch_channels)
        if weighting in ("both", "spatial"):
            self.spatial_weighting = nn.ModuleList(
                SpatialWeighting(c, spatial_ratio) for c in branch_channels)

    def forward(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        halves = [x.chunk(2, dim=1) for x in xs]
        kept = [h[0] for h in halves]
        y = [h[1] for h in halves]
        if hasattr(self, "cross_resolution_weighting"):
            y = self.cross_resolution_weighting(y)
        y = [dw(s) for s, dw in zip(y, self.depthwise_convs)]
        if hasattr(self, "spatial_weighting"):
            y = [sw(s) for s, sw in zip(y, self.spatial_weighting)]
        return [channel_shuffle(torch.cat([a, b], dim=1), 2) for a, b in zip(kept, y)]


class ShuffleUnit(nn.Module):
    """ShuffleNet-V2 unit with stride 1 (Fig. 1a): split, 1x1 - 3x3 dw - 1x1 on one half,
    concatenate, shuffle.

    ``drop_pointwise`` (Table 6's wider-naive ablation) removes the last (1) or both (2)
    1x1 convolutions, and with them every ReLU of the branch: the printed FLOPs
    (248.4M / 188.9M at 256x192, 331.0M / 251.7M at 256x256) are reproduced only when no
    activation is left; keeping one ReLU gives 250.0M / 190.5M.
    """

    def __init__(self, channels: int, drop_pointwise: int = 0):
        super().__init__()
        half = channels // 2
        act = None if drop_pointwise else "relu"
        layers: list[nn.Module] = []
        if drop_pointwise < 2:
            layers.append(ConvNormAct(half, half, 1, act=act))
        layers.append(ConvNormAct(half, half, 3, groups=half, act=None))
        if drop_pointwise < 1:
            layers.append(ConvNormAct(half, half, 1, act=act))
        self.branch2 = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x.chunk(2, dim=1)
        return channel_shuffle(torch.cat((x1, self.branch2(x2)), dim=1), 2)


class Stem(nn.Module):
    """3x3 stride-2 conv, then a stride-2 shuffle block (Table 1: 'stem')."""

    def __init__(self, in_channels: int, stem_channels: int, out_channels: int,
                 expand_ratio: float):
        super().__init__()
        self.out_channels = out_channels
        self.conv1 = ConvNormAct(in_channels, stem_channels, 3, stride=2)
        mid = int(round(stem_channels * expand_ratio))
        branch = stem_channels // 2
        same_width = stem_channels == out_channels
        inc = out_channels - branch if same_width else out_channels - stem_channels
        self.branch1 = nn.Sequential(
            ConvNormAct(branch, branch, 3, stride=2, groups=branch, act=None),
            ConvNormAct(branch, inc, 1),
        )
        self.expand_conv = ConvNormAct(branch, mid, 1)
        self.depthwise_conv = ConvNormAct(mid, mid, 3, stride=2, groups=mid, act=None)
        self.linear_conv = ConvNormAct(mid, branch if same_width else stem_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x1, x2 = x.chunk(2, dim=1)
        x2 = self.linear_conv(self.depthwise_conv(self.expand_conv(x2)))
        return channel_shuffle(torch.cat((self.branch1(x1), x2), dim=1), 2)


class LiteHRModule(nn.Module):
    """``num_blocks`` CCW blocks (or per-branch shuffle blocks) then one fusion block."""

    def __init__(self, spec: LiteHRNetBackboneSpec, in_channels: Sequence[int]):
        super().__init__()
        self.in_channels = list(in_channels)
        self.fusion = spec.fusion
        self.block = spec.block
        if spec.block == "ccw":
            self.layers = nn.Sequential(*[
                ConditionalChannelWeighting(in_channels, spec.reduce_ratio, spec.spatial_ratio,
                                            spec.weighting)
                for _ in range(spec.num_blocks)])
        else:
            self.layers = nn.ModuleList(
                nn.Sequential(*[ShuffleUnit(c, spec.drop_pointwise) for _ in range(spec.num_blocks)])
                for c in in_channels)
        self.fuse_layers = make_fuse_layers(in_channels, len(in_channels), separable_conv3x3_bn)
        self.relu = nn.ReLU()

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.block == "ccw":
            out = self.layers(xs)
        else:
            out = [branch(x) for branch, x in zip(self.layers, xs)]
        return fuse_branches(out, self.fuse_layers, self.relu, self.fusion)


class IterativeHead(nn.Module):
    """Top-down aggregation from the lowest to the highest resolution with separable
    convs; the highest-resolution output feeds the heatmap head."""

    def __init__(self, in_channels: Sequence[int]):
        super().__init__()
        chans = list(in_channels)[::-1]
        self.projects = nn.ModuleList(
            DepthwiseSeparableConv(c, chans[i + 1] if i + 1 < len(chans) else c)
            for i, c in enumerate(chans))

    def forward(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        out, last = [], None
        for x, project in zip(xs[::-1], self.projects):
            if last is not None:
                x = x + F.interpolate(last, size=x.shape[-2:], mode="bilinear", align_corners=True)
            last = project(x)
            out.append(last)
        return out[::-1]


class LiteHRNet(nn.Module):
    def __init__(self, spec: LiteHRNetBackboneSpec, in_channels: int = 3):
        super().__init__()
        self.stem = Stem(in_channels, spec.stem_channels, spec.stem_channels, spec.stem_expand_ratio)
        self.num_stages = len(spec.num_modules)
        channels_last = [spec.stem_channels]
        for s, num_modules in enumerate(spec.num_modules):
            channels = list(spec.widths[: s + 2])
            setattr(self, f"transition{s}",
                    make_transition(channels_last, channels, separable_conv3x3_bn))
            setattr(self, f"stage{s}",
                    nn.Sequential(*[LiteHRModule(spec, channels) for _ in range(num_modules)]))
            channels_last = channels
        self.head_layer = IterativeHead(channels_last)
        self.out_channels = channels_last[0]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        branches = [self.stem(x)]
        for s in range(self.num_stages):
            branches = apply_transition(getattr(self, f"transition{s}"), branches)
            branches = getattr(self, f"stage{s}")(branches)
        return [self.head_layer(branches)[0]]


class LiteHRNetTopDown(nn.Module):
    """Backbone + 1x1 heatmap head, named like mmpose's TopDown (``backbone``,
    ``keypoint_head``) so official checkpoints load unchanged."""

    def __init__(self, spec: LiteHRNetSpec):
        super().__init__()
        self.backbone = LiteHRNet(spec)
        self.keypoint_head = HeatmapHead(self.backbone.out_channels, spec.num_joints)
        init_pose_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.keypoint_head(self.backbone(x))


class SegmentationClassifier(nn.Module):
    """A 1x1 conv from the highest-resolution features to one logit map per class, named
    like mmsegmentation's ``conv_seg``: the authors' segmentation code was never released,
    but their FLOP tool (tools/summary_network.py, "Train a segmentor", default input
    2048x1024) reads as an adaptation of mmsegmentation's get_flops.py (not run here)."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.conv_seg = nn.Conv2d(in_channels, num_classes, 1)

    def forward(self, xs: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.conv_seg(xs[0])


class LiteHRNetSegmentation(nn.Module):
    """Lite-HRNet for semantic segmentation (Table 8): backbone with its iterative head,
    then ``decode_head``, a 1x1 classifier; logits at 1/4 of the input (the loss and the
    prediction resize them to the label).

    The authors never released this network (HRNet/Lite-HRNet issues 2 and 52), so the
    head is read from the printed numbers: Table 8's 1.1M / 1.8M leave room for 63k-96k
    head parameters on the 1,054,032 / 1,686,980 of the backbones without their iterative
    head, and the iterative head + 1x1 classifier adds 76,819 (19 classes). HRNetV2's
    concatenation head (+373k) or mmsegmentation's FCN head on the iterative head
    (+135k) give 1.4M / 1.2M for Lite-HRNet-18. The GFLOPs ratio of the two networks with
    this head (1.555) lies within the rounding of the printed 3.02 / 1.95 (1.542-1.555);
    the absolute GFLOPs are not reproduced (the suite lite_hrnet_table8 says by how much)."""

    def __init__(self, spec: LiteHRNetSegSpec):
        super().__init__()
        self.backbone = LiteHRNet(spec)
        self.decode_head = SegmentationClassifier(self.backbone.out_channels, spec.num_classes)
        # trained from scratch (Table 8, P = N): the backbone's init as we read the
        # official code (normal_init(std=0.001), BN 1/0) for every layer, classifier too
        init_pose_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode_head(self.backbone(x))


# --- Table 2 probes: one operator on the 64x64x40 + 32x32x80 example ---------------------

@dataclass(frozen=True)
class Table2ProbeSpec:
    operator: str                                   # conv1x1 | dwconv3x3 | ccw_spatial | ...
    channels: tuple[int, ...] = (40, 80)
    ratio: int = 1   # the paper's formulas assume no bottleneck in the weighting functions

    def summary(self) -> str:
        return f"operator={self.operator}; ratio={self.ratio}"

    def validate(self) -> None:
        if self.operator not in TABLE2_OPERATORS:
            raise ValueError(f"operator must be one of {sorted(TABLE2_OPERATORS)}")


def _theory_conv1x1(shapes):  # sum_s N_s C_s^2
    return sum(h * w * c * c for c, h, w in shapes)


def _theory_dwconv3x3(shapes):  # sum_s 9 N_s C_s
    return sum(9 * h * w * c for c, h, w in shapes)


def _theory_ccw_spatial(shapes):  # sum_s (2 C_s^2 + N_s C_s)
    return sum(2 * c * c + h * w * c for c, h, w in shapes)


def _theory_ccw_cross_resolution(shapes):  # 2 (sum_s C_s)^2 + sum_s N_s C_s
    return 2 * sum(c for c, _, _ in shapes) ** 2 + sum(h * w * c for c, h, w in shapes)


def _theory_ccw(shapes):  # 2 (sum_s C_s)^2 + 2 sum_s (C_s^2 + N_s C_s)
    return (2 * sum(c for c, _, _ in shapes) ** 2
            + 2 * sum(c * c + h * w * c for c, h, w in shapes))


TABLE2_OPERATORS = {
    "conv1x1": _theory_conv1x1,
    "dwconv3x3": _theory_dwconv3x3,
    "ccw_spatial": _theory_ccw_spatial,
    "ccw_cross_resolution": _theory_ccw_cross_resolution,
    "ccw": _theory_ccw,
}


class Table2Probe(nn.Module):
    """One Table 2 operator applied to every resolution of a multi-resolution input."""

    def __init__(self, spec: Table2ProbeSpec):
        super().__init__()
        self.spec = spec
        op, chans = spec.operator, spec.channels
        if op in ("conv1x1", "dwconv3x3"):
            k, groups = (1, 1) if op == "conv1x1" else (3, None)
            self.convs = nn.ModuleList(
                nn.Conv2d(c, c, k, padding=k // 2, groups=groups or c, bias=False) for c in chans)
        if op in ("ccw", "ccw_cross_resolution"):
            self.cross_resolution_weighting = CrossResolutionWeighting(chans, spec.ratio)
        if op in ("ccw", "ccw_spatial"):
            self.spatial_weighting = nn.ModuleList(SpatialWeighting(c, spec.ratio) for c in chans)

    def theory_macs(self, input_shapes: Sequence[Sequence[int]]) -> int:
        """The closed form printed in Table 2 ('Theory Complexity'), (C, H, W) per branch."""
        return TABLE2_OPERATORS[self.spec.operator]([tuple(s[-3:]) for s in input_shapes])

    def forward(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if hasattr(self, "convs"):
            return [conv(x) for conv, x in zip(self.convs, xs)]
        if hasattr(self, "cross_resolution_weighting"):
            xs = self.cross_resolution_weighting(xs)
        if hasattr(self, "spatial_weighting"):
            xs = [sw(x) for sw, x in zip(self.spatial_weighting, xs)]
        return list(xs)


# --- registered constructors -----------------------------------------------------------

LITEHRNET_18 = LiteHRNetSpec()
LITEHRNET_30 = replace(LITEHRNET_18, num_modules=(3, 8, 3))
WIDER_NAIVE_LITEHRNET_18 = replace(LITEHRNET_18, block="shuffle")
NAIVE_LITEHRNET_18 = replace(WIDER_NAIVE_LITEHRNET_18, widths=(30, 60, 120, 240))
LITEHRNET_18_SEG = LiteHRNetSegSpec()
LITEHRNET_30_SEG = replace(LITEHRNET_18_SEG, num_modules=(3, 8, 3))


@register_model(LITEHRNET_18)
def litehrnet_18(spec: LiteHRNetSpec) -> LiteHRNetTopDown:
    """Lite-HRNet-18: CCW blocks, 2/4/2 modules (Table 1)."""
    return LiteHRNetTopDown(spec)


@register_model(LITEHRNET_30)
def litehrnet_30(spec: LiteHRNetSpec) -> LiteHRNetTopDown:
    """Lite-HRNet-30: CCW blocks, 3/8/3 modules (Table 1)."""
    return LiteHRNetTopDown(spec)


@register_model(NAIVE_LITEHRNET_18)
def naive_litehrnet_18(spec: LiteHRNetSpec) -> LiteHRNetTopDown:
    """Naive Lite-HRNet-18: shuffle blocks, widths 30/60/120/240 (Sec. 3.1)."""
    return LiteHRNetTopDown(spec)


@register_model(WIDER_NAIVE_LITEHRNET_18)
def wider_naive_litehrnet_18(spec: LiteHRNetSpec) -> LiteHRNetTopDown:
    """Wider naive Lite-HRNet-18: shuffle blocks, widths 40/80/160/320 (Table 6)."""
    return LiteHRNetTopDown(spec)


@register_model(LITEHRNET_18_SEG)
def litehrnet_18_seg(spec: LiteHRNetSegSpec) -> LiteHRNetSegmentation:
    """Lite-HRNet-18 for semantic segmentation: 1x1 classifier on the iterative head (Table 8)."""
    return LiteHRNetSegmentation(spec)


@register_model(LITEHRNET_30_SEG)
def litehrnet_30_seg(spec: LiteHRNetSegSpec) -> LiteHRNetSegmentation:
    """Lite-HRNet-30 for semantic segmentation (Table 8)."""
    return LiteHRNetSegmentation(spec)


@register_model(Table2ProbeSpec(operator="conv1x1"))
def litehrnet_table2_probe(spec: Table2ProbeSpec) -> Table2Probe:
    """One Table 2 operator (choose with operator=...) on a multi-resolution input."""
    return Table2Probe(spec)
