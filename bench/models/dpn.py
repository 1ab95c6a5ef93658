"""Dilation Pyramid Network (Liu & Guan, "DPN"), the dilation schemes of its ablations.

Serves DPN Tables I-VII (suites/dpn_table*.yaml) and the measured claims of
suites/dpn_receptive_field.yaml.

``dilation`` selects the scheme (``"pyramid"``, the default, ``"reversed"``, ``"normal"``
or an integer); ``high_resolution=True`` is Table IV's variant.

Design reasoning, readings and measurements: docs/design-notes.md, "Module notes",
bench/models/dpn.py.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Union

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register_model
from .hrnet import HighResolutionNet, HRNetSpec
from .layers import BLOCKS, BN_MOMENTUM, Bottleneck, conv_bn_relu, init_pose_weights, make_res_layer

DILATION_SCHEMES = ("pyramid", "reversed", "normal")


def dpm_dilations(scheme: Union[str, int], num_blocks: int) -> tuple[int, ...]:
    """The dilation of each block's 3x3 conv, first block first."""
    if isinstance(scheme, bool) or not isinstance(scheme, (str, int)):
        raise ValueError(f"dilation must be one of {DILATION_SCHEMES} or an integer, got {scheme!r}")
    if isinstance(scheme, int):
        if scheme < 1:
            raise ValueError(f"a constant dilation must be >= 1, got {scheme}")
        return (scheme,) * num_blocks
    if scheme == "pyramid":
        return tuple(2 ** (num_blocks - i) for i in range(1, num_blocks + 1))
    if scheme == "reversed":
        return tuple(2 ** (i - 1) for i in range(1, num_blocks + 1))
    if scheme == "normal":
        return (1,) * num_blocks
    raise ValueError(f"dilation must be one of {DILATION_SCHEMES} or an integer, got {scheme!r}")


def dpm_receptive_field(kernel_size: int, dilations) -> int:
    """Eq. (2) summed over the module: 1 + sum_i (k - 1) d_i; for the pyramid this is
    the paper's (k - 1)(2^N - 1) + 1 (Eq. 6)."""
    return 1 + sum((kernel_size - 1) * d for d in dilations)


@dataclass(frozen=True)
class DPNSpec:
    num_dpms: int = 4
    width: int = 32                     # bottleneck width inside the DPMs (32 or 64)
    blocks_per_dpm: int = 6
    dilation: Union[str, int] = "pyramid"
    conv2: str = "single"               # "single" 1x1/2 conv | "resnet" stage + 1x1 (DPN4_64)
    high_resolution: bool = False       # Table IV: DPMs at 1/4 resolution
    num_joints: int = 17

    def validate(self) -> None:
        dpm_dilations(self.dilation, self.blocks_per_dpm)
        if self.conv2 not in ("single", "resnet"):
            raise ValueError("conv2 must be 'single' (DPN4_32) or 'resnet' (DPN4_64)")
        if self.num_dpms < 0 or self.blocks_per_dpm < 1:
            raise ValueError("num_dpms >= 0 and blocks_per_dpm >= 1 are needed")

    def summary(self) -> str:
        d = "/".join(map(str, dpm_dilations(self.dilation, self.blocks_per_dpm)))
        res = "1/4 (high resolution)" if self.high_resolution else "1/8"
        return f"{self.num_dpms} DPM x {self.blocks_per_dpm} blocks, width {self.width}; dilations {d}; DPMs at {res}"


class DilationPyramidModule(nn.Sequential):
    """Bottlenecks with identity shortcuts; block i dilates its 3x3 conv by ``dilations[i]``."""

    def __init__(self, channels: int, width: int, dilations):
        if channels != width * Bottleneck.expansion:
            raise ValueError(f"a DPM keeps its width: channels {channels} != 4 x width {width}")
        super().__init__(*[Bottleneck(channels, width, dilation=d) for d in dilations])
        self.dilations = tuple(dilations)


class DPN(nn.Module):
    def __init__(self, spec: DPNSpec):
        super().__init__()
        self.conv0 = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False),
                                   nn.BatchNorm2d(64, momentum=BN_MOMENTUM), nn.ReLU(inplace=True),
                                   nn.MaxPool2d(3, 2, 1))
        self.conv1 = make_res_layer(BLOCKS["BOTTLENECK"], 64, 64, 3)
        channels = spec.width * Bottleneck.expansion
        stride = 1 if spec.high_resolution else 2
        if spec.conv2 == "single":
            self.conv2 = conv_bn_relu(256, channels, stride=stride)
        else:
            self.conv2 = nn.Sequential(make_res_layer(BLOCKS["BOTTLENECK"], 256, 128, 4, stride),
                                       conv_bn_relu(512, channels))
        dilations = dpm_dilations(spec.dilation, spec.blocks_per_dpm)
        self.dpms = nn.Sequential(*[DilationPyramidModule(channels, spec.width, dilations)
                                    for _ in range(spec.num_dpms)])
        self.upsample = not spec.high_resolution
        self.final_layer = nn.Conv2d(channels, spec.num_joints, 1)
        init_pose_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dpms(self.conv2(self.conv1(self.conv0(x))))
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return self.final_layer(x)


@dataclass(frozen=True)
class DPNHRNetSpec(HRNetSpec):
    """HRNet-W32 with DPMs stacked on its output (Table VI's DPN2_hrnet)."""
    num_dpms: int = 2
    dpm_width: int = 64
    blocks_per_dpm: int = 6
    dilation: Union[str, int] = "pyramid"

    def validate(self) -> None:
        super().validate()
        dpm_dilations(self.dilation, self.blocks_per_dpm)
        if self.num_dpms < 1:
            raise ValueError("DPN on HRNet needs at least one DPM")

    def summary(self) -> str:
        d = "/".join(map(str, dpm_dilations(self.dilation, self.blocks_per_dpm)))
        return (f"HRNet widths {'/'.join(map(str, self.widths))}, then {self.num_dpms} DPM x "
                f"{self.blocks_per_dpm} blocks, width {self.dpm_width} at 1/8; dilations {d}")


class DPNOnHRNet(HighResolutionNet):
    """HRNet's highest-resolution output (1/4) -> 3x3 stride-2 conv-BN-ReLU to the DPM
    channels (1/8, as DPN's conv2_0 subsamples) -> DPMs -> x2 bilinear -> 1x1 to the
    joints. The backbone keeps HRNet's attribute names, so HRNet's ImageNet weights load
    (``pretrained_layout``)."""

    def __init__(self, spec: DPNHRNetSpec):
        super().__init__(spec, single_output=True)
        channels = spec.dpm_width * Bottleneck.expansion
        self.dpn_transition = conv_bn_relu(spec.widths[0], channels, 3, stride=2)
        dilations = dpm_dilations(spec.dilation, spec.blocks_per_dpm)
        self.dpms = nn.Sequential(*[DilationPyramidModule(channels, spec.dpm_width, dilations)
                                    for _ in range(spec.num_dpms)])
        self.final_layer = nn.Conv2d(channels, spec.num_joints, 1)
        init_pose_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dpms(self.dpn_transition(self.forward_features(x)[0]))
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return self.final_layer(x)


@dataclass(frozen=True)
class DPMSpec:
    """One DPM on its own, for measuring what it does (receptive field, gridding)."""
    blocks: int = 6
    width: int = 2
    dilation: Union[str, int] = "pyramid"

    def validate(self) -> None:
        dpm_dilations(self.dilation, self.blocks)

    def summary(self) -> str:
        return f"dilations {'/'.join(map(str, dpm_dilations(self.dilation, self.blocks)))}"


DPN4_32 = DPNSpec()
DPN4_64 = replace(DPN4_32, width=64, conv2="resnet")


@register_model(DPN4_32)
def dpn4_32(spec: DPNSpec) -> DPN:
    """DPN4_32: four DPMs of width 32 at 1/8 resolution (0.7M parameters)."""
    return DPN(spec)


@register_model(DPN4_64)
def dpn4_64(spec: DPNSpec) -> DPN:
    """DPN4_64: four DPMs of width 64 after ResNet-50's second stage (3.3M parameters)."""
    return DPN(spec)


# Tables II, III and V vary the number of DPMs (DPN1 ... DPN4)
@register_model(replace(DPN4_32, num_dpms=1))
def dpn1_32(spec: DPNSpec) -> DPN:
    """DPN1_32: one DPM of width 32."""
    return DPN(spec)


@register_model(replace(DPN4_32, num_dpms=2))
def dpn2_32(spec: DPNSpec) -> DPN:
    """DPN2_32: two DPMs of width 32."""
    return DPN(spec)


@register_model(replace(DPN4_32, num_dpms=3))
def dpn3_32(spec: DPNSpec) -> DPN:
    """DPN3_32: three DPMs of width 32."""
    return DPN(spec)


@register_model(replace(DPN4_64, num_dpms=1))
def dpn1_64(spec: DPNSpec) -> DPN:
    """DPN1_64: one DPM of width 64."""
    return DPN(spec)


@register_model(replace(DPN4_64, num_dpms=2))
def dpn2_64(spec: DPNSpec) -> DPN:
    """DPN2_64: two DPMs of width 64."""
    return DPN(spec)


@register_model(replace(DPN4_64, num_dpms=3))
def dpn3_64(spec: DPNSpec) -> DPN:
    """DPN3_64: three DPMs of width 64."""
    return DPN(spec)


@register_model(DPNHRNetSpec())
def dpn2_hrnet_w32(spec: DPNHRNetSpec) -> DPNOnHRNet:
    """DPN2_hrnet: HRNet-W32 with two DPMs of width 64 appended (29.5M parameters)."""
    return DPNOnHRNet(spec)


@register_model(DPMSpec())
def dpm(spec: DPMSpec) -> DilationPyramidModule:
    """A dilation pyramid module alone (4 x width channels in and out), for measurements."""
    return DilationPyramidModule(4 * spec.width, spec.width,
                                 dpm_dilations(spec.dilation, spec.blocks))
