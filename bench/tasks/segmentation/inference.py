"""Test-time segmentation inference: whole-image or sliding-window prediction, horizontal
flip with left/right channel swaps, multi-scale ensembling.

Serves the test-time protocols of the segmentation tables: HRNetV2's Cityscapes val
(single scale, whole 1024 x 2048 image) and its multi-scale + flip rows (Cityscapes test,
PASCAL-Context, LIP with the (14,15), (16,17), (18,19) arm/leg/shoe swaps), and the
Lite-HRNet / GSTO / FlatteNet segmentation tables that use the same protocols.

Two ensembles (the protocol's ``evaluation.ensemble``), both through ``predict_scores``:

* ``"hrnet"``: HRNet-Semantic-Segmentation's test code (pytorch-v1.1 branch,
  lib/datasets/base_dataset.py ``inference`` / ``multi_scale_inference``, the Cityscapes
  override in lib/datasets/cityscapes.py, LIP's channel swap in lib/datasets/lip.py; checked
  against it in tests/test_samples_golden_seg_inference.py). Per window, the logits and the
  flipped-back logits of the mirrored window are resized to the window's input size,
  averaged and exponentiated; windows are averaged over their overlaps; each scale's scores
  are resized to the scale-1 size and summed over the scales; the sum is resized to the
  label at the end. Window placement: ``sliding_window.style`` (``window_boxes``).
* ``"softmax_mean"`` (``predict_probabilities``): every view (scale x flip) gives logits,
  resized bilinearly to the output size, turned into softmax probabilities, and the
  views' probabilities averaged. For one whole-image view without flip both give the
  same argmax; windows, flips and scales can change it at near-ties.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from ..base import main_output


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
    # bilinear with half-pixel centres: HRNet-Seg's cv2.resize(INTER_LINEAR) of the
    # normalised image gives the same values (the golden tests agree to 1e-15)
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
    # float64 models (the golden tests) keep their precision; anything else in float32
    return logits if logits.dtype == torch.float64 else logits.float()


def _slide(model, image: torch.Tensor, num_classes: int, crop_hw: Sequence[int],
           stride_hw: Sequence[int], align_corners: bool) -> torch.Tensor:
    """The ``"softmax_mean"`` ensemble's windows (style ``"shift"``): windows of ``crop_hw``
    every ``stride_hw``, the last one aligned to the border, each window's logits resized
    to the window and averaged over the windows covering a pixel. A side shorter than the
    crop is zero-padded (the normalised mean colour) and cropped off again. Returns logits
    at the image's size."""
    (ch, cw), (sh, sw) = crop_hw, stride_hw
    h, w = image.shape[-2:]
    image = F.pad(image, (0, max(cw - w, 0), 0, max(ch - h, 0)))
    hp, wp = image.shape[-2:]
    rows = max(hp - ch + sh - 1, 0) // sh + 1
    cols = max(wp - cw + sw - 1, 0) // sw + 1
    acc = count = None
    for r in range(rows):
        for c in range(cols):
            y1, x1 = r * sh, c * sw
            y2, x2 = min(y1 + ch, hp), min(x1 + cw, wp)
            y1, x1 = max(y2 - ch, 0), max(x2 - cw, 0)
            window = _forward(model, image[:, :, y1:y2, x1:x2], num_classes)
            if acc is None:
                acc = window.new_zeros((image.shape[0], num_classes, hp, wp))
                count = window.new_zeros((1, 1, hp, wp))
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
    logit resizes (the protocol's; HRNet-Semantic-Segmentation's pytorch-v1.1 branch and
    its released HRNetV2 configs resize with False, the HRNet-OCR config default is True).
    The model's mode (eval) is the caller's.
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


# --- HRNet-Semantic-Segmentation's ensemble ----------------------------------------------
WINDOW_STYLES = ("shift", "hrnet", "hrnet_cityscapes")


def window_boxes(h: int, w: int, crop_hw: Sequence[int], stride_hw: Sequence[int],
                 style: str = "shift") -> list[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) of every window over an h x w image, row by row.

    ``"shift"`` / ``"hrnet_cityscapes"``: ceil((h - crop) / stride) + 1 rows (at least 1),
    window r from r * stride, the last ones shifted back to end at the border (never
    before 0); a side shorter than the crop gives one window of that side's length.
    ``"hrnet"``: the same count, no shift: the windows that reach the border are shorter
    than the crop (the caller pads them); h and w are the size after padding the image to
    at least the crop."""
    if style not in WINDOW_STYLES:
        raise ValueError(f"unknown window style {style!r}; one of {WINDOW_STYLES}")
    (ch, cw), (sh, sw) = (int(v) for v in crop_hw), (int(v) for v in stride_hw)
    rows = -(-max(h - ch, 0) // sh) + 1
    cols = -(-max(w - cw, 0) // sw) + 1
    boxes = []
    for r in range(rows):
        for c in range(cols):
            y0, x0 = r * sh, c * sw
            y1, x1 = min(y0 + ch, h), min(x0 + cw, w)
            if style != "hrnet":
                y0, x0 = max(y1 - ch, 0), max(x1 - cw, 0)
            boxes.append((y0, y1, x0, x1))
    return boxes


def _pad_to(image: torch.Tensor, hw: Sequence[int], pad_value) -> torch.Tensor:
    """Pad at the bottom and right to at least ``hw`` with a per-channel constant."""
    h, w = image.shape[-2:]
    ph, pw = max(int(hw[0]) - h, 0), max(int(hw[1]) - w, 0)
    if not (ph or pw):
        return image
    out = F.pad(image, (0, pw, 0, ph))
    if pad_value is not None:
        value = torch.as_tensor(pad_value, dtype=image.dtype, device=image.device)
        out[..., h:, :] = value.view(1, -1, 1, 1)
        out[..., :h, w:] = value.view(1, -1, 1, 1)
    return out


def _hrnet_window_scores(model, x: torch.Tensor, num_classes: int, flip: bool,
                         flip_pairs, align_corners: bool) -> torch.Tensor:
    """One window: logits resized to the window's input size, averaged with the mirrored
    window's flipped-back (and channel-swapped) logits when ``flip``, exponentiated."""
    size = tuple(x.shape[-2:])
    pred = _resize(_forward(model, x, num_classes), size, align_corners)
    if flip:
        mirrored = _resize(_forward(model, x.flip(-1), num_classes), size, align_corners)
        pred = (pred + _flip_back(mirrored, flip_pairs)) * 0.5
    return pred.exp()


def _hrnet_scale_scores(model, scaled: torch.Tensor, scale: float, num_classes: int,
                        flip: bool, flip_pairs, sliding_window, align_corners: bool,
                        pad_value) -> torch.Tensor:
    """Scores of one scaled image at its own size."""
    h, w = scaled.shape[-2:]
    if sliding_window is None:
        return _hrnet_window_scores(model, scaled, num_classes, flip, flip_pairs, align_corners)
    crop_hw, stride_hw, style = sliding_window
    if style == "hrnet_cityscapes" and scale <= 1.0:
        # the whole image, unpadded, whatever its size against the crop
        return _hrnet_window_scores(model, scaled, num_classes, flip, flip_pairs, align_corners)
    if style == "hrnet":
        scaled = _pad_to(scaled, crop_hw, pad_value)
        if max(h, w) <= min(crop_hw):
            # one padded forward (HRNet's own branch for it; one window would be the same)
            return _hrnet_window_scores(model, scaled, num_classes, flip, flip_pairs,
                                        align_corners)[:, :, :h, :w]
    elif style == "shift":
        scaled = _pad_to(scaled, crop_hw, None)
    hp, wp = scaled.shape[-2:]
    acc = count = None
    for y0, y1, x0, x1 in window_boxes(hp, wp, crop_hw, stride_hw, style):
        window = scaled[:, :, y0:y1, x0:x1]
        if style == "hrnet":
            window = _pad_to(window, crop_hw, pad_value)
        pred = _hrnet_window_scores(model, window, num_classes, flip, flip_pairs,
                                    align_corners)[:, :, :y1 - y0, :x1 - x0]
        if acc is None:
            acc = pred.new_zeros((scaled.shape[0], num_classes, hp, wp))
            count = pred.new_zeros((1, 1, hp, wp))
        acc[:, :, y0:y1, x0:x1] += pred
        count[:, :, y0:y1, x0:x1] += 1
    return (acc / count)[:, :, :h, :w]


@torch.no_grad()
def predict_hrnet_scores(model, image: torch.Tensor, num_classes: int,
                         scales: Sequence[float] = (1.0,), flip: bool = False,
                         flip_pairs: Sequence[Sequence[int]] = (),
                         base_size: Optional[int] = None, sliding_window=None,
                         out_size: Optional[Sequence[int]] = None, align_corners: bool = False,
                         image_size: Optional[Sequence[int]] = None,
                         pad_value: Optional[Sequence[float]] = None) -> torch.Tensor:
    """HRNet-Semantic-Segmentation's test-time scores (module docstring, ``"hrnet"``):
    B x C x out_h x out_w, the sum over the scales of exp(mean of the plain and flipped
    logits), averaged over windows. Arguments as ``predict_probabilities``, and
    ``sliding_window``: ``((crop_h, crop_w), (stride_h, stride_w)[, style])`` with a style
    of ``window_boxes`` (default ``"shift"``); ``pad_value``: per-channel value of the
    padding of the ``"hrnet"`` style (HRNet pads with -mean / std, a black pixel;
    None: 0). The scale-1 size that each scale's scores are resized to is ``image_size``
    when given, else the image's."""
    if not len(scales):
        raise ValueError("scales is empty")
    if sliding_window is not None:
        sliding_window = (tuple(sliding_window[0]), tuple(sliding_window[1]),
                          sliding_window[2] if len(sliding_window) > 2 else "shift")
        if sliding_window[2] not in WINDOW_STYLES:
            raise ValueError(f"unknown window style {sliding_window[2]!r}; one of {WINDOW_STYLES}")
    base_hw = tuple(int(s) for s in image_size) if image_size is not None \
        else tuple(image.shape[-2:])
    total = None
    for scale in scales:
        scaled = _resize_to_scale(image, scale, base_size, image_size)
        scores = _hrnet_scale_scores(model, scaled, scale, num_classes, flip, flip_pairs,
                                     sliding_window, align_corners, pad_value)
        scores = _resize(scores, base_hw, align_corners)
        total = scores if total is None else total + scores
    out_size = tuple(image.shape[-2:]) if out_size is None else tuple(int(s) for s in out_size)
    return _resize(total, out_size, align_corners)


def predict_scores(model, image: torch.Tensor, num_classes: int, ensemble: str = "softmax_mean",
                   **kwargs) -> torch.Tensor:
    """Per-class scores whose argmax is the prediction: ``ensemble`` ``"softmax_mean"``
    (``predict_probabilities``) or ``"hrnet"`` (``predict_hrnet_scores``)."""
    if ensemble == "hrnet":
        return predict_hrnet_scores(model, image, num_classes, **kwargs)
    if ensemble != "softmax_mean":
        raise ValueError(f"unknown ensemble {ensemble!r}: softmax_mean or hrnet")
    kwargs.pop("pad_value", None)
    window = kwargs.get("sliding_window")
    if window is not None and len(window) > 2:
        if window[2] != "shift":
            raise ValueError(f"window style {window[2]!r} needs ensemble: hrnet")
        kwargs["sliding_window"] = tuple(window[:2])
    return predict_probabilities(model, image, num_classes, **kwargs)


def predict_labels(model, image: torch.Tensor, num_classes: int,
                   scales: Sequence[float] = (1.0,), flip: bool = False,
                   flip_pairs: Sequence[Sequence[int]] = (), base_size: Optional[int] = None,
                   sliding_window=None, out_size: Optional[Sequence[int]] = None,
                   align_corners: bool = True,
                   image_size: Optional[Sequence[int]] = None,
                   ensemble: str = "softmax_mean", pad_value=None) -> torch.Tensor:
    """B x out_h x out_w class indices (int64): the argmax of ``predict_scores``."""
    return predict_scores(model, image, num_classes, ensemble=ensemble, scales=scales,
                          flip=flip, flip_pairs=flip_pairs, base_size=base_size,
                          sliding_window=sliding_window, out_size=out_size,
                          align_corners=align_corners, image_size=image_size,
                          pad_value=pad_value).argmax(dim=1)


__all__ = ["predict_probabilities", "predict_hrnet_scores", "predict_scores",
           "predict_labels", "window_boxes"]
