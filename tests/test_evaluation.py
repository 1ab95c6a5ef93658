"""bench.evaluation: COCO OKS AP (+ rescoring / OKS-NMS), MPII PCKh, LSP PCK.

Every expected number below is derived by hand from the metric's definition, so the
tests pin the protocol (thresholds, normalisers, conventions), not just "it runs".
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.tasks.pose.metrics import (COCO_SIGMAS, CocoKeypointEvaluator, LspPCKEvaluator,
                              MpiiPCKhEvaluator, coco_keypoint_ap, load_gt_valid, lsp_pck,
                              mpii_pckh, oks_iou, oks_nms, rescore_and_nms)
from bench.tasks.pose.metrics.mpii import MPII_JOINTS

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
COCO_ANN = SHARED / "coco_sample" / "annotations" / "person_keypoints_val2017.json"
GT_VALID = SHARED / "mpii_sample" / "annot" / "gt_valid.mat"
LSPET = SHARED / "lspet" / "joints.mat"
needs_data = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is missing")

# pycocotools' recall grid and OKS thresholds (COCOeval Params for keypoints).
REC_THRS = np.linspace(0.0, 1.0, 101)
OKS_THRS = np.linspace(0.5, 0.95, 10)


def test_package_imports_without_torch_or_pycocotools():
    code = ("import sys, bench.evaluation; "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "assert 'pycocotools' not in sys.modules, 'pycocotools imported eagerly'")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


# ------------------------------------------------------------------------------ helpers
def hand_oks(gt_kpts, dt_kpts, area):
    """OKS from the COCO definition: mean over labelled keypoints of
    exp(-d^2 / (2 s^2 k^2)), s^2 = object area, k = 2 sigma."""
    g = np.asarray(gt_kpts, float).reshape(17, 3)
    d = np.asarray(dt_kpts, float).reshape(17, 3)
    labelled = g[:, 2] > 0
    d2 = ((g[:, :2] - d[:, :2]) ** 2).sum(axis=1)
    k = 2 * COCO_SIGMAS
    return float(np.mean(np.exp(-d2 / (2 * area * k ** 2))[labelled]))


def ap_with_one_last_miss(n_gt, oks):
    """AP (%) when n_gt - 1 detections are exact and the last-ranked one has OKS `oks`
    with its GT: at thresholds <= oks every GT is found (AP 1); above, the PR curve stops
    at recall (n-1)/n with precision 1, so only recall points <= (n-1)/n count."""
    partial = np.count_nonzero(REC_THRS <= (n_gt - 1) / n_gt) / len(REC_THRS)
    per_thr = [1.0 if oks >= t else partial for t in OKS_THRS]
    return 100.0 * float(np.mean(per_thr)), 100.0 * partial  # (AP, AP of a miss)


def gt_as_results(anns, score=1.0):
    return [{"image_id": a["image_id"], "category_id": 1, "keypoints": list(a["keypoints"]),
             "score": score} for a in anns]


# ------------------------------------------------------------------------------ OKS-NMS
def _pose(cx, cy, score, area=10000.0):
    rng = np.random.default_rng(0)
    xy = np.array([cx, cy]) + rng.uniform(-40, 40, size=(17, 2))
    return {"keypoints": np.c_[xy, np.ones(17)], "score": score, "area": area}


def test_oks_iou_matches_mean_area_formula():
    g, d = _pose(100, 100, 1.0), _pose(103, 96, 1.0)  # same layout, shifted by (3, -4)
    a_g, a_d = 8000.0, 12000.0
    got = oks_iou(g["keypoints"].ravel(), d["keypoints"].ravel()[None], a_g, np.array([a_d]))
    expected = np.mean(np.exp(-25.0 / (2 * (a_g + a_d) / 2 * (2 * COCO_SIGMAS) ** 2)))
    assert got.shape == (1,)
    assert got[0] == pytest.approx(expected, rel=1e-12)


def test_oks_nms_suppresses_near_duplicate_keeps_higher_score():
    low, high = _pose(100, 100, 0.6), _pose(100.5, 100, 0.8)
    assert oks_nms([low, high], 0.9) == [1]


def test_oks_nms_keeps_distant_poses_in_score_order():
    a, b = _pose(100, 100, 0.6), _pose(400, 300, 0.8)
    assert oks_nms([a, b], 0.9) == [1, 0]
    assert oks_nms([], 0.9) == []


# ------------------------------------------------------------------------------ COCO, synthetic
TEMPLATE = np.array([  # a 17-keypoint upright person in a unit box (x right, y down)
    [.50, .08], [.54, .06], [.46, .06], [.58, .08], [.42, .08], [.65, .22], [.35, .22],
    [.72, .38], [.28, .38], [.75, .52], [.25, .52], [.60, .55], [.40, .55], [.60, .75],
    [.40, .75], [.60, .95], [.40, .95]])


def _person(ann_id, x, y, w, h):
    kp = np.c_[TEMPLATE * [w, h] + [x, y], np.full(17, 2.0)]
    return {"id": ann_id, "image_id": 1, "category_id": 1, "iscrowd": 0, "num_keypoints": 17,
            "keypoints": [float(v) for v in kp.ravel()], "area": float(w * h * 0.6),
            "bbox": [x, y, w, h]}


@pytest.fixture
def tiny_coco(tmp_path):
    """One 640x480 image, two large persons (areas 17280 and 12000 px^2)."""
    data = {"images": [{"id": 1, "file_name": "a.jpg", "width": 640, "height": 480}],
            "annotations": [_person(1, 100, 100, 120, 240), _person(2, 400, 120, 100, 200)],
            "categories": [{"id": 1, "name": "person", "supercategory": "person",
                            "keypoints": [f"k{i}" for i in range(17)], "skeleton": []}]}
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(data))
    return path, data


def test_tiny_coco_gt_as_prediction_is_perfect(tiny_coco, tmp_path):
    path, data = tiny_coco
    stats = coco_keypoint_ap(gt_as_results(data["annotations"]), path)
    assert stats["AP"] == 100.0 and stats["AP50"] == 100.0 and stats["AR"] == 100.0
    assert np.isnan(stats["APM"])  # no medium person: pycocotools' -1 becomes NaN
    # The same results given as a JSON file path.
    res = tmp_path / "res.json"
    res.write_text(json.dumps(gt_as_results(data["annotations"])))
    assert coco_keypoint_ap(res, path)["AP"] == 100.0


def test_coco_rejects_empty_and_foreign_results(tiny_coco):
    path, data = tiny_coco
    with pytest.raises(ValueError, match="no results"):
        coco_keypoint_ap([], path)
    bad = gt_as_results(data["annotations"])
    bad[0]["image_id"] = 999
    with pytest.raises(ValueError, match="999"):
        coco_keypoint_ap(bad, path)


def test_evaluator_rescoring_and_nms(tiny_coco):
    path, data = tiny_coco
    a, b = (np.asarray(x["keypoints"]).reshape(17, 3) for x in data["annotations"])
    conf = np.full(17, 0.9)
    a_pose, b_pose = np.c_[a[:, :2], conf], np.c_[b[:, :2], conf]
    dup = a_pose + [1.0, 0.0, 0.0]                      # OKS with a_pose ~0.99 > 0.9
    # A confident box whose keypoints are all below in_vis_thr: rescored to 0.
    fp = np.c_[TEMPLATE * [80, 160] + [520, 300], np.full(17, 0.1)]

    def batch(poses, scores, index, **size):
        poses = np.stack(poses)
        return {"preds": poses[:, :, :2], "maxvals": poses[:, :, 2:], "score": scores,
                "image_id": [1] * len(poses), "index": index, **size}

    ev = CocoKeypointEvaluator(path, num_samples=4)
    ev.process(batch([a_pose, dup, fp], [0.6, 0.5, 0.9], [0, 2, 3],
                     area=[120 * 240.0, 120 * 240.0, 80 * 160.0]))
    ev.process(batch([b_pose], [0.6], [1], scale=[[0.5, 1.0]]))  # area prod(scale * 200)
    assert len(ev) == 4 and ev.results[-1]["area"] == 20000.0
    res = ev.coco_results()
    assert len(res) == 3                                 # the duplicate is suppressed
    scores = sorted(r["score"] for r in res)
    assert scores == pytest.approx([0.0, 0.6 * 0.9, 0.6 * 0.9])
    assert ev.compute()["AP"] == 100.0                   # the FP now ranks last
    with pytest.raises(ValueError, match="4 predictions .* for 5 samples"):
        CocoKeypointEvaluator(path, num_samples=5).compute_metrics(ev.results)
    with pytest.raises(KeyError, match="'index'"):
        ev.process({k: v for k, v in batch([a_pose], [1.0], [0], area=[1.0]).items()
                    if k != "index"})

    # Without rescoring, the FP (box score 0.9) ranks first: precision 2/3 at every recall.
    raw = [{"image_id": 1, "keypoints": p.ravel().tolist(), "score": s}
           for p, s in ((a_pose, 0.6), (b_pose, 0.6), (fp, 0.9))]
    assert coco_keypoint_ap(raw, path)["AP"] == pytest.approx(200.0 / 3.0)
    assert len(rescore_and_nms([dict(r, area=20000.0) for r in raw] +
                               [{"image_id": 1, "keypoints": dup, "score": 0.5,
                                 "area": 28800.0}], use_nms=False)) == 4


# ------------------------------------------------------------------------------ COCO, real sample
@pytest.fixture(scope="module")
def coco_sample():
    from bench.tasks.pose.metrics.coco import load_coco
    gt = load_coco(COCO_ANN)
    anns = [a for a in gt.loadAnns(gt.getAnnIds(iscrowd=False)) if a["num_keypoints"] > 0]
    return gt, anns


@needs_data
def test_coco_sample_gt_as_prediction_ap_100(coco_sample):
    gt, anns = coco_sample
    stats = coco_keypoint_ap(gt_as_results(anns), COCO_ANN)
    assert set(stats) >= {"AP", "AP50", "AP75", "APM", "APL", "AR", "AR50"}
    assert stats["AP"] == 100.0 and stats["AR"] == 100.0


def _perturbed(anns, ann_id, offset):
    res = gt_as_results(anns)
    i = next(k for k, a in enumerate(anns) if a["id"] == ann_id)
    kp = np.asarray(res[i]["keypoints"], dtype=float).reshape(17, 3)
    kp[:, :2] += offset
    res[i] = dict(res[i], keypoints=kp.ravel().tolist(), score=0.5)  # ranked last
    return res, res[i], anns[i]


def _pycocotools_oks(gt, results, ann, det):
    from pycocotools.cocoeval import COCOeval
    import contextlib, io
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes([dict(r) for r in results]), iouType="keypoints")
        ev.evaluate()
    key = (ann["image_id"], 1)
    dts = ev._dts[key]
    dts = [dts[i] for i in np.argsort([-d["score"] for d in dts], kind="mergesort")]
    row = next(i for i, d in enumerate(dts) if d["keypoints"] == det["keypoints"])
    col = next(j for j, g in enumerate(ev._gts[key]) if g["id"] == ann["id"])
    return float(ev.ious[key][row, col])


# Annotation 437295 sits in image 197388, which has no zero-keypoint (ignored) GT that a
# displaced detection could fall onto and be silently ignored.
@needs_data
@pytest.mark.parametrize("frac", [0.05, 0.2])
def test_coco_sample_perturbed_instance(coco_sample, frac):
    gt, anns = coco_sample
    ann = gt.loadAnns([437295])[0]
    shift = frac * np.sqrt(ann["area"])            # |offset| as a fraction of the scale s
    offset = shift * np.array([0.6, 0.8])
    res, det, ann = _perturbed(anns, 437295, offset)

    oks = hand_oks(ann["keypoints"], det["keypoints"], ann["area"])
    assert oks == pytest.approx(_pycocotools_oks(gt, res, ann, det), rel=1e-12)

    stats = coco_keypoint_ap(res, gt)
    expected_ap, partial = ap_with_one_last_miss(len(anns), oks)
    assert stats["AP"] == pytest.approx(expected_ap, abs=1e-9)
    if frac == 0.05:   # a mild shift: OKS ~0.8, still a hit at OKS 0.5 and 0.75
        assert 0.75 <= oks < 0.95
        assert stats["AP50"] == 100.0 and stats["AP75"] == 100.0
        assert partial < stats["AP"] < 100.0
    else:              # OKS < 0.5: a miss at every threshold
        assert oks < 0.5
        assert stats["AP"] == pytest.approx(100.0 * 92 / 101)  # 12 GT: recall <= 11/12
        assert stats["AP50"] == pytest.approx(100.0 * 92 / 101)


# ------------------------------------------------------------------------------ MPII
@pytest.fixture(scope="module")
def gt_valid():
    return load_gt_valid(GT_VALID)


def _shifted(gt, moves):
    """0-based predictions (the reference's frame: GT - 1) with joint j moved by
    +frac * headsize in x for each (joint name, frac) of `moves`."""
    preds = np.transpose(gt["pos_gt_src"], (2, 0, 1)) - 1.0
    hb = gt["headboxes_src"]
    headsize = 0.6 * np.linalg.norm(hb[1] - hb[0], axis=0)
    for name, frac in moves:
        preds[:, MPII_JOINTS.index(name), 0] += frac * headsize
    return preds


@needs_data
def test_gt_valid_loads(gt_valid):
    assert gt_valid["jnt_missing"].shape == (16, 2958)
    assert gt_valid["pos_gt_src"].shape == (16, 2, 2958)
    assert gt_valid["headboxes_src"].shape == (2, 2, 2958)
    assert tuple(gt_valid["dataset_joints"]) == MPII_JOINTS


@needs_data
def test_mpii_gt_as_prediction_is_perfect(gt_valid):
    res = mpii_pckh(_shifted(gt_valid, []), GT_VALID)            # path input works too
    for name in MPII_JOINTS + ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle"):
        assert res[name] == 100.0, name
    # Zero error passes even alpha = 0, so the curve is 100 everywhere: AUC exactly 100.
    assert res["Mean"] == res["Mean@0.1"] == res["AUC"] == 100.0
    # The same positions declared 1-based (MATLAB frame) need no shift.
    preds1 = np.transpose(gt_valid["pos_gt_src"], (2, 0, 1))
    assert mpii_pckh(preds1, gt_valid, one_based=True)["AUC"] == 100.0
    # ...whereas feeding 1-based positions as 0-based ones adds (1, 1) px of error.
    assert mpii_pckh(preds1, gt_valid)["AUC"] < 100.0


@needs_data
def test_mpii_threshold_is_half_headsize(gt_valid):
    res = mpii_pckh(_shifted(gt_valid, [("lwri", 0.4), ("rwri", 0.6)]), gt_valid)
    assert res["lwri"] == 100.0 and res["rwri"] == 0.0 and res["Wrist"] == 50.0
    visible = (1 - gt_valid["jnt_missing"]).sum(axis=1)
    in_mean = [i for i, j in enumerate(MPII_JOINTS) if j not in ("pelv", "thor")]
    expected = 100.0 * (visible[in_mean].sum() - visible[MPII_JOINTS.index("rwri")]) \
        / visible[in_mean].sum()
    assert res["Mean"] == pytest.approx(expected, rel=1e-12)


@needs_data
def test_mpii_mean_excludes_pelvis_and_thorax(gt_valid):
    res = mpii_pckh(_shifted(gt_valid, [("pelv", 10.0), ("thor", 10.0)]), gt_valid)
    assert res["pelv"] == 0.0 and res["thor"] == 0.0
    assert res["Mean"] == 100.0 and res["PCKh@0.5"] == 100.0


@needs_data
def test_mpii_mean_at_0_1_uses_alpha_0_1(gt_valid):
    everything = [(j, 0.3) for j in MPII_JOINTS]
    res = mpii_pckh(_shifted(gt_valid, everything), gt_valid)
    assert res["Mean"] == 100.0 and res["Mean@0.1"] == 0.0
    # 0.105 h: wrong at 0.1 (the default) though right at 0.11 (the HRNet code's row 11,
    # low_alpha=0.11, its protocols' pckh_low_alpha)
    shifted = _shifted(gt_valid, [(j, 0.105) for j in MPII_JOINTS])
    assert mpii_pckh(shifted, gt_valid)["Mean@0.1"] == 0.0
    assert mpii_pckh(shifted, gt_valid, low_alpha=0.11)["Mean@0.1"] == 100.0
    with pytest.raises(ValueError, match="low_alpha must be on the threshold grid"):
        mpii_pckh(shifted, gt_valid, low_alpha=0.105)


@needs_data
def test_mpii_auc_is_trapezoid_over_alpha_0_to_0_5(gt_valid):
    # Every joint off by 0.305 h: the Mean curve is 0 up to alpha 0.30 and 100 from 0.31.
    # Area with alpha scaled to [0, 1] (step 0.02): 0.02 * 100 / 2 + 19 * 0.02 * 100 = 39.
    res = mpii_pckh(_shifted(gt_valid, [(j, 0.305) for j in MPII_JOINTS]), gt_valid)
    assert res["AUC"] == pytest.approx(39.0, abs=1e-9)


@needs_data
def test_mpii_evaluator_accumulates_in_order(gt_valid):
    preds = _shifted(gt_valid, [("lank", 0.6)])
    ev = MpiiPCKhEvaluator(gt_valid)
    order = np.random.default_rng(0).permutation(len(preds))   # any order, by index
    for start in range(0, len(preds), 1000):
        idx = order[start:start + 1000]
        ev.process({"preds": preds[idx], "index": idx})
    assert len(ev) == 2958
    expected = mpii_pckh(preds, gt_valid)
    expected["PCKh@0.1"] = expected["Mean@0.1"]
    assert ev.compute() == expected
    ev.process({"preds": preds[:3] + 1000.0, "index": [0, 1, 2]})   # padded repeats
    assert ev.compute() == expected                                   # (the first kept)
    lost = MpiiPCKhEvaluator(gt_valid)
    lost.process({"preds": preds[:10], "index": np.arange(10)})
    with pytest.raises(ValueError, match="10 predictions .* for 2958 samples"):
        lost.compute()
    with pytest.raises(ValueError, match="2958"):
        mpii_pckh(preds[:10], gt_valid)


def test_mpii_synthetic_gt_without_shared_data():
    # Two persons, head boxes 50x0 and 0x100 -> head sizes 30 and 60 px.
    pos = np.zeros((16, 2, 2))
    pos[:, 0, :] = np.arange(16)[:, None] * 10.0 + 1.0
    missing = np.zeros((16, 2), dtype=np.uint8)
    missing[MPII_JOINTS.index("head"), 1] = 1      # person 2's head is not annotated
    gt = {"dataset_joints": list(MPII_JOINTS), "jnt_missing": missing, "pos_gt_src": pos,
          "headboxes_src": np.array([[[0, 0], [0, 0]], [[50, 0], [0, 100]]], dtype=float)}
    preds = np.transpose(pos, (2, 0, 1)) - 1.0
    preds[:, MPII_JOINTS.index("head"), 1] += [14.0, 1000.0]  # 14 <= 0.5 * 30
    preds[:, MPII_JOINTS.index("lsho"), 1] += [16.0, 29.0]    # 16 > 15; 29 <= 30
    res = mpii_pckh(preds, gt)
    assert res["Head"] == 100.0                   # the unannotated head is not counted
    assert res["lsho"] == 50.0 and res["Shoulder"] == 75.0
    assert res["Mean"] == pytest.approx(100.0 * (27 - 1) / 27)  # 14 + 13 counted joints


# ------------------------------------------------------------------------------ LSP
def test_lsp_pck_uses_left_shoulder_right_hip_torso():
    gts = np.zeros((3, 14, 2))
    gts[:] = np.arange(14)[None, :, None] * [7.0, 3.0]      # arbitrary distinct joints
    # Person 1: lsho (9) - rhip (2) = 50 px -> 10 px radius; rsho - lhip = 100 px.
    gts[0, 9], gts[0, 2], gts[0, 8], gts[0, 3] = (0, 0), (30, 40), (200, 0), (200, 100)
    # Person 2: lsho - rhip = 100 px -> 20 px radius.
    gts[1, 9], gts[1, 2] = (100, 0), (100, 100)
    vis = np.ones((3, 14))
    vis[1, 13] = 0                                           # head top not annotated
    vis[2, [8, 9]] = 0                                       # person 3: no torso
    preds = gts.copy()
    preds[0, 6] += (9, 0); preds[0, 11] += (0, 11)           # rwri right, lwri wrong
    preds[1, 6] += (0, 19); preds[1, 11] += (21, 0)          # rwri right, lwri wrong
    preds[1, 13] += (500, 0)                                 # invisible: ignored
    preds[2] += 1000.0                                       # excluded person: ignored

    res = lsp_pck(preds, gts, vis)
    assert res["rwri"] == 100.0 and res["lwri"] == 0.0 and res["Wrist"] == 50.0
    assert res["head"] == 100.0 and res["excluded"] == 1.0
    assert res["Mean"] == res["PCK@0.2"] == pytest.approx(100.0 * 25 / 27)
    # The other diagonal (right shoulder - left hip) would accept person 1's left wrist.
    assert lsp_pck(preds, gts, vis, torso_joints=(8, 3))["lwri"] == 50.0

    ev = LspPCKEvaluator(np.concatenate([gts, vis[:, :, None]], axis=2))  # flags as 3rd column
    ev.process({"preds": preds[2:], "index": [2]})
    ev.process({"preds": preds[:2], "index": [0, 1]})
    ev.process({"preds": preds[:1] + 50.0, "index": [0]})      # a padded repeat: dropped
    assert ev.compute() == res
    assert LspPCKEvaluator(gts, vis, torso_joints=(8, 3)).compute_metrics(ev.results)["lwri"] == 50.0


@needs_data
def test_lspet_gt_as_prediction_is_perfect():
    from scipy.io import loadmat
    joints = np.transpose(loadmat(LSPET)["joints"], (2, 0, 1))   # N x 14 x 3
    res = lsp_pck(joints[:, :, :2], joints)
    assert res["Mean"] == 100.0 and res["AUC"] == 100.0
    torso = np.linalg.norm(joints[:, 9, :2] - joints[:, 2, :2], axis=1)
    no_torso = ~((joints[:, 9, 2] > 0) & (joints[:, 2, 2] > 0) & (torso > 0))
    assert res["excluded"] == no_torso.sum() > 0  # LSPET does have such persons
