"""The detection protocol schema: CenterNet's ctdet recipe on PASCAL VOC (FlatteNet
Table X): augmentation, loss weights, and the test path's options."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from ...protocol import FrozenModel, Protocol, as_protocol


class DetAugmentation(FrozenModel):
    """CenterNet's training augmentation (its ctdet sampler); left out = off."""
    flip_prob: float = Field(0.0, ge=0, le=1)
    # CenterNet's random crop: crop size x one of lo, lo + 0.1, ... (below hi), centre
    # anywhere inside a 128-px border of the image
    scale_range: Optional[tuple[float, float]] = None
    # CenterNet's --not_rand_crop branch instead: centre shifted by N(0, shift) of the crop
    # and scale N(1, max(1 - lo, hi - 1)) clipped to the range
    shift: Optional[float] = Field(None, gt=0, lt=1)
    color_jitter: bool = False                         # brightness / contrast / saturation + PCA lighting


class DetLoss(FrozenModel):
    """CenterNet's loss: penalty-reduced focal loss on the centre heatmaps, L1 on box
    sizes and centre offsets at the object centres (weights 1 / 0.1 / 1)."""
    heatmap_weight: float = Field(1.0, ge=0)
    size_weight: float = Field(0.1, ge=0)
    offset_weight: float = Field(1.0, ge=0)


class DetEvaluation(FrozenModel):
    flip: bool = True                                   # average heatmaps and sizes with the mirror
    top_k: int = Field(100, gt=0)                       # boxes kept per image
    iou_threshold: float = Field(0.5, gt=0, lt=1)
    use_07_metric: bool = True                          # VOC07 11-point AP (else the area)
    batch_size: int = Field(8, gt=0)
    # CenterNet's test path and evaluation by default (tests/golden/
    # predictions_centernet_voc.json), the other behaviour as an option
    heatmap_activation: Literal["sigmoid", "clamped_sigmoid"] = "sigmoid"  # ctdet.py / the loss's
    top_k_selection: Literal["per_class", "global"] = "per_class"  # decode.py _topk / one top-k
    results_rounding: Literal["devkit_file", "none"] = "devkit_file"  # scores .3f, boxes .1f / none
    score_sort: Literal["quicksort", "stable"] = "quicksort"  # voc_eval's np.argsort / stable
    empty_classes: Literal["zero", "skip"] = "zero"     # no-GT class: AP 0 in the mean / left out


class DetectionProtocol(Protocol):
    """Object detection, CenterNet-style (FlatteNet Table X): centre heatmaps, sizes and
    offsets at ``output_stride``; PASCAL VOC sets as (year, image set) pairs."""
    task: Literal["detection"]
    num_classes: int = Field(gt=0)
    output_stride: int = Field(4, gt=0)
    train_sets: tuple[tuple[str, str], ...] = ()        # e.g. [[2007, trainval], [2012, trainval]]
    val_sets: tuple[tuple[str, str], ...] = ()          # e.g. [[2007, test]]
    max_objects: int = Field(50, gt=0)                  # target slots per image (CenterNet's pascal)
    keep_difficult: bool = True                         # train on difficult objects too
    data_dir: Optional[str] = None                      # folder under --data-root
    # CenterNet's behaviour by default (tests/golden/samples_centernet_voc.json), the
    # other as an option; see bench.tasks.detection.data.voc / bench.tasks.detection.codecs
    channel_order: Literal["bgr", "rgb"] = "bgr"        # bgr: OpenCV's, never converted
    box_convention: Literal["centernet", "zero_based"] = "centernet"  # [x0-1, y0-1, x1, y1] / all -1
    numerics: Literal["centernet", "exact"] = "centernet"   # official float32 rounding / closed form
    heatmap_radius: Literal["centernet", "exact"] = "centernet"  # gaussian_radius as coded / solved
    augmentation: DetAugmentation = Field(default_factory=DetAugmentation)
    loss: DetLoss = Field(default_factory=DetLoss)
    evaluation: DetEvaluation = Field(default_factory=DetEvaluation)


def det_protocol(protocol) -> DetectionProtocol:
    """``protocol`` as a ``DetectionProtocol`` (a mapping is validated once, by the schema)."""
    return as_protocol(protocol, DetectionProtocol)
