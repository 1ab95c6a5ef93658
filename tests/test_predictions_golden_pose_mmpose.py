"""HRBench's pose test-time prediction and its evaluation against mmpose 0.13's own
top-down test path, which Lite-HRNet runs (issue 28).

``tests/golden/predictions_mmpose_pose.json`` was recorded outside the project by running
mmpose 0.13.0's ``TopDown.forward_test`` (flip test, ``flip_back``, ``shift_heatmap``,
``keypoints_from_heatmaps`` with the config's ``post_process=True``) through
``single_gpu_test`` and the datasets' ``evaluate`` (``TopDownCocoDataset``: rescoring,
``oks_nms``, COCOeval; ``TopDownMpiiDataset``: PCKh), built from HRNet/Lite-HRNet@7b9049d's
``litehrnet_18_{coco_256x192,mpii_256x256}`` configs (val config: GT boxes, test config:
detector boxes), on the synthetic data of ``tests/golden/samples_mmpose_*.json`` and with
the table model of ``tests/golden_pose_model.py`` as backbone + head (the provenance
block says what was patched). Cases without ``_full`` use the samples goldens' small
crops, ``_full`` ones the configs' own sizes (where the model's AP is well above 0).

Here HRBench's datasets, built from the Lite-HRNet protocols, feed the same model
(checked: the same heatmaps for the same crops) through ``PoseTask.predict`` and the
task's evaluator (``bench.training.evaluate``), and must give:

* the keypoints of every crop: exactly, with the protocols' ``evaluation.decode: mmpose``
  (the per-axis float32 formula of mmpose's ``transform_preds``; joints whose maximum is
  <= 0 at heatmap coordinate -1 as its ``_get_max_preds``, ``edge_decode``); HRNet's
  inverse affine (``decode: hrnet``) is within 1e-4 px;
* the heatmap maxima exactly;
* the poses kept after rescoring and OKS-NMS, their scores, and every COCO AP/AR and MPII
  PCKh number (to 1e-9; HRBench reports percent), with ``coco_postprocess: mmpose``
  (float32 pose scores and OKS, ``argsort()[::-1]`` ties) and ``pckh_arithmetic: mmpose``
  (float32 predictions + 1, float32 PCK curve); PCKh@0.1 read at alpha 0.11
  (``pckh_rows``: mmpose's evaluate gives 100 where alpha 0.1 would give about 50).
"""
from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from bench.tasks.pose import synthetic
from bench.tasks.pose.codecs import decode_heatmaps
from bench.tasks.pose.metrics.coco import CocoKeypointEvaluator, rescore_and_nms
from bench.tasks.pose.metrics.mpii import MpiiPCKhEvaluator, mpii_pckh
from bench.tasks.pose.data.coco import COCODataset
from bench.tasks.pose.data.mpii import MPIIDataset
from bench.suite import load_protocol
from bench.tasks import get_task
from bench.training.evaluate import evaluate
from conftest import GOLDEN
from golden_pose_model import dataset_table_model
from test_samples_golden_pose_mmpose import _edit_coco, _edit_mpii

PROTOCOLS = {"coco": "coco_256x192_lite_hrnet", "mpii": "mpii_256x256_lite_hrnet"}
#: mmpose's name -> HRBench's (COCO stats in HRBench are percent)
COCO_NAMES = {"AP": "AP", "AP .5": "AP50", "AP .75": "AP75", "AP (M)": "APM",
              "AP (L)": "APL", "AR": "AR", "AR .5": "AR50", "AR .75": "AR75",
              "AR (M)": "ARM", "AR (L)": "ARL"}
MPII_NAMES = {"Head": "Head", "Shoulder": "Shoulder", "Elbow": "Elbow", "Wrist": "Wrist",
              "Hip": "Hip", "Knee": "Knee", "Ankle": "Ankle", "PCKh": "Mean",
              "PCKh@0.1": "Mean@0.1"}
DETECTIONS = "person_detection_results/COCO_val2017_detections_AP_H_56_person.json"
CASES = ["coco_gt", "coco_det", "mpii_valid", "coco_gt_full", "coco_det_full",
         "mpii_valid_full"]


@lru_cache(maxsize=None)
def golden() -> dict:
    return json.loads((GOLDEN / "predictions_mmpose_pose.json").read_text())


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    out = {}
    for name, edit in (("coco", _edit_coco), ("mpii", _edit_mpii)):
        w = golden()["writers"][name]
        root = tmp_path_factory.mktemp(f"pred_mmpose_{name}")
        getattr(synthetic, w["function"].rsplit(".", 1)[1])(
            root, **{k: tuple(v) if isinstance(v, list) else v for k, v in w["kwargs"].items()})
        edit(root, w["then_edit"])
        out[name] = root
    return out


def _setup(case: str, roots):
    """(protocol, dataset, model) of a golden case, the model checked against the
    recorded one."""
    g = golden()["cases"][case]
    p = load_protocol(PROTOCOLS[g["dataset"]]).model_dump()
    sizes = dict(input_size=tuple(g["input_size_hw"]), heatmap_size=tuple(g["heatmap_size_hw"]))
    tc = g["test_cfg"]
    ev = p["evaluation"]
    assert (ev["flip_test"], ev["shift_heatmap"], ev["modulate_kernel"]) == \
        (tc["flip_test"], tc["shift_heatmap"], tc["modulate_kernel"])
    assert tc["post_process"] is True and ev["post_process"] == "default"
    assert not tc["unbiased_decoding"]
    if g["dataset"] == "coco":
        ev["boxes"] = "ground_truth" if g["use_gt_bbox"] else "detector"
        ev["detection_file"] = DETECTIONS
        assert ev["oks_nms_threshold"] == g["data_cfg"]["oks_thr"]
        assert ev["keypoint_score_threshold"] == g["data_cfg"]["vis_thr"]
        assert ev["box_score_threshold"] == g["data_cfg"]["image_thr"] or g["use_gt_bbox"]
        ds = COCODataset.from_protocol(p, roots["coco"], split="val2017", **sizes)
    else:
        ds = MPIIDataset.from_protocol(p, roots["mpii"], split="valid", **sizes)
    assert len(ds) == g["num_samples"]
    return p, ds, dataset_table_model(ds, g["use_gt_bbox"], g["model"])


def _predict(p, ds, model):
    task = get_task("pose")
    loader = DataLoader(ds, batch_size=4, shuffle=False, collate_fn=task.collate_fn(train=False))
    return [task.predict(model, batch, ds, p, torch.device("cpu")) for batch in loader]


def test_golden_covers_the_decoding_branches():
    """Some joints are scored below the rescoring threshold, the full-size COCO GT case
    and an MPII case are not trivial; the maxima <= 0 (which the table model never
    makes) are in ``edge_decode``."""
    g = golden()["cases"]
    maxvals = np.concatenate([np.asarray(g[c]["maxvals"]).ravel() for c in CASES])
    assert ((maxvals > 0) & (maxvals < 0.2)).any() and (maxvals > 0.2).any()
    assert 0 < g["coco_gt_full"]["metrics"]["AP"] < 1
    assert any(0 < g[c]["metrics"]["PCKh"] < 100 for c in CASES if c.startswith("mpii"))
    assert (np.asarray(golden()["edge_decode"]["maxvals"]) <= 0).any()
    assert golden()["provenance"]["commit"] == "7b9049d264fa40402a27d1f175deff3b46a6b91b"


@pytest.mark.parametrize("case", CASES)
def test_keypoints_equal_mmpose_forward_test(roots, case):
    g = golden()["cases"][case]
    p, ds, model = _setup(case, roots)
    out = _predict(p, ds, model)
    preds = np.concatenate([o["preds"] for o in out])
    maxvals = np.concatenate([o["maxvals"] for o in out])
    assert preds.dtype == np.float32 and p["evaluation"]["decode"] == "mmpose"
    np.testing.assert_array_equal(preds.astype(np.float64), np.asarray(g["preds_xy"]))
    np.testing.assert_array_equal(maxvals[..., 0].astype(np.float64), np.asarray(g["maxvals"]))


@pytest.mark.parametrize("case", CASES)
def test_metrics_equal_mmpose_evaluate(roots, case):
    g = golden()["cases"][case]
    p, ds, model = _setup(case, roots)
    metrics = evaluate(get_task("pose"), model, ds, p, torch.device("cpu"), num_workers=0)
    if g["dataset"] == "coco":
        for official, ours in COCO_NAMES.items():
            assert metrics[ours] == pytest.approx(100.0 * g["metrics"][official], abs=1e-9), ours
    else:
        for official, ours in MPII_NAMES.items():
            assert metrics[ours] == pytest.approx(g["metrics"][official], abs=1e-9), ours


@pytest.mark.parametrize("case", [c for c in CASES if c.startswith("coco")])
def test_poses_kept_after_rescoring_and_oks_nms_equal_mmpose(roots, case):
    g = golden()["cases"][case]
    p, ds, model = _setup(case, roots)
    evaluator = get_task("pose").evaluator(ds, p)
    for batch in _predict(p, ds, model):
        evaluator.process(batch)
    ours = evaluator.coco_results()
    theirs = g["results_after_rescoring_and_oks_nms"]
    assert [r["image_id"] for r in ours] == [r["image_id"] for r in theirs]
    np.testing.assert_allclose([r["score"] for r in ours], [r["score"] for r in theirs],
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.array([r["keypoints"] for r in ours]),
                               np.array([r["keypoints"] for r in theirs]), rtol=0, atol=1e-4)


# ----------------------------------------------------------------------------- the options
def test_decode_option(roots):
    """``decode: mmpose`` is mmpose's decoding exactly, (-1, -1) heatmap coordinates for
    non-positive maxima included (``edge_decode``, a direct call of its
    ``keypoints_from_heatmaps``); ``decode: hrnet`` (HRNet's inverse affine and (0, 0))
    differs there, and where a box lacks the input's aspect ratio (mmpose scales each
    axis by its own side, the affine both by the width), elsewhere by float32 rounding."""
    e = golden()["edge_decode"]
    hm = np.random.default_rng(e["seed"]).uniform(-0.1, 1.0, size=e["shape"]).astype(np.float32)
    hm[0, 3] = -0.5
    hm[1, 5] = 0.0
    hm[2, 7] -= 2.0
    hm[1, 9, 0, 0] = 5.0
    hm[2, 11, 15, 11] = 5.0
    centers, scales = np.asarray(e["centers"]), np.asarray(e["scales"])
    preds, maxvals = decode_heatmaps(hm, centers, scales, "default", 11, decode="mmpose")
    np.testing.assert_array_equal(preds.astype(np.float64), np.asarray(e["preds"]))
    np.testing.assert_array_equal(maxvals[..., 0].astype(np.float64), np.asarray(e["maxvals"]))
    hrnet, _ = decode_heatmaps(hm, centers, scales, "default", 11, decode="hrnet")
    bad = maxvals[..., 0] <= 0
    assert bad.sum() == 3
    # HRNet: heatmap (0, 0), through the inverse affine, whose one scale is s_x * 200 / w
    n = np.nonzero(bad)[0]
    step = scales[n, :1] * 200 / 12
    np.testing.assert_allclose(hrnet[bad], centers[n] - np.array([6, 8]) * step, atol=1e-4)
    # elsewhere: the same where the box has the heatmap's aspect (boxes 1 and 2); box 0
    # (0.8 x 1.0667, not 3:4) shows the per-axis formula against the affine in y
    np.testing.assert_allclose(hrnet[1:][~bad[1:]], preds[1:][~bad[1:]], rtol=0, atol=1e-4)
    np.testing.assert_allclose(hrnet[0, ~bad[0], 0], preds[0, ~bad[0], 0], rtol=0, atol=1e-4)
    assert np.abs(hrnet[0, ~bad[0], 1] - preds[0, ~bad[0], 1]).max() > 1e-3
    with pytest.raises(ValueError, match="decode must be one of"):
        decode_heatmaps(hm, centers, scales, decode="caffe")


def test_coco_postprocess_option(roots):
    """``coco_postprocess: mmpose`` gives mmpose's float32 pose scores (the detector case:
    box scores below 1), ``hrnet`` HRNet's float64 product, 1e-8 apart; on a score tie
    mmpose's ``argsort()[::-1]`` keeps the later pose, HRNet's order the earlier."""
    g = golden()["cases"]["coco_det"]
    p, ds, model = _setup("coco_det", roots)
    batches = _predict(p, ds, model)
    scores = {}
    for style in ("hrnet", "mmpose"):
        ev = CocoKeypointEvaluator(ds.coco, num_samples=len(ds), style=style)
        for b in batches:
            ev.process(b)
        scores[style] = np.array([r["score"] for r in ev.coco_results()])
    theirs = np.array([r["score"] for r in g["results_after_rescoring_and_oks_nms"]])
    np.testing.assert_array_equal(scores["mmpose"], theirs)
    assert 0 < np.abs(scores["hrnet"] - theirs).max() < 1e-7
    pose = np.tile([[50.0, 60.0, 0.9]], (17, 1))
    tied = [{"image_id": 1, "keypoints": pose + [[d, 0, 0]], "score": 0.5, "area": 5000.0}
            for d in (0.0, 0.5)]
    firsts = {style: rescore_and_nms(tied, style=style) for style in ("hrnet", "mmpose")}
    assert [len(v) for v in firsts.values()] == [1, 1]           # one suppresses the other
    assert firsts["hrnet"][0]["keypoints"][0] == 50.0
    assert firsts["mmpose"][0]["keypoints"][0] == 50.5
    with pytest.raises(ValueError, match="style must be one of"):
        rescore_and_nms(tied, style="detectron")


def test_pckh_arithmetic_option_and_row(roots):
    """``pckh_arithmetic: mmpose`` reads Mean@0.1 off mmpose's float32 PCK curve (``hrnet``:
    float64, 1e-7 apart in the full-size case); mmpose's PCKh@0.1 is alpha 0.11
    (``pckh_rows``: 100, where alpha 0.1 gives about half), as the protocols' 0.11."""
    g = golden()["cases"]["mpii_valid_full"]
    p, ds, model = _setup("mpii_valid_full", roots)
    preds = np.concatenate([b["preds"] for b in _predict(p, ds, model)])
    ours = {s: mpii_pckh(preds, ds.gt_file, low_alpha=0.11, style=s)["Mean@0.1"]
            for s in ("hrnet", "mmpose")}
    assert ours["mmpose"] == pytest.approx(g["metrics"]["PCKh@0.1"], abs=1e-12)
    assert 1e-9 < abs(ours["hrnet"] - g["metrics"]["PCKh@0.1"]) < 1e-6
    rows = golden()["pckh_rows"]
    rp = np.asarray(rows["preds_xy"], np.float32)
    ev = get_task("pose").evaluator(ds, p)
    assert isinstance(ev, MpiiPCKhEvaluator) and ev.style == "mmpose" and ev.low_alpha == 0.11
    ev.process({"preds": rp, "maxvals": np.ones(rp.shape[:2] + (1,), np.float32),
                "index": np.arange(len(rp))})
    metrics = ev.compute()
    for official, name in MPII_NAMES.items():
        assert metrics[name] == pytest.approx(rows["metrics"][official], abs=1e-9), name
    at_01 = mpii_pckh(rp, ds.gt_file, low_alpha=0.1, style="mmpose")["Mean@0.1"]
    assert rows["metrics"]["PCKh@0.1"] == 100.0 and 20 < at_01 < 80
    with pytest.raises(ValueError, match="style must be one of"):
        mpii_pckh(rp, ds.gt_file, style="matlab")


def test_protocols_pick_the_arithmetic_of_their_code():
    """mmpose's arithmetic for the protocols whose code is mmpose (Lite-HRNet and the
    mmpose baselines), HRNet's for HRNet's."""
    for name in ("coco_256x192_lite_hrnet", "coco_384x288_lite_hrnet",
                 "coco_384x288_lite_hrnet_testdev", "coco_256x192_mmpose_mobile",
                 "coco_384x288_mmpose_mobile"):
        ev = load_protocol(name).model_dump()["evaluation"]
        assert (ev["decode"], ev["coco_postprocess"]) == ("mmpose", "mmpose"), name
    for name in ("mpii_256x256_lite_hrnet", "mpii_256x256_mmpose_mobile"):
        ev = load_protocol(name).model_dump()["evaluation"]
        assert (ev["decode"], ev["pckh_arithmetic"], ev["pckh_low_alpha"]) == \
            ("mmpose", "mmpose", 0.11), name
    for name in ("coco_256x192_hrnet", "mpii_256x256_hrnet"):
        ev = load_protocol(name).model_dump()["evaluation"]
        assert (ev["decode"], ev["coco_postprocess"], ev["pckh_arithmetic"]) == \
            ("hrnet", "hrnet", "hrnet"), name
