"""The pose protocol schema: heatmap targets, augmentation, evaluation (boxes, flip test,
decoding, COCO rescoring + OKS-NMS, MPII PCKh arithmetic) and loss of the top-down pose
recipes (HRNet, SimpleBaseline, Lite-HRNet, mmpose)."""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field, model_validator

from ...protocol import FrozenModel, Protocol, as_protocol


class HalfBody(FrozenModel):
    prob: float = Field(ge=0, le=1)
    num_joints: int = Field(8, ge=1)       # more visible joints than this are needed


class BoxCenterJitter(FrozenModel):
    """mmpose 0.x's COCO training boxes: with probability ``prob`` a box's centre moves by
    ``factor x (U(0, 1) - 0.5) x (w, h)``, drawn once when the dataset is built."""
    prob: float = Field(ge=0, le=1)
    factor: float = Field(ge=0)


class PoseAugmentation(FrozenModel):
    """Training augmentation; an entry left out is switched off (no silent default)."""
    flip_prob: float = Field(0.0, ge=0, le=1)
    half_body: Optional[HalfBody] = None
    box_center_jitter: Optional[BoxCenterJitter] = None   # COCO only (boxes)
    rotation: float = Field(0.0, ge=0, le=180)        # degrees, N(0, r) clipped to 2r
    rotation_prob: float = Field(0.6, ge=0, le=1)
    scale: float = Field(0.0, ge=0, lt=1)             # zoom N(1, s) clipped to 1 +- s
    # whose sample pipeline: HRNet's JointsDataset (half body, zoom, rotation, flip last)
    # or mmpose 0.x's (flip first); see bench.tasks.pose.data.topdown
    order: Literal["mmpose", "hrnet"] = "mmpose"


class PoseEvaluation(FrozenModel):
    """How a top-down pose protocol is scored."""
    boxes: Literal["detector", "ground_truth"] = "ground_truth"
    detection_file: Optional[str] = None               # relative to --data-root
    box_score_threshold: float = Field(0.0, ge=0)
    flip_test: bool = True
    shift_heatmap: bool = True                         # flipped heatmaps moved 1 px right
    post_process: Optional[Literal["default", "gaussian", "dark"]] = "default"
    modulate_kernel: int = Field(11, ge=1)             # gaussian / dark
    oks_nms_threshold: float = Field(0.9, gt=0, le=1)  # COCO
    keypoint_score_threshold: float = Field(0.2, ge=0, le=1)   # COCO rescoring
    pck_threshold: float = Field(0.2, gt=0)           # LSP PCK, fraction of the torso
    # the alpha MPII's Mean@0.1 is read at: 0.1, or 0.11 as HRNet's lib/dataset/mpii.py
    # evaluate reads it (row 11 of its 0.01 grid)
    pckh_low_alpha: Literal[0.1, 0.11] = 0.1
    # whose arithmetic maps heatmaps back to image pixels: HRNet's (lib/core/inference.py
    # get_final_preds: inverse affine, (0, 0) for a maximum <= 0) or mmpose 0.13's
    # (mmpose/core/evaluation/top_down_eval.py keypoints_from_heatmaps: transform_preds'
    # per-axis float32 formula, (-1, -1) for a maximum <= 0)
    decode: Literal["hrnet", "mmpose"] = "hrnet"
    # COCO rescoring + OKS-NMS: HRNet's lib/dataset/coco.py evaluate + lib/nms/nms.py, or
    # mmpose 0.13's topdown_coco_dataset.py evaluate + core/post_processing/nms.py oks_nms
    # (float32 pose scores and OKS, ties ordered by argsort()[::-1])
    coco_postprocess: Literal["hrnet", "mmpose"] = "hrnet"
    # MPII PCKh: HRNet's lib/dataset/mpii.py evaluate, or mmpose 0.13's
    # topdown_mpii_dataset.py evaluate (float32 predictions + 1, float32 PCK curve)
    pckh_arithmetic: Literal["hrnet", "mmpose"] = "hrnet"
    batch_size: int = Field(32, gt=0)

    @model_validator(mode="after")
    def _detector_needs_file(self):
        if self.boxes == "detector" and not self.detection_file:
            raise ValueError("boxes: detector needs a detection_file")
        if self.modulate_kernel % 2 == 0:
            raise ValueError(f"modulate_kernel must be odd, got {self.modulate_kernel}")
        return self


class PoseLoss(FrozenModel):
    # the heatmap MSE is mse_factor x the mean squared error: HRNet's JointsMSELoss (and
    # SimpleBaseline's, DARK's) halves it, mmpose's JointsMSELoss (Lite-HRNet and the
    # mmpose baselines) does not. Under Adam the factor only acts through eps.
    mse_factor: float = Field(0.5, gt=0)


class PoseProtocol(Protocol):
    """Top-down pose: heatmap targets, pose augmentation, detector or GT boxes."""
    task: Literal["pose"]
    heatmap_size: Optional[tuple[int, int]] = None
    num_joints: Optional[int] = None
    sigma: Optional[float] = Field(None, gt=0)        # Gaussian target, heatmap pixels
    unbiased_encoding: bool = False                    # DARK targets
    use_target_weight: bool = True
    # images as RGB (HRNet COLOR_RGB true, mmpose to_rgb) or as OpenCV's BGR with the RGB
    # ImageNet statistics (SimpleBaseline's loader, HRNet's resnet configs COLOR_RGB false)
    color_rgb: bool = True
    # which sanitised COCO ground-truth boxes are kept: x2 >= x1 and y2 >= y1 (HRNet's
    # lib/dataset/coco.py) or x2 > x1 and y2 > y1 (mmpose 0.13's topdown_coco_dataset.py)
    box_filter: Literal["hrnet", "mmpose"] = "hrnet"
    # a JPEG's EXIF orientation tag: ignored (HRNet's JointsDataset, cv2.IMREAD_IGNORE_
    # ORIENTATION) or applied (mmpose 0.x LoadImageFromFile: mmcv.imread 'color', i.e.
    # cv2.IMREAD_COLOR, as we read mmcv 1.3's source)
    exif_orientation: Literal["ignore", "apply"] = "ignore"
    augmentation: PoseAugmentation = Field(default_factory=PoseAugmentation)
    evaluation: PoseEvaluation = Field(default_factory=PoseEvaluation)
    loss: PoseLoss = Field(default_factory=PoseLoss)
    # weights of the auxiliary heatmaps a model returns in training mode (GSTO's stage
    # predictors, Sec. 3.2.2: 0.2 / 0.3 / 0.5)
    aux_weights: dict[str, float] = Field(
        default_factory=lambda: {"stage1": 0.2, "stage2": 0.3, "stage3": 0.5})

    def task_overrides(self) -> dict[str, Any]:
        out = super().task_overrides()
        if self.num_joints is not None:
            out.setdefault("num_joints", self.num_joints)
        return out

    @model_validator(mode="after")
    def _jitter_needs_boxes(self):
        if self.augmentation.box_center_jitter is not None and self.dataset != "coco":
            raise ValueError(f"augmentation.box_center_jitter moves COCO person boxes; "
                             f"dataset {self.dataset!r} has none")
        if self.box_filter != "hrnet" and self.dataset != "coco":
            raise ValueError(f"box_filter selects COCO ground-truth boxes; dataset "
                             f"{self.dataset!r} has none")
        return self


def pose_protocol(protocol) -> PoseProtocol:
    """``protocol`` as a ``PoseProtocol`` (a mapping is validated once, by the schema)."""
    return as_protocol(protocol, PoseProtocol)
