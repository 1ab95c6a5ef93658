"""MobileNetV2 (Sandler et al., CVPR 2018) as a top-down pose network.

Serves the "MobileNetV2 1x" rows of Lite-HRNet Tables 3, 4 and 5, which come from
mmpose's ``mobilenetv2_coco_256x192`` / ``mobilenetv2_mpii_256x256`` configs. As we read
those configs (no mmpose network is run by a test): the ImageNet MobileNetV2 (width
1.0) up to its 1280-channel 1x1 conv, classifier dropped, followed by mmpose's
``TopdownHeatmapSimpleHead`` (three 4x4 deconvolutions of 256 channels without bias,
BN, ReLU; 1x1 heatmap conv).

The backbone uses torchvision's key layout (``features.0.0.weight`` ... ``features.18.1.*``;
inverted residuals hold a ``conv`` Sequential), so a torchvision ImageNet checkpoint loads
through ``load_pretrained_backbone``; backbone and head sit under ``backbone`` and
``keypoint_head`` as in mmpose. Only those prefixes are mmpose's: as we read it, mmpose's
own MobileNetV2 names its layers differently (``conv1``, ``layer1..7``), so its
checkpoints would need a key map. Every conv starts from ``init_pose_weights`` (the
backbone is then normally overwritten by ImageNet weights, as the paper's rows are
pretrained).

Measured: 9,569,809 parameters (printed 9.6M); under Lite-HRNet's convention
(``lite_hrnet_paper``) 1.48 / 3.33 GFLOPs at 256x192 / 384x288 and 1.97 at 256x256 with
16 joints, the printed values of Tables 3 and 5 (a check against the paper, not against
mmpose's code).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..checkpoints import BackboneLayout
from ..registry import register_model
from .heads import DeconvHeatmapHead
from .layers import init_pose_weights

# (expansion t, output channels c, repeats n, first stride s), Table 2 of the paper
INVERTED_RESIDUAL_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


@dataclass(frozen=True)
class MobileNetV2PoseSpec:
    widen_factor: float = 1.0
    num_joints: int = 17
    deconv_filters: tuple[int, ...] = (256, 256, 256)
    deconv_kernels: tuple[int, ...] = (4, 4, 4)

    def summary(self) -> str:
        return f"widen={self.widen_factor}; deconv={'x'.join(map(str, self.deconv_filters))}"


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a width to a multiple of ``divisor``, never more than 10% below ``value``
    (the rule of the reference TensorFlow code, shared by torchvision and mmcv)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_bn_relu6(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                  groups: int = 1) -> nn.Sequential:
    """A Sequential (not ConvNormAct) so that the keys are ``.0.weight`` / ``.1.*``."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2,
                  groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """1x1 expansion (skipped when t = 1), 3x3 depthwise, linear 1x1 projection;
    identity shortcut when the shape is kept."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = int(round(in_channels * expand_ratio))
        self.use_shortcut = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(conv_bn_relu6(in_channels, hidden, 1))
        layers += [conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, out_channels, 1, bias=False),
                   nn.BatchNorm2d(out_channels)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_shortcut else self.conv(x)


class MobileNetV2(nn.Module):
    """The feature extractor (stride 32), torchvision's ``features`` without ``classifier``."""

    def __init__(self, widen_factor: float = 1.0):
        super().__init__()
        in_channels = make_divisible(32 * widen_factor)
        # the last conv is never narrowed below 1280 (it is widened above 1.0)
        self.out_channels = make_divisible(1280 * max(1.0, widen_factor))
        features: list[nn.Module] = [conv_bn_relu6(3, in_channels, 3, stride=2)]
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            out_channels = make_divisible(c * widen_factor)
            for i in range(n):
                features.append(InvertedResidual(in_channels, out_channels, s if i == 0 else 1, t))
                in_channels = out_channels
        features.append(conv_bn_relu6(in_channels, self.out_channels, 1))
        self.features = nn.Sequential(*features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class MobileNetV2Pose(nn.Module):
    pretrained_layout = BackboneLayout(prefixes=("backbone.",), key_map=(("^", "backbone."),),
                                       ignored=(r"^classifier\.",))

    def __init__(self, spec: MobileNetV2PoseSpec):
        super().__init__()
        self.backbone = MobileNetV2(spec.widen_factor)
        self.keypoint_head = DeconvHeatmapHead(self.backbone.out_channels, spec.num_joints,
                                               spec.deconv_filters, spec.deconv_kernels)
        init_pose_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.keypoint_head(self.backbone(x))


@register_model(MobileNetV2PoseSpec())
def mobilenetv2_pose(spec: MobileNetV2PoseSpec) -> MobileNetV2Pose:
    """MobileNetV2 1x + SimpleBaseline head (mmpose config, Lite-HRNet Tables 3-5)."""
    return MobileNetV2Pose(spec)
