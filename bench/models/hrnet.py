"""HRNet (Sun et al., CVPR 2019) for pose, its ablations, HRNetV2 for segmentation, and
Small HRNet.

Serves HRNet Tables 1, 2, 4, 6 and 7 (and the resolution-maintenance study of Sec. 4.4),
the HRNet rows of Lite-HRNet Tables 3-6, and GSTO's HRNetV2 baselines.

Attribute names follow the official code, so its checkpoints load with ``strict=True``.
``HighResolutionNet`` is the backbone; ``PoseHighResolutionNet`` and
``HRNetV2Segmentation`` add the pose and segmentation heads.

Design reasoning, readings and measurements: docs/design-notes.md, "Module notes",
bench/models/hrnet.py.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoints import BackboneLayout
from ..registry import register_model
from .layers import (BLOCKS, BN_MOMENTUM, apply_transition, fuse_branches, full_conv3x3_bn,
                     init_pose_weights, make_fuse_layers, make_res_layer, make_transition)

EXCHANGE_MODES = ("full", "across_stage", "final")

# ImageNet-pretrained HRNet classifiers (hrnet_w32-36af842e.pth ...) share the stem and
# stages with the pose and segmentation networks; their classification head
# (incre_modules, downsamp_modules, final_layer, classifier) is dropped, as we read the
# official PRETRAINED_LAYERS lists (not checked by a test).
_BACKBONE_LAYOUT = BackboneLayout(
    prefixes=("conv1.", "bn1.", "conv2.", "bn2.", "layer1.", "transition1.", "stage2.",
              "transition2.", "stage3.", "transition3.", "stage4."),
    ignored=(r"^incre_modules\.", r"^downsamp_modules\.", r"^final_layer\.", r"^classifier\."))


@dataclass(frozen=True)
class HRNetBackboneSpec:
    widths: tuple[int, ...] = (32, 64, 128, 256)   # C, 2C, 4C, 8C of stages 2-4
    num_modules: tuple[int, ...] = (1, 4, 3)       # stages 2, 3, 4
    num_blocks: int = 4                            # basic blocks per branch per module
    stem_width: int = 64
    stage1_block: str = "BOTTLENECK"
    stage1_blocks: int = 4
    stage1_planes: int = 64
    exchange: str = "full"                         # HRNet Table 6: full | across_stage | final
    branches_from_start: bool = False              # Sec. 4.4 "resolution maintenance"

    def validate(self) -> None:
        if self.stage1_block not in BLOCKS:
            raise ValueError(f"stage1_block must be one of {sorted(BLOCKS)}")
        if len(self.widths) != len(self.num_modules) + 1:
            raise ValueError("need one width per branch: len(widths) == len(num_modules) + 1")
        if self.exchange not in EXCHANGE_MODES:
            raise ValueError(f"exchange must be one of {', '.join(EXCHANGE_MODES)}")

    def summary(self) -> str:
        extra = "; all branches from the start" if self.branches_from_start else ""
        return (f"widths={'/'.join(map(str, self.widths))}; "
                f"modules={'/'.join(map(str, self.num_modules))}x{self.num_blocks} blocks; "
                f"exchange={self.exchange}{extra}")

    def fuses(self, stage_index: int, module_index: int) -> bool:
        """Whether module ``module_index`` of stage ``stage_index`` (0-based among stages
        2-4) ends with an exchange unit."""
        last_module = module_index == self.num_modules[stage_index] - 1
        if self.exchange == "full":
            return True
        if self.exchange == "across_stage":
            return last_module
        return last_module and stage_index == len(self.num_modules) - 1


@dataclass(frozen=True)
class HRNetSpec(HRNetBackboneSpec):
    num_joints: int = 17
    final_conv_kernel: int = 1


@dataclass(frozen=True)
class HRNetV2SegSpec(HRNetBackboneSpec):
    num_classes: int = 19                          # Cityscapes
    # bilinear resizing in the fusion and the head with corners aligned (the repository's
    # config default, which the golden outputs use); its released W48 models were trained
    # and tested with ALIGN_CORNERS False (every experiments/*/seg_hrnet_w48_*.yaml, and
    # PyTorch's default on the branches that do not pass it)
    align_corners: bool = True
    # every BatchNorm's momentum: seg_hrnet.py of the pytorch-v1.1 branch uses 0.01 (its
    # BN_MOMENTUM; checked by the OHEM training golden); as we read them, master uses 0.01
    # too and the HRNet-OCR branch 0.1 (this default)
    bn_momentum: float = BN_MOMENTUM


class HighResolutionModule(nn.Module):
    """Parallel branches of basic blocks, then (optionally) the HRNet exchange unit."""

    def __init__(self, channels: Sequence[int], num_blocks: int, multi_scale_output: bool = True,
                 fuse: bool = True, upsample: str = "nearest", align_corners: bool = True):
        super().__init__()
        self.align_corners = align_corners
        self.branches = nn.ModuleList(
            make_res_layer(BLOCKS["BASIC"], c, c, num_blocks) for c in channels)
        self.fuse = fuse and len(channels) > 1
        self.resize = None if upsample == "nearest" else upsample
        if self.fuse:
            self.fuse_layers = make_fuse_layers(
                channels, len(channels) if multi_scale_output else 1, full_conv3x3_bn, upsample)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        if not self.fuse:
            return xs
        return fuse_branches(xs, self.fuse_layers, self.relu, "standard", resize=self.resize,
                             align_corners=self.align_corners)


class HighResolutionNet(nn.Module):
    """Stem, stage 1 and stages 2-4; ``forward_features`` returns the branches that leave
    stage 4 (all of them, or only the highest with ``single_output``)."""

    pretrained_layout = _BACKBONE_LAYOUT

    def __init__(self, spec: HRNetBackboneSpec, single_output: bool, upsample: str = "nearest"):
        super().__init__()
        w = spec.stem_width
        self.conv1 = nn.Conv2d(3, w, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(w, w, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(w, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        block = BLOCKS[spec.stage1_block]
        self.layer1 = make_res_layer(block, w, spec.stage1_planes, spec.stage1_blocks)
        previous = [spec.stage1_planes * block.expansion]
        self.num_stages = len(spec.num_modules)
        for s, num_modules in enumerate(spec.num_modules):
            channels = list(spec.widths) if spec.branches_from_start else list(spec.widths[: s + 2])
            setattr(self, f"transition{s + 1}", make_transition(previous, channels, full_conv3x3_bn))
            last_stage = s == self.num_stages - 1
            setattr(self, f"stage{s + 2}", nn.Sequential(*[
                self.make_module(
                    spec, s, m, channels,
                    multi_scale_output=not (single_output and last_stage and m == num_modules - 1),
                    upsample=upsample)
                for m in range(num_modules)]))
            previous = channels
        self.out_channels = previous

    def make_module(self, spec: HRNetBackboneSpec, stage: int, index: int, channels: list[int],
                    multi_scale_output: bool, upsample: str) -> nn.Module:
        """Module ``index`` of stage ``stage`` (0-based among stages 2-4). Subclasses that
        plug something into the modules (GSTO's gated fusion) override this."""
        return HighResolutionModule(channels, spec.num_blocks, multi_scale_output=multi_scale_output,
                                    fuse=spec.fuses(stage, index), upsample=upsample,
                                    align_corners=getattr(spec, "align_corners", True))

    def transit(self, index: int, branches: list[torch.Tensor],
                aux: Optional[dict] = None) -> list[torch.Tensor]:
        """Transition ``index`` (1-based: the one after stage ``index``) applied to the
        stage's branches. Subclasses that change how a new branch is made (GSTO's gated
        transition) override this, and may put named auxiliary outputs into ``aux``."""
        return apply_transition(getattr(self, f"transition{index}"), branches)

    def forward_features(self, x: torch.Tensor, aux: Optional[dict] = None) -> list[torch.Tensor]:
        """The branches leaving stage 4; auxiliary outputs made on the way go into ``aux``."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        branches = [self.layer1(x)]
        for s in range(1, self.num_stages + 1):
            branches = self.transit(s, branches, aux)
            branches = getattr(self, f"stage{s + 1}")(branches)
        return branches


class PoseHighResolutionNet(HighResolutionNet):
    def __init__(self, spec: HRNetSpec):
        super().__init__(spec, single_output=True)
        self.final_layer = nn.Conv2d(spec.widths[0], spec.num_joints, spec.final_conv_kernel,
                                     padding=spec.final_conv_kernel // 2)
        init_pose_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_layer(self.forward_features(x)[0])


class HRNetV2Segmentation(HighResolutionNet):
    """HRNetV2 with HRNet-Semantic-Segmentation's head (``seg_hrnet.py``'s names).

    Its released weights (``hrnet_w48_cityscapes_cls19_1024x2048_trainset.pth`` ...) are
    the state dict of the repository's ``FullModel`` (network + loss): every network key
    carries a ``model.`` prefix and the loss's class weights come along as
    ``loss.criterion.weight``; the repository's test.py strips the prefix. Loading them
    needs that key map (``official_key_renames``, ``official_key_ignored``)."""

    official_key_renames = ((r"^model\.", ""),)
    official_key_ignored = (r"^loss\.",)
    # as we read the repository (the InPlaceABN scale is checked only for GSTO, in
    # gsto_official.json), its PyTorch 0.4 branch (``*_torch04.pth``, e.g. the LIP model)
    # normalised with InPlaceABNSync (scale |weight| + eps) and ``*_torch11.pth`` used
    # SyncBatchNorm; the torch04 files have no num_batches_tracked, so the loader applies
    # this to them only
    official_batchnorm = "inplace_abn"

    def __init__(self, spec: HRNetV2SegSpec):
        super().__init__(spec, single_output=False, upsample="bilinear")
        self.align_corners = spec.align_corners
        concat = sum(self.out_channels)              # 15C: C + 2C + 4C + 8C
        self.last_layer = nn.Sequential(
            nn.Conv2d(concat, concat, 1),
            nn.BatchNorm2d(concat, momentum=BN_MOMENTUM),
            nn.ReLU(inplace=True),
            nn.Conv2d(concat, spec.num_classes, 1))
        # seg_hrnet.py's init_weights as we read it (not run by a test): every conv
        # N(0, 0.001^2), BN 1/0; its conv biases keep PyTorch's default init (zero here,
        # which only shifts the first logits)
        init_pose_weights(self)
        for m in self.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.momentum = spec.bn_momentum

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The HRNetV2 representation: all branches at 1/4 resolution, concatenated."""
        branches = self.forward_features(x)
        size = branches[0].shape[-2:]
        return torch.cat([branches[0]] + [
            F.interpolate(b, size=size, mode="bilinear", align_corners=self.align_corners)
            for b in branches[1:]], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits at 1/4 of the input resolution (the loss resizes them)."""
        return self.last_layer(self.features(x))


HRNET_W32 = HRNetSpec()
HRNET_W48 = replace(HRNET_W32, widths=(48, 96, 192, 384))
SMALL_HRNET_W16 = replace(HRNET_W32, widths=(16, 32, 64, 128), num_modules=(1, 1, 1),
                          num_blocks=2, stage1_blocks=1, stage1_planes=32)
HRNETV2_W48_SEG = HRNetV2SegSpec(widths=(48, 96, 192, 384))
HRNETV2_W18_SMALL_V2_SEG = replace(HRNETV2_W48_SEG, widths=(18, 36, 72, 144),
                                   num_modules=(1, 3, 2), num_blocks=2, stage1_blocks=2)


@register_model(HRNET_W32)
def hrnet_w32(spec: HRNetSpec) -> PoseHighResolutionNet:
    """HRNet-W32 pose network (SimpleBaseline-style 1x1 head on the 1/4 branch)."""
    return PoseHighResolutionNet(spec)


@register_model(HRNET_W48)
def hrnet_w48(spec: HRNetSpec) -> PoseHighResolutionNet:
    """HRNet-W48 pose network."""
    return PoseHighResolutionNet(spec)


@register_model(SMALL_HRNET_W16)
def small_hrnet_w16(spec: HRNetSpec) -> PoseHighResolutionNet:
    """Small HRNet-W16 (Lite-HRNet's baseline): w18_small_v1 depth at widths 16-128."""
    return PoseHighResolutionNet(spec)


@register_model(HRNETV2_W18_SMALL_V2_SEG)
def hrnetv2_w18_small_v2_seg(spec: HRNetV2SegSpec) -> HRNetV2Segmentation:
    """HRNetV2-W18-Small-v2 for semantic segmentation (GSTO's small baseline)."""
    return HRNetV2Segmentation(spec)


@register_model(HRNETV2_W48_SEG)
def hrnetv2_w48_seg(spec: HRNetV2SegSpec) -> HRNetV2Segmentation:
    """HRNetV2-W48 for semantic segmentation."""
    return HRNetV2Segmentation(spec)
