"""MPII Human Pose, top-down, in the official HRNet data layout.

Serves the MPII columns: HRNet (Sun et al., CVPR 2019) Table 7 (PCKh@0.5 on MPII val),
Lite-HRNet (Yu et al., CVPR 2021) Tables 5-7, FlatteNet's MPII tables::

    <root>/annot/{train,valid}.json   (+ gt_valid.mat for the PCKh evaluation)
    <root>/images/<name>.jpg

Records are converted to 0-based pixels as HRNet's ``_get_db`` does; validation records
keep ``gt_valid.mat``'s order.

Design reasoning, readings and measurements: docs/design-notes.md, "Module notes",
bench/tasks/pose/data/mpii.py.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .topdown import (
    TopDownDataset,
    dataset_kwargs_from_protocol,
    make_record,
    pose_protocol,
    resolve_dataset_root,
)
from ....data.common import require_path
from ....data.transforms import MPII_FLIP_PAIRS, MPII_LOWER_BODY_IDS, MPII_UPPER_BODY_IDS

__all__ = ["MPII_JOINT_NAMES", "MPIIDataset", "load_mpii_records", "gt_order"]

MPII_JOINT_NAMES = ("r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis",
                    "thorax", "upper_neck", "head_top", "r_wrist", "r_elbow",
                    "r_shoulder", "l_shoulder", "l_elbow", "l_wrist")
CENTER_SHIFT = 15.0      # pixels per unit of scale, added to center y
PADDING = 1.25


def _split_name(split: str) -> str:
    """'val' -> 'valid' (the file name); other names pass through."""
    return {"val": "valid", "validation": "valid"}.get(split, split)


def load_mpii_records(ann_file, image_dir, num_joints: int = 16,
                      joints_dtype=np.float32) -> list[dict]:
    """Person records of an HRNet-style MPII JSON file, in file order: centre and scale
    in float64 (both official loaders), joints as ``joints_dtype`` (float64 in HRNet's
    loader, float32 in mmpose's)."""
    ann_file = require_path(ann_file, "MPII annotation file")
    with open(ann_file) as f:
        anns = json.load(f)
    image_dir = Path(image_dir)
    records = []
    for i, a in enumerate(anns):
        c = np.array(a["center"], dtype=np.float64)
        s = np.array([a["scale"], a["scale"]], dtype=np.float64)
        if c[0] != -1:
            c[1] = c[1] + CENTER_SHIFT * s[1]
            s = s * PADDING
        c = c - 1
        if "joints" in a:        # the test split has none
            joints = np.asarray(a["joints"], dtype=np.float64)[:, :2] - 1
            vis = np.asarray(a["joints_vis"], dtype=np.float64).reshape(-1)
        else:
            joints, vis = np.zeros((num_joints, 2)), np.zeros(num_joints)
        if joints.shape[0] != num_joints:
            raise ValueError(f"{ann_file}: entry {i} has {joints.shape[0]} joints, "
                             f"expected {num_joints}")
        records.append(make_record(image_dir / a["image"], c, s, joints, vis, score=1.0,
                                   image_id=i, bbox_id=i, image_name=a["image"],
                                   float_dtype=np.float64, joints_dtype=joints_dtype))
    return records


def gt_order(preds, indices, num: int | None = None) -> np.ndarray:
    """Put predictions made in any order back into file (= gt_valid.mat) order.

    ``preds``: (N, 16, D); ``indices``: each prediction's dataset index (``meta['index']``
    or ``meta['bbox_id']``). Returns (num, 16, D) with NaN where nothing was predicted
    (NaN counts as wrong in ``mpii_pckh``).
    """
    preds = np.asarray(preds, dtype=np.float64)
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    num = int(indices.max()) + 1 if num is None else int(num)
    out = np.full((num,) + preds.shape[1:], np.nan)
    out[indices] = preds
    return out


class MPIIDataset(TopDownDataset):
    """MPII top-down keypoint dataset (16 joints), GT person centres and scales.

    Args:
        root: the MPII folder (``annot/``, ``images/``).
        image_set: ``'train'`` / ``'valid'`` (``'val'`` accepted) / ``'test'``.
        train: augment. Half body is off by default (the HRNet and Lite-HRNet MPII
            recipes do not use it).
        **kwargs: ``TopDownDataset`` arguments.
    """

    dataset_name = "mpii"
    flip_pairs_default = MPII_FLIP_PAIRS
    upper_body_default = MPII_UPPER_BODY_IDS
    lower_body_default = MPII_LOWER_BODY_IDS
    num_joints_default = 16
    half_body_prob_default = 0.0

    def __init__(self, root, image_set: str = "valid", train: bool = False, **kwargs):
        self.root = Path(root)
        self.image_set = _split_name(image_set)
        self.ann_file = require_path(self.root / "annot" / f"{self.image_set}.json",
                                     "MPII annotation file")
        self.image_dir = require_path(self.root / "images", "MPII image folder")
        kwargs.setdefault("input_size", (256, 256))
        kwargs.setdefault("heatmap_size", (64, 64))
        # HRNet's loader keeps MPII's joints in float64 (np.float), mmpose's in float32
        dtype = np.float64 if kwargs.get("order") == "hrnet" else np.float32
        super().__init__(load_mpii_records(self.ann_file, self.image_dir,
                                           joints_dtype=dtype),
                         train=train, **kwargs)

    @property
    def gt_file(self) -> Path:
        """``annot/gt_<image_set>.mat``, the PCKh ground truth (exists for 'valid')."""
        return self.root / "annot" / f"gt_{self.image_set}.mat"

    @classmethod
    def from_protocol(cls, protocol, data_root, split: str | None = None,
                      train: bool = False, **overrides) -> "MPIIDataset":
        """Dataset of an MPII protocol under ``data_root`` (which holds ``mpii/``, or is
        the MPII folder itself); ``split`` defaults to the protocol's split names."""
        p = pose_protocol(protocol)
        split = split or ((p.train_split or "train") if train else (p.val_split or "valid"))
        root = resolve_dataset_root(data_root, p, "mpii", "annot")
        kw = dataset_kwargs_from_protocol(p, train)
        kw.update(overrides)
        return cls(root, split, train=train, **kw)
