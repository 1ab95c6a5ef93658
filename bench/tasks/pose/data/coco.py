"""COCO 2017 person keypoints, top-down, in the official HRNet data layout.

Serves the COCO val columns of HRNet (Sun et al., CVPR 2019) Tables 1 and 6, Lite-HRNet
(Yu et al., CVPR 2021) Tables 3, 6 and 7, and the COCO rows of GSTO, DPN and FlatteNet::

    <root>/annotations/person_keypoints_{train2017,val2017}.json
    <root>/images/{train2017,val2017}/000000xxxxxx.jpg
    <root>/person_detection_results/COCO_val2017_detections_AP_H_56_person.json

``to_coco_results`` turns predictions + meta into the dicts ``bench.evaluation``'s
``rescore_and_nms`` / ``coco_keypoint_ap`` take.

Design reasoning, readings and measurements: docs/design-notes.md, "Module notes",
bench/tasks/pose/data/coco.py.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .topdown import (
    TopDownDataset,
    collate_meta,
    dataset_kwargs_from_protocol,
    make_record,
    pose_protocol,
    resolve_dataset_root,
)
from ....data.common import require_path
from ....data.transforms import (  # noqa: F401  (COCO format facts are re-exported)
    COCO_KEYPOINT_NAMES, COCO_SKELETON, DETECTION_FILE,
    COCO_FLIP_PAIRS,
    COCO_JOINT_WEIGHTS,
    COCO_LOWER_BODY_IDS,
    COCO_UPPER_BODY_IDS,
    box_to_center_scale,
)

__all__ = ["COCO_KEYPOINT_NAMES", "COCO_SKELETON", "DETECTION_FILE", "COCODataset",
           "coco_ann_file", "load_coco_gt_records", "load_coco_detection_records",
           "to_coco_results"]

PADDING = 1.25


def _split_name(split: str) -> str:
    """'train' / 'val' -> 'train2017' / 'val2017'; full names pass through."""
    return {"train": "train2017", "val": "val2017", "valid": "val2017",
            "test": "test-dev2017"}.get(split, split)


def coco_ann_file(root, image_set: str) -> Path:
    """``<root>/annotations/person_keypoints_<image_set>.json`` (image_info_ for test)."""
    prefix = "image_info" if "test" in image_set else "person_keypoints"
    return Path(root) / "annotations" / f"{prefix}_{image_set}.json"


def _load_coco(ann_file: Path):
    import contextlib
    import io

    from pycocotools.coco import COCO
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(ann_file))


def _image_file(coco, image_dir: Path, image_id: int) -> str:
    # The reference builds '%012d.jpg' % id; the JSON's file_name says the same for
    # COCO 2017 and also works for other layouts (and for ids absent from the GT file).
    if image_id in coco.imgs and coco.imgs[image_id].get("file_name"):
        return str(image_dir / coco.imgs[image_id]["file_name"])
    return str(image_dir / f"{image_id:012d}.jpg")


#: ``box_filter``: which sanitised ground-truth boxes are kept (module docstring)
BOX_FILTERS = ("hrnet", "mmpose")


def load_coco_gt_records(coco, image_dir, aspect_ratio: float, num_joints: int = 17,
                         padding: float = PADDING, box_filter: str = "hrnet") -> list[dict]:
    """Ground-truth person records of every image, in ``getImgIds()`` order."""
    if box_filter not in BOX_FILTERS:
        raise ValueError(f"box_filter must be one of {BOX_FILTERS}, got {box_filter!r}")
    strict = box_filter == "mmpose"
    image_dir = Path(image_dir)
    records: list[dict] = []
    for image_id in coco.getImgIds():
        info = coco.loadImgs(image_id)[0]
        width, height = info["width"], info["height"]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id, iscrowd=False))
        for ann in anns:
            if ann.get("category_id", 1) != 1:
                continue
            x, y, w, h = ann["bbox"]
            x1, y1 = max(0.0, x), max(0.0, y)
            x2 = min(width - 1.0, x1 + max(0.0, w - 1.0))
            y2 = min(height - 1.0, y1 + max(0.0, h - 1.0))
            if not (ann.get("area", 0) > 0 and x2 >= x1 and y2 >= y1) or \
                    (strict and (x2 == x1 or y2 == y1)):
                continue
            kpts = np.asarray(ann.get("keypoints") or [0] * (3 * num_joints),
                              dtype=np.float64).reshape(-1, 3)
            if kpts.max() == 0 or ann.get("num_keypoints", 1) == 0:
                continue
            center, scale = box_to_center_scale(x1, y1, x2 - x1, y2 - y1, aspect_ratio,
                                                padding)
            records.append(make_record(
                _image_file(coco, image_dir, image_id), center, scale, kpts[:, :2],
                np.minimum(kpts[:, 2], 1.0), score=1.0, image_id=image_id,
                bbox_id=len(records), ann_id=int(ann["id"]), gt_area=float(ann["area"]),
                clean_bbox=(x1, y1, x2 - x1, y2 - y1)))
    return records


def jitter_box_centers(records: list[dict], prob: float, factor: float, seed: int = 0
                       ) -> list[dict]:
    """mmpose 0.x's training boxes (``TopDownCocoDataset._xywh2cs``): each record's centre
    moves, with probability ``prob``, by ``factor x (U(0, 1) - 0.5) x (w, h)`` of its
    cleaned box; drawn once (the same boxes every epoch), from ``seed``."""
    rng = np.random.default_rng([int(seed), 0x6A6974])
    out = []
    for record in records:
        if rng.random() < prob:
            _, _, w, h = record["clean_bbox"]
            shift = factor * (rng.random(2) - 0.5) * np.array([w, h])
            record = dict(record, center=(record["center"] + shift).astype(np.float32))
        out.append(record)
    return out


def load_coco_detection_records(detection_file, coco, image_dir, aspect_ratio: float,
                                num_joints: int = 17, score_threshold: float = 0.0,
                                padding: float = PADDING) -> list[dict]:
    """Records of the person detector's boxes, in the file's order."""
    detection_file = require_path(detection_file, "COCO person detection results")
    with open(detection_file) as f:
        dets = json.load(f)
    if not dets:
        raise ValueError(f"no detections in {detection_file}")
    image_dir = Path(image_dir)
    records: list[dict] = []
    for det in dets:
        if det.get("category_id", 1) != 1 or det["score"] < score_threshold:
            continue
        x, y, w, h = det["bbox"][:4]
        center, scale = box_to_center_scale(x, y, w, h, aspect_ratio, padding)
        records.append(make_record(
            _image_file(coco, image_dir, int(det["image_id"])), center, scale,
            np.zeros((num_joints, 2)), np.zeros(num_joints), score=float(det["score"]),
            image_id=int(det["image_id"]), bbox_id=len(records)))
    return records


class COCODataset(TopDownDataset):
    """COCO top-down keypoint dataset (17 joints).

    Args:
        root: the COCO folder (``annotations/``, ``images/``, ``person_detection_results/``).
        image_set: ``'train2017'`` / ``'val2017'`` (``'train'`` / ``'val'`` accepted).
        train: augment (and always use GT boxes, as the reference).
        use_gt_bbox: evaluate on GT boxes instead of ``detection_file``.
        detection_file: detector results JSON (default: the standard AP 56.4 file
            under ``root``); used when not ``train`` and not ``use_gt_bbox``.
        box_score_threshold: drop detections scoring below it (reference 0.0).
        use_joint_weights: HRNet's per-joint loss weights (off in all recipes here).
        box_center_jitter: ``(prob, factor)`` of ``jitter_box_centers`` for training
            (mmpose's recipes: ``(0.3, 0.4)``); None: HRNet's fixed centres.
        box_filter: ``'hrnet'`` or ``'mmpose'``, which ground-truth boxes are kept
            (module docstring).
        **kwargs: ``TopDownDataset`` arguments (sizes, sigma, augmentation, seed).
    """

    dataset_name = "coco"
    flip_pairs_default = COCO_FLIP_PAIRS
    upper_body_default = COCO_UPPER_BODY_IDS
    lower_body_default = COCO_LOWER_BODY_IDS
    num_joints_default = 17
    half_body_prob_default = 0.3

    def __init__(self, root, image_set: str = "val2017", train: bool = False,
                 use_gt_bbox: bool = True, detection_file=None,
                 box_score_threshold: float = 0.0, use_joint_weights: bool = False,
                 box_center_jitter: tuple[float, float] | None = None,
                 box_filter: str = "hrnet", **kwargs):
        self.root = Path(root)
        self.image_set = _split_name(image_set)
        self.ann_file = require_path(coco_ann_file(self.root, self.image_set),
                                     "COCO keypoint annotation file")
        self.image_dir = require_path(self.root / "images" / self.image_set,
                                      "COCO image folder")
        self.use_gt_bbox = bool(use_gt_bbox or train)
        self.box_score_threshold = float(box_score_threshold)
        self.detection_file = None if self.use_gt_bbox else Path(
            detection_file if detection_file is not None else self.root / DETECTION_FILE)
        self.coco = _load_coco(self.ann_file)
        if use_joint_weights:
            kwargs.setdefault("joint_weights", COCO_JOINT_WEIGHTS)
        # records need the aspect ratio, which the base class derives from input_size
        input_size = kwargs.get("input_size", (256, 192))
        aspect = float(input_size[1]) / float(input_size[0])
        if self.use_gt_bbox:
            records = load_coco_gt_records(self.coco, self.image_dir, aspect,
                                           box_filter=box_filter)
            if train and box_center_jitter is not None:
                records = jitter_box_centers(records, *box_center_jitter,
                                             seed=kwargs.get("seed", 0))
        else:
            records = load_coco_detection_records(self.detection_file, self.coco,
                                                  self.image_dir, aspect,
                                                  score_threshold=self.box_score_threshold)
        super().__init__(records, train=train, **kwargs)

    @classmethod
    def from_protocol(cls, protocol, data_root, split: str | None = None,
                      train: bool = False, **overrides) -> "COCODataset":
        """Dataset of a COCO protocol under ``data_root`` (which holds ``coco/``, or is
        the COCO folder itself). ``split`` defaults to the protocol's ``train_split`` /
        ``val_split``; evaluation uses the protocol's ``evaluation.boxes``
        (``detector`` or ``ground_truth``), ``detection_file`` (relative to
        ``data_root``) and ``box_score_threshold``. ``overrides`` win."""
        p = pose_protocol(protocol)
        split = split or ((p.train_split or "train2017") if train
                          else (p.val_split or "val2017"))
        root = resolve_dataset_root(data_root, p, "coco", "annotations")
        kw = dataset_kwargs_from_protocol(p, train)
        ev = p.evaluation
        kw.update(use_gt_bbox=ev.boxes != "detector", box_filter=p.box_filter,
                  box_score_threshold=ev.box_score_threshold)
        if ev.detection_file:
            rel = Path(ev.detection_file)
            # the file is named relative to data_root ('coco/person_detection_results/..')
            if rel.parts and rel.parts[0] == root.name and len(rel.parts) > 1:
                rel = Path(*rel.parts[1:])
            kw["detection_file"] = root / rel
        kw.update(overrides)
        return cls(root, _split_name(split), train=train, **kw)


def _meta_columns(meta) -> dict:
    """``meta`` as a dict of per-sample arrays: accepts the collated dict of a
    DataLoader (tensors or arrays, possibly a list of batches) or a list of meta dicts."""
    if isinstance(meta, Mapping):
        out = {}
        for k, v in meta.items():
            if hasattr(v, "detach"):
                v = v.detach().cpu().numpy()
            out[k] = v if isinstance(v, list) and v and isinstance(v[0], str) else np.asarray(v)
        return out
    metas = list(meta)
    if metas and isinstance(metas[0], Mapping) and "image_id" in metas[0] \
            and np.ndim(metas[0]["image_id"]) > 0:
        # a list of collated batches
        cols = [_meta_columns(m) for m in metas]
        return {k: (sum((c[k] for c in cols), []) if isinstance(cols[0][k], list)
                    else np.concatenate([c[k] for c in cols])) for k in cols[0]}
    return collate_meta(metas)


def to_coco_results(preds, meta, category_id: int = 1) -> list[dict]:
    """Predictions -> COCO keypoint result dicts, one per person box.

    ``preds``: (N, K, 3) keypoints in original-image pixels with a score column (the
    heatmap maxima), or (N, K, 2) (scores then 1). ``meta``: the samples' meta (a list of
    per-sample dicts, or the collated dict / list of collated batches from a DataLoader).

    Each dict has ``image_id``, ``category_id``, ``keypoints`` (flat 3K floats),
    ``score`` (the *box* score: 1 for GT boxes, the detector's otherwise), and
    ``center``/``scale``/``area``/``bbox_id`` for the reference post-processing:
    pass the list to ``bench.evaluation.rescore_and_nms`` (pose rescoring + OKS-NMS)
    before ``coco_keypoint_ap`` to evaluate as the papers did.
    """
    preds = np.asarray(preds.detach().cpu().numpy() if hasattr(preds, "detach") else preds,
                       dtype=np.float64)
    if preds.ndim != 3 or preds.shape[2] not in (2, 3):
        raise ValueError(f"preds must be N x K x 3 (x, y, score), got {preds.shape}")
    if preds.shape[2] == 2:
        preds = np.concatenate([preds, np.ones(preds.shape[:2] + (1,))], axis=2)
    m = _meta_columns(meta)
    n = preds.shape[0]
    if len(m["image_id"]) != n:
        raise ValueError(f"{n} predictions but meta describes {len(m['image_id'])} samples")
    out: list[dict[str, Any]] = []
    for i in range(n):
        center = np.asarray(m["center"][i], dtype=np.float64).reshape(2)
        scale = np.asarray(m["scale"][i], dtype=np.float64).reshape(2)
        out.append({
            "image_id": int(m["image_id"][i]),
            "category_id": int(category_id),
            "keypoints": [float(v) for v in preds[i].reshape(-1)],
            "score": float(m["score"][i]),
            "center": [float(v) for v in center],
            "scale": [float(v) for v in scale],
            "area": float(m["area"][i]) if "area" in m else float(np.prod(scale * 200.0)),
            "bbox_id": int(m["bbox_id"][i]) if "bbox_id" in m else i,
        })
    return out
