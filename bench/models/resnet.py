"""ResNet (He et al., CVPR 2016) ImageNet classifiers in torchvision's key layout.

Serves as the backbone of SimpleBaseline (HRNet Tables 1, 2, 4; Lite-HRNet Tables 3, 4),
of the dilated ResNet-50 under GSTO's PPM and ASPP heads and of the FlatteNet ResNets.
Keys are torchvision's (``conv1``, ``bn1``, ``layer1``..``layer4`` with
``downsample.0/1``, ``fc``), so the usual ImageNet checkpoints (``resnet50-19c8e357.pth``,
``resnet50-0676ba61.pth`` ...) load unchanged. The residual blocks are the shared ones in ``layers`` (stride on the 3x3
conv, "ResNet v1.5", as torchvision and the official pose code).

``replace_stride_with_dilation`` (torchvision's option) turns the stride of layer2/3/4
into dilation, for dilated backbones (output stride 16 or 8); ``num_classes=0`` drops the
pooling and the classifier (``forward`` then returns the layer4 features).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from ..registry import register_model
from .layers import BN_MOMENTUM, BasicBlock, Bottleneck, make_res_layer

# depth -> (block, blocks per stage), Table 1 of the ResNet paper
RESNET_LAYOUTS = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


@dataclass(frozen=True)
class ResNetSpec:
    depth: int = 50
    num_classes: int = 1000                 # 0: no pooling / classifier
    replace_stride_with_dilation: tuple[bool, bool, bool] = (False, False, False)  # layer2-4

    def validate(self) -> None:
        if self.depth not in RESNET_LAYOUTS:
            raise ValueError(f"depth must be one of {sorted(RESNET_LAYOUTS)}, got {self.depth}")
        if len(self.replace_stride_with_dilation) != 3:
            raise ValueError("replace_stride_with_dilation needs one flag per layer2, layer3, layer4")
        if any(self.replace_stride_with_dilation) and RESNET_LAYOUTS[self.depth][0] is BasicBlock:
            raise ValueError("dilation needs bottleneck blocks (depth 50, 101 or 152)")

    @property
    def output_stride(self) -> int:
        return 32 // 2 ** sum(map(bool, self.replace_stride_with_dilation))

    def summary(self) -> str:
        return f"depth={self.depth}; output_stride={self.output_stride}"


class ResNet(nn.Module):
    def __init__(self, spec: ResNetSpec):
        super().__init__()
        block, num_blocks = RESNET_LAYOUTS[spec.depth]
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes, dilation = 64, 1
        dilate = (False,) + tuple(spec.replace_stride_with_dilation)
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), num_blocks)):
            stride = 1 if i == 0 else 2
            previous = dilation
            if dilate[i]:
                dilation, stride = dilation * stride, 1
            layer = make_res_layer(block, inplanes, planes, blocks, stride, dilation, previous)
            setattr(self, f"layer{i + 1}", layer)
            inplanes = planes * block.expansion
        self.out_channels = inplanes
        if spec.num_classes:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(inplanes, spec.num_classes)
        self._init_classifier_weights()

    def _init_classifier_weights(self) -> None:
        # torchvision's ImageNet initialisation (the pose models re-initialise on top)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of layer1..layer4 (strides 4, 8, 16, 32 without dilation)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        stages = []
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
            stages.append(x)
        return stages

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_stages(x)[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x)
        if not hasattr(self, "fc"):
            return x
        return self.fc(torch.flatten(self.avgpool(x), 1))


RESNET50 = ResNetSpec(depth=50)
RESNET101 = replace(RESNET50, depth=101)
RESNET152 = replace(RESNET50, depth=152)


@register_model(RESNET50)
def resnet50(spec: ResNetSpec) -> ResNet:
    """ResNet-50 ImageNet classifier (torchvision keys; dilation via replace_stride_with_dilation)."""
    return ResNet(spec)


@register_model(RESNET101)
def resnet101(spec: ResNetSpec) -> ResNet:
    """ResNet-101 ImageNet classifier (torchvision keys)."""
    return ResNet(spec)


@register_model(RESNET152)
def resnet152(spec: ResNetSpec) -> ResNet:
    """ResNet-152 ImageNet classifier (torchvision keys)."""
    return ResNet(spec)
