"""Test-time segmentation inference: whole-image or sliding-window prediction, horizontal
flip with left/right channel swaps, multi-scale averaging.

Serves the test-time protocols of the segmentation tables: HRNetV2's Cityscapes val
(single scale, whole 1024 x 2048 image) and its multi-scale + flip rows (Cityscapes test,
PASCAL-Context, LIP with the (14,15), (16,17), (18,19) arm/leg/shoe swaps), and the
Lite-HRNet / GSTO / FlatteNet segmentation tables that use the same protocols.

Ensembling choice (mmsegmentation's ``aug_test``): every view (scale x flip) gives logits,
resized bilinearly to the output size, turned into softmax probabilities, and the views'
probabilities are averaged; ``predict_probabilities`` returns that mean (a probability map), and
its argmax is what is evaluated. HRNet-Semantic-Segmentation instead averages the plain and
flipped *logits*, exponentiates them and sums over windows and scales
(``BaseDataset.inference`` / ``multi_scale_inference``); single-view argmaxes agree, the
multi-view ensembles can differ at near-ties. Sliding windows average logits over the
overlaps as both references do.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from .base import main_output


def _scaled_size(hw: Sequence[int], scale: float, base_size: Optional[int],
                 image_size: Optional[Sequence[int]] = None) -> tuple[int, int]:
    """HRNet's ``multi_scale_aug`` sizes: the long side ``base_size * scale`` (rounded) and the
    short side keeping the aspect ratio; without ``base_size``, both sides times ``scale``.
    ``image_size`` (H, W): every image resized to exactly that, times ``scale``, its aspect
    ratio not kept (HRNet-Semantic-Segmentation's LIP ``testval``: 473 x 473)."""
    if image_size is not None:
        return tuple(max(1, int(int(s) * scale + 0.5)) for s in image_size)
    h, w = int(hw[0]), int(hw[1])
    if base_size is None:
        return max(1, int(h * scale + 0.5)), max(1, int(w * scale + 0.5))
    long_side = int(base_size * scale + 0.5)
    if h > w:
        return long_side, max(1, int(w * long_side / h + 0.5))
    return max(1, int(h * long_side / w + 0.5)), long_side


def _resize_to_scale(image: torch.Tensor, scale: float, base_size: Optional[int] = None,
                     image_size: Optional[Sequence[int]] = None) -> torch.Tensor:
    size = _scaled_size(image.shape[-2:], scale, base_size, image_size)
    if size == tuple(image.shape[-2:]):
        return image
    # Images are resized as cv2.INTER_LINEAR does in both references: half-pixel centres.
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False)


def _resize(logits: torch.Tensor, size: Sequence[int], align_corners: bool) -> torch.Tensor:
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=align_corners)


def _forward(model, image: torch.Tensor, num_classes: int) -> torch.Tensor:
    logits = main_output(model(image))
    if logits.dim() != 4 or logits.shape[1] != num_classes:
        raise ValueError(f"the model's output {tuple(logits.shape)} is not "
                         f"B x {num_classes} x h x w")
    return logits.float()


def _slide(model, image: torch.Tensor, num_classes: int, crop_hw: Sequence[int],
           stride_hw: Sequence[int], align_corners: bool) -> torch.Tensor:
    """mmseg's ``slide_inference``: windows of ``crop_hw`` every ``stride_hw``, the last
    one aligned to the border, each window's logits resized to the crop and averaged over
    the windows covering a pixel. A side shorter than the crop is zero-padded (the
    normalised mean colour, as mmseg's data preprocessor pads) and cropped off again.
    Returns logits at the image's size."""
    (ch, cw), (sh, sw) = crop_hw, stride_hw
    h, w = image.shape[-2:]
    image = F.pad(image, (0, max(cw - w, 0), 0, max(ch - h, 0)))
    hp, wp = image.shape[-2:]
    rows = max(hp - ch + sh - 1, 0) // sh + 1
    cols = max(wp - cw + sw - 1, 0) // sw + 1
    acc = image.new_zeros((image.shape[0], num_classes, hp, wp), dtype=torch.float32)
    count = image.new_zeros((1, 1, hp, wp), dtype=torch.float32)
    for r in range(rows):
        for c in range(cols):
            y1, x1 = r * sh, c * sw
            y2, x2 = min(y1 + ch, hp), min(x1 + cw, wp)
            y1, x1 = max(y2 - ch, 0), max(x2 - cw, 0)
            window = _forward(model, image[:, :, y1:y2, x1:x2], num_classes)
            acc[:, :, y1:y2, x1:x2] += _resize(window, (y2 - y1, x2 - x1), align_corners)
            count[:, :, y1:y2, x1:x2] += 1
    return (acc / count)[:, :, :h, :w]


def _predict_view(model, image: torch.Tensor, num_classes: int, sliding_window,
                  align_corners: bool) -> torch.Tensor:
    """Logits of one (scaled, maybe flipped) image: sliding windows when it exceeds the
    crop in a dimension, else one forward at the model's output stride."""
    if sliding_window is not None:
        crop_hw, stride_hw = sliding_window
        if image.shape[-2] > crop_hw[0] or image.shape[-1] > crop_hw[1]:
            return _slide(model, image, num_classes, crop_hw, stride_hw, align_corners)
    return _forward(model, image, num_classes)


def _flip_back(logits: torch.Tensor, flip_pairs: Sequence[Sequence[int]] = ()) -> torch.Tensor:
    """Mirror the prediction of a mirrored image back and swap the left/right classes."""
    logits = logits.flip(-1)
    if not flip_pairs:
        return logits
    perm = list(range(logits.shape[1]))
    for a, b in flip_pairs:
        perm[a], perm[b] = b, a
    return logits[:, perm]


@torch.no_grad()
def predict_probabilities(model, image: torch.Tensor, num_classes: int,
                   scales: Sequence[float] = (1.0,), flip: bool = False,
                   flip_pairs: Sequence[Sequence[int]] = (), base_size: Optional[int] = None,
                   sliding_window=None, out_size: Optional[Sequence[int]] = None,
                   align_corners: bool = True,
                   image_size: Optional[Sequence[int]] = None) -> torch.Tensor:
    """Class probabilities (B x ``num_classes`` x out_h x out_w, float32), the softmax
    averaged over every scale and flip view (see the module docstring).

    ``image``: B x 3 x H x W, normalised. ``scales``: each resizes the image so that its
    long side is ``base_size * scale`` (HRNet's ``multi_scale_aug``) or, without
    ``base_size``, H x W times ``scale``; with ``image_size`` (H, W), that size times
    ``scale`` whatever the image's aspect ratio. ``sliding_window``: ``((crop_h, crop_w),
    (stride_h, stride_w))``, used when the scaled image exceeds the crop. ``flip``: also
    predict the mirrored image, mirrored back with ``flip_pairs`` channels swapped.
    ``out_size``: (h, w) of the output, default the image's. ``align_corners``: of the
    logit resizes (True for the HRNetV2 configs). The model's mode (eval) is the caller's.
    """
    if not len(scales):
        raise ValueError("scales is empty")
    out_size = tuple(image.shape[-2:]) if out_size is None else tuple(int(s) for s in out_size)
    total = None
    for scale in scales:
        scaled = _resize_to_scale(image, scale, base_size, image_size)
        views = [_predict_view(model, scaled, num_classes, sliding_window, align_corners)]
        if flip:
            mirrored = _predict_view(model, scaled.flip(-1), num_classes, sliding_window,
                                     align_corners)
            views.append(_flip_back(mirrored, flip_pairs))
        for logits in views:
            prob = F.softmax(_resize(logits, out_size, align_corners), dim=1)
            total = prob if total is None else total + prob
    return total / (len(scales) * (2 if flip else 1))


def predict_labels(model, image: torch.Tensor, num_classes: int,
                   scales: Sequence[float] = (1.0,), flip: bool = False,
                   flip_pairs: Sequence[Sequence[int]] = (), base_size: Optional[int] = None,
                   sliding_window=None, out_size: Optional[Sequence[int]] = None,
                   align_corners: bool = True,
                   image_size: Optional[Sequence[int]] = None) -> torch.Tensor:
    """B x out_h x out_w class indices (int64): the argmax of ``predict_probabilities``."""
    return predict_probabilities(model, image, num_classes, scales=scales, flip=flip,
                          flip_pairs=flip_pairs, base_size=base_size,
                          sliding_window=sliding_window, out_size=out_size,
                          align_corners=align_corners, image_size=image_size).argmax(dim=1)


__all__ = ["predict_probabilities", "predict_labels"]
