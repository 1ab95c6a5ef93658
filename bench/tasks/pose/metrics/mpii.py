"""MPII single-person PCKh (PCKh@0.5, PCKh@0.1, AUC), as HRNet's lib/dataset/mpii.py
``evaluate`` (and mmpose 0.13's) score ``annot/gt_valid.mat``: HRNet Table 7,
Lite-HRNet Tables 5-7, DPN's and FlatteNet's MPII tables.
``tests/test_predictions_golden_pose_hrnet.py`` and ``..._mmpose.py`` check it against
both codes (to 1e-9). The protocol as we read it (coordinates, head-size normaliser,
means, alpha 0.11, AUC): docs/design-notes.md, "Module notes",
bench/tasks/pose/metrics/mpii.py. All numbers are percentages.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any, Mapping, Sequence

import numpy as np

from ....evaluation.base import KeypointsByIndex

SC_BIAS = 0.6
#: gt_valid.mat's joint order (``dataset_joints``), which HRNet's 16 outputs follow.
MPII_JOINTS = ("rank", "rkne", "rhip", "lhip", "lkne", "lank", "pelv", "thor",
               "neck", "head", "rwri", "relb", "rsho", "lsho", "lelb", "lwri")
#: Joints left out of ``Mean`` by the standard evaluation: pelvis and thorax.
EXCLUDED_FROM_MEAN = ("pelv", "thor")
#: The paper-table columns: (name, joints averaged), left/right averaged (as we read
#: HRNet's ``evaluate``).
PARTS = (("Head", ("head",)), ("Shoulder", ("lsho", "rsho")), ("Elbow", ("lelb", "relb")),
         ("Wrist", ("lwri", "rwri")), ("Hip", ("lhip", "rhip")), ("Knee", ("lkne", "rkne")),
         ("Ankle", ("lank", "rank")))
#: Threshold grid (0 .. 0.5 step 0.01, HRNet's as we read it), built from integers so that
#: 0.1 and 0.5 are the exact floats.
ALPHAS = np.arange(51) / 100.0


def _joint_names(raw) -> list[str]:
    # loadmat gives a 1 x 16 object array of 1-element string arrays.
    return [str(np.asarray(x).reshape(-1)[0]) for x in np.asarray(raw, dtype=object).reshape(-1)]


def load_gt_valid(path: str | os.PathLike) -> dict:
    """Read MPII ``gt_valid.mat``: dataset_joints (16 names), jnt_missing (16 x N uint8),
    pos_gt_src (16 x 2 x N, 1-based pixels), headboxes_src (2 x 2 x N: [[x1, y1], [x2, y2]])."""
    from scipy.io import loadmat
    m = loadmat(os.fspath(path))
    gt = {
        "dataset_joints": _joint_names(m["dataset_joints"]),
        "jnt_missing": np.asarray(m["jnt_missing"]),
        "pos_gt_src": np.asarray(m["pos_gt_src"], dtype=np.float64),
        "headboxes_src": np.asarray(m["headboxes_src"], dtype=np.float64),
    }
    _check_gt(gt)
    return gt


def _check_gt(gt: Mapping[str, Any]) -> int:
    n = gt["pos_gt_src"].shape[-1]
    if gt["pos_gt_src"].shape != (16, 2, n) or gt["jnt_missing"].shape != (16, n) \
            or gt["headboxes_src"].shape != (2, 2, n):
        raise ValueError("gt_valid: expected pos_gt_src 16x2xN, jnt_missing 16xN, "
                         f"headboxes_src 2x2xN; got {gt['pos_gt_src'].shape}, "
                         f"{gt['jnt_missing'].shape}, {gt['headboxes_src'].shape}")
    return n


def _as_gt(gt_mat) -> dict:
    if isinstance(gt_mat, (str, os.PathLike)):
        return load_gt_valid(gt_mat)
    gt = dict(gt_mat)
    if not isinstance(gt.get("dataset_joints", MPII_JOINTS), (list, tuple)):
        gt["dataset_joints"] = _joint_names(gt["dataset_joints"])
    gt.setdefault("dataset_joints", list(MPII_JOINTS))
    _check_gt(gt)
    return gt


#: whose arithmetic the PCKh follows (``evaluation.pckh_arithmetic``)
PCKH_STYLES = ("hrnet", "mmpose")


def _check_style(style: str) -> str:
    if style not in PCKH_STYLES:
        raise ValueError(f"style must be one of {PCKH_STYLES}, got {style!r}")
    return style


def pckh_curve(preds: np.ndarray, gt_mat, one_based: bool = False,
               alphas: np.ndarray = ALPHAS, style: str = "hrnet"
               ) -> tuple[np.ndarray, np.ndarray]:
    """Per-joint correct counts and counted joints: (len(alphas) x 16, 16).

    The building block of ``mpii_pckh``; see the module docstring for the conventions.
    """
    gt = _as_gt(gt_mat)
    n = _check_gt(gt)
    raw = preds
    preds = np.asarray(preds, dtype=np.float64)
    if preds.ndim != 3 or preds.shape[1] != 16 or preds.shape[2] < 2:
        raise ValueError(f"preds must be N x 16 x 2 (or x 3), got {preds.shape}")
    if preds.shape[0] != n:
        raise ValueError(f"preds has {preds.shape[0]} persons, gt_valid has {n} "
                         "(predictions must follow gt_valid.mat order)")
    if _check_style(style) == "mmpose":
        # mmpose 0.13's topdown_mpii_dataset.py evaluate adds the 1 to its float32 preds
        pred = (np.asarray(raw, np.float32)[:, :, :2]
                + np.float32(0.0 if one_based else 1.0)).astype(np.float64)
    else:
        pred = preds[:, :, :2] + (0.0 if one_based else 1.0)  # 0-based -> MATLAB 1-based
    pos_gt = np.transpose(gt["pos_gt_src"], (2, 0, 1))     # N x 16 x 2
    visible = (1 - np.asarray(gt["jnt_missing"]).T).astype(bool)  # N x 16
    hb = gt["headboxes_src"]
    headsize = np.linalg.norm(hb[1] - hb[0], axis=0) * SC_BIAS    # N
    err = np.linalg.norm(pred - pos_gt, axis=2) / headsize[:, None]
    # NaN predictions (or errors) compare False: counted as wrong, never as right.
    correct = np.stack([((err <= a) & visible).sum(axis=0) for a in alphas]).astype(np.float64)
    return correct, visible.sum(axis=0).astype(np.float64)


def _auc(curve: np.ndarray, alphas: np.ndarray) -> float:
    # Trapezoidal area with the threshold axis rescaled to [0, 1] (the toolkit's scale01).
    x = (alphas - alphas[0]) / (alphas[-1] - alphas[0])
    return float(np.sum((x[1:] - x[:-1]) * (curve[1:] + curve[:-1]) / 2.0))


def mpii_pckh(preds: np.ndarray, gt_mat, one_based: bool = False, low_alpha: float = 0.1,
              style: str = "hrnet") -> "OrderedDict[str, float]":
    """MPII PCKh of ``preds`` (N x 16 x 2, original-image pixels, gt_valid.mat order).

    ``gt_mat``: path to gt_valid.mat or the dict of ``load_gt_valid``. ``one_based``:
    False (default) for 0-based pixels as produced by the official pipelines (1 is added,
    as we read HRNet's ``evaluate``); True for predictions already in MATLAB 1-based
    pixels. ``low_alpha``: the alpha reported as ``Mean@0.1`` (0.1, or HRNet's 0.11).

    Returns, in percent: Head, Shoulder, Elbow, Wrist, Hip, Knee, Ankle (PCKh@0.5,
    left/right averaged), ``Mean`` (PCKh@0.5 over all joints but pelvis and thorax, also
    under ``PCKh@0.5``), ``Mean@0.1``, ``AUC`` (alpha in 0..0.5) and the 16 per-joint
    PCKh@0.5 under gt_valid's names (``rank``, ``rkne``, ...).
    """
    gt = _as_gt(gt_mat)
    correct, count = pckh_curve(preds, gt, one_based, style=style)
    names = list(gt["dataset_joints"])
    idx = {name: names.index(name) for name in MPII_JOINTS}
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = 100.0 * correct / count                       # alphas x 16
    used = np.ones(16, dtype=bool)
    used[[idx[j] for j in EXCLUDED_FROM_MEAN]] = False
    mean_curve = 100.0 * correct[:, used].sum(axis=1) / count[used].sum()
    low = np.flatnonzero(np.isclose(ALPHAS, low_alpha, rtol=0, atol=1e-9))
    if not low.size:
        raise ValueError(f"low_alpha must be on the threshold grid 0, 0.01, ..., 0.5, got "
                         f"{low_alpha}")
    i05, i01 = int(np.flatnonzero(ALPHAS == 0.5)[0]), int(low[0])

    out: "OrderedDict[str, float]" = OrderedDict()
    for part, joints in PARTS:
        out[part] = float(np.mean([per_joint[i05, idx[j]] for j in joints]))
    out["Mean"] = float(mean_curve[i05])
    out["Mean@0.1"] = float(mean_curve[i01])
    if style == "mmpose":
        # mmpose: its float32 PCK curve (pckAll) weighted by each joint's share of counts
        ratio = np.where(used, count, 0.0) / count[used].sum()
        out["Mean@0.1"] = float(np.sum(np.where(
            used, per_joint[i01].astype(np.float32).astype(np.float64) * ratio, 0.0)))
    out["AUC"] = _auc(mean_curve, ALPHAS)
    out["PCKh@0.5"] = out["Mean"]
    for j in MPII_JOINTS:
        out[j] = float(per_joint[i05, idx[j]])
    return out


class MpiiPCKhEvaluator(KeypointsByIndex):
    """MPII PCKh over a whole split: ``process`` keeps each sample's keypoints by its
    dataset ``index`` (the records follow gt_valid.mat's order), ``compute_metrics``
    drops padded repeats, puts them in index order and returns ``mpii_pckh`` plus
    ``PCKh@0.1`` (== ``Mean@0.1``, the measure name the suites use).

    ``gt_mat``: gt_valid.mat (path or ``load_gt_valid`` dict); ``num_samples``: the
    dataset's length (default: gt_valid's number of persons), every index of which must
    be predicted; ``one_based`` and ``low_alpha`` as ``mpii_pckh``.
    """

    def __init__(self, gt_mat, num_samples: int | None = None, one_based: bool = False,
                 low_alpha: float = 0.1, style: str = "hrnet"):
        super().__init__()
        self.style = _check_style(style)
        self.low_alpha = float(low_alpha)
        self.gt = _as_gt(gt_mat)
        self.num_samples = _check_gt(self.gt) if num_samples is None else int(num_samples)
        self.one_based = one_based

    def compute_metrics(self, results: Sequence[Mapping[str, Any]]
                        ) -> "OrderedDict[str, float]":
        out = mpii_pckh(self.ordered(results), self.gt, self.one_based, self.low_alpha,
                        self.style)
        out["PCKh@0.1"] = out["Mean@0.1"]
        return out


__all__ = ["SC_BIAS", "MPII_JOINTS", "ALPHAS", "PCKH_STYLES", "load_gt_valid", "pckh_curve",
           "mpii_pckh",
           "MpiiPCKhEvaluator"]
