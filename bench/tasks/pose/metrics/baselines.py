"""Reference points a trained pose model must beat: the *mean pose*.

The mean pose predicts, for every test person, the training set's average joint
positions inside the person box: each training person's joints are mapped into the
normalised crop (the same box-to-crop transform the network sees, no augmentation),
averaged per joint over the persons where the joint is annotated, and mapped back
through each test box. It uses the ground-truth box and nothing of the image, so a
model that does not beat it has learnt nothing from pixels. Used for the LSP-extended
sanity run (``suites/lsp_sanity.yaml``) and usable with any person records
(``bench.tasks.pose.data.topdown.make_record``). numpy only.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ....data.transforms import affine_transform, get_affine_transform, transform_preds

#: crop size used for the normalised coordinates; any size gives the same result
_UNIT = (192.0, 256.0)


def mean_pose(records: Sequence[Mapping]) -> np.ndarray:
    """(K, 2) mean joint positions in [0, 1] crop coordinates (x / W, y / H)."""
    if not records:
        raise ValueError("mean_pose: no training records")
    total, count = None, None
    for r in records:
        M = get_affine_transform(r["center"], r["scale"], 0.0, _UNIT)
        xy = affine_transform(np.asarray(r["joints"], dtype=np.float64), M) / np.asarray(_UNIT)
        vis = np.asarray(r["visible"]) > 0
        if total is None:
            total, count = np.zeros_like(xy), np.zeros(len(xy))
        total[vis] += xy[vis]
        count += vis
    if (count == 0).any():
        raise ValueError(f"mean_pose: joints {np.flatnonzero(count == 0).tolist()} are never "
                         "annotated in the training records")
    return total / count[:, None]


def mean_pose_predictions(train_records: Sequence[Mapping], test_records: Sequence[Mapping]
                          ) -> np.ndarray:
    """(N, K, 2) image-pixel predictions of the mean pose for ``test_records``."""
    unit = mean_pose(train_records) * np.asarray(_UNIT)
    return np.stack([transform_preds(unit, r["center"], r["scale"], _UNIT)
                     for r in test_records])
