"""Semantic-segmentation accuracy: confusion matrix, mIoU / pixel accuracy / mean class
accuracy, and the accumulating evaluator.

Serves the segmentation columns (mIoU, %) of HRNet (Cityscapes val/test, PASCAL-Context,
LIP tables of the HRNetV2 paper), Lite-HRNet's Cityscapes/CamVid table, GSTO's
Cityscapes/ADE20K/PASCAL-Context tables and FlatteNet's segmentation tables.

Definitions as we read cityscapesScripts and mmsegmentation (no test runs either):
``IoU_c = TP/(TP+FP+FN)`` from a confusion matrix accumulated over the *whole* set (not
averaged per image); a class with no pixel in either label or prediction has an
undefined (NaN) IoU and is left out of mIoU; a class without label pixels has a NaN
accuracy and is left out of mAcc. All values in percent. numpy only, so reports and
tests stay light.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from ...evaluation.base import Evaluator


def _as_int_array(x: Any, what: str) -> np.ndarray:
    # Duck-typed tensor conversion (no torch import here): CPU or GPU tensors both work.
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
        raise ValueError(f"{what} must hold integer class indices, got dtype {a.dtype}")
    return a


def _bad_values(values: np.ndarray, limit: int = 5) -> str:
    bad = np.unique(values)
    shown = ", ".join(str(v) for v in bad[:limit])
    return shown + (f", ... ({len(bad)} distinct)" if len(bad) > limit else "")


def confusion_matrix(pred, label, num_classes: int, ignore_index: Optional[int] = 255
                     ) -> np.ndarray:
    """``num_classes`` x ``num_classes`` pixel counts (int64): rows are the label, columns
    the prediction. Pixels labelled ``ignore_index`` are dropped (None: ignore nothing).

    ``pred`` and ``label`` are integer arrays of one shape (any shape: one image or a
    batch). Raises ValueError on different shapes, on predictions outside
    ``0..num_classes-1`` at counted pixels, and on labels neither in that range nor
    ``ignore_index``.
    """
    pred = _as_int_array(pred, "pred")
    label = _as_int_array(label, "label")
    if pred.shape != label.shape:
        raise ValueError(f"pred and label shapes differ: pred {pred.shape}, label {label.shape}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    pred = pred.reshape(-1).astype(np.int64, copy=False)
    label = label.reshape(-1).astype(np.int64, copy=False)
    if ignore_index is not None:
        keep = label != ignore_index
        pred, label = pred[keep], label[keep]
    bad = (label < 0) | (label >= num_classes)
    if bad.any():
        raise ValueError(f"label values outside 0..{num_classes - 1} and not the ignore index "
                         f"{ignore_index}: {_bad_values(label[bad])}")
    # Predictions are checked on counted pixels only: a prediction made from the labels
    # themselves (the target oracle) carries the ignore value where the label does.
    bad = (pred < 0) | (pred >= num_classes)
    if bad.any():
        raise ValueError(f"prediction values outside 0..{num_classes - 1}: "
                         f"{_bad_values(pred[bad])}")
    counts = np.bincount(label * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64, copy=False)


def _percent_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(num.shape, np.nan)
    ok = den > 0
    out[ok] = 100.0 * num[ok] / den[ok]
    return out


def _nanmean(values: np.ndarray) -> float:
    # np.nanmean warns on an all-NaN input; an empty evaluation is simply NaN.
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


#: ``absent``: what a class with no pixel in label and prediction (IoU) or in the label
#: (accuracy) counts for: "skip" (NaN, left out of the means) or "zero" (0, in the means:
#: HRNet-Semantic-Segmentation's testval, tp / max(1, union), checked against it by
#: tests/test_predictions_golden_seg.py); the two agree when every class occurs
ABSENT_CLASSES = ("skip", "zero")


def segmentation_metrics(confusion, class_names: Optional[Sequence[str]] = None,
                         absent: str = "skip") -> "OrderedDict[str, float]":
    """mIoU, aAcc (pixel accuracy), mAcc (mean class accuracy), then ``IoU.<name>`` and
    ``Acc.<name>`` per class, all in percent, from a label x prediction confusion matrix.
    ``class_names`` default to "0".."C-1"; ``absent`` as ``ABSENT_CLASSES`` says."""
    if absent not in ABSENT_CLASSES:
        raise ValueError(f"absent must be one of {ABSENT_CLASSES}, got {absent!r}")
    conf = np.asarray(confusion, dtype=np.float64)
    if conf.ndim != 2 or conf.shape[0] != conf.shape[1]:
        raise ValueError(f"confusion must be a square matrix, got shape {conf.shape}")
    num_classes = conf.shape[0]
    names = [str(c) for c in range(num_classes)] if class_names is None else list(class_names)
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class names for {num_classes} classes")

    tp = np.diag(conf)
    label_area = conf.sum(axis=1)        # TP + FN
    pred_area = conf.sum(axis=0)         # TP + FP
    if absent == "zero":
        iou = 100.0 * tp / np.maximum(1.0, label_area + pred_area - tp)
        acc = 100.0 * tp / np.maximum(1.0, label_area)
    else:
        iou = _percent_ratio(tp, label_area + pred_area - tp)
        acc = _percent_ratio(tp, label_area)
    total = conf.sum()

    out: "OrderedDict[str, float]" = OrderedDict()
    out["mIoU"] = _nanmean(iou)
    out["aAcc"] = float(100.0 * tp.sum() / total) if total > 0 else float("nan")
    out["mAcc"] = _nanmean(acc)
    for name, v in zip(names, iou):
        out[f"IoU.{name}"] = float(v)
    for name, v in zip(names, acc):
        out[f"Acc.{name}"] = float(v)
    return out


class SegmentationEvaluator(Evaluator):
    """Keeps one confusion matrix per ``process`` call (C x C ints: cheap to gather across
    ranks) and sums them in ``compute_metrics``."""

    def __init__(self, num_classes: int, ignore_index: Optional[int] = 255,
                 class_names: Optional[Sequence[str]] = None, absent: str = "skip"):
        super().__init__()
        if absent not in ABSENT_CLASSES:
            raise ValueError(f"absent must be one of {ABSENT_CLASSES}, got {absent!r}")
        self.absent = absent
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.class_names = None if class_names is None else [str(n) for n in class_names]

    def process(self, predictions: Mapping[str, Any]) -> None:
        """``predictions["pred"]``, ``predictions["label"]``: B x H x W integer arrays, or
        lists of per-image H_i x W_i arrays (images of different sizes)."""
        pred, label = predictions["pred"], predictions["label"]
        if isinstance(pred, (list, tuple)) or isinstance(label, (list, tuple)):
            if not (isinstance(pred, (list, tuple)) and isinstance(label, (list, tuple))
                    and len(pred) == len(label)):
                raise ValueError("pred and label must both be lists of one length, got "
                                 f"{type(pred).__name__} and {type(label).__name__}")
            conf = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
            for p, t in zip(pred, label):
                conf += confusion_matrix(p, t, self.num_classes, self.ignore_index)
        else:
            conf = confusion_matrix(pred, label, self.num_classes, self.ignore_index)
        self.results.append(conf)

    def compute_metrics(self, results: Sequence[np.ndarray]) -> "OrderedDict[str, float]":
        if not len(results):
            raise ValueError("SegmentationEvaluator: no predictions processed")
        total = np.sum(np.stack([np.asarray(r, dtype=np.int64) for r in results]), axis=0)
        return segmentation_metrics(total, self.class_names, self.absent)


__all__ = ["ABSENT_CLASSES", "confusion_matrix", "segmentation_metrics", "SegmentationEvaluator"]
