"""bench.tasks.pose.synthetic: the written files follow the official formats, the drawn joints
are where the annotations say, and a seed fixes every byte."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.tasks.pose.data.lsp import load_lsp_joints
from bench.tasks.pose.synthetic import write_all, write_coco, write_lsp, write_mpii
from bench.tasks.pose.metrics import load_gt_valid


def _digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_writers_are_deterministic(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    write_all(a, seed=3, num_images=3)
    write_all(b, seed=3, num_images=3)
    write_all(c, seed=4, num_images=3)
    da, db, dc = _digest(a), _digest(b), _digest(c)
    assert da == db
    assert da.keys() != dc.keys() or da != dc


def test_coco_json_looks_like_the_real_one(tmp_path):
    info = write_coco(tmp_path, num_images=6, seed=1, crowd_per_split=2)
    for split in ("train2017", "val2017"):
        data = json.loads(info.files[f"{split}/annotations"].read_text())
        assert {"images", "annotations", "categories"} <= data.keys()
        assert data["categories"][0]["keypoints"][0] == "nose"
        ids = [a["id"] for a in data["annotations"]]
        assert len(ids) == len(set(ids))
        image_ids = {im["id"] for im in data["images"]}
        n_valid = n_crowd = n_zero = 0
        for a in data["annotations"]:
            assert a["image_id"] in image_ids and a["area"] > 0 and len(a["bbox"]) == 4
            k = np.asarray(a["keypoints"]).reshape(17, 3)
            assert a["num_keypoints"] == int((k[:, 2] > 0).sum())
            assert (k[k[:, 2] == 0, :2] == 0).all()          # unlabelled -> (0, 0, 0)
            if a["iscrowd"]:
                n_crowd += 1
                assert isinstance(a["segmentation"], dict)   # RLE
                assert sum(a["segmentation"]["counts"]) == np.prod(a["segmentation"]["size"])
            elif a["num_keypoints"] == 0:
                n_zero += 1
            else:
                n_valid += 1
        assert n_valid == info.counts[f"{split}/valid"] > 0
        assert n_crowd == info.counts[f"{split}/crowd"] == 2
        assert n_zero == info.counts[f"{split}/zero_keypoints"]
    # pycocotools reads it
    from bench.tasks.pose.metrics.coco import load_coco
    coco = load_coco(info.files["val2017/annotations"])
    assert len(coco.getImgIds()) == 6


def test_coco_detections_are_realistic(tmp_path):
    info = write_coco(tmp_path, num_images=5, seed=2)
    dets = json.loads(info.files["detections"].read_text())
    val = json.loads(info.files["val2017/annotations"].read_text())
    val_ids = {im["id"] for im in val["images"]}
    scores = np.array([d["score"] for d in dets])
    assert {d["category_id"] for d in dets} == {1}
    assert {d["image_id"] for d in dets} <= val_ids
    assert (scores < 0.1).sum() >= 5 * 2            # the false boxes
    assert (scores > 0.75).sum() == info.counts["val2017/valid"]
    assert len(set(np.round(scores, 6))) == len(scores)


def test_drawn_joints_are_white_discs_at_the_annotation(tmp_path):
    info = write_coco(tmp_path, num_images=4, seed=5)
    data = json.loads(info.files["val2017/annotations"].read_text())
    files = {im["id"]: im["file_name"] for im in data["images"]}
    checked = 0
    for a in data["annotations"]:
        k = np.asarray(a["keypoints"]).reshape(17, 3)
        if a["iscrowd"] or not (k[:, 2] == 2).any():
            continue
        img = cv2.imread(str(info.files["val2017/images"] / files[a["image_id"]]))
        for x, y, v in k:
            if v == 2:
                assert img[int(y), int(x)].mean() > 200
                checked += 1
            elif v == 1:   # occluded: labelled but not drawn as a disc
                pass
    assert checked > 20


def test_mpii_files_read_by_the_evaluator(tmp_path):
    info = write_mpii(tmp_path, num_train=3, num_val=5, seed=0)
    gt = load_gt_valid(info.files["gt_valid"])
    assert gt["dataset_joints"][:3] == ["rank", "rkne", "rhip"]
    assert gt["pos_gt_src"].shape == (16, 2, 5) and gt["jnt_missing"].shape == (16, 5)
    valid = json.loads(info.files["valid"].read_text())
    assert len(valid) == 5 and len(json.loads(info.files["train"].read_text())) == 3
    for n, e in enumerate(valid):
        vis = np.asarray(e["joints_vis"])
        joints = np.asarray(e["joints"])
        np.testing.assert_array_equal(gt["jnt_missing"][:, n], 1 - vis)
        np.testing.assert_allclose(gt["pos_gt_src"][:, :, n], joints, atol=1e-3)
        assert (joints[vis == 0] == -1).all()
        hb = gt["headboxes_src"][:, :, n]
        assert (hb[1] > hb[0]).all()
        img = cv2.imread(str(tmp_path / "images" / e["image"]))
        for (x, y), v in zip(joints, vis):       # 1-based -> pixel x - 1
            if v:
                assert img[int(round(y - 1)), int(round(x - 1))].mean() > 180
    with pytest.raises(ValueError):
        write_mpii(tmp_path / "x", num_val=1)


@pytest.mark.parametrize("extended", [True, False])
def test_lsp_layouts(tmp_path, extended):
    info = write_lsp(tmp_path, num_images=6, seed=0, extended=extended)
    from scipy.io import loadmat
    raw = loadmat(str(info.files["joints"]))["joints"]
    assert raw.shape == ((14, 3, 6) if extended else (3, 14, 6))
    joints, vis = load_lsp_joints(info.files["joints"])
    assert joints.shape == (6, 14, 2) and vis.shape == (6, 14)
    assert 0 < vis.mean() < 1
    name = "im00001.jpg" if extended else "im0001.jpg"
    assert (tmp_path / "images" / name).is_file()
    img = cv2.imread(str(tmp_path / "images" / name))
    for (x, y), v in zip(joints[0], vis[0]):
        if v:
            assert img[int(round(y)), int(round(x))].mean() > 180


def test_lsp_visibility_same_in_both_layouts(tmp_path):
    write_lsp(tmp_path / "ext", num_images=5, seed=9, extended=True)
    write_lsp(tmp_path / "orig", num_images=5, seed=9, extended=False)
    je, ve = load_lsp_joints(tmp_path / "ext" / "joints.mat")
    jo, vo = load_lsp_joints(tmp_path / "orig" / "joints.mat")
    np.testing.assert_array_equal(ve, vo)
    np.testing.assert_allclose(je[ve > 0], jo[vo > 0])


def test_writers_stay_torch_free():
    import subprocess
    import sys

    code = ("import sys; import bench.tasks.pose.synthetic, bench.tasks.segmentation.synthetic, "
            "bench.tasks.detection.synthetic; assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True,
                   cwd=Path(__file__).resolve().parent.parent)


def test_shared_data_and_task_specs_import_no_task_implementation():
    """``bench.data`` (shared transforms) loads no task's modules; a task package's spec
    loads its protocol schema only: no torch, no writer, no dataset."""
    import subprocess
    import sys
    code = ("import sys, bench.data as d; "
            "assert not [m for m in sys.modules if m.startswith('bench.tasks')]; "
            "assert all(hasattr(d, n) for n in d.__all__); "
            "from bench.tasks import all_specs; specs = all_specs(); "
            "assert [s.name for s in specs] == ['pose', 'segmentation', 'detection']; "
            "loaded = [m for m in sys.modules if m.startswith('bench.tasks.')]; "
            "assert all(m.count('.') == 2 or m.endswith('.protocol') for m in loaded), loaded; "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
