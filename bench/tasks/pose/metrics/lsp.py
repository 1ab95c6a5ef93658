"""LSP / LSP-extended PCK@0.2 normalised by torso size.

Used for the short real-image training runs on ``../shared/data/lspet`` (the one real
dataset here large enough to train on); the papers' own tables report COCO AP and MPII
PCKh, so this is a project metric, not a paper column.

Definition (Sapp & Taskar, CVPR 2013), following our reading of the LSP/MPII evaluation
toolkit of Pishchulin et al. used by DeepCut/DeeperCut (``eval_pck.m``/``getDistPCK.m``;
the MATLAB code is not run by a test): the reference distance is the torso diameter
``||left shoulder - right hip||``; in the 14-joint LSP order (0 r-ankle, 1 r-knee,
2 r-hip, 3 l-hip, 4 l-knee, 5 l-ankle, 6 r-wrist, 7 r-elbow, 8 r-shoulder, 9 l-shoulder,
10 l-elbow, 11 l-wrist, 12 neck, 13 head top) that is joints 9 and 2 (MATLAB
``gt(:,10) - gt(:,3)``). A joint is correct when error <= 0.2 x torso. Parts average
left and right, and ``Head`` averages neck and head top, as the toolkit's symmetric
table. ``Mean`` pools all counted joints.

Departure from the toolkit, needed for LSP-extended: its invisible joints are not
annotated (their coordinates are meaningless), so joints with an invisible GT are not
counted, and a person whose two torso joints are not both visible (or coincide) has no
normaliser and is left out entirely (``excluded`` in the result). All values in percent.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Mapping, Sequence

import numpy as np

from ....evaluation.base import KeypointsByIndex

LSP_JOINTS = ("rank", "rkne", "rhip", "lhip", "lkne", "lank", "rwri", "relb", "rsho",
              "lsho", "lelb", "lwri", "neck", "head")
#: (left shoulder, right hip): the toolkit's torso diameter.
TORSO_JOINTS = (9, 2)
PARTS = (("Head", ("head", "neck")), ("Shoulder", ("lsho", "rsho")),
         ("Elbow", ("lelb", "relb")), ("Wrist", ("lwri", "rwri")), ("Hip", ("lhip", "rhip")),
         ("Knee", ("lkne", "rkne")), ("Ankle", ("lank", "rank")))


def lsp_pck(preds, gts, visible=None, threshold: float = 0.2,
            torso_joints: tuple[int, int] = TORSO_JOINTS) -> "OrderedDict[str, float]":
    """PCK@``threshold`` (torso-normalised) of ``preds`` against ``gts``.

    ``preds``, ``gts``: N x 14 x 2 pixel positions (a third column is ignored for
    ``preds``; for ``gts`` it is the visibility flag when ``visible`` is None, as in
    LSP-extended's joints.mat). ``visible``: N x 14, nonzero = annotated and counted.

    Returns ``PCK@<threshold>`` (== ``Mean``), Head, Shoulder, Elbow, Wrist, Hip, Knee,
    Ankle, the 14 per-joint values under ``LSP_JOINTS`` names, ``AUC`` (area under the
    Mean curve for alpha in 0..threshold step 0.01, axis scaled to [0, 1]) and
    ``excluded`` (persons left out for lack of a torso; a count, not a percentage).
    """
    preds = np.asarray(preds, dtype=np.float64)
    gts = np.asarray(gts, dtype=np.float64)
    if preds.ndim != 3 or preds.shape[1] != 14 or gts.shape[:2] != preds.shape[:2]:
        raise ValueError(f"preds and gts must be N x 14 x 2 with the same N; got "
                         f"{preds.shape} and {gts.shape}")
    if visible is None:
        visible = gts[:, :, 2] if gts.shape[2] > 2 else np.ones(gts.shape[:2])
    vis = np.asarray(visible) > 0
    if vis.shape != preds.shape[:2]:
        raise ValueError(f"visible must be N x 14, got {vis.shape}")

    a, b = torso_joints
    torso = np.linalg.norm(gts[:, a, :2] - gts[:, b, :2], axis=1)
    has_torso = vis[:, a] & vis[:, b] & (torso > 0)
    counted = vis & has_torso[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.linalg.norm(preds[:, :, :2] - gts[:, :, :2], axis=2) / torso[:, None]

    steps = int(round(threshold * 100))
    alphas = np.arange(steps + 1) / 100.0 if abs(steps / 100.0 - threshold) < 1e-12 \
        else np.linspace(0.0, threshold, 21)
    alphas[-1] = threshold
    count = counted.sum(axis=0).astype(np.float64)
    correct = np.stack([((err <= t) & counted).sum(axis=0) for t in alphas]).astype(np.float64)
    if count.sum() == 0:
        raise ValueError("lsp_pck: no joint to evaluate (no person has a visible torso)")
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = 100.0 * correct[-1] / count
    mean_curve = 100.0 * correct.sum(axis=1) / count.sum()

    out: "OrderedDict[str, float]" = OrderedDict()
    out[f"PCK@{threshold:g}"] = float(mean_curve[-1])
    for part, joints in PARTS:
        out[part] = float(np.nanmean([per_joint[LSP_JOINTS.index(j)] for j in joints]))
    out["Mean"] = float(mean_curve[-1])
    x = alphas / alphas[-1]
    out["AUC"] = float(np.sum(np.diff(x) * (mean_curve[1:] + mean_curve[:-1]) / 2.0))
    for i, j in enumerate(LSP_JOINTS):
        out[j] = float(per_joint[i])
    out["excluded"] = float((~has_torso).sum())
    return out


class LspPCKEvaluator(KeypointsByIndex):
    """PCK of a whole split against its ground truth: ``process`` keeps each sample's
    keypoints by dataset ``index``, ``compute_metrics`` drops padded repeats, orders by
    index and returns ``lsp_pck``.

    ``gts`` (N, 14, 2 or 3) and ``visible`` (N, 14; None: ``gts``' third column) are the
    dataset's ground truth in index order (``LSPDataset.ground_truth()``); every index
    ``0 .. N - 1`` must be predicted.
    """

    def __init__(self, gts, visible=None, threshold: float = 0.2,
                 torso_joints: tuple[int, int] = TORSO_JOINTS):
        super().__init__()
        self.gts = np.asarray(gts, dtype=np.float64)
        if visible is None:
            visible = self.gts[:, :, 2] if self.gts.shape[2] > 2 else np.ones(self.gts.shape[:2])
        self.visible = np.asarray(visible)
        self.threshold = threshold
        self.torso_joints = torso_joints
        self.num_samples = len(self.gts)

    def compute_metrics(self, results: Sequence[Mapping[str, Any]]
                        ) -> "OrderedDict[str, float]":
        return lsp_pck(self.ordered(results), self.gts, self.visible,
                       self.threshold, self.torso_joints)


__all__ = ["LSP_JOINTS", "TORSO_JOINTS", "lsp_pck", "LspPCKEvaluator"]
