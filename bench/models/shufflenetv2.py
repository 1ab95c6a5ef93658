"""ShuffleNetV2 (Ma et al., ECCV 2018) as a top-down pose network.

Serves the "ShuffleNetV2 1x" rows of Lite-HRNet Tables 3, 4 and 5, which come from
mmpose's ``shufflenetv2_coco_256x192`` / ``shufflenetv2_mpii_256x256`` configs. As we
read those configs (no mmpose network is run by a test): the ImageNet ShuffleNetV2
1.0x (stages of 116/232/464 channels, repeated 4/8/4 times) up to its 1024-channel
``conv5``, classifier dropped, followed by mmpose's ``TopdownHeatmapSimpleHead`` (three
4x4 deconvolutions of 256 channels without bias, BN, ReLU; 1x1 heatmap conv).

The backbone uses torchvision's key layout (``conv1.0/1``, ``stage2..4.N.branch1/branch2.M``,
``conv5.0/1``) so a torchvision ImageNet checkpoint loads through
``load_pretrained_backbone``; backbone and head sit under ``backbone`` and
``keypoint_head`` as in mmpose (only those prefixes: as we read it, mmpose's own
ShuffleNetV2 names its layers differently, so its checkpoints would need a key map).
Lite-HRNet's own shuffle unit (``litehrnet.ShuffleUnit``) computes the same stride-1
block but is named after mmcv's modules.

Measured: 7,550,965 parameters (printed 7.6M); under Lite-HRNet's convention
(``lite_hrnet_paper``) 1.28 / 2.87 GFLOPs at 256x192 / 384x288 and 1.70 at 256x256 with
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
from .layers import channel_shuffle, init_pose_weights

# widen factor -> (stem, stage2, stage3, stage4, conv5) widths, Table 5 of the paper
STAGE_WIDTHS = {
    0.5: (24, 48, 96, 192, 1024),
    1.0: (24, 116, 232, 464, 1024),
    1.5: (24, 176, 352, 704, 1024),
    2.0: (24, 244, 488, 976, 2048),
}
STAGE_REPEATS = (4, 8, 4)


@dataclass(frozen=True)
class ShuffleNetV2PoseSpec:
    widen_factor: float = 1.0
    num_joints: int = 17
    deconv_filters: tuple[int, ...] = (256, 256, 256)
    deconv_kernels: tuple[int, ...] = (4, 4, 4)

    def validate(self) -> None:
        if self.widen_factor not in STAGE_WIDTHS:
            raise ValueError(f"widen_factor must be one of {sorted(STAGE_WIDTHS)}")

    def summary(self) -> str:
        return f"widen={self.widen_factor}; deconv={'x'.join(map(str, self.deconv_filters))}"


class ShuffleV2Block(nn.Module):
    """Stride 1: split the channels, transform one half (1x1, 3x3 depthwise, 1x1),
    concatenate, shuffle. Stride 2: both halves see the whole input, ``branch1`` through a
    strided depthwise conv and a 1x1, so the width doubles while the size halves."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        half = out_channels // 2
        if stride == 1 and in_channels != 2 * half:
            raise ValueError(f"a stride-1 block keeps the width: {in_channels} != {out_channels}")
        self.stride = stride
        if stride == 2:
            self.branch1 = nn.Sequential(
                nn.Conv2d(in_channels, in_channels, 3, 2, 1, groups=in_channels, bias=False),
                nn.BatchNorm2d(in_channels),
                nn.Conv2d(in_channels, half, 1, bias=False),
                nn.BatchNorm2d(half),
                nn.ReLU(inplace=True))
        branch_in = in_channels if stride == 2 else half
        self.branch2 = nn.Sequential(
            nn.Conv2d(branch_in, half, 1, bias=False),
            nn.BatchNorm2d(half),
            nn.ReLU(inplace=True),
            nn.Conv2d(half, half, 3, stride, 1, groups=half, bias=False),
            nn.BatchNorm2d(half),
            nn.Conv2d(half, half, 1, bias=False),
            nn.BatchNorm2d(half),
            nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            kept, x = x.chunk(2, dim=1)
        else:
            kept = self.branch1(x)
        return channel_shuffle(torch.cat((kept, self.branch2(x)), dim=1), 2)


class ShuffleNetV2(nn.Module):
    """The feature extractor (stride 32), torchvision's layout without ``fc``."""

    def __init__(self, widen_factor: float = 1.0):
        super().__init__()
        stem, *stages, last = STAGE_WIDTHS[widen_factor]
        self.conv1 = nn.Sequential(nn.Conv2d(3, stem, 3, 2, 1, bias=False),
                                   nn.BatchNorm2d(stem), nn.ReLU(inplace=True))
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_channels = stem
        for name, width, repeats in zip(("stage2", "stage3", "stage4"), stages, STAGE_REPEATS):
            blocks = [ShuffleV2Block(in_channels, width, 2)]
            blocks += [ShuffleV2Block(width, width, 1) for _ in range(repeats - 1)]
            setattr(self, name, nn.Sequential(*blocks))
            in_channels = width
        self.conv5 = nn.Sequential(nn.Conv2d(in_channels, last, 1, bias=False),
                                   nn.BatchNorm2d(last), nn.ReLU(inplace=True))
        self.out_channels = last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        return self.conv5(self.stage4(self.stage3(self.stage2(x))))


class ShuffleNetV2Pose(nn.Module):
    pretrained_layout = BackboneLayout(prefixes=("backbone.",), key_map=(("^", "backbone."),),
                                       ignored=(r"^fc\.",))

    def __init__(self, spec: ShuffleNetV2PoseSpec):
        super().__init__()
        self.backbone = ShuffleNetV2(spec.widen_factor)
        self.keypoint_head = DeconvHeatmapHead(self.backbone.out_channels, spec.num_joints,
                                               spec.deconv_filters, spec.deconv_kernels)
        init_pose_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.keypoint_head(self.backbone(x))


@register_model(ShuffleNetV2PoseSpec())
def shufflenetv2_pose(spec: ShuffleNetV2PoseSpec) -> ShuffleNetV2Pose:
    """ShuffleNetV2 1x + SimpleBaseline head (mmpose config, Lite-HRNet Tables 3-5)."""
    return ShuffleNetV2Pose(spec)
