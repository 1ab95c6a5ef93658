"""Leeds Sports Pose (LSP) and LSP-extended, single person, top-down.

No paper table here is measured on LSP; LSP-extended (Johnson & Everingham, CVPR 2011)
is the one real dataset in ``../shared/data`` large enough for a short real-image
training run (scored with ``bench.evaluation.lsp_pck``, PCK@0.2). Layout::

    <root>/joints.mat
    <root>/images/im00001.jpg ...   (im%05d.jpg, 1-based; the original LSP uses im%04d)

``load_lsp_joints`` returns visibility for both ``joints.mat`` layouts (LSP-extended
14 x 3 x N, original LSP 3 x 14 x N); ``split_indices`` keeps the last 10 % of the
images as validation.

Design reasoning, readings and measurements: docs/design-notes.md, "Module notes",
bench/tasks/pose/data/lsp.py.
"""
from __future__ import annotations

import math
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
from ....data.transforms import LSP_FLIP_PAIRS, box_to_center_scale

__all__ = ["LSP_JOINT_NAMES", "LSP_UPPER_BODY_IDS", "LSP_LOWER_BODY_IDS", "VAL_FRACTION",
           "PADDING", "LSPDataset", "load_lsp_joints", "split_indices", "lsp_image_name",
           "load_lsp_records"]

LSP_JOINT_NAMES = ("r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "r_wrist",
                   "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist", "neck",
                   "head_top")
LSP_UPPER_BODY_IDS = (6, 7, 8, 9, 10, 11, 12, 13)
LSP_LOWER_BODY_IDS = (0, 1, 2, 3, 4, 5)
VAL_FRACTION = 0.1
PADDING = 1.5
SPLITS = ("train", "val", "all")


def split_indices(n: int, split: str, val_fraction: float = VAL_FRACTION) -> np.ndarray:
    """0-based image indices of ``split`` ('train', 'val' or 'all') for ``n`` images.

    Validation is the last ``ceil(n * val_fraction)`` images (at least 1 when n > 1),
    training the rest; the two are disjoint and cover 0..n-1. Deterministic: a
    function of ``n`` only (no random state).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    n = int(n)
    n_val = 0 if n <= 1 else min(n - 1, max(1, math.ceil(n * val_fraction)))
    if split == "all":
        return np.arange(n)
    if split == "val":
        return np.arange(n - n_val, n)
    return np.arange(n - n_val)


def lsp_image_name(index: int, extended: bool = True) -> str:
    """File name of 0-based image ``index``: im%05d.jpg in LSP-extended, im%04d.jpg in
    the original LSP."""
    return f"im{index + 1:05d}.jpg" if extended else f"im{index + 1:04d}.jpg"


def _read_joints(path):
    """joints.mat -> (N x 14 x 3 array, layout 'extended' | 'original')."""
    from scipy.io import loadmat
    path = require_path(path, "LSP joints.mat")
    mat = loadmat(str(path))
    if "joints" not in mat:
        names = sorted(k for k in mat if not k.startswith("__"))
        raise ValueError(f"{path}: no 'joints' variable (has {names})")
    j = np.asarray(mat["joints"], dtype=np.float64)
    if j.ndim == 2:           # a single image: MATLAB dropped the trailing axis
        j = j[..., None]
    if j.shape[:2] == (14, 3):
        return j.transpose(2, 0, 1), "extended"                # N x 14 x 3
    if j.shape[:2] == (3, 14):
        return j.transpose(2, 1, 0), "original"
    raise ValueError(f"{path}: joints has shape {j.shape}; expected 14x3xN "
                     "(LSP-extended) or 3x14xN (original LSP)")


def load_lsp_joints(path, flag: str = "auto"):
    """``joints.mat`` -> (joints (N, 14, 2) float64, visible (N, 14) float64 0/1).

    ``flag``: 'auto' (14x3xN: visibility, LSP-extended; 3x14xN: occlusion, original
    LSP), 'visible' or 'occluded' to force the meaning of the third row.
    """
    arr, layout = _read_joints(path)
    return arr[:, :, :2].copy(), _visibility(arr, layout, flag)


def _visibility(arr: np.ndarray, layout: str, flag: str) -> np.ndarray:
    default = "visible" if layout == "extended" else "occluded"
    meaning = default if flag == "auto" else flag
    if meaning not in ("visible", "occluded"):
        raise ValueError(f"flag must be 'auto', 'visible' or 'occluded', got {flag!r}")
    third = arr[:, :, 2] > 0
    return (third if meaning == "visible" else ~third).astype(np.float64)


def _person_box(joints: np.ndarray, visible: np.ndarray, width: int | None,
                height: int | None):
    """(x, y, w, h) around the visible joints (fallbacks in the module docstring)."""
    pts = joints[visible > 0]
    if len(pts) < 2 and width is not None:
        inside = (joints[:, 0] >= 0) & (joints[:, 1] >= 0) & \
                 (joints[:, 0] < width) & (joints[:, 1] < height)
        pts = joints[inside]
    if len(pts) < 2:
        if width is None:
            raise ValueError("fewer than 2 usable joints and no image size for a fallback box")
        return 0.0, 0.0, float(width - 1), float(height - 1)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    return float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])


def load_lsp_records(root, split: str = "train", aspect_ratio: float = 1.0,
                     padding: float = PADDING, val_fraction: float = VAL_FRACTION,
                     flag: str = "auto") -> list[dict]:
    """Person records of an LSP / LSP-extended folder for ``split``."""
    root = Path(root)
    arr, layout = _read_joints(root / "joints.mat")
    joints, visible = arr[:, :, :2], _visibility(arr, layout, flag)
    image_dir = require_path(root / "images", "LSP image folder")
    # name pattern: whichever of im00001.jpg / im0001.jpg exists, else the layout's
    extended = layout == "extended"
    if (image_dir / lsp_image_name(0, True)).exists():
        extended = True
    elif (image_dir / lsp_image_name(0, False)).exists():
        extended = False
    n = len(joints)
    records = []
    for i in split_indices(n, split, val_fraction):
        image_file = image_dir / lsp_image_name(int(i), extended)
        # image size only for the rare fallback boxes; joint boxes do not need it
        w = h = None
        if int((visible[i] > 0).sum()) < 2:
            import cv2
            im = cv2.imread(str(image_file))
            if im is not None:
                h, w = im.shape[:2]
        x, y, bw, bh = _person_box(joints[i], visible[i], w, h)
        center, scale = box_to_center_scale(x, y, bw, bh, aspect_ratio, padding)
        records.append(make_record(image_file, center, scale, joints[i], visible[i],
                                   score=1.0, image_id=int(i) + 1, bbox_id=len(records)))
    return records


class LSPDataset(TopDownDataset):
    """LSP / LSP-extended top-down dataset (14 joints, one person per image).

    Args:
        root: folder with ``joints.mat`` and ``images/``.
        split: 'train', 'val' or 'all' (see ``split_indices``).
        train: augment (half body off by default; LSP crops are already tight).
        padding: joint-box padding (1.5, see the module docstring).
        val_fraction: size of the validation block (0.1).
        flag: meaning of joints.mat's third row ('auto', 'visible', 'occluded').
        **kwargs: ``TopDownDataset`` arguments (default input 256x256, heatmap 64x64).
    """

    dataset_name = "lsp"
    flip_pairs_default = LSP_FLIP_PAIRS
    upper_body_default = LSP_UPPER_BODY_IDS
    lower_body_default = LSP_LOWER_BODY_IDS
    num_joints_default = 14
    half_body_prob_default = 0.0

    def __init__(self, root, split: str = "train", train: bool = False,
                 padding: float = PADDING, val_fraction: float = VAL_FRACTION,
                 flag: str = "auto", **kwargs):
        self.root = Path(root)
        self.split = {"valid": "val"}.get(split, split)
        require_path(self.root / "joints.mat", "LSP joints.mat")
        require_path(self.root / "images", "LSP image folder")
        kwargs.setdefault("input_size", (256, 256))
        kwargs.setdefault("heatmap_size", (64, 64))
        aspect = float(kwargs["input_size"][1]) / float(kwargs["input_size"][0])
        records = load_lsp_records(self.root, self.split, aspect, padding, val_fraction, flag)
        super().__init__(records, train=train, **kwargs)

    def ground_truth(self):
        """(joints (N, 14, 2), visible (N, 14)) of the records, for ``lsp_pck``."""
        return (np.stack([r["joints"] for r in self.records]).astype(np.float64),
                np.stack([r["visible"] for r in self.records]).astype(np.float64))

    @classmethod
    def from_protocol(cls, protocol, data_root, split: str | None = None,
                      train: bool = False, **overrides) -> "LSPDataset":
        """Dataset of an LSP protocol under ``data_root`` (which holds ``lspet/``, or is
        the LSP folder itself)."""
        p = pose_protocol(protocol)
        split = split or ((p.train_split or "train") if train else (p.val_split or "val"))
        root = resolve_dataset_root(data_root, p, "lspet", "joints.mat")
        kw = dataset_kwargs_from_protocol(p, train)
        kw.update(overrides)
        return cls(root, split, train=train, **kw)
