"""FlatteNet (Cai & Pu, "FlatteNet: A Simple Versatile Framework for Dense Pixelwise
Prediction"): a classification backbone kept at full subsampling (stride 32), then the
Flattening Module, which turns the coarse features into dense predictions without a
decoder.

Serves FlatteNet Tables II-V (pose, MPII 256x256), VIII (PASCAL-Context segmentation,
480x480) and X (PASCAL VOC detection, 512x512), with the module settings of Tables I,
VII, IX and XI, and the equivalence claim of Sec. III-C.

``DWSGConvSpec`` holds one row of Tables I/VII/IX/XI; ``Rearrangement`` is the paper's R
(``Rearrangement.inverse`` undoes it); ``predict_folded``, ``fold_targets`` and
``unfold_predictions`` expose the folded view of Sec. III-C.

Design reasoning, readings and measurements: docs/design-notes.md, "Module notes",
bench/models/flattenet.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoints import BackboneLayout
from ..registry import register_model
from .heads import CenterNetHead
from .layers import BN_MOMENTUM, channel_shuffle, conv_bn_relu, init_pose_weights
from .resnet import ResNet, ResNetSpec
from .shufflenetv2 import ShuffleNetV2

# backbone name -> (output channels, output stride)
BACKBONES = {"resnet50": (2048, 32), "resnet101": (2048, 32), "resnet152": (2048, 32),
             "shufflenetv2": (1024, 32)}
LAYER_TYPES = ("dwsgconv", "conv1x1")
ACTIVATIONS = ("prelu", "relu")
REARRANGEMENTS = ("cs+ps", "ps", "randperm+ps")


@dataclass(frozen=True)
class DWSGConvSpec:
    """One DWSGConv layer: a row of Tables I, VII, IX or XI."""
    kernel_size: int = 3        # k of the depthwise conv
    stride: int = 1             # s of the depthwise conv (Table XI: 2, one more subsampling)
    g1: int = 32                # groups of the first pointwise group conv (c -> c)
    g2: int = 32                # groups of the channel shuffle between the two
    g3: int = 64                # groups of the second pointwise group conv
    expansion: int = 1          # SPGConv c_out = expansion x c_in

    def check(self, channels: int, where: str) -> int:
        """Raise ValueError naming ``where`` unless the layer fits ``channels`` inputs;
        return its output channels."""
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"{where}: kernel_size must be odd, got {self.kernel_size}")
        if self.stride not in (1, 2):
            raise ValueError(f"{where}: stride must be 1 or 2, got {self.stride}")
        if self.expansion < 1:
            raise ValueError(f"{where}: expansion must be >= 1, got {self.expansion}")
        out = channels * self.expansion
        for name, groups, chans in (("g1", self.g1, channels), ("g2", self.g2, channels),
                                    ("g3", self.g3, channels), ("g3", self.g3, out)):
            if groups < 1 or chans % groups:
                raise ValueError(f"{where}: {name} = {groups} does not divide {chans} channels")
        return out


TABLE_I = DWSGConvSpec()
SHUFFLENET_LAYER = DWSGConvSpec(g1=64, g2=64, g3=16, expansion=2)
TABLE_VII = (DWSGConvSpec(kernel_size=7, expansion=2),
             DWSGConvSpec(kernel_size=7, g1=64, g2=64, g3=64, expansion=2))
TABLE_IX = DWSGConvSpec(kernel_size=5, g1=32, g2=32, g3=32, expansion=2)
TABLE_XI_6 = (DWSGConvSpec(stride=2, expansion=4),)
TABLE_XI_7 = TABLE_XI_6 + (DWSGConvSpec(stride=2, g1=64, g2=64, g3=128, expansion=4),)


def _layer_spec(value: Any) -> DWSGConvSpec:
    # suite rows give layers as mappings ({expansion: 8}); fields left out are Table I's
    if isinstance(value, DWSGConvSpec):
        return value
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(DWSGConvSpec.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown DWSGConv field(s) {unknown}; "
                             f"valid: {', '.join(DWSGConvSpec.__dataclass_fields__)}")
        return DWSGConvSpec(**value)
    raise ValueError(f"a layer must be a mapping of DWSGConv fields, got {value!r}")


@dataclass(frozen=True)
class FlatteningSpec:
    """Backbone + Flattening Module; the task specs below add the head."""
    backbone: str = "resnet50"
    layers: tuple[DWSGConvSpec, ...] = (TABLE_I,)
    upscale: int = 8                    # u of the pixel shuffle; its channel shuffle has u^2 groups
    layer_type: str = "dwsgconv"        # "conv1x1": Table II's regular 1x1 conv + BN + ReLU
    activation: str = "prelu"           # after FPGConv; "relu": Table II
    rearrangement: str = "cs+ps"        # "ps" | "randperm+ps": Table II
    permutation_seed: int = 0           # randperm+ps

    def __post_init__(self):
        # mappings from a suite row become DWSGConvSpecs; what cannot be converted is kept
        # as given, for ``validate`` to refuse with a message
        layers = self.layers if isinstance(self.layers, (tuple, list)) else (self.layers,)
        converted = []
        for value in layers:
            try:
                converted.append(_layer_spec(value))
            except (TypeError, ValueError):
                converted.append(value)
        object.__setattr__(self, "layers", tuple(converted))

    def channels(self) -> list[int]:
        """Channels entering each layer, then those leaving the last."""
        out = [BACKBONES[self.backbone][0]]
        for i, layer in enumerate(self.layers):
            out.append(layer.check(out[-1], f"layers[{i}]"))
        return out

    @property
    def descriptor_channels(self) -> int:
        """D: channels of one pixelwise descriptor after the rearrangement."""
        return self.channels()[-1] // self.upscale ** 2

    @property
    def output_stride(self) -> int:
        coarse = BACKBONES[self.backbone][1] * math.prod(layer.stride for layer in self.layers)
        return coarse // self.upscale

    @property
    def subsamplings(self) -> int:
        """Table V's count: the backbone's five, plus one per stride-2 layer."""
        return int(math.log2(BACKBONES[self.backbone][1])) + sum(l.stride == 2 for l in self.layers)

    def validate(self) -> None:
        for i, value in enumerate(self.layers):
            if not isinstance(value, DWSGConvSpec):
                try:
                    _layer_spec(value)
                except (TypeError, ValueError) as err:
                    raise ValueError(f"layers[{i}]: {err}") from None
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {sorted(BACKBONES)}, got {self.backbone!r}")
        if not self.layers:
            raise ValueError("the Flattening Module needs at least one layer")
        for name, value, allowed in (("layer_type", self.layer_type, LAYER_TYPES),
                                     ("activation", self.activation, ACTIVATIONS),
                                     ("rearrangement", self.rearrangement, REARRANGEMENTS)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if self.upscale < 1:
            raise ValueError(f"upscale must be >= 1, got {self.upscale}")
        out = self.channels()[-1]
        if out % self.upscale ** 2:
            raise ValueError(f"the last layer's {out} channels are not a multiple of "
                             f"upscale^2 = {self.upscale ** 2}")
        coarse = BACKBONES[self.backbone][1] * math.prod(layer.stride for layer in self.layers)
        if coarse % self.upscale:
            raise ValueError(f"upscale {self.upscale} does not divide the coarse stride {coarse}")

    def summary(self) -> str:
        layers = "; ".join(f"k{l.kernel_size}/s{l.stride} g{l.g1}-{l.g2}-{l.g3} x{l.expansion}"
                           for l in self.layers)
        extra = "" if (self.layer_type, self.activation) == ("dwsgconv", "prelu") else \
            f" [{self.layer_type}, {self.activation}]"
        return (f"{self.backbone}; {layers}{extra}; R={self.rearrangement} u={self.upscale}; "
                f"{self.subsamplings} subsamplings, output stride {self.output_stride}")


@dataclass(frozen=True)
class FlatteNetPoseSpec(FlatteningSpec):
    # 17 (COCO) like every pose model here; the paper's pose results are all
    # MPII, whose protocols pass num_joints=16
    num_joints: int = 17


@dataclass(frozen=True)
class FlatteNetSegSpec(FlatteningSpec):
    num_classes: int = 59               # PASCAL-Context, 59 classes without background


@dataclass(frozen=True)
class FlatteNetDetSpec(FlatteningSpec):
    num_classes: int = 20               # PASCAL VOC (Table X)
    head_conv: int = 64                 # CenterNet's head width for ResNets (as we read it)
    deformable: bool = True             # DCNv2 in every 3x3 conv of layer4

    def validate(self) -> None:
        super().validate()
        if self.deformable and not self.backbone.startswith("resnet"):
            raise ValueError("deformable convolutions are placed in a ResNet's layer4")


# --- the Flattening Module ------------------------------------------------------------

class DWSGConv(nn.Module):
    """Depthwise separable group convolution layer (Fig. 3)."""

    def __init__(self, in_channels: int, kernel_size: int = 3, stride: int = 1, g1: int = 32,
                 g2: int = 32, g3: int = 64, expansion: int = 1, activation: str = "prelu"):
        super().__init__()
        c, out = in_channels, in_channels * expansion
        self.dwconv = nn.Conv2d(c, c, kernel_size, stride, kernel_size // 2, groups=c, bias=False)
        self.dw_bn = nn.BatchNorm2d(c, momentum=BN_MOMENTUM)
        self.pwconv1 = nn.Conv2d(c, c, 1, groups=g1, bias=False)
        self.pw_bn1 = nn.BatchNorm2d(c, momentum=BN_MOMENTUM)
        # channel-wise PReLU starting as the identity (slope 1), Sec. IV-A
        self.act = nn.PReLU(c, init=1.0) if activation == "prelu" else nn.ReLU(inplace=True)
        self.shuffle_groups = g2
        self.pwconv2 = nn.Conv2d(c, out, 1, groups=g3, bias=False)
        self.pw_bn2 = nn.BatchNorm2d(out, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dw_bn(self.dwconv(x))
        x = self.act(self.pw_bn1(self.pwconv1(x)))
        x = channel_shuffle(x, self.shuffle_groups)
        return self.relu(self.pw_bn2(self.pwconv2(x)))


def regular_conv1x1(in_channels: int, stride: int = 1, expansion: int = 1) -> nn.Sequential:
    """Table II's baseline: the regular 1x1 conv + BN + ReLU the DWSGConv layer factorises."""
    return conv_bn_relu(in_channels, in_channels * expansion, stride=stride)


class Rearrangement(nn.Module):
    """Depth to space. ``cs+ps`` (the paper's R): channel shuffle with u^2 groups, then
    pixel shuffle by u; ``ps``: pixel shuffle alone; ``randperm+ps``: a fixed random
    channel permutation (drawn from ``seed``), then pixel shuffle."""

    def __init__(self, channels: int, upscale: int, mode: str = "cs+ps", seed: int = 0):
        super().__init__()
        if mode not in REARRANGEMENTS:
            raise ValueError(f"rearrangement must be one of {REARRANGEMENTS}, got {mode!r}")
        if channels % upscale ** 2:
            raise ValueError(f"{channels} channels do not split into upscale^2 = {upscale ** 2} blocks")
        self.channels, self.upscale, self.mode = channels, upscale, mode
        self.groups = upscale ** 2          # g4
        if mode == "randperm+ps":
            perm = torch.randperm(channels, generator=torch.Generator().manual_seed(seed))
            # a buffer, so it follows .to(device); not persistent: it is rebuilt from the seed
            self.register_buffer("permutation", perm, persistent=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.mode == "cs+ps":
            z = channel_shuffle(z, self.groups)
        elif self.mode == "randperm+ps":
            z = z[:, self.permutation]
        return F.pixel_shuffle(z, self.upscale)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        z = F.pixel_unshuffle(y, self.upscale)
        if self.mode == "cs+ps":
            # a shuffle with g groups of C = g m channels is undone by one with m groups
            return channel_shuffle(z, z.shape[1] // self.groups)
        if self.mode == "randperm+ps":
            return z[:, torch.argsort(self.permutation)]
        return z

    def descriptors(self, z: torch.Tensor) -> torch.Tensor:
        """(N, D u^2, h, w) -> (N, u^2, D, h, w): entry p = i u + j is the descriptor that
        R places at sub-pixel (i, j) of each coarse position, read from the channel layout
        directly (not by applying R): ``cs+ps`` keeps contiguous blocks (the paper's
        "stacked along the channel dimension"); pixel shuffle alone takes channel
        d u^2 + p to channel d of sub-pixel p."""
        n, c, h, w = z.shape
        if self.mode == "cs+ps":
            return z.reshape(n, self.groups, c // self.groups, h, w)
        if self.mode == "randperm+ps":
            z = z[:, self.permutation]
        return z.reshape(n, c // self.groups, self.groups, h, w).transpose(1, 2)


class FlatteningModule(nn.Module):
    def __init__(self, spec: FlatteningSpec):
        super().__init__()
        channels = spec.channels()
        layers = []
        for c, layer in zip(channels, spec.layers):
            if spec.layer_type == "conv1x1":
                layers.append(regular_conv1x1(c, layer.stride, layer.expansion))
            else:
                layers.append(DWSGConv(c, layer.kernel_size, layer.stride, layer.g1, layer.g2,
                                       layer.g3, layer.expansion, spec.activation))
        self.layers = nn.Sequential(*layers)
        self.rearrange = Rearrangement(channels[-1], spec.upscale, spec.rearrangement,
                                       spec.permutation_seed)
        self.out_channels = channels[-1] // spec.upscale ** 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rearrange(self.layers(x))


# --- deformable convolution (the detector's layer4) -------------------------------------

class ModulatedDeformConv2d(nn.Conv2d):
    """DCNv2's sampling conv: each of the k x k taps reads the input at its regular
    position plus a learnt offset (bilinear, zero outside), scaled by a mask in [0, 1].
    A ``Conv2d`` subclass with the same weight, so counting conventions charge it as the
    conv it replaces; offsets and masks come in as arguments (``DeformableConv2d``)."""

    def forward(self, x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.groups != 1:
            raise ValueError("grouped deformable convolution is not implemented")
        n, c, h, w = x.shape
        kh, kw = self.kernel_size
        ho, wo = offset.shape[-2:]
        taps = kh * kw
        # regular sampling grid: tap (a, b) of output (y, x) reads (y s - p + a d, x s - p + b d)
        ys = torch.arange(ho, dtype=x.dtype, device=x.device) * self.stride[0] - self.padding[0]
        xs = torch.arange(wo, dtype=x.dtype, device=x.device) * self.stride[1] - self.padding[1]
        ty = (torch.arange(kh, dtype=x.dtype, device=x.device) * self.dilation[0]).repeat_interleave(kw)
        tx = (torch.arange(kw, dtype=x.dtype, device=x.device) * self.dilation[1]).repeat(kh)
        off = offset.view(n, taps, 2, ho, wo)          # (dy, dx) per tap (DCNv2's order)
        py = ys.view(1, 1, ho, 1) + ty.view(1, taps, 1, 1) + off[:, :, 0]
        px = xs.view(1, 1, 1, wo) + tx.view(1, taps, 1, 1) + off[:, :, 1]
        # grid_sample's coordinates with align_corners=False: pixel i sits at (2 i + 1) / size - 1
        grid = torch.stack(((2 * px + 1) / w - 1, (2 * py + 1) / h - 1), dim=-1)
        # -1, not taps * ho: ho is read off a shape, and shape arithmetic would show up
        # in a jit trace (fvcore's) as an extra aten::mul
        cols = F.grid_sample(x, grid.view(n, -1, wo, 2), mode="bilinear",
                             padding_mode="zeros", align_corners=False)
        cols = cols.view(n, c, taps, ho, wo) * mask.view(n, 1, taps, ho, wo)
        out = torch.einsum("nckhw,ock->nohw", cols, self.weight.view(self.out_channels, c, taps))
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1)
        return out


class DeformableConv2d(nn.Module):
    """Offsets and masks from a k x k conv with bias (zero-initialised: it starts as the
    regular conv with every tap weighted by sigmoid(0) = 0.5), then the sampling conv."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        kh, kw = conv.kernel_size
        self.conv_offset = nn.Conv2d(conv.in_channels, 3 * kh * kw, conv.kernel_size, conv.stride,
                                     conv.padding, conv.dilation, bias=True)
        self.conv = ModulatedDeformConv2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                                          conv.stride, conv.padding, conv.dilation, conv.groups,
                                          bias=conv.bias is not None)
        self.reset_offsets()

    def reset_offsets(self) -> None:
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        taps = self.conv.kernel_size[0] * self.conv.kernel_size[1]
        out = self.conv_offset(x)
        # DCNv2's layout as we read it: the first 2 k^2 channels are (dy, dx) pairs, the
        # last k^2 masks
        return self.conv(x, out[:, :2 * taps], torch.sigmoid(out[:, 2 * taps:]))


# --- networks ---------------------------------------------------------------------------

def build_backbone(name: str) -> nn.Module:
    if name == "shufflenetv2":
        return ShuffleNetV2(1.0)
    return ResNet(ResNetSpec(depth=int(name.removeprefix("resnet")), num_classes=0))


class FlatteNetBase(nn.Module):
    # torchvision ImageNet checkpoints (ResNet and ShuffleNetV2 alike) under ``backbone.``
    pretrained_layout = BackboneLayout(prefixes=("backbone.",), key_map=(("^", "backbone."),),
                                       ignored=(r"^fc\.",))

    def __init__(self, spec: FlatteningSpec):
        super().__init__()
        self.backbone = build_backbone(spec.backbone)
        self.flatten = FlatteningModule(spec)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pixelwise descriptors after R: (N, D, H/4, W/4) for the paper's settings."""
        return self.flatten(self.backbone(x))


class FlatteNet(FlatteNetBase):
    """Backbone, Flattening Module, then an affine map per pixel (``final_layer``): joint
    heatmaps (pose) or class logits (segmentation)."""

    def __init__(self, spec: FlatteningSpec, num_outputs: int):
        super().__init__(spec)
        self.final_layer = nn.Conv2d(self.flatten.out_channels, num_outputs, 1)
        init_pose_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_layer(self.features(x))

    # Sec. III-C: the same parameters as a classifier of coarse positions on folded targets
    def predict_folded(self, x: torch.Tensor) -> torch.Tensor:
        """P = fc(DWSGConv(F)) at the coarse resolution, without R: (N, u^2 C, h, w), channel
        p C + c holding output c of sub-pixel p (the layout ``fold_targets`` produces)."""
        z = self.flatten.layers(self.backbone(x))
        d = self.flatten.rearrange.descriptors(z)
        n, blocks, dims, h, w = d.shape
        p = self.final_layer(d.reshape(n * blocks, dims, h, w))
        return p.reshape(n, blocks * p.shape[1], h, w)

    def _folding(self, outputs: int) -> Rearrangement:
        """The paper's R (channel shuffle with u^2 groups, pixel shuffle by u) on maps of
        ``outputs`` channels: the folded layout is the same whatever rearrangement the
        model's own descriptors go through (``predict_folded`` reads those)."""
        u = self.flatten.rearrange.upscale
        return Rearrangement(outputs * u * u, u)

    def fold_targets(self, target: torch.Tensor) -> torch.Tensor:
        """T = R^-1(Y) for a label map (N, C, H, W) at the output resolution."""
        return self._folding(target.shape[1]).inverse(target)

    def unfold_predictions(self, folded: torch.Tensor) -> torch.Tensor:
        """R(P) for a folded prediction (N, u^2 C, h, w)."""
        u = self.flatten.rearrange.upscale
        return self._folding(folded.shape[1] // (u * u))(folded)


class FlatteNetDetector(FlatteNetBase):
    """CenterNet-style detector: centre heatmaps, box sizes and centre offsets at stride 4."""

    pretrained_layout = None    # layer4's deformable convs are not in ImageNet checkpoints

    def __init__(self, spec: FlatteNetDetSpec):
        super().__init__(spec)
        if spec.deformable:
            for block in self.backbone.layer4:
                block.conv2 = DeformableConv2d(block.conv2)
        self.head = CenterNetHead(self.flatten.out_channels, spec.num_classes, spec.head_conv)
        init_pose_weights(self)
        self.head.reset_parameters()
        for m in self.modules():
            if isinstance(m, DeformableConv2d):
                m.reset_offsets()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.head(self.features(x))


# --- registered models --------------------------------------------------------------------

FLATTENET_RESNET50 = FlatteNetPoseSpec()
FLATTENET_SHUFFLENETV2 = replace(FLATTENET_RESNET50, backbone="shufflenetv2", layers=(SHUFFLENET_LAYER,))


def _pose(spec: FlatteNetPoseSpec) -> FlatteNet:
    return FlatteNet(spec, spec.num_joints)


@register_model(FLATTENET_RESNET50)
def flattenet_resnet50(spec: FlatteNetPoseSpec) -> FlatteNet:
    """FlatteNet on ResNet-50 for pose (17 joints; MPII suites pass 16), Table I module."""
    return _pose(spec)


@register_model(replace(FLATTENET_RESNET50, backbone="resnet101"))
def flattenet_resnet101(spec: FlatteNetPoseSpec) -> FlatteNet:
    """FlatteNet on ResNet-101 for pose (17 joints; MPII suites pass 16), Table I module."""
    return _pose(spec)


@register_model(FLATTENET_SHUFFLENETV2)
def flattenet_shufflenetv2(spec: FlatteNetPoseSpec) -> FlatteNet:
    """FlatteNet on ShuffleNetV2 1x for pose (17 joints; MPII suites pass 16), SPGConv c_out = 2 c_in."""
    return _pose(spec)


@register_model(replace(FLATTENET_RESNET50, layers=TABLE_XI_6, upscale=16))
def flattenet_resnet50_sub6(spec: FlatteNetPoseSpec) -> FlatteNet:
    """FlatteNet-ResNet-50 with 6 subsamplings (Tables V / XI): one stride-2 layer, u = 16."""
    return _pose(spec)


@register_model(replace(FLATTENET_RESNET50, layers=TABLE_XI_7, upscale=32))
def flattenet_resnet50_sub7(spec: FlatteNetPoseSpec) -> FlatteNet:
    """FlatteNet-ResNet-50 with 7 subsamplings (Tables V / XI): two stride-2 layers, u = 32."""
    return _pose(spec)


@register_model(FlatteNetSegSpec(backbone="resnet101", layers=TABLE_VII))
def flattenet_resnet101_seg(spec: FlatteNetSegSpec) -> FlatteNet:
    """FlatteNet-ResNet-101 for PASCAL-Context segmentation (59 classes), Table VII module."""
    return FlatteNet(spec, spec.num_classes)


@register_model(FlatteNetDetSpec(backbone="resnet101", layers=(TABLE_IX,)))
def flattenet_resnet101_det(spec: FlatteNetDetSpec) -> FlatteNetDetector:
    """FlatteNet-ResNet-101, CenterNet-style detection on PASCAL VOC (20 classes), Table IX."""
    return FlatteNetDetector(spec)
