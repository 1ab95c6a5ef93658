"""Top-down datasets (bench.tasks.pose.data.coco / mpii / lsp / topdown) on synthetic data in the
official layouts, and on the real samples in ../shared/data when present."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from bench.tasks.pose.data.coco import COCODataset, to_coco_results
from bench.tasks.pose.data.lsp import LSPDataset, load_lsp_joints, split_indices
from bench.tasks.pose.data.mpii import MPIIDataset, gt_order
from bench.tasks.pose.synthetic import write_all
from bench.data.common import IMAGENET_MEAN, IMAGENET_STD
from bench.tasks.pose.data.topdown import TopDownDataset, make_record
from bench.data.transforms import COCO_FLIP_PAIRS, affine_transform, get_affine_transform
from bench.tasks.pose.metrics import coco_keypoint_ap, load_gt_valid, mpii_pckh, rescore_and_nms
from conftest import reference_gaussian_targets

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is missing")

SMALL = dict(input_size=(128, 96), heatmap_size=(32, 24))


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    info = write_all(root, seed=0, num_images=6)
    return root, info


def _unnormalise(image: torch.Tensor) -> np.ndarray:
    x = image.numpy().transpose(1, 2, 0)
    return (x * np.asarray(IMAGENET_STD) + np.asarray(IMAGENET_MEAN)) * 255.0


def _drawn_flags(ds: COCODataset, rec: dict) -> np.ndarray:
    """COCO v == 2 joints are drawn as white discs (v == 1 is labelled but hidden)."""
    k = np.asarray(ds.coco.anns[rec["ann_id"]]["keypoints"]).reshape(-1, 3)
    return k[:, 2] == 2


def _peaks_on_drawn_joints(sample, drawn, stride, threshold=200.0):
    """For each drawn joint with weight: the bright blob nearest its heatmap peak has its
    centroid within one heatmap pixel of the peak. Returns the number of joints checked."""
    img = _unnormalise(sample["image"])
    bright = (img.mean(axis=2) > threshold).astype(np.uint8)
    n, labels, _, centroids = cv2.connectedComponentsWithStats(bright)
    target = sample["target"].numpy()
    weight = sample["target_weight"].numpy()[:, 0]
    peaks = {}
    for k in range(len(target)):
        if weight[k] > 0 and drawn[k]:
            py, px = np.unravel_index(np.argmax(target[k]), target[k].shape)
            peaks[k] = np.array([px, py], dtype=np.float64) * stride
    checked = 0
    h, w = bright.shape
    for k, p in peaks.items():
        if not (0 <= p[0] < w and 0 <= p[1] < h):
            continue
        d = np.linalg.norm(centroids[1:] - p, axis=1)
        if n <= 1:
            break
        j = int(np.argmin(d)) + 1
        # a disc merged with a neighbour's has a centroid between the two: skip those
        others = [q for kk, q in peaks.items() if kk != k]
        if any(labels[int(min(max(q[1], 0), h - 1)), int(min(max(q[0], 0), w - 1))] == j
               for q in others):
            continue
        assert d[j - 1] <= stride, f"joint {k}: blob {d[j - 1]:.1f} px from its peak"
        checked += 1
    return checked


# --------------------------------------------------------------------------- COCO
def test_coco_records_filter_crowd_and_zero_keypoints(synth):
    root, info = synth
    for split in ("train2017", "val2017"):
        ds = COCODataset(root / "coco", split, **SMALL)
        assert len(ds) == info["coco"].counts[f"{split}/valid"]
        for r in ds.records:
            ann = ds.coco.anns[r["ann_id"]]
            assert ann["iscrowd"] == 0 and ann["num_keypoints"] > 0
    assert info["coco"].counts["val2017/crowd"] > 0


def test_coco_crowd_with_keypoints_still_skipped(synth, tmp_path):
    root, _ = synth
    shutil.copytree(root / "coco", tmp_path / "coco")
    ann_file = tmp_path / "coco" / "annotations" / "person_keypoints_val2017.json"
    data = json.loads(ann_file.read_text())
    before = len(COCODataset(tmp_path / "coco", "val2017", **SMALL))
    donor = next(a for a in data["annotations"] if a["num_keypoints"] > 0)
    for a in data["annotations"]:
        if a["iscrowd"]:                   # give crowd regions keypoints: still skipped
            a["keypoints"], a["num_keypoints"] = donor["keypoints"], donor["num_keypoints"]
    donor_copy = dict(donor, id=10 ** 6, area=0.0)         # area 0: dropped (reference)
    clipped = dict(donor, id=10 ** 6 + 1)                  # box past the image: clipped
    img = next(i for i in data["images"] if i["id"] == donor["image_id"])
    clipped["bbox"] = [-10.0, 5.0, img["width"] + 50.0, 30.0]
    data["annotations"] += [donor_copy, clipped]
    ann_file.write_text(json.dumps(data))
    ds = COCODataset(tmp_path / "coco", "val2017", **SMALL)
    assert len(ds) == before + 1
    rec = next(r for r in ds.records if r["ann_id"] == clipped["id"])
    # reference: x1 = max(0, x); x2 = min(W - 1, x1 + max(0, w - 1)); box w = x2 - x1
    assert rec["clean_bbox"] == (0.0, 5.0, img["width"] - 1.0, 29.0)


def test_coco_center_scale_follow_the_box(synth):
    root, _ = synth
    ds = COCODataset(root / "coco", "val2017", **SMALL)
    for r in ds.records:
        x, y, w, h = r["clean_bbox"]
        np.testing.assert_allclose(r["center"], [x + w / 2, y + h / 2], rtol=1e-6)
        sw, sh = r["scale"] * 200 / 1.25
        assert sw / sh == pytest.approx(96 / 128, rel=1e-5)     # input aspect W / H
        assert sw >= w - 1e-3 and sh >= h - 1e-3                # grown, never shrunk
        assert r["area"] == pytest.approx(float(np.prod(r["scale"] * 200)))


def test_coco_crop_target_peak_on_drawn_joint(synth):
    root, _ = synth
    ds = COCODataset(root / "coco", "val2017", input_size=(256, 192), heatmap_size=(64, 48))
    i = int(np.argmax([r["scale"][1] for r in ds.records]))          # the largest person
    rec, sample = ds.records[i], ds[i]
    assert sample["image"].shape == (3, 256, 192) and sample["image"].dtype == torch.float32
    assert sample["target"].shape == (17, 64, 48) and sample["target_weight"].shape == (17, 1)
    drawn = _drawn_flags(ds, rec)
    # the crop geometry: each drawn disc's centre is where the annotation maps to
    M = get_affine_transform(rec["center"], rec["scale"], 0, (192, 256))
    crop_joints = affine_transform(rec["joints"], M)
    img = _unnormalise(sample["image"])
    for k in np.flatnonzero(drawn):
        x, y = np.round(crop_joints[k]).astype(int)
        if 0 <= x < 192 and 0 <= y < 256:
            assert img[y, x].mean() > 200
    assert _peaks_on_drawn_joints(sample, drawn, stride=4) >= 8


def test_coco_detection_boxes_and_threshold(synth, tmp_path):
    root, info = synth
    dets = json.loads(info["coco"].files["detections"].read_text())
    ds = COCODataset(root / "coco", "val2017", use_gt_bbox=False, **SMALL)
    assert len(ds) == len(dets)
    assert [r["score"] for r in ds.records] == [d["score"] for d in dets]
    ds5 = COCODataset(root / "coco", "val2017", use_gt_bbox=False,
                      box_score_threshold=0.5, **SMALL)
    assert len(ds5) == sum(d["score"] >= 0.5 for d in dets) < len(dets)
    assert min(r["score"] for r in ds5.records) >= 0.5
    # non-person detections are dropped
    other = tmp_path / "dets.json"
    other.write_text(json.dumps(dets + [dict(dets[0], category_id=3)]))
    ds_other = COCODataset(root / "coco", "val2017", use_gt_bbox=False,
                           detection_file=other, **SMALL)
    assert len(ds_other) == len(dets)
    s = ds5[0]
    assert float(s["target_weight"].sum()) == 0.0       # no GT joints on a detector box
    assert s["meta"]["score"] == pytest.approx(ds5.records[0]["score"])


def test_coco_ground_truth_as_predictions_scores_ap_100(synth):
    root, info = synth
    ds = COCODataset(root / "coco", "val2017", **SMALL)
    metas = [ds[i]["meta"] for i in range(len(ds))]
    preds = np.stack([np.concatenate([m["joints"], m["visible"][:, None]], axis=1)
                      for m in metas])
    results = to_coco_results(preds, metas)
    assert len(results) == len(ds) and len(results[0]["keypoints"]) == 51
    json.dumps(results)                                   # serialisable as written
    ann_file = info["coco"].files["val2017/annotations"]
    assert coco_keypoint_ap(results, ann_file)["AP"] == pytest.approx(100.0)
    assert coco_keypoint_ap(rescore_and_nms(results), ann_file)["AP"] == pytest.approx(100.0)
    # the collated meta of a DataLoader gives the same dicts
    loader = torch.utils.data.DataLoader(ds, batch_size=4)
    batches = [b["meta"] for b in loader]
    assert to_coco_results(preds, batches) == results


# --------------------------------------------------------------------------- MPII
def test_mpii_reference_conversion(synth):
    root, info = synth
    entries = json.loads(info["mpii"].files["valid"].read_text())
    ds = MPIIDataset(root / "mpii", "val", **dict(input_size=(128, 128), heatmap_size=(32, 32)))
    assert len(ds) == len(entries)
    for r, e in zip(ds.records, entries):
        s = e["scale"]
        np.testing.assert_allclose(r["center"], np.array(e["center"]) + [0, 15 * s] - 1,
                                   rtol=1e-6)
        np.testing.assert_allclose(r["scale"], [1.25 * s, 1.25 * s], rtol=1e-6)
        np.testing.assert_allclose(r["joints"], np.array(e["joints"]) - 1, atol=1e-4)
        np.testing.assert_array_equal(r["visible"], e["joints_vis"])


def test_mpii_ground_truth_scores_pckh_100(synth):
    root, _ = synth
    ds = MPIIDataset(root / "mpii", "valid")
    preds = np.stack([r["joints"] for r in ds.records])           # 0-based pixels
    res = mpii_pckh(preds, ds.gt_file)                             # adds the 1 back
    assert res["Mean"] == pytest.approx(100.0) and res["Mean@0.1"] == pytest.approx(100.0)
    # shuffled predictions come back in gt_valid order
    perm = np.random.default_rng(0).permutation(len(ds))
    assert mpii_pckh(gt_order(preds[perm], perm, len(ds)), ds.gt_file)["Mean"] == \
        pytest.approx(100.0)
    # forgetting the +1 (treating 0-based predictions as MATLAB pixels) costs accuracy
    # at small thresholds
    assert mpii_pckh(preds, ds.gt_file, one_based=True)["AUC"] < res["AUC"]


def test_mpii_crop_contains_the_person(synth):
    root, _ = synth
    ds = MPIIDataset(root / "mpii", "valid", input_size=(128, 128), heatmap_size=(32, 32))
    for i in range(len(ds)):
        s = ds[i]
        vis = ds.records[i]["visible"] > 0
        assert (s["target_weight"].numpy()[vis, 0] == 1).all()
        assert (s["target_weight"].numpy()[~vis, 0] == 0).all()


# --------------------------------------------------------------------------- LSP
def test_lsp_split_indices():
    for n in (10000, 2000, 16, 2):
        tr, va = split_indices(n, "train"), split_indices(n, "val")
        assert len(np.intersect1d(tr, va)) == 0
        np.testing.assert_array_equal(np.sort(np.concatenate([tr, va])), np.arange(n))
        np.testing.assert_array_equal(split_indices(n, "val"), va)      # deterministic
        np.testing.assert_array_equal(split_indices(n, "all"), np.arange(n))
    np.testing.assert_array_equal(split_indices(10000, "val"), np.arange(9000, 10000))
    with pytest.raises(ValueError):
        split_indices(10, "test")


def test_lsp_synthetic_records(synth):
    root, info = synth
    n = info["lspet"].counts["images"]
    tr = LSPDataset(root / "lspet", "train", **SMALL)
    va = LSPDataset(root / "lspet", "val", **SMALL)
    assert len(tr) + len(va) == n and len(va) == len(split_indices(n, "val"))
    assert {r["image_id"] for r in tr.records}.isdisjoint({r["image_id"] for r in va.records})
    for r in va.records:
        vis = r["visible"] > 0
        pts = r["joints"][vis]
        # the box is the visible joints' extent (junk invisible coordinates ignored)
        np.testing.assert_allclose(r["center"], (pts.min(0) + pts.max(0)) / 2, atol=1e-3)
        assert (r["scale"] * 200 >= (pts.max(0) - pts.min(0)) * 1.5 - 1e-3).all()
        assert Path(r["image_file"]).name == f"im{r['image_id']:05d}.jpg"
    s = va[0]
    assert s["target"].shape == (14, 32, 24)
    gts, vis = va.ground_truth()
    assert gts.shape == (len(va), 14, 2) and vis.shape == (len(va), 14)


# --------------------------------------------------------------------------- pipeline
def test_augmentation_is_reproducible(synth):
    root, _ = synth
    kw = dict(SMALL, train=True, seed=7, flip_prob=0.5, half_body_prob=0.3,
              scale_factor=0.25, rotation_factor=30)
    a = COCODataset(root / "coco", "train2017", **kw)
    b = COCODataset(root / "coco", "train2017", **kw)
    for i in (0, 3):
        sa, sb = a[i], b[i]
        assert torch.equal(sa["image"], sb["image"]) and torch.equal(sa["target"], sb["target"])
        assert sa["meta"]["rotation"] == sb["meta"]["rotation"]
        assert torch.equal(a[i]["image"], sa["image"])          # same call again
    params = lambda ds: [(ds[i]["meta"]["rotation"], *ds[i]["meta"]["scale"],  # noqa: E731
                          ds[i]["meta"]["flipped"]) for i in range(len(ds))]
    epoch0 = params(a)
    a.set_epoch(1)
    assert params(a) != epoch0
    c = COCODataset(root / "coco", "train2017", **dict(kw, seed=8))
    assert params(c) != epoch0
    # evaluation samples are never augmented
    v = COCODataset(root / "coco", "train2017", **SMALL)
    assert all(v[i]["meta"]["rotation"] == 0 and not v[i]["meta"]["flipped"] for i in range(3))


def test_augmented_targets_stay_on_the_drawn_joints(synth):
    root, _ = synth
    ds = COCODataset(root / "coco", "train2017", train=True, seed=1, input_size=(256, 192),
                     heatmap_size=(64, 48), flip_prob=0.5, half_body_prob=0.0,
                     scale_factor=0.25, rotation_factor=30, rotation_prob=1.0)
    i = int(np.argmax([r["scale"][1] for r in ds.records]))
    checked, flips = 0, 0
    for epoch in range(4):
        ds.set_epoch(epoch)
        s = ds[i]
        drawn = _drawn_flags(ds, ds.records[i])
        if s["meta"]["flipped"]:
            flips += 1
            for a_, b_ in COCO_FLIP_PAIRS:
                drawn[[a_, b_]] = drawn[[b_, a_]]
        checked += _peaks_on_drawn_joints(s, drawn, stride=4, threshold=170)
    assert checked >= 20 and 0 < flips < 4


def test_flip_swaps_left_and_right_targets(synth):
    root, _ = synth
    kw = dict(train=True, half_body_prob=0.0, scale_factor=0.0, rotation_factor=0.0,
              input_size=(256, 192), heatmap_size=(64, 48))
    plain = COCODataset(root / "coco", "val2017", flip_prob=0.0, **kw)
    flipped = COCODataset(root / "coco", "val2017", flip_prob=1.0, **kw)
    pair = list(range(17))
    for a_, b_ in COCO_FLIP_PAIRS:
        pair[a_], pair[b_] = b_, a_
    checked = 0
    for i in range(len(plain)):
        sp, sf = plain[i], flipped[i]
        assert sf["meta"]["flipped"] and not sp["meta"]["flipped"]
        tp, tf = sp["target"].numpy(), sf["target"].numpy()
        wp, wf = sp["target_weight"].numpy()[:, 0], sf["target_weight"].numpy()[:, 0]
        for k in range(17):
            if wf[k] > 0 and wp[pair[k]] > 0:
                yf, xf = np.unravel_index(np.argmax(tf[k]), tf[k].shape)
                yp, xp = np.unravel_index(np.argmax(tp[pair[k]]), tp[k].shape)
                # the crop of the mirrored image is the mirrored crop: x -> W - x
                assert abs(xf - (48 - xp)) <= 1 and yf == yp
                checked += 1
    assert checked > 50


def test_half_body_changes_the_box(synth):
    root, _ = synth
    ds = COCODataset(root / "coco", "train2017", train=True, flip_prob=0.0,
                     half_body_prob=1.0, half_body_num_joints=8, scale_factor=0.0,
                     rotation_factor=0.0, **SMALL)
    i = next(k for k, r in enumerate(ds.records) if (r["visible"] > 0).sum() > 8)
    meta = ds[i]["meta"]
    assert not np.allclose(meta["center"], ds.records[i]["center"])
    assert meta["scale"][1] < ds.records[i]["scale"][1]


def test_from_protocol(synth):
    from bench.suite import load_protocol
    root, info = synth
    coco_p = load_protocol("coco_256x192_lite_hrnet")
    train = COCODataset.from_protocol(coco_p, root, train=True)
    assert train.image_set == "train2017" and train.input_size == (256, 192)
    assert train.heatmap_size == (64, 48) and train.sigma == 2
    assert (train.half_body_prob, train.half_body_num_joints) == (0.3, 8)
    assert (train.rotation_factor, train.scale_factor, train.flip_prob) == (30, 0.25, 0.5)
    val = COCODataset.from_protocol(coco_p, root, train=False)      # detector boxes
    assert not val.use_gt_bbox and len(val) == info["coco"].counts["detections"]
    s = val[0]
    assert s["image"].shape == (3, 256, 192) and s["target"].shape == (17, 64, 48)
    # a plain dict, and data_root pointing at the dataset folder itself
    as_dict = coco_p.model_dump()
    assert len(COCODataset.from_protocol(as_dict, root / "coco", split="val2017")) == len(val)
    mpii_p = load_protocol("mpii_256x256_lite_hrnet")
    mval = MPIIDataset.from_protocol(mpii_p, root)
    assert mval.image_set == "valid" and len(mval) == info["mpii"].counts["valid"]
    mtr = MPIIDataset.from_protocol(mpii_p, root, train=True)
    assert mtr.half_body_prob == 0.0 and mtr.rotation_factor == 30
    assert load_gt_valid(mval.gt_file)["pos_gt_src"].shape[-1] == len(mval)


def test_jitter_box_centers_moves_a_share_of_the_centres_within_bounds():
    from bench.tasks.pose.data.coco import jitter_box_centers
    records = [make_record(f"{i}.jpg", (100.0 + i, 50.0), 1.0, np.zeros((17, 2)), np.ones(17),
                           clean_bbox=(0.0, 0.0, 40.0 + i % 7, 80.0)) for i in range(2000)]
    moved = jitter_box_centers(records, 0.3, 0.4, seed=3)
    shifts = np.array([m["center"] - r["center"] for m, r in zip(moved, records)])
    sizes = np.array([r["clean_bbox"][2:] for r in records])
    hit = np.any(shifts != 0, axis=1)
    assert 0.27 < hit.mean() < 0.33                           # prob 0.3
    assert np.all(np.abs(shifts) <= 0.2 * sizes + 1e-4)       # 0.4 x (U - 0.5) x (w, h)
    assert np.abs(shifts[hit] / sizes[hit]).max() > 0.19
    assert all(m["center"].dtype == np.float32 for m in moved)
    again = jitter_box_centers(records, 0.3, 0.4, seed=3)     # drawn from the seed only
    assert all(np.array_equal(a["center"], m["center"]) for a, m in zip(again, moved))
    assert not all(np.array_equal(a["center"], m["center"])
                   for a, m in zip(jitter_box_centers(records, 0.3, 0.4, seed=4), moved))
    assert all(np.array_equal(r["center"], np.float32([100.0 + i, 50.0]))
               for i, r in enumerate(records))                # the input is not changed
    still = jitter_box_centers(records, 0.0, 0.4)
    assert all(np.array_equal(a["center"], r["center"]) for a, r in zip(still, records))


def test_mmpose_recipes_jitter_training_boxes_only(synth):
    from bench.suite import load_protocol
    root, _ = synth
    lite = load_protocol("coco_256x192_lite_hrnet")
    assert lite.augmentation.box_center_jitter.prob == 0.3
    jittered = COCODataset.from_protocol(lite, root, train=True, seed=1)
    plain = COCODataset.from_protocol(load_protocol("coco_256x192_hrnet"), root, train=True)
    assert len(jittered) == len(plain)
    moved = [not np.array_equal(a["center"], b["center"])
             for a, b in zip(jittered.records, plain.records)]
    assert any(moved) and not all(moved)
    for a, b in zip(jittered.records, plain.records):
        assert np.array_equal(a["scale"], b["scale"])          # only the centre moves
    gt_val = COCODataset.from_protocol(lite, root, train=False, use_gt_bbox=True)
    plain_val = COCODataset(root / "coco", "val2017", use_gt_bbox=True)
    assert all(np.array_equal(a["center"], b["center"])
               for a, b in zip(gt_val.records, plain_val.records))


def test_box_center_jitter_needs_person_boxes():
    from pydantic import ValidationError

    from bench.suite import load_protocol
    mpii = load_protocol("mpii_256x256_lite_hrnet").model_dump(mode="json")
    mpii["augmentation"]["box_center_jitter"] = {"prob": 0.3, "factor": 0.4}
    with pytest.raises(ValidationError, match="box_center_jitter.*'mpii'"):
        type(load_protocol("mpii_256x256_lite_hrnet")).model_validate(mpii)


def test_missing_paths_raise_file_not_found(tmp_path, synth):
    root, _ = synth
    with pytest.raises(FileNotFoundError, match="person_keypoints_val2017.json"):
        COCODataset(tmp_path / "coco", "val2017")
    shutil.copytree(root / "coco" / "annotations", tmp_path / "coco" / "annotations")
    images = re.escape(str(tmp_path / "coco" / "images" / "val2017"))
    with pytest.raises(FileNotFoundError, match=images):
        COCODataset(tmp_path / "coco", "val2017")
    with pytest.raises(FileNotFoundError, match="COCO_val2017_detections"):
        COCODataset(root / "coco", "val2017", use_gt_bbox=False,
                    detection_file=tmp_path / "nope" / "COCO_val2017_detections.json")
    annot = re.escape(str(tmp_path / "mpii" / "annot" / "valid.json"))
    with pytest.raises(FileNotFoundError, match=annot):
        MPIIDataset(tmp_path / "mpii", "val")
    with pytest.raises(FileNotFoundError, match="joints.mat"):
        LSPDataset(tmp_path / "lspet")
    from bench.suite import load_protocol
    empty = tmp_path / "empty_root"
    empty.mkdir()
    with pytest.raises(FileNotFoundError,
                       match=re.escape(str(empty / "coco" / "annotations" /
                                           "person_keypoints_train2017.json"))):
        COCODataset.from_protocol(load_protocol("coco_256x192_lite_hrnet"), empty,
                                  split="train2017")
    rec = make_record(tmp_path / "gone.jpg", (10, 10), (0.5, 0.5), np.zeros((3, 2)),
                      np.ones(3))
    with pytest.raises(FileNotFoundError, match="gone.jpg"):
        TopDownDataset([rec], **SMALL)[0]


# ----------------------------------------------------- pipeline vs the plain reference
def _reference_targets(joints, visible, ds):
    """Targets as the whole-grid formula of the pipeline before its per-core tuning."""
    target, weight = reference_gaussian_targets(joints, visible, ds.image_size_wh,
                                                ds.heatmap_size_wh, ds.sigma,
                                                unbiased=ds.unbiased_encoding)
    if ds.joint_weights is not None:
        weight = weight * ds.joint_weights
    return target, weight


def _reference_crop(ds, image, joints, visible, center, scale, rotation, flipped):
    """The plain crop, targets and normalisation both orders end with (three-point
    matrix, warpAffine, whole-grid Gaussians, float normalisation, transposing copy)."""
    from bench.data import transforms as T
    M = T.get_affine_transform_points(center, scale, rotation, ds.image_size_wh)
    crop = cv2.warpAffine(np.ascontiguousarray(image), M, ds.image_size_wh,
                          flags=cv2.INTER_LINEAR)
    target, weight = _reference_targets(T.affine_transform(joints, M), visible, ds)
    x = (crop.astype(np.float32) / 255.0 - ds.mean) / ds.std
    return (np.ascontiguousarray(x.transpose(2, 0, 1)), target, weight.reshape(-1, 1),
            center, scale, float(rotation), flipped)


def _reference_sample(ds, index):
    """One training/evaluation sample computed plainly, as the pipeline did before its
    per-core tuning (issue 15): cv2.imread + cvtColor, ``default_rng``, the flip as a
    numpy view copied by ``np.ascontiguousarray``, warpAffine, float normalisation then
    a transposing copy, Gaussians on the whole heatmap grid."""
    from bench.data import transforms as T
    rec = ds.records[index]
    image = cv2.imread(rec["image_file"], cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if ds.color_rgb:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    joints, visible = rec["joints"].astype(np.float64), rec["visible"].astype(np.float64)
    if ds.order == "hrnet":
        return _reference_sample_hrnet(ds, index, image, joints, visible)
    # mmpose 0.13's order and arithmetic (tests/golden/samples_mmpose_*.json)
    center, scale = rec["center"].copy(), rec["scale"].copy()
    rotation, flipped = 0.0, False
    if ds.train:
        rng = np.random.default_rng([ds.seed, ds.epoch, index])
        if ds.flip_prob > 0 and rng.random() <= ds.flip_prob:
            flipped, width = True, image.shape[1]
            image = image[:, ::-1]
            joints, visible = T.fliplr_joints(joints, visible, width, ds.flip_pairs)
            center = center.copy()
            center[0] = width - center[0] - 1
        if ds.half_body_prob > 0 and ds.upper_body_ids:
            half = T.half_body_transform(joints, visible, ds.upper_body_ids,
                                         ds.lower_body_ids, np.float64(ds.aspect_ratio),
                                         ds.half_body_num_joints, ds.half_body_prob,
                                         rng=rng, box_dtype=np.float32)
            if half is not None:
                center, scale = half
        zoom = np.clip(rng.standard_normal() * ds.scale_factor + 1, 1 - ds.scale_factor,
                       1 + ds.scale_factor)
        scale = scale * np.float64(zoom)
        angle = float(np.clip(rng.standard_normal() * ds.rotation_factor,
                              -2 * ds.rotation_factor, 2 * ds.rotation_factor))
        rotation = angle if rng.random() <= ds.rotation_prob else 0.0
    return _reference_crop(ds, image, joints, visible, center, scale, rotation, flipped)


def _reference_sample_hrnet(ds, index, image, joints, visible):
    """``order='hrnet'`` plainly (what tests/golden/samples_hrnet_*.json pins): half body
    (float32 box), zoom (float64 scale), rotation (its probability first), flip last
    with the centre mirrored in its own dtype, three-point crop matrix."""
    from bench.data import transforms as T
    rec = ds.records[index]
    center, scale = rec["center"].copy(), rec["scale"].copy()
    rotation, flipped = 0.0, False
    if ds.train:
        rng = np.random.default_rng([ds.seed, ds.epoch, index])
        if ds.half_body_prob > 0 and ds.upper_body_ids:
            half = T.half_body_transform(joints, visible, ds.upper_body_ids,
                                         ds.lower_body_ids, ds.aspect_ratio,
                                         ds.half_body_num_joints, ds.half_body_prob,
                                         rng=rng, box_dtype=np.float32)
            if half is not None:
                center, scale = half
        zoom = np.clip(rng.standard_normal() * ds.scale_factor + 1, 1 - ds.scale_factor,
                       1 + ds.scale_factor)
        scale = scale * np.float64(zoom)
        if rng.random() <= ds.rotation_prob:
            rotation = float(np.clip(rng.standard_normal() * ds.rotation_factor,
                                     -2 * ds.rotation_factor, 2 * ds.rotation_factor))
        if ds.flip_prob > 0 and rng.random() <= ds.flip_prob:
            flipped, width = True, image.shape[1]
            image = image[:, ::-1]
            joints, visible = T.fliplr_joints(joints, visible, width, ds.flip_pairs)
            center = center.copy()
            center[0] = width - center[0] - 1
    return _reference_crop(ds, image, joints, visible, center, scale, rotation, flipped)


def test_samples_equal_the_plain_reference_pipeline(synth):
    """Every sample (image tensor, targets, weights, meta) is what the straightforward
    pipeline computes, for the HRNet COCO recipe over several epochs (flips, half body,
    rotations all exercised), evaluation crops, BGR input, DARK targets with joint
    weights at 384x288, and MPII: the per-core tuning (cv2.flip, decoding from memory
    straight to RGB, lookup-table normalisation into CHW, per-joint Gaussian patches)
    changes no value."""
    from bench.tasks.pose.data.topdown import dataset_kwargs_from_protocol
    from bench.suite import load_protocol
    root, _ = synth
    hrnet = dataset_kwargs_from_protocol(load_protocol("coco_256x192_hrnet"), train=True)
    cases = [
        (COCODataset(root / "coco", "train2017", train=True, **hrnet), (0, 1, 2, 3)),
        (COCODataset(root / "coco", "val2017", **SMALL), (0,)),
        (COCODataset(root / "coco", "train2017", train=True, seed=3,
                     **{**hrnet, "color_rgb": False}), (0,)),
        (COCODataset(root / "coco", "train2017", train=True, unbiased_encoding=True,
                     use_joint_weights=True, input_size=(384, 288), heatmap_size=(96, 72),
                     sigma=3, rotation_factor=30, scale_factor=0.25), (0, 1)),
        (MPIIDataset(root / "mpii", "train", train=True, order="hrnet"), (0, 1)),
        (MPIIDataset(root / "mpii", "train", train=True, input_size=(256, 256),
                     heatmap_size=(64, 64), sigma=2), (0, 1)),
    ]
    seen = {"flipped": 0, "rotated": 0, "samples": 0}
    for ds, epochs in cases:
        for epoch in epochs:
            ds.set_epoch(epoch)
            for i in range(len(ds)):
                s = ds[i]
                image, target, weight, center, scale, rotation, flipped = \
                    _reference_sample(ds, i)
                assert s["image"].dtype == torch.float32 and s["image"].is_contiguous()
                assert s["image"].shape == image.shape and s["target"].shape == target.shape
                np.testing.assert_allclose(s["image"].numpy(), image, rtol=0, atol=1e-6)
                np.testing.assert_allclose(s["target"].numpy(), target, rtol=0, atol=1e-6)
                np.testing.assert_array_equal(s["target_weight"].numpy(), weight)
                m = s["meta"]
                np.testing.assert_array_equal(m["center"], center)
                np.testing.assert_array_equal(m["scale"], scale)
                assert m["center"].dtype == center.dtype and m["scale"].dtype == scale.dtype
                assert m["rotation"] == rotation and m["flipped"] == flipped
                assert m["index"] == i and m["image_file"] == ds.records[i]["image_file"]
                np.testing.assert_array_equal(m["joints"], ds.records[i]["joints"])
                np.testing.assert_array_equal(m["visible"], ds.records[i]["visible"])
                seen["flipped"] += flipped
                seen["rotated"] += rotation != 0
                seen["samples"] += 1
    assert seen["flipped"] >= 10 and seen["rotated"] >= 10 and seen["samples"] >= 60, seen


def test_load_image_equals_imread(synth, tmp_path):
    """Decoding from memory (and straight to RGB) gives cv2.imread's pixels; missing,
    empty and corrupt files still raise FileNotFoundError / ValueError."""
    root, _ = synth
    rng = np.random.default_rng(0)
    png = tmp_path / "x.png"
    cv2.imwrite(str(png), rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    gray = tmp_path / "gray.jpg"
    cv2.imwrite(str(gray), rng.integers(0, 256, (30, 40), dtype=np.uint8))
    files = sorted((root / "coco" / "images" / "train2017").glob("*.jpg"))[:4] + [png, gray]
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    for color_rgb in (True, False):
        ds = TopDownDataset([], color_rgb=color_rgb)
        for f in files:
            ref = cv2.imread(str(f), flags)
            if color_rgb:
                ref = cv2.cvtColor(ref, cv2.COLOR_BGR2RGB)
            out = ds.load_image(str(f))
            assert out.dtype == np.uint8 and out.shape == ref.shape
            np.testing.assert_array_equal(out, ref)
    ds = TopDownDataset([])
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        ds.load_image(str(tmp_path / "nope.jpg"))
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "bad.jpg").write_bytes(b"not an image at all")
    for name in ("empty.jpg", "bad.jpg"):
        with pytest.raises(ValueError, match="could not decode"):
            ds.load_image(str(tmp_path / name))


def test_normalise_equals_the_float_expression():
    """The lookup-table normalisation is bit-identical to (crop / 255 - mean) / std in
    float32, laid out CHW; other dtypes and hand-set float64 statistics use the
    expression itself."""
    rng = np.random.default_rng(1)
    crop = rng.integers(0, 256, (37, 29, 3), dtype=np.uint8)
    crop[0, :3] = [[0, 0, 0], [255, 255, 255], [1, 128, 254]]
    ds = TopDownDataset([])

    def expr(c):
        x = (c.astype(np.float32) / 255.0 - ds.mean) / ds.std
        return np.ascontiguousarray(x.transpose(2, 0, 1))

    for c in (crop, crop[:, ::-1], crop.astype(np.float32) * 0.5):
        out = ds.normalise(c)
        ref = expr(c)
        assert out.dtype == ref.dtype and out.flags["C_CONTIGUOUS"]
        np.testing.assert_array_equal(out, ref)
    ds.mean = np.asarray((0.5, 0.25, 0.1), np.float32).reshape(1, 1, 3)   # tables follow
    np.testing.assert_array_equal(ds.normalise(crop), expr(crop))
    ds.std = np.asarray((0.3, 0.3, 0.3), np.float64).reshape(1, 1, 3)
    out = ds.normalise(crop)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, expr(crop))


# --------------------------------------------------------------------------- real samples
@needs_shared
def test_real_coco_sample():
    root = SHARED / "coco_sample"
    ann = json.loads((root / "annotations" / "person_keypoints_val2017.json").read_text())
    expected = sum(1 for a in ann["annotations"]
                   if not a["iscrowd"] and a["num_keypoints"] > 0)
    assert expected == 12              # README: 14 annotations, 12 with keypoints
    ds = COCODataset(root, "val2017")
    assert len(ds) == expected
    metas = [ds[i]["meta"] for i in range(len(ds))]      # every image loads and crops
    preds = np.stack([np.concatenate([m["joints"], m["visible"][:, None]], 1) for m in metas])
    res = coco_keypoint_ap(to_coco_results(preds, metas), ds.ann_file)
    assert res["AP"] == pytest.approx(100.0)             # README: GT vs itself is AP 1.0
    dets = COCODataset(root, "val2017", use_gt_bbox=False)
    assert len(dets) == 118
    assert len(COCODataset(root, "val2017", use_gt_bbox=False, box_score_threshold=0.5)) < 118


@needs_shared
def test_real_mpii_sample():
    root = SHARED / "mpii_sample"
    ds = MPIIDataset(root, "valid")
    assert len(ds) == 5
    gt = load_gt_valid(ds.gt_file)
    for i, r in enumerate(ds.records):         # valid.json order == gt_valid order
        vis = r["visible"] > 0
        np.testing.assert_array_equal(gt["jnt_missing"][:, i], 1 - r["visible"])
        np.testing.assert_allclose(r["joints"][vis] + 1, gt["pos_gt_src"][vis, :, i], atol=1e-3)
        s = ds[i]
        # the crop contains the person: every annotated joint maps inside it
        M = get_affine_transform(s["meta"]["center"], s["meta"]["scale"], 0, (256, 256))
        crop = affine_transform(r["joints"][vis], M)
        assert (crop >= 0).all() and (crop < 256).all()
        assert (s["target_weight"].numpy()[vis, 0] == 1).all()


@needs_shared
def test_real_lsp_extended():
    root = SHARED / "lspet"
    from scipy.io import loadmat
    assert loadmat(str(root / "joints.mat"))["joints"].shape == (14, 3, 10000)
    joints, vis = load_lsp_joints(root / "joints.mat")
    assert joints.shape == (10000, 14, 2) and 0.8 < vis.mean() < 0.95
    va = LSPDataset(root, "val")
    assert len(va) == 1000 and Path(va.records[0]["image_file"]).name == "im09001.jpg"
    tr = LSPDataset(root, "train")
    assert len(tr) == 9000 and Path(tr.records[-1]["image_file"]).name == "im09000.jpg"
    for i in (0, 500, 999):
        s = va[i]
        vis_i = va.records[i]["visible"] > 0
        assert (s["target_weight"].numpy()[vis_i, 0] == 1).all()


def test_augmentation_order_option(synth):
    """``augmentation.order``: 'hrnet' for the protocols citing HRNet's / SimpleBaseline's
    JointsDataset, 'mmpose' otherwise; it is validated, reaches the dataset at training
    and evaluation, selects MPII's joint precision and the draw order."""
    import pydantic

    from bench.data.draws import ReplayDraws
    from bench.tasks.pose.data.topdown import dataset_kwargs_from_protocol
    from bench.suite import load_protocol
    root, _ = synth
    for name, order in (("coco_256x192_hrnet", "hrnet"), ("coco_384x288_hrnet", "hrnet"),
                        ("coco_384x288_hrnet_testdev", "hrnet"),
                        ("mpii_256x256_hrnet", "hrnet"), ("mpii_256x256_hrnet_test", "hrnet"),
                        ("coco_256x192_simple_baseline", "hrnet"),
                        ("mpii_256x256_simple_baseline", "hrnet"),
                        ("coco_256x192_lite_hrnet", "mmpose"),
                        ("mpii_256x256_lite_hrnet", "mmpose")):
        p = load_protocol(name)
        for train in (True, False):
            assert dataset_kwargs_from_protocol(p, train)["order"] == order, name
    bad = load_protocol("coco_256x192_hrnet").model_dump(mode="json")
    bad["augmentation"]["order"] = "detectron"
    with pytest.raises(pydantic.ValidationError):
        type(load_protocol("coco_256x192_hrnet")).model_validate(bad)
    with pytest.raises(ValueError, match="order"):
        TopDownDataset([], order="detectron")
    # MPII: float64 centres in both loaders; float64 joints (HRNet) or float32 (mmpose)
    hrnet_rec = MPIIDataset(root / "mpii", "valid", order="hrnet").records[0]
    mmpose_rec = MPIIDataset(root / "mpii", "valid").records[0]
    assert hrnet_rec["center"].dtype == mmpose_rec["center"].dtype == np.float64
    assert hrnet_rec["joints"].dtype == np.float64 and mmpose_rec["joints"].dtype == np.float32
    # the draws each order asks for: hrnet skips the angle when the rotation is off
    draws = {"flip": [0.9], "half_body": [0.9], "scale": [0.1], "rotation_prob": [0.9]}
    for order, extra in (("hrnet", {}), ("mmpose", {"rotation": [0.2]})):
        ds = COCODataset(root / "coco", "train2017", train=True, order=order,
                         half_body_prob=0.3, rotation_factor=40, scale_factor=0.3)
        i = next(k for k, r in enumerate(ds.records) if r["visible"].sum() > 8)
        replay = ReplayDraws({**draws, **extra})
        ds.draws_for = lambda _: replay
        s = ds[i]
        assert replay.unused() == {} and s["meta"]["rotation"] == 0.0
        assert not s["meta"]["flipped"]
        # both: the float32 box scale times the float64 zoom
        assert s["meta"]["scale"].dtype == np.float64


def _with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """A JPEG with an EXIF APP1 segment holding one Orientation (0x0112) tag."""
    import struct
    tiff = (b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1)
            + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0))
    payload = b"Exif\x00\x00" + tiff
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    assert jpeg[:2] == b"\xff\xd8"
    return jpeg[:2] + app1 + jpeg[2:]


def test_exif_orientation_option(tmp_path):
    """'ignore' (HRNet: the stored pixels) or 'apply' (mmpose reads with cv2.IMREAD_COLOR,
    which turns the image by its EXIF tag); the Lite-HRNet / mmpose protocols apply it."""
    from bench.tasks.pose.data.topdown import dataset_kwargs_from_protocol
    from bench.suite import load_protocol
    rng = np.random.default_rng(1)
    ok, buf = cv2.imencode(".jpg", rng.integers(0, 256, (40, 60, 3), dtype=np.uint8))
    path = tmp_path / "turned.jpg"
    path.write_bytes(_with_exif_orientation(buf.tobytes(), 6))       # 90 degrees clockwise
    stored = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    turned = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert stored.shape == (40, 60, 3) and turned.shape == (60, 40, 3)
    ignore = TopDownDataset([]).load_image(str(path))
    apply = TopDownDataset([], exif_orientation="apply").load_image(str(path))
    np.testing.assert_array_equal(ignore, cv2.cvtColor(stored, cv2.COLOR_BGR2RGB))
    np.testing.assert_array_equal(apply, cv2.cvtColor(turned, cv2.COLOR_BGR2RGB))
    with pytest.raises(ValueError, match="exif_orientation must be one of"):
        TopDownDataset([], exif_orientation="rotate")
    for name, want in (("coco_256x192_lite_hrnet", "apply"), ("mpii_256x256_lite_hrnet", "apply"),
                       ("coco_256x192_hrnet", "ignore")):
        assert dataset_kwargs_from_protocol(load_protocol(name), train=False)[
            "exif_orientation"] == want, name
