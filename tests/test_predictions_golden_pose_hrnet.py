"""HRBench's pose test-time prediction and its evaluation against HRNet's own
``validate()`` (issue 28).

``tests/golden/predictions_hrnet_pose.json`` was recorded outside the project by running
leoxiaobin/deep-high-resolution-net.pytorch's ``core.function.validate`` (flip test,
``flip_back``, SHIFT_HEATMAP, ``get_final_preds`` with POST_PROCESS) and its datasets'
``evaluate`` (COCO: rescoring, ``oks_nms``, COCOeval; MPII: PCKh against
``gt_valid.mat``) with the w32 configs, on synthetic data and with the table model of
``tests/golden_pose_model.py`` (the provenance block says what was patched). Here
HRBench's datasets, built from the HRNet protocols, feed the same model (checked: the
same heatmaps for the same crops) through ``PoseTask.predict`` and the task's evaluator
(``bench.training.evaluate``), and must give:

* the keypoints of every crop: within 1e-4 px (HRBench maps heatmap coordinates back
  with the closed-form inverse in float64, HRNet with ``cv2.getAffineTransform`` of three
  float32 points, then both store float32: the two differ in the last digits only);
* the heatmap maxima exactly;
* the poses kept after rescoring and OKS-NMS, their scores, and every COCO AP/AR and MPII
  PCKh number (to 1e-9; HRBench reports percent), MPII's ``Mean@0.1`` read at alpha 0.11
  as HRNet's ``evaluate`` reads it (``evaluation.pckh_low_alpha``).
"""
from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from bench.tasks.pose import synthetic
from bench.tasks.pose.data.coco import COCODataset
from bench.tasks.pose.data.mpii import MPIIDataset
from bench.suite import load_protocol
from bench.tasks import get_task
from bench.training.evaluate import evaluate
from conftest import GOLDEN
from golden_pose_model import dataset_table_model

#: official name -> HRBench's (COCO stats in HRBench are percent)
COCO_NAMES = {"AP": "AP", "Ap .5": "AP50", "AP .75": "AP75", "AP (M)": "APM",
              "AP (L)": "APL", "AR": "AR", "AR .5": "AR50", "AR .75": "AR75",
              "AR (M)": "ARM", "AR (L)": "ARL"}
MPII_NAMES = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean",
              "Mean@0.1")
DETECTIONS = "person_detection_results/COCO_val2017_detections_AP_H_56_person.json"


@lru_cache(maxsize=None)
def golden() -> dict:
    return json.loads((GOLDEN / "predictions_hrnet_pose.json").read_text())


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    out = {}
    for name, writer in golden()["writers"].items():
        root = tmp_path_factory.mktemp(f"pred_{name}")
        fn = getattr(synthetic, writer["function"].rsplit(".", 1)[1])
        fn(root, **{k: tuple(v) if isinstance(v, list) else v
                    for k, v in writer["kwargs"].items()})
        out[name] = root
    return out


def _setup(case: str, roots):
    """(protocol, dataset, model) of a golden case, the model checked against the
    recorded one."""
    g = golden()["cases"][case]
    if g["dataset"] == "coco":
        p = load_protocol("coco_256x192_hrnet").model_dump()
        p["evaluation"]["boxes"] = "ground_truth" if g["use_gt_bbox"] else "detector"
        p["evaluation"]["detection_file"] = DETECTIONS
        ds = COCODataset.from_protocol(p, roots["coco"], split=g["test_set"])
    else:
        p = load_protocol("mpii_256x256_hrnet").model_dump()
        ds = MPIIDataset.from_protocol(p, roots["mpii"], split=g["test_set"])
    assert (p["evaluation"]["flip_test"], p["evaluation"]["shift_heatmap"]) == \
        (g["config"]["FLIP_TEST"], g["config"]["SHIFT_HEATMAP"])
    if g["dataset"] == "coco":
        assert p["evaluation"]["oks_nms_threshold"] == g["config"]["OKS_THRE"]
        assert p["evaluation"]["keypoint_score_threshold"] == g["config"]["IN_VIS_THRE"]
    assert len(ds) == g["num_samples"]
    return p, ds, dataset_table_model(ds, g["use_gt_bbox"], g["model"])


CASES = ["coco_gt", "coco_det", "mpii_valid"]


@pytest.mark.parametrize("case", CASES)
def test_keypoints_equal_hrnet_validate(roots, case):
    g = golden()["cases"][case]
    p, ds, model = _setup(case, roots)
    task = get_task("pose")
    loader = DataLoader(ds, batch_size=4, shuffle=False, collate_fn=task.collate_fn(train=False))
    preds, maxvals = [], []
    for batch in loader:
        out = task.predict(model, batch, ds, p, torch.device("cpu"))
        preds.append(out["preds"])
        maxvals.append(out["maxvals"])
    preds, maxvals = np.concatenate(preds), np.concatenate(maxvals)
    assert preds.dtype == np.float32
    np.testing.assert_allclose(preds, np.asarray(g["preds_xy"]), rtol=0, atol=1e-4)
    np.testing.assert_array_equal(maxvals[..., 0].astype(np.float64), np.asarray(g["maxvals"]))


@pytest.mark.parametrize("case", CASES)
def test_metrics_equal_hrnet_evaluate(roots, case):
    g = golden()["cases"][case]
    p, ds, model = _setup(case, roots)
    task = get_task("pose")
    metrics = evaluate(task, model, ds, p, torch.device("cpu"), num_workers=0)
    if g["dataset"] == "coco":
        for official, ours in COCO_NAMES.items():
            assert metrics[ours] == pytest.approx(100.0 * g["metrics"][official], abs=1e-9), ours
        assert 0 < g["metrics"]["AP"] < 1 or case == "coco_det"   # not a trivial case
    else:
        for name in MPII_NAMES:
            assert metrics[name] == pytest.approx(g["metrics"][name], abs=1e-9), name
        assert 0 < g["metrics"]["Mean"] < 100


@pytest.mark.parametrize("case", ["coco_gt", "coco_det"])
def test_poses_kept_after_rescoring_and_oks_nms_equal_hrnet(roots, case):
    g = golden()["cases"][case]
    p, ds, model = _setup(case, roots)
    task = get_task("pose")
    evaluator = task.evaluator(ds, p)
    loader = DataLoader(ds, batch_size=4, shuffle=False, collate_fn=task.collate_fn(train=False))
    for batch in loader:
        evaluator.process(task.predict(model, batch, ds, p, torch.device("cpu")))
    ours = evaluator.coco_results()
    theirs = g["results_after_rescoring_and_oks_nms"]
    assert [r["image_id"] for r in ours] == [r["image_id"] for r in theirs]
    np.testing.assert_allclose([r["score"] for r in ours], [r["score"] for r in theirs],
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.array([r["keypoints"] for r in ours]),
                               np.array([r["keypoints"] for r in theirs]), rtol=0, atol=1e-4)


def test_pckh_at_alpha_0_1_is_an_option_and_differs(roots):
    """``pckh_low_alpha: 0.1`` reads Mean@0.1 at 0.1 (the other protocols); on the
    recorded MPII case that is not HRNet's number (it reads 0.11 under that name)."""
    g = golden()["cases"]["mpii_valid"]
    p, ds, model = _setup("mpii_valid", roots)
    assert p["evaluation"]["pckh_low_alpha"] == 0.11
    p["evaluation"]["pckh_low_alpha"] = 0.1
    metrics = evaluate(get_task("pose"), model, ds, p, torch.device("cpu"), num_workers=0)
    assert metrics["Mean"] == pytest.approx(g["metrics"]["Mean"], abs=1e-9)
    assert metrics["Mean@0.1"] < g["metrics"]["Mean@0.1"] - 0.1
