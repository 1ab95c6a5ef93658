"""GSTO (Wang et al., "Gated Scale-Transfer Operation for Multi-Scale Feature Learning in
Pixel Labeling"): the gated scale-transfer operation, its placements in HRNet (GFM, GTM),
GSTO-HRNet for segmentation and pose, the attention baselines of Table 3 and the PPM /
ASPP heads of Table 6.

Serves GSTO Tables 1, 2, 3, 4, 6, 7 and 10 (suites/gsto_table*.yaml).

``GSTO`` is the plug-in (a scale transfer applied to ``g * F``), ``SpatialGate`` the
gate alone. ``gate_style="official"`` (default) is the released gate (conv -> BN -> ReLU ->
sigmoid), ``gate_style="paper"`` the equations as printed.

Design reasoning, readings and measurements: docs/design-notes.md, "Module notes",
bench/models/gsto.py.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoints import BackboneLayout
from ..registry import register_model
from .hrnet import (_BACKBONE_LAYOUT, HighResolutionModule, HighResolutionNet,
                    HRNetBackboneSpec)
from .layers import BLOCKS, BN_MOMENTUM, conv_bn_relu, fuse_branches, init_pose_weights
from .resnet import ResNet, ResNetSpec

GTM_FORMS = ("none", "aux", "unsupervised", "supervised")
GATE_KINDS = ("spatial", "channel")          # spatial: GSTO; channel: SE (Table 3)
GATE_STYLES = ("official", "paper")
ATTENTIONS = ("none", "channel", "spatial")   # Table 3's attention without scale transfer
ATTENTION_PLACES = ("block", "layer")
HEADS = ("ppm", "aspp")


# --- gates ------------------------------------------------------------------------------

class SpatialGate(nn.Sequential):
    """GSTO's gate: one value in (0, 1) per position, from a feature (Eq. 4) or from class
    maps (Eq. 6). ``style="official"`` is the released conv -> BN -> ReLU -> sigmoid
    (values in [0.5, 1)); ``"paper"`` the printed conv -> sigmoid."""

    def __init__(self, in_channels: int, style: str = "official", kernel_size: int = 1,
                 stride: int = 1):
        layers: list[nn.Module] = [nn.Conv2d(in_channels, 1, kernel_size, stride,
                                             kernel_size // 2, bias=False)]
        if style == "official":
            layers += [nn.BatchNorm2d(1, momentum=BN_MOMENTUM), nn.ReLU(inplace=True)]
        elif style != "paper":
            raise ValueError(f"gate style must be one of {GATE_STYLES}, got {style!r}")
        super().__init__(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(super().forward(x))


class TransitionGate(nn.Sequential):
    """The GTM gate: a first step (``in_channels`` -> 1, stride 1) and ``downsamplings``
    stride-2 3x3 steps (1 -> 1), each conv -> BN -> ReLU in the released code (conv only
    with ``style="paper"``), then a sigmoid. Children are Sequentials, as in the released
    ``att{k}`` (keys ``att2.2.0.0.weight`` ...)."""

    def __init__(self, in_channels: int, downsamplings: int, style: str = "official",
                 kernel_size: int = 3):
        def step(cin: int, k: int, stride: int) -> nn.Sequential:
            layers: list[nn.Module] = [nn.Conv2d(cin, 1, k, stride, k // 2, bias=False)]
            if style == "official":
                layers += [nn.BatchNorm2d(1, momentum=BN_MOMENTUM), nn.ReLU(inplace=True)]
            return nn.Sequential(*layers)

        if style not in GATE_STYLES:
            raise ValueError(f"gate style must be one of {GATE_STYLES}, got {style!r}")
        super().__init__(step(in_channels, kernel_size, 1),
                         *[step(1, 3, 2) for _ in range(downsamplings)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(super().forward(x))


class ChannelGate(nn.Sequential):
    """Squeeze-and-excitation (Hu et al. [17]): one value in (0, 1) per channel from the
    global average, through a bottleneck of ``channels // reduction`` (at least 1)."""

    def __init__(self, channels: int, reduction: int = 16):
        hidden = max(1, channels // reduction)
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, hidden, 1),
                         nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(super().forward(x))


class SpatialAttention(nn.Module):
    """CBAM's spatial attention (Woo et al. [45]): channel mean and max, a 7x7 conv to one
    map, BN, sigmoid."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(1, momentum=BN_MOMENTUM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)
        return torch.sigmoid(self.bn(self.conv(pooled)))


def make_gate(kind: str, channels: int, style: str = "official") -> nn.Module:
    """The gate of a gated fusion / unsupervised transfer: GSTO's spatial gate or an SE
    channel gate (Table 3's "channel-wise combined with ST")."""
    if kind == "spatial":
        return SpatialGate(channels, style)
    if kind == "channel":
        return ChannelGate(channels)
    raise ValueError(f"gate must be one of {GATE_KINDS}, got {kind!r}")


def make_attention(kind: str, channels: int) -> nn.Module:
    """Table 3's attention modules used on their own (not combined with a transfer)."""
    if kind == "channel":
        return ChannelGate(channels)
    if kind == "spatial":
        return SpatialAttention()
    raise ValueError(f"attention must be one of {ATTENTIONS[1:]}, got {kind!r}")


class GSTO(nn.Module):
    """The plug-in: ``ST(g * F)``. ``transfer`` is the conventional scale transfer (any
    module; identity when None). Unsupervised: ``forward(x) -> y``. Supervised: a 1x1
    predictor (Eq. 5) gives ``num_classes`` maps P and ``forward(x) -> (y, P)``; class
    maps computed elsewhere can be passed as ``forward(x, class_maps=P)`` (a module
    whose gates share one predictor, built with ``predictor=False``)."""

    def __init__(self, in_channels: int, transfer: Optional[nn.Module] = None,
                 form: str = "unsupervised", num_classes: Optional[int] = None,
                 style: str = "official", predictor: bool = True):
        super().__init__()
        if form not in ("unsupervised", "supervised"):
            raise ValueError(f"form must be 'unsupervised' or 'supervised', got {form!r}")
        self.form = form
        self.transfer = transfer if transfer is not None else nn.Identity()
        if form == "supervised":
            if not num_classes:
                raise ValueError("the supervised form needs num_classes (c0)")
            if predictor:
                self.predictor = nn.Conv2d(in_channels, num_classes, 1)
            self.gate = SpatialGate(num_classes, style)
        else:
            self.gate = SpatialGate(in_channels, style)

    def gate_of(self, x: torch.Tensor, class_maps: Optional[torch.Tensor] = None):
        """(g, P): the gate for ``x`` and the class maps it came from (None unsupervised)."""
        if self.form == "unsupervised":
            return self.gate(x), None
        if class_maps is None:
            if not hasattr(self, "predictor"):
                raise ValueError("this GSTO shares its predictor: pass class_maps")
            class_maps = self.predictor(x)
        return self.gate(class_maps), class_maps

    def forward(self, x: torch.Tensor, class_maps: Optional[torch.Tensor] = None):
        g, p = self.gate_of(x, class_maps)
        y = self.transfer(x * g)
        return y if p is None else (y, p)


# --- GSTO in HRNet ----------------------------------------------------------------------

def resize_to(x: torch.Tensor, size, align_corners: bool = True) -> torch.Tensor:
    return x if tuple(x.shape[-2:]) == tuple(size) else F.interpolate(
        x, size=size, mode="bilinear", align_corners=align_corners)


class GatedFusionModule(HighResolutionModule):
    """GFM: an HRNet module whose fusion gates every input of every output before its
    transfer, ``y_i = ReLU(sum_j T_ij(g_ij * x_j))`` (``att_layers[i][j]``)."""

    def __init__(self, channels: Sequence[int], num_blocks: int, multi_scale_output: bool = True,
                 upsample: str = "bilinear", gate: str = "spatial", style: str = "official",
                 align_corners: bool = True):
        super().__init__(channels, num_blocks, multi_scale_output, fuse=True, upsample=upsample,
                         align_corners=align_corners)
        if not self.fuse:
            raise ValueError("a gated fusion module needs at least two branches")
        self.att_layers = nn.ModuleList(
            nn.ModuleList(make_gate(gate, c, style) for c in channels)
            for _ in range(len(self.fuse_layers)))

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        out = []
        for i, (row, gates) in enumerate(zip(self.fuse_layers, self.att_layers)):
            # summed in HRNet's order (own branch first), so that gates of one give
            # exactly HRNet's fusion
            y = xs[i] * gates[i](xs[i])
            for j, x in enumerate(xs):
                if j == i:
                    continue
                term = row[j](x * gates[j](x))
                if self.resize is not None and j > i:
                    term = resize_to(term, xs[i].shape[-2:], self.align_corners)
                y = y + term
            out.append(self.relu(y))
        return out


class AttentionModule(HighResolutionModule):
    """Table 3's attention without scale transfer: an attention module on every branch
    after the module ("block") or after each of its residual units ("layer"); the
    fusion is HRNet's."""

    def __init__(self, channels: Sequence[int], num_blocks: int, multi_scale_output: bool,
                 fuse: bool, upsample: str, attention: str, after: str, align_corners: bool = True):
        super().__init__(channels, num_blocks, multi_scale_output, fuse, upsample, align_corners)
        if after == "layer":
            self.layer_attention = nn.ModuleList(
                nn.ModuleList(make_attention(attention, c) for _ in range(num_blocks))
                for c in channels)
        elif after == "block":
            outputs = len(self.fuse_layers) if self.fuse else len(channels)
            self.block_attention = nn.ModuleList(
                make_attention(attention, c) for c in channels[:outputs])
        else:
            raise ValueError(f"attention_after must be one of {ATTENTION_PLACES}, got {after!r}")

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        if hasattr(self, "layer_attention"):
            out = []
            for branch, attentions, x in zip(self.branches, self.layer_attention, xs):
                for block, attention in zip(branch, attentions):
                    x = block(x)
                    x = x * attention(x)
                out.append(x)
            xs = out
        else:
            xs = [branch(x) for branch, x in zip(self.branches, xs)]
        if self.fuse:
            xs = fuse_branches(xs, self.fuse_layers, self.relu, "standard", resize=self.resize,
                               align_corners=self.align_corners)
        if hasattr(self, "block_attention"):
            xs = [x * a(x) for x, a in zip(xs, self.block_attention)]
        return xs


def predict_layer(channels: int, num_outputs: int) -> nn.Sequential:
    """HRNetV2's head (``last_layer``): 1x1 conv (with bias) + BN + ReLU + 1x1 conv."""
    return nn.Sequential(nn.Conv2d(channels, channels, 1),
                         nn.BatchNorm2d(channels, momentum=BN_MOMENTUM),
                         nn.ReLU(inplace=True),
                         nn.Conv2d(channels, num_outputs, 1))


@dataclass(frozen=True)
class GSTOFields:
    """Where GSTO goes in an HRNet (the fields shared by the segmentation and pose specs)."""
    gfm: tuple[bool, ...] = (True, True, True)                         # stages 2, 3, 4
    gtm: tuple[str, ...] = ("none", "supervised", "supervised")        # after stages 1, 2, 3
    gate: str = "spatial"              # gates of the GFM / unsupervised GTMs: spatial | channel
    gate_style: str = "official"       # official (conv-BN-ReLU-sigmoid) | paper (conv-sigmoid)
    attention: str = "none"            # Table 3 without ST: none | channel | spatial
    attention_after: str = "block"     # block (HRNet module) | layer (residual unit)

    def validate(self) -> None:
        super().validate()   # the HRNet backbone spec that follows in the MRO
        stages = len(self.num_modules)
        if len(self.gfm) != stages or not all(isinstance(v, bool) for v in self.gfm):
            raise ValueError(f"gfm needs {stages} booleans (stages 2-{stages + 1})")
        if len(self.gtm) != stages or any(v not in GTM_FORMS for v in self.gtm):
            raise ValueError(f"gtm needs {stages} entries (after stages 1-{stages}) from {GTM_FORMS}")
        if self.gate not in GATE_KINDS:
            raise ValueError(f"gate must be one of {GATE_KINDS}")
        if self.gate_style not in GATE_STYLES:
            raise ValueError(f"gate_style must be one of {GATE_STYLES}")
        if self.attention not in ATTENTIONS or self.attention_after not in ATTENTION_PLACES:
            raise ValueError(f"attention must be one of {ATTENTIONS}, attention_after one of "
                             f"{ATTENTION_PLACES}")
        if self.attention != "none" and any(self.gfm):
            raise ValueError("Table 3's attention modules are the alternative to the GFM: "
                             "switch gfm off to use them")
        if self.gate == "channel" and "supervised" in self.gtm:
            raise ValueError("a supervised GTM's gate is spatial (from class maps); "
                             "gate='channel' needs unsupervised GTMs")
        if self.branches_from_start and any(v in ("unsupervised", "supervised") for v in self.gtm):
            raise ValueError("a GTM makes the new branch of a transition: not with branches_from_start")

    @property
    def any_gsto(self) -> bool:
        return any(self.gfm) or any(v != "none" for v in self.gtm) or self.attention != "none"

    def summary(self) -> str:
        return f"{super().summary()}; {self.gsto_summary()}"   # the HRNet spec's, then GSTO's

    def gsto_summary(self) -> str:
        gfm = ",".join(str(s + 2) for s, on in enumerate(self.gfm) if on) or "none"
        gtm = ", ".join(f"{s + 1}:{v}" for s, v in enumerate(self.gtm) if v != "none") or "none"
        text = f"GFM stages {gfm}; GTM after {gtm}"
        if any(self.gfm) or any(v == "unsupervised" for v in self.gtm):
            text += "; SE channel gates" if self.gate == "channel" else f"; {self.gate_style} spatial gates"
        elif "supervised" in self.gtm:
            text += f"; {self.gate_style} spatial gates"
        if self.attention != "none":
            text += f"; {self.attention} attention after each {self.attention_after}"
        return text


@dataclass(frozen=True)
class GSTOSegSpec(GSTOFields, HRNetBackboneSpec):
    num_classes: int = 19                                  # Cityscapes; c0 of the predictors
    # bilinear resizing (fusion, united features, head input) with corners aligned, as
    # the project's HRNetV2; the released gsto_hrnet.py resizes with F.upsample /
    # F.interpolate and no align_corners, i.e. False: its released weights are scored
    # with align_corners=False (suites' released model_overrides)
    align_corners: bool = True

    @property
    def num_outputs(self) -> int:
        return self.num_classes


@dataclass(frozen=True)
class GSTOPoseSpec(GSTOFields, HRNetBackboneSpec):
    num_joints: int = 17                                   # heatmaps; c0 of the predictors

    @property
    def num_outputs(self) -> int:
        return self.num_joints


# names of the modules GSTO adds inside the backbone's stages (absent from ImageNet HRNet)
_GSTO_MODULE_NAMES = (".att_layers.", ".layer_attention.", ".block_attention.")


class GSTOHRNet(HighResolutionNet):
    """GSTO-HRNet: HRNetV2 (all branches out, concatenated at 1/4, HRNetV2's head) with
    GFMs in the stages and GTMs in the transitions the spec names. ``forward`` returns the
    final maps at 1/4 resolution, and in training mode also the predictors' class maps
    (supervised GTMs use theirs in every forward; ``"aux"`` predictors run in training only).

    The released weights (VDIGPKU/GSTO, ``model_pth``) are HRNet-Semantic-Segmentation's
    ``FullModel`` state dict (its test.py strips ``model.``; the Cityscapes loss's class
    weights may come along as ``loss.criterion.weight``), and they hold the transition-1
    gate ``att1`` that the released forward never calls (dropped unless this model has a
    GTM after stage 1). Its BatchNorm is InPlaceABNSync (activation none), whose scale is
    ``|weight| + eps``: ``official_batchnorm`` makes the loader store that in our
    BatchNorm2d weights (``bench.checkpoints``), so the forward is the authors'."""

    official_key_renames = ((r"^model\.", ""),)
    official_batchnorm = "inplace_abn"

    def __init__(self, spec: GSTOSegSpec | GSTOPoseSpec):
        self.align_corners = getattr(spec, "align_corners", True)   # before make_module runs
        super().__init__(spec, single_output=False, upsample="bilinear")   # calls make_module
        self._gsto = spec
        self.num_outputs = spec.num_outputs
        stage1_out = spec.stage1_planes * BLOCKS[spec.stage1_block].expansion
        for k, form in enumerate(spec.gtm, start=1):
            if form == "none":
                continue
            branches = [stage1_out] if k == 1 else list(spec.widths[:k])
            if form in ("aux", "supervised"):
                setattr(self, f"last_layer_stage{k}", predict_layer(sum(branches), spec.num_outputs))
            if form in ("unsupervised", "supervised"):
                if form == "supervised":
                    gate = TransitionGate(spec.num_outputs, k - 1, spec.gate_style,
                                          kernel_size=3 if spec.gate_style == "official" else 1)
                elif spec.gate == "spatial":
                    gate = TransitionGate(sum(branches), k - 1, spec.gate_style, kernel_size=1)
                else:   # SE on the branch that is transferred
                    gate = ChannelGate(branches[-1])
                setattr(self, f"att{k}", nn.ModuleList([None] * k + [gate]))
        concat = sum(self.out_channels)              # 15C: C + 2C + 4C + 8C
        self.last_layer = predict_layer(concat, spec.num_outputs)
        init_pose_weights(self)
        self.official_key_ignored = (r"^loss\.",) + (() if hasattr(self, "att1") else
                                                      (r"^(model\.)?att1\.",))
        # ImageNet HRNet weights fill the backbone; GSTO's own modules keep their init
        own = [k for k in self.state_dict()
               if k.startswith(_BACKBONE_LAYOUT.prefixes) and not any(n in k for n in _GSTO_MODULE_NAMES)]
        self.pretrained_layout = BackboneLayout(prefixes=tuple(own), ignored=_BACKBONE_LAYOUT.ignored)

    def make_module(self, spec, stage: int, index: int, channels: list[int],
                    multi_scale_output: bool, upsample: str) -> nn.Module:
        fuse = spec.fuses(stage, index)
        if spec.gfm[stage] and fuse:
            return GatedFusionModule(channels, spec.num_blocks, multi_scale_output, upsample,
                                     spec.gate, spec.gate_style, self.align_corners)
        if spec.attention != "none":
            return AttentionModule(channels, spec.num_blocks, multi_scale_output, fuse, upsample,
                                   spec.attention, spec.attention_after, self.align_corners)
        return super().make_module(spec, stage, index, channels, multi_scale_output, upsample)

    def united(self, branches: Sequence[torch.Tensor]) -> torch.Tensor:
        """Every branch at the highest resolution, concatenated (the GTM's united feature)."""
        size = branches[0].shape[-2:]
        return torch.cat([branches[0]] + [resize_to(b, size, self.align_corners)
                                          for b in branches[1:]], 1)

    def transit(self, index: int, branches: list[torch.Tensor],
                aux: Optional[dict] = None) -> list[torch.Tensor]:
        form = self._gsto.gtm[index - 1]
        if form == "none" or (form == "aux" and not self.training):
            return super().transit(index, branches)
        needs_united = form != "unsupervised" or self._gsto.gate == "spatial"
        united = self.united(branches) if needs_united else None
        source = united
        if form in ("aux", "supervised"):
            source = getattr(self, f"last_layer_stage{index}")(united)
            if aux is not None:
                aux[f"stage{index}"] = source
            if form == "aux":
                return super().transit(index, branches, aux)
        if source is None:   # channel gate: from the branch it gates
            source = branches[-1]
        transition = getattr(self, f"transition{index}")
        gates = getattr(self, f"att{index}")
        out = []
        for i, layer in enumerate(transition):
            if i < len(branches):
                out.append(branches[i] if layer is None else layer(branches[i]))
            else:
                out.append(layer(branches[-1] * gates[i](source)))
        return out

    def features(self, x: torch.Tensor, aux: Optional[dict] = None) -> torch.Tensor:
        """The HRNetV2 representation: all branches at 1/4 resolution, concatenated."""
        return self.united(self.forward_features(x, aux))

    def forward(self, x: torch.Tensor):
        """The final maps at 1/4 resolution; in training mode ``{"out": maps, "stage<k>":
        the stage predictors' maps}`` (``bench.tasks.as_outputs``)."""
        aux: dict[str, torch.Tensor] = {}
        out = self.last_layer(self.features(x, aux))
        return {"out": out, **aux} if self.training else out


# --- Table 6: PPM and ASPP heads on a dilated ResNet --------------------------------------

class _GatedBranches(nn.Module):
    """Branches that each start with a scale transfer, optionally gated by GSTO. Subclasses
    fill ``self.stages`` (the transfers) and say which are gated."""

    def _setup_gates(self, in_channels: int, gated: Sequence[bool], form: str,
                     num_classes: int, style: str) -> None:
        self.form = form
        if form in ("aux", "supervised"):
            self.predictor = nn.Conv2d(in_channels, num_classes, 1)     # Eq. 5
        if form in ("unsupervised", "supervised"):
            gate_in = num_classes if form == "supervised" else in_channels
            self.gates = nn.ModuleList(SpatialGate(gate_in, style) if g else None for g in gated)

    def gated_inputs(self, x: torch.Tensor, aux: Optional[dict] = None) -> list[torch.Tensor]:
        """The input each stage sees (``g_k * x`` where gated); the predictor's class
        maps go into ``aux`` under ``"head"``."""
        source = x
        if self.form in ("aux", "supervised") and (self.training or self.form == "supervised"):
            source = self.predictor(x)
            if aux is not None:
                aux["head"] = source
        if self.form == "supervised" or self.form == "unsupervised":
            return [x if gate is None else x * gate(source) for gate in self.gates]
        return [x] * len(self.stages)


class PyramidPoolingModule(_GatedBranches):
    """PSPNet's PPM: for each bin size, adaptive average pooling (the scale transfer),
    1x1 conv-BN-ReLU, bilinear upsampling; concatenated with the input."""

    def __init__(self, in_channels: int, bins: Sequence[int] = (1, 2, 3, 6), reduction: int = 512,
                 form: str = "none", num_classes: int = 19, style: str = "official"):
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(b), conv_bn_relu(in_channels, reduction)) for b in bins)
        self._setup_gates(in_channels, [True] * len(bins), form, num_classes, style)
        self.out_channels = in_channels + reduction * len(bins)

    def forward(self, x: torch.Tensor, aux: Optional[dict] = None) -> torch.Tensor:
        size = x.shape[-2:]
        inputs = self.gated_inputs(x, aux)
        return torch.cat([x] + [resize_to(stage(xi), size) for stage, xi in zip(self.stages, inputs)], 1)


class _ImagePooling(nn.Sequential):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return resize_to(super().forward(x), x.shape[-2:])


class ASPP(_GatedBranches):
    """DeepLabv3's ASPP: a 1x1 branch, three 3x3 atrous branches and image pooling, each
    conv-BN-ReLU to ``width``; concatenated and projected by 1x1 conv-BN-ReLU (+ dropout).
    GSTO gates the atrous branches and the pooling (the scale transfers)."""

    def __init__(self, in_channels: int, rates: Sequence[int] = (12, 24, 36), width: int = 256,
                 form: str = "none", num_classes: int = 19, style: str = "official"):
        super().__init__()
        self.stages = nn.ModuleList(
            [conv_bn_relu(in_channels, width)]
            + [conv_bn_relu(in_channels, width, 3, dilation=r) for r in rates]
            + [_ImagePooling(nn.AdaptiveAvgPool2d(1), conv_bn_relu(in_channels, width))])
        self._setup_gates(in_channels, [False] + [True] * (len(rates) + 1), form, num_classes, style)
        self.project = nn.Sequential(conv_bn_relu(width * len(self.stages), width), nn.Dropout(0.5))
        self.out_channels = width

    def forward(self, x: torch.Tensor, aux: Optional[dict] = None) -> torch.Tensor:
        inputs = self.gated_inputs(x, aux)
        return self.project(torch.cat([stage(xi) for stage, xi in zip(self.stages, inputs)], 1))


@dataclass(frozen=True)
class SegHeadSpec:
    depth: int = 50
    head: str = "ppm"                   # ppm (PSPNet) | aspp (DeepLabv3)
    gsto: str = "none"                  # none | aux | unsupervised | supervised
    gate_style: str = "official"
    num_classes: int = 19
    output_stride: int = 8

    def validate(self) -> None:
        ResNetSpec(depth=self.depth).validate()
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}")
        if self.gsto not in GTM_FORMS:
            raise ValueError(f"gsto must be one of {GTM_FORMS}")
        if self.gate_style not in GATE_STYLES:
            raise ValueError(f"gate_style must be one of {GATE_STYLES}")
        if self.output_stride not in (8, 16):
            raise ValueError("output_stride must be 8 or 16")

    def summary(self) -> str:
        return (f"dilated resnet{self.depth} (output stride {self.output_stride}); "
                f"{self.head.upper()} head; GSTO {self.gsto}")


class DilatedResNetSegmentation(ResNet):
    """A dilated ResNet trunk (torchvision keys at the top level) with a PPM or ASPP head
    (``head``) and a classifier (``cls``); logits at 1/``output_stride`` resolution."""

    pretrained_layout = BackboneLayout(
        prefixes=("conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4."),
        ignored=(r"^fc\.",))

    def __init__(self, spec: SegHeadSpec):
        dilate = (False, True, True) if spec.output_stride == 8 else (False, False, True)
        super().__init__(ResNetSpec(depth=spec.depth, num_classes=0,
                                    replace_stride_with_dilation=dilate))
        c = self.out_channels
        if spec.head == "ppm":
            self.head = PyramidPoolingModule(c, form=spec.gsto, num_classes=spec.num_classes,
                                             style=spec.gate_style)
            self.cls = nn.Sequential(conv_bn_relu(self.head.out_channels, 512, 3),
                                     nn.Dropout2d(0.1), nn.Conv2d(512, spec.num_classes, 1))
        else:
            rates = (12, 24, 36) if spec.output_stride == 8 else (6, 12, 18)
            self.head = ASPP(c, rates, form=spec.gsto, num_classes=spec.num_classes,
                             style=spec.gate_style)
            # DeepLabv3 (Chen et al. 2017): the projected ASPP features go straight to the
            # final 1x1 conv (no extra 3x3 layer); this gives HRNetV2's printed 58.0M /
            # 1778.7 G for the dilated ResNet-101 (Table 7)
            self.cls = nn.Conv2d(256, spec.num_classes, 1)

    def forward(self, x: torch.Tensor):
        """Logits at 1/output_stride; in training mode ``{"out": logits, "head": the
        GSTO predictor's maps}`` when the head has a predictor."""
        aux: dict[str, torch.Tensor] = {}
        out = self.cls(self.head(self.forward_features(x), aux))
        return {"out": out, **aux} if self.training else out


# --- registered models --------------------------------------------------------------------

GSTO_HRNET_W48_SEG = GSTOSegSpec(widths=(48, 96, 192, 384))
GSTO_HRNET_W18_SMALL_V2_SEG = replace(GSTO_HRNET_W48_SEG, widths=(18, 36, 72, 144),
                                      num_modules=(1, 3, 2), num_blocks=2, stage1_blocks=2)
GSTO_HRNET_W32 = GSTOPoseSpec()
GSTO_HRNET_W48 = replace(GSTO_HRNET_W32, widths=(48, 96, 192, 384))
PSPNET_RESNET50_DILATED = SegHeadSpec()
DEEPLABV3_RESNET50_DILATED = replace(PSPNET_RESNET50_DILATED, head="aspp")


@register_model(GSTO_HRNET_W18_SMALL_V2_SEG)
def gsto_hrnet_w18_small_v2_seg(spec: GSTOSegSpec) -> GSTOHRNet:
    """GSTO-HRNet-W18 (Small-v2) for segmentation: GFM in stages 2-4, supervised GTMs after 2, 3."""
    return GSTOHRNet(spec)


@register_model(GSTO_HRNET_W48_SEG)
def gsto_hrnet_w48_seg(spec: GSTOSegSpec) -> GSTOHRNet:
    """GSTO-HRNet-W48 for segmentation (Cityscapes, 19 classes)."""
    return GSTOHRNet(spec)


@register_model(GSTO_HRNET_W32)
def gsto_hrnet_w32(spec: GSTOPoseSpec) -> GSTOHRNet:
    """GSTO-HRNet-W32 for pose: HRNet-W32 with GSTO and HRNetV2's head (17 heatmaps)."""
    return GSTOHRNet(spec)


@register_model(GSTO_HRNET_W48)
def gsto_hrnet_w48(spec: GSTOPoseSpec) -> GSTOHRNet:
    """GSTO-HRNet-W48 for pose."""
    return GSTOHRNet(spec)


@register_model(PSPNET_RESNET50_DILATED)
def pspnet_resnet50_dilated(spec: SegHeadSpec) -> DilatedResNetSegmentation:
    """PSPNet: PPM head on a dilated ResNet-50 (output stride 8); gsto= adds GSTO (Table 6)."""
    return DilatedResNetSegmentation(spec)


@register_model(DEEPLABV3_RESNET50_DILATED)
def deeplabv3_resnet50_dilated(spec: SegHeadSpec) -> DilatedResNetSegmentation:
    """DeepLabv3: ASPP head on a dilated ResNet-50 (output stride 8); gsto= adds GSTO (Table 6)."""
    return DilatedResNetSegmentation(spec)


@register_model(replace(PSPNET_RESNET50_DILATED, depth=101))
def pspnet_resnet101_dilated(spec: SegHeadSpec) -> DilatedResNetSegmentation:
    """PSPNet on a dilated ResNet-101 (Table 7's comparison row)."""
    return DilatedResNetSegmentation(spec)


@register_model(replace(DEEPLABV3_RESNET50_DILATED, depth=101))
def deeplabv3_resnet101_dilated(spec: SegHeadSpec) -> DilatedResNetSegmentation:
    """DeepLabv3 on a dilated ResNet-101 (Table 7's comparison row)."""
    return DilatedResNetSegmentation(spec)
