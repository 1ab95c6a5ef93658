"""PASCAL VOC detection mAP@0.5 (the devkit's ``voc_eval.py``, the copy py-faster-rcnn
and CenterNet use; VOC07 11-point AP) and its evaluator, for FlatteNet Table X.
``tests/test_predictions_golden_det.py`` checks it against CenterNet's ``tools/reval.py``
(every class AP to 1e-9). The devkit's semantics as we read them, and where this code
departs from them without changing a number: docs/design-notes.md, "Module notes",
bench/tasks/detection/metrics.py. AP values are in percent; numpy only.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Hashable, Mapping, Optional, Sequence

import numpy as np

from .labels import VOC_CLASSES  # noqa: F401  (re-exported)
from ...evaluation.base import Evaluator


# The devkit's thresholds (as we read voc_eval.py) exactly as ``np.arange`` makes them:
# 3 x 0.1, 6 x 0.1 and 7 x 0.1 round above 0.3, 0.6 and 0.7, so a recall of exactly 3/10
# does not reach "0.3". Kept, so that AP values can agree with voc_eval.py's to the last
# digit.
_VOC07_RECALL_THRESHOLDS = np.arange(0.0, 1.1, 0.1)


def voc_iou(boxes: np.ndarray, gt_boxes: np.ndarray) -> np.ndarray:
    """IoU matrix (N x M) of ``boxes`` (N x 4) against ``gt_boxes`` (M x 4), each row
    ``[x1, y1, x2, y2]`` in inclusive pixel coordinates: a box spans ``x2 - x1 + 1``
    pixels (the VOC devkit's convention)."""
    a = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    iw = np.maximum(np.minimum(a[:, None, 2], b[None, :, 2])
                    - np.maximum(a[:, None, 0], b[None, :, 0]) + 1.0, 0.0)
    ih = np.maximum(np.minimum(a[:, None, 3], b[None, :, 3])
                    - np.maximum(a[:, None, 1], b[None, :, 1]) + 1.0, 0.0)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0] + 1.0) * (a[:, 3] - a[:, 1] + 1.0)
    area_b = (b[:, 2] - b[:, 0] + 1.0) * (b[:, 3] - b[:, 1] + 1.0)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def voc_ap(recall, precision, use_07_metric: bool = True) -> float:
    """AP (a fraction, not percent) of a precision/recall curve, points in detection
    order: VOC07 11-point, or the area under the monotone precision envelope. An empty
    curve (no detection) gives 0."""
    rec = np.asarray(recall, dtype=np.float64).reshape(-1)
    prec = np.asarray(precision, dtype=np.float64).reshape(-1)
    if rec.shape != prec.shape:
        raise ValueError(f"recall {rec.shape} and precision {prec.shape} differ in length")
    if use_07_metric:
        total = 0.0
        for t in _VOC07_RECALL_THRESHOLDS:
            reached = rec >= t
            total += float(prec[reached].max()) if reached.any() else 0.0
        return total / len(_VOC07_RECALL_THRESHOLDS)
    # sentinels: the curve starts at recall 0 and the envelope drops to 0 after the end
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    step = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[step + 1] - mrec[step]) * mpre[step + 1]))


def _as_box(value: Any, what: str) -> list[float]:
    if hasattr(value, "detach"):        # a tensor, without importing torch
        value = value.detach().cpu().numpy()
    box = np.asarray(value, dtype=np.float64).reshape(-1)
    if box.size != 4:
        raise ValueError(f"{what}: bbox must be [x1, y1, x2, y2], got {box.size} values")
    if not np.isfinite(box).all():
        raise ValueError(f"{what}: bbox {box.tolist()} is not finite")
    return box.tolist()


def _scalar(value: Any) -> Any:
    # numpy / torch scalars to python ones: picklable, hashable, and equal to the
    # annotation keys they name
    return value.item() if hasattr(value, "item") and getattr(value, "ndim", 0) == 0 else value


_DETECTION_FIELDS = "image_id, category, score, bbox"
_OBJECT_FIELDS = "category, bbox[, difficult]"


def _field(item: Mapping[str, Any], key: str, what: str, fields: str) -> Any:
    if not isinstance(item, Mapping) or key not in item:
        raise ValueError(f"{what} has no '{key}' (needs {fields})")
    return item[key]


def _check_detection(det: Mapping[str, Any], annotations: Mapping[Hashable, Any],
                     index: int) -> dict[str, Any]:
    """One detection as a plain dict, validated against the annotated images."""
    what = f"detection {index}"
    image_id = _scalar(_field(det, "image_id", what, _DETECTION_FIELDS))
    if image_id not in annotations:
        raise ValueError(f"{what}: image_id {image_id!r} is not in the annotations")
    score = float(_scalar(_field(det, "score", what, _DETECTION_FIELDS)))
    if not np.isfinite(score):
        raise ValueError(f"{what}: score {score} is not finite")
    category = _scalar(_field(det, "category", what, _DETECTION_FIELDS))
    box = _as_box(_field(det, "bbox", what, _DETECTION_FIELDS), what)
    return {"image_id": image_id, "category": category, "score": score, "bbox": box}


def _ordered_classes(categories: set) -> list:
    try:
        return sorted(categories)
    except TypeError:       # mixed kinds (ints and strings): some fixed order
        return sorted(categories, key=repr)


def _parse_annotations(annotations: Mapping[Hashable, Sequence[Mapping[str, Any]]],
                       class_names: Optional[Sequence[Hashable]]):
    """(classes, {class: {image_id: (boxes K x 4, difficult K)}})."""
    if not isinstance(annotations, Mapping):
        raise ValueError("annotations must map image_id to a list of objects, got "
                         f"{type(annotations).__name__}")
    per_class: dict[Any, dict[Any, tuple[list, list]]] = {}
    for image_id, objects in annotations.items():
        for k, obj in enumerate(objects):
            what = f"annotation {k} of image {image_id!r}"
            category = _scalar(_field(obj, "category", what, _OBJECT_FIELDS))
            box = _as_box(_field(obj, "bbox", what, _OBJECT_FIELDS), what)
            boxes, difficult = per_class.setdefault(category, {}).setdefault(image_id, ([], []))
            boxes.append(box)
            difficult.append(bool(_scalar(obj.get("difficult", False))))
    if class_names is None:
        classes = _ordered_classes(set(per_class))
    else:
        classes = [_scalar(c) for c in class_names]
        if len(set(classes)) != len(classes):
            raise ValueError(f"class_names has duplicates: {classes}")
        unknown = set(per_class) - set(classes)
        if unknown:
            raise ValueError(f"annotated categories not in class_names: "
                             f"{_ordered_classes(unknown)}")
    gts = {c: {img: (np.asarray(b, dtype=np.float64).reshape(-1, 4), np.asarray(d, dtype=bool))
               for img, (b, d) in per_class.get(c, {}).items()}
           for c in classes}
    return classes, gts


def _class_ap(dets: list[dict[str, Any]], gts: Mapping[Any, tuple[np.ndarray, np.ndarray]],
              iou_threshold: float, use_07_metric: bool) -> float:
    """AP (fraction) of one class; NaN without non-difficult ground truth."""
    npos = int(sum((~difficult).sum() for _, difficult in gts.values()))
    if npos == 0:
        return float("nan")
    if not dets:
        return 0.0
    scores = np.array([d["score"] for d in dets])
    order = np.argsort(-scores, kind="stable")
    dets = [dets[i] for i in order]

    # The devkit's best ground truth of a detection does not depend on what is already
    # matched, so the IoUs can be computed image by image, up front.
    best_iou = np.full(len(dets), -np.inf)
    best_gt = np.full(len(dets), -1, dtype=np.int64)     # index into the class's gts
    gt_difficult, offset, by_image = [], 0, {}
    for rank, det in enumerate(dets):
        by_image.setdefault(det["image_id"], []).append(rank)
    for image_id, ranks in by_image.items():
        if image_id not in gts:
            continue                                      # no object of the class: FP
        boxes, difficult = gts[image_id]
        iou = voc_iou(np.array([dets[r]["bbox"] for r in ranks]), boxes)
        best_iou[ranks] = iou.max(axis=1)
        best_gt[ranks] = offset + iou.argmax(axis=1)      # first of equal IoUs, as argmax
        gt_difficult.append(difficult)
        offset += len(difficult)
    gt_difficult = np.concatenate(gt_difficult) if gt_difficult else np.zeros(0, dtype=bool)

    hit = best_iou > iou_threshold
    ignored = np.zeros(len(dets), dtype=bool)
    ignored[hit] = gt_difficult[best_gt[hit]]
    candidate = np.flatnonzero(hit & ~ignored)
    # in score order, the first detection whose best object is a given one matches it;
    # the later ones are duplicates (FP)
    _, first = np.unique(best_gt[candidate], return_index=True)
    is_tp = np.zeros(len(dets))
    is_tp[candidate[first]] = 1.0
    is_tp = is_tp[~ignored]             # every detection left is a TP or an FP
    tp, fp = np.cumsum(is_tp), np.cumsum(1.0 - is_tp)
    return voc_ap(tp / npos, tp / (tp + fp), use_07_metric)


def voc_detection_map(detections: Sequence[Mapping[str, Any]],
                      annotations: Mapping[Hashable, Sequence[Mapping[str, Any]]],
                      iou_threshold: float = 0.5, use_07_metric: bool = True,
                      class_names: Optional[Sequence[Hashable]] = None
                      ) -> "OrderedDict[str, float]":
    """``mAP`` then ``AP.<class>`` per class, in percent (the module docstring gives the
    matching rules).

    ``detections``: dicts ``{image_id, category, score, bbox: [x1, y1, x2, y2]}``;
    ``annotations``: image_id -> list of ``{category, bbox, difficult}`` (``difficult``
    defaults to False), every evaluated image present, also those without objects, and
    boxes in the same inclusive pixel coordinates as the detections.

    Classes: ``class_names`` in that order (e.g. ``VOC_CLASSES``), else the categories of
    ``annotations``, sorted; detections of other categories then belong to no class and
    are dropped (they could only form classes without ground truth, whose AP is NaN). A
    class without a non-difficult object has AP NaN and is left out of ``mAP`` (NaN if
    every class is). A class with objects but no detection has AP 0.

    Raises ValueError on a bbox that is not 4 finite numbers, a non-finite score, a
    detection whose image_id is not in ``annotations``, a missing field, duplicate
    ``class_names``, or (with ``class_names``) a category outside them.
    """
    classes, gts = _parse_annotations(annotations, class_names)
    per_class: dict[Any, list] = {c: [] for c in classes}
    for i, det in enumerate(detections):
        det = _check_detection(det, annotations, i)
        if det["category"] in per_class:
            per_class[det["category"]].append(det)
        elif class_names is not None:
            raise ValueError(f"detection {i}: category {det['category']!r} is not in "
                             "class_names")
    aps = np.array([_class_ap(per_class[c], gts[c], iou_threshold, use_07_metric)
                    for c in classes], dtype=np.float64)
    out: "OrderedDict[str, float]" = OrderedDict()
    defined = aps[~np.isnan(aps)]
    out["mAP"] = float(100.0 * defined.mean()) if defined.size else float("nan")
    for c, ap in zip(classes, aps):
        out[f"AP.{c}"] = float(100.0 * ap)
    return out


class VOCDetectionEvaluator(Evaluator):
    """``process`` keeps each batch's detections (a list of plain dicts: python numbers
    and lists, cheap to pickle and gather across ranks); ``compute_metrics`` flattens the
    batches of every rank and returns ``voc_detection_map``. Evaluation shards are not
    padded, so no detection arrives twice.

    ``annotations`` (image_id -> objects, as ``voc_detection_map``) are checked here, so
    a malformed set fails before inference rather than after it.
    """

    def __init__(self, annotations: Mapping[Hashable, Sequence[Mapping[str, Any]]],
                 class_names: Optional[Sequence[Hashable]] = None,
                 iou_threshold: float = 0.5, use_07_metric: bool = True):
        super().__init__()
        _parse_annotations(annotations, class_names)
        self.annotations = annotations
        self.class_names = None if class_names is None else list(class_names)
        self.iou_threshold = iou_threshold
        self.use_07_metric = use_07_metric

    def process(self, predictions: Mapping[str, Any]) -> None:
        """``predictions["detections"]``: the batch's detection dicts (any number per
        image, none for an image without detections)."""
        offset = sum(len(batch) for batch in self.results)     # for error messages
        self.results.append([_check_detection(det, self.annotations, offset + i)
                             for i, det in enumerate(predictions["detections"])])

    def compute_metrics(self, results: Sequence[Sequence[Mapping[str, Any]]]
                        ) -> "OrderedDict[str, float]":
        return voc_detection_map([det for batch in results for det in batch],
                                 self.annotations, self.iou_threshold, self.use_07_metric,
                                 self.class_names)


__all__ = ["VOC_CLASSES", "voc_iou", "voc_ap", "voc_detection_map", "VOCDetectionEvaluator"]
