"""SimpleBaseline (Xiao et al., ECCV 2018): ResNet + three deconvolutions.

Serves the SimpleBaseline rows of HRNet Tables 1, 2 and 4 and Lite-HRNet Tables 3 and 4.
The network is the official ``PoseResNet`` (microsoft/human-pose-estimation.pytorch,
copied unchanged into leoxiaobin/deep-high-resolution-net.pytorch as
``lib/models/pose_resnet.py``) with the ``d256x3`` configs: a torchvision-layout ResNet
without pooling and classifier, three 4x4 stride-2 transposed convolutions of 256
channels (padding 1, output padding 0, no bias), each with BatchNorm and ReLU, and a 1x1
conv to one heatmap per joint. Keys equal the official ones (``conv1``, ``bn1``,
``layer1``..``layer4``, ``deconv_layers.N``, ``final_layer``), so released checkpoints load
with ``strict=True`` and the ResNet part takes torchvision's ImageNet weights.

Measured with the official code (17 joints, ``baselines_official.json``): 33,999,697 /
52,991,825 / 68,635,473 parameters for ResNet-50 / 101 / 152, the 34.0M / 53.0M / 68.6M
the papers print.

Initialisation, as we read the official ``init_weights`` (no test runs it): it draws the
deconvolutions and the final conv from N(0, 0.001^2) (final bias 0) and then loads
ImageNet weights into the backbone; without a pretrained file it draws every conv from
N(0, 0.001^2). ``init_pose_weights`` does the latter, with zero biases everywhere, and
the runner loads the ImageNet backbone through ``pretrained_layout``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from ..checkpoints import BackboneLayout
from ..registry import register_model
from .heads import make_deconv_layers
from .layers import init_pose_weights
from .resnet import RESNET_LAYOUTS, ResNet, ResNetSpec


@dataclass(frozen=True)
class SimpleBaselineSpec:
    depth: int = 50
    num_joints: int = 17
    deconv_filters: tuple[int, ...] = (256, 256, 256)
    deconv_kernels: tuple[int, ...] = (4, 4, 4)
    deconv_with_bias: bool = False
    final_conv_kernel: int = 1

    def validate(self) -> None:
        if self.depth not in RESNET_LAYOUTS:
            raise ValueError(f"depth must be one of {sorted(RESNET_LAYOUTS)}, got {self.depth}")
        if len(self.deconv_filters) != len(self.deconv_kernels):
            raise ValueError("need one kernel size per deconvolution: "
                             "len(deconv_filters) == len(deconv_kernels)")
        if self.final_conv_kernel not in (1, 3):
            raise ValueError(f"final_conv_kernel must be 1 or 3, got {self.final_conv_kernel}")

    def summary(self) -> str:
        return f"resnet{self.depth}; deconv={'x'.join(map(str, self.deconv_filters))}"


class PoseResNet(ResNet):
    """The ResNet trunk (inherited, keys at the top level as in the official model) with
    the deconvolution head appended."""

    pretrained_layout = BackboneLayout(
        prefixes=("conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4."),
        ignored=(r"^fc\.",))

    def __init__(self, spec: SimpleBaselineSpec):
        super().__init__(ResNetSpec(depth=spec.depth, num_classes=0))
        self.deconv_layers = make_deconv_layers(self.out_channels, spec.deconv_filters,
                                                spec.deconv_kernels, bias=spec.deconv_with_bias)
        width = spec.deconv_filters[-1] if spec.deconv_filters else self.out_channels
        self.final_layer = nn.Conv2d(width, spec.num_joints, spec.final_conv_kernel,
                                     padding=spec.final_conv_kernel // 2)
        init_pose_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_layer(self.deconv_layers(self.forward_features(x)))


SIMPLE_BASELINE_RESNET50 = SimpleBaselineSpec(depth=50)
SIMPLE_BASELINE_RESNET101 = replace(SIMPLE_BASELINE_RESNET50, depth=101)
SIMPLE_BASELINE_RESNET152 = replace(SIMPLE_BASELINE_RESNET50, depth=152)


@register_model(SIMPLE_BASELINE_RESNET50)
def simple_baseline_resnet50(spec: SimpleBaselineSpec) -> PoseResNet:
    """SimpleBaseline with ResNet-50 (official PoseResNet, d256x3)."""
    return PoseResNet(spec)


@register_model(SIMPLE_BASELINE_RESNET101)
def simple_baseline_resnet101(spec: SimpleBaselineSpec) -> PoseResNet:
    """SimpleBaseline with ResNet-101 (official PoseResNet, d256x3)."""
    return PoseResNet(spec)


@register_model(SIMPLE_BASELINE_RESNET152)
def simple_baseline_resnet152(spec: SimpleBaselineSpec) -> PoseResNet:
    """SimpleBaseline with ResNet-152 (official PoseResNet, d256x3)."""
    return PoseResNet(spec)
