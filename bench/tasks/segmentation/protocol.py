"""The segmentation protocol schema: crops and augmentation, the cross-entropy (class
weights, OHEM, auxiliary terms) and the evaluation (scales, flip, sliding window) of the
HRNet-Semantic-Segmentation, mmsegmentation and GSTO recipes."""
from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import Field, PositiveInt, field_validator, model_validator

from ...protocol import FrozenModel, Protocol, as_protocol


class SegAugmentation(FrozenModel):
    """Training augmentation of the segmentation recipes; left out = off
    (bench.tasks.segmentation.data.base's module docstring says what each entry does)."""
    scale_range: Optional[tuple[float, float]] = None  # long side x U(lo, hi)
    # HRNet-Semantic-Segmentation's SCALE_FACTOR: long side x (0.5 + k / 10), k uniform
    # in 0..scale_factor (its base_dataset.py gen_sample); instead of scale_range
    scale_factor: Optional[int] = Field(None, ge=0)
    flip_prob: float = Field(0.0, ge=0, le=1)
    # image padding below the crop size: pixel 0 before normalisation, or 0 after it
    pad_image: Literal["black", "mean"] = "black"
    resize_to_crop: bool = False       # image and label resized to crop_size first (LIP)
    flip_first: bool = False           # flip before resizing, not after the crop (LIP)

    @field_validator("scale_range")
    @classmethod
    def _ordered(cls, v):
        if v is not None and not 0 < v[0] <= v[1]:
            raise ValueError(f"scale_range must be 0 < low <= high, got {list(v)}")
        return v

    @model_validator(mode="after")
    def _one_scale_rule(self):
        if self.scale_range is not None and self.scale_factor is not None:
            raise ValueError("give scale_range (continuous) or scale_factor (0.1 grid), "
                             "not both")
        return self


class Ohem(FrozenModel):
    """Online hard example mining (HRNet-Semantic-Segmentation's OhemCrossEntropy): keep
    the pixels whose true-class probability is below ``threshold``, at least ``min_kept``."""
    threshold: float = Field(0.9, gt=0, le=1)
    min_kept: int = Field(131072, ge=1)


class SegLoss(FrozenModel):
    # per-class weights of the cross-entropy: a list (one per class) or a named table
    # ("hrnet_cityscapes": HRNet-Semantic-Segmentation's Cityscapes weights)
    class_weights: Optional[Union[Literal["hrnet_cityscapes"], tuple[float, ...]]] = None
    ohem: Optional[Ohem] = None
    # auxiliary outputs of the model (training mode) and their weights; the main output
    # weighs main_weight (GSTO: 0.2 / 0.3 / 0.5 for the stage predictors, 1.0 the final)
    aux_weights: dict[str, float] = Field(default_factory=dict)
    main_weight: float = Field(1.0, gt=0)
    align_corners: bool = True                         # logits resized to the labels


class SlidingWindow(FrozenModel):
    crop: tuple[int, int]                              # (H, W)
    stride: tuple[int, int]
    # window placement (bench.tasks.segmentation.inference.window_boxes): "shift" (last
    # windows shifted back, image zero-padded to the crop), "hrnet" (HRNet-Semantic-
    # Segmentation's BaseDataset: image and edge windows padded with black), or
    # "hrnet_cityscapes" (its Cityscapes override: whole image at scales <= 1, shifted-back
    # windows above); the two hrnet styles need ensemble: hrnet
    style: Literal["shift", "hrnet", "hrnet_cityscapes"] = "shift"

    @model_validator(mode="after")
    def _stride_within_crop(self):
        if any(s <= 0 or s > c for s, c in zip(self.stride, self.crop)):
            raise ValueError(f"stride {list(self.stride)} must be positive and at most the "
                             f"crop {list(self.crop)}")
        return self


class SegEvaluation(FrozenModel):
    """How a segmentation protocol is scored: single scale (``scales: [1.0]``) or several
    with flipping; whole images or a sliding window; logits resized to the label."""
    scales: tuple[float, ...] = (1.0,)
    flip: bool = False
    # long side of the image at scale 1 (PASCAL-Context: 520); None: the image's own size
    base_size: Optional[int] = Field(None, gt=0)
    # (H, W) every image is resized to at scale 1, aspect ratio not kept (LIP: 473 x 473)
    image_size: Optional[tuple[PositiveInt, PositiveInt]] = None
    # where that resize happens: "inference" (the normalised tensor, bilinear, inside the
    # prediction) or "loader" (the uint8 image, cv2.resize INTER_LINEAR, before normalising:
    # HRNet-Semantic-Segmentation's lib/datasets/lip.py testval)
    image_resize: Literal["inference", "loader"] = "inference"
    sliding_window: Optional[SlidingWindow] = None
    batch_size: int = Field(1, gt=0)
    # how views are combined (bench.tasks.segmentation.inference): "softmax_mean" (mean of
    # the views' softmax) or "hrnet" (HRNet-Semantic-Segmentation: exp of the mean of the
    # plain and flipped logits per window, summed over scales)
    ensemble: Literal["softmax_mean", "hrnet"] = "softmax_mean"
    # bilinear resizes of the scores; None: loss.align_corners
    align_corners: Optional[bool] = None
    # a class absent from label and prediction: "skip" (left out of mIoU / mAcc) or "zero"
    # (counted as 0: HRNet-Semantic-Segmentation's lib/core/function.py testval)
    absent_classes: Literal["skip", "zero"] = "skip"

    @model_validator(mode="after")
    def _one_size_rule(self):
        if self.base_size is not None and self.image_size is not None:
            raise ValueError("give base_size (long side, aspect kept) or image_size "
                             "(exact size), not both")
        if self.image_resize == "loader" and self.image_size is None:
            raise ValueError("image_resize: loader resizes to image_size; give image_size")
        if (self.sliding_window is not None and self.sliding_window.style != "shift"
                and self.ensemble != "hrnet"):
            raise ValueError(f"sliding_window.style {self.sliding_window.style!r} is "
                             f"HRNet-Semantic-Segmentation's; it needs ensemble: hrnet")
        return self

    @field_validator("scales")
    @classmethod
    def _positive(cls, v):
        if not v or any(s <= 0 for s in v):
            raise ValueError(f"scales must be a non-empty list of positive numbers, got {list(v)}")
        return v


class SegmentationProtocol(Protocol):
    """Semantic segmentation: random scale / crop / flip, pixel cross-entropy (class
    weights, OHEM, auxiliary terms), single- or multi-scale evaluation, mIoU."""
    task: Literal["segmentation"]
    num_classes: int = Field(gt=0)
    crop_size: Optional[tuple[int, int]] = None        # training crop (H, W)
    base_size: Optional[int] = Field(None, gt=0)       # long side before random scaling
    ignore_label: int = 255
    data_dir: Optional[str] = None                     # folder under --data-root
    augmentation: SegAugmentation = Field(default_factory=SegAugmentation)
    loss: SegLoss = Field(default_factory=SegLoss)
    evaluation: SegEvaluation = Field(default_factory=SegEvaluation)

    @model_validator(mode="after")
    def _weights_per_class(self):
        w = self.loss.class_weights
        if isinstance(w, tuple) and len(w) != self.num_classes:
            raise ValueError(f"loss.class_weights has {len(w)} entries for {self.num_classes} classes")
        if self.trainable and self.crop_size is None:
            raise ValueError("a trainable segmentation protocol needs a crop_size")
        return self


def seg_protocol(protocol) -> SegmentationProtocol:
    """``protocol`` as a ``SegmentationProtocol`` (a mapping is validated once, by the schema)."""
    return as_protocol(protocol, SegmentationProtocol)
