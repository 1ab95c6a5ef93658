"""HRBench's COCO / MPII samples against mmpose 0.13's TopDown pipeline (issue 28).

``tests/golden/samples_mmpose_{coco,mpii}.json`` were recorded outside the project by
running mmpose 0.13.0's own ``TopDownCocoDataset`` / ``TopDownMpiiDataset`` (built by
``mmpose.datasets.build_dataset`` from HRNet/Lite-HRNet@7b9049d's configs
``litehrnet_18_coco_256x192.py`` / ``litehrnet_18_mpii_256x256.py``, crop sizes reduced)
and their ``__getitem__``, with every ``np.random`` value logged by call site. Here
HRBench's real datasets, built from the Lite-HRNet protocols, are handed those values by
name (``ReplayDraws``; the build-time box-centre jitter through the generator
``jitter_box_centers`` asks for) and must give the same samples:

* draws: every recorded value is asked for, under the name of its call site;
* records (the box-centre jitter included), targets, target weights, rotation: exact;
* image tensors: bit for bit: both sides call ``cv2.getAffineTransform`` on the same
  three float32 points (the record's precision: float32 COCO boxes, float64 MPII centres;
  the zoomed scale in float64) and ``cv2.warpAffine`` (bilinear, zero border);
* evaluation inputs: ground-truth boxes (mmpose's val config) and detector boxes (its
  test config, ``use_gt_bbox=False`` with the detection file), records and crops.

Data: synthetic images from ``bench.tasks.pose.synthetic`` plus a small edit, both stored in the
golden file and written here (so these run on a fresh clone), and the shared real samples
(``../shared/data``; skipped when missing).
"""
from __future__ import annotations

import base64
import json
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from bench.tasks.pose import synthetic
from bench.tasks.pose.data.coco import COCODataset
from bench.data.draws import ReplayDraws
from bench.tasks.pose.data.mpii import MPIIDataset
from bench.suite import load_protocol

from conftest import GOLDEN, SHARED_DATA, sample_file_crcs

PROTOCOLS = {"coco": "coco_256x192_lite_hrnet", "mpii": "mpii_256x256_lite_hrnet"}
DETECTIONS = "person_detection_results/COCO_val2017_detections_AP_H_56_person.json"
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
@lru_cache(maxsize=None)
def golden(name: str) -> dict:
    return json.loads((GOLDEN / f"samples_mmpose_{name}.json").read_text())


def _unpack(text: str, shape) -> np.ndarray:
    raw = zlib.decompress(base64.b64decode(text))
    return np.frombuffer(raw, dtype=np.uint8).reshape(shape)


def _edit_coco(root: Path, edit: dict) -> None:
    """The golden's edit of the synthetic COCO files (a person with 7 labelled joints)."""
    path = root / edit["file"]
    data = json.loads(path.read_text())
    for ann in data["annotations"]:
        if ann.get("iscrowd", 0) == 0 and ann.get("num_keypoints", 0) > 0:
            for k in edit["first_keypoint_annotation_unlabel_joints"]:
                ann["keypoints"][3 * k:3 * k + 3] = [0, 0, 0]
            ann["num_keypoints"] = sum(1 for k in range(17) if ann["keypoints"][3 * k + 2] > 0)
            break
    path.write_text(json.dumps(data))


def _edit_mpii(root: Path, edit: dict) -> None:
    """The golden's edit of the synthetic MPII files (one box much smaller than its person)."""
    path = root / edit["file"]
    data = json.loads(path.read_text())
    data[0]["scale"] = round(data[0]["scale"] * edit["first_entry_scale_times"], 6)
    path.write_text(json.dumps(data))


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    """{(dataset, group): data folder}; synthetic ones written here, real ones shared."""
    out = {}
    for name, edit in (("coco", _edit_coco), ("mpii", _edit_mpii)):
        writer_rec = golden(name)["groups"]["synthetic"]["writer"]
        root = tmp_path_factory.mktemp(f"mmpose_{name}_syn")
        writer = getattr(synthetic, writer_rec["function"].rsplit(".", 1)[1])
        writer(root, **{k: tuple(v) if isinstance(v, list) else v
                        for k, v in writer_rec["kwargs"].items()})
        edit(root, writer_rec["then_edit"])
        # the same bytes as the recording (another JPEG encoder would change the pixels)
        assert sample_file_crcs(root) == sample_file_crcs(writer_rec["files_crc32"]), \
            "synthetic files differ from the recording"
        out[name, "synthetic"] = root
        real = SHARED_DATA / f"{name}_sample"
        out[name, "real"] = real if real.is_dir() else None
    return out


def _root(roots, name, group):
    root = roots[name, group]
    if root is None:
        pytest.skip(f"shared sample data missing ({SHARED_DATA}/{name}_sample)")
    return root


class _JitterReplay:
    """Stands in for the generator ``jitter_box_centers`` makes: hands out the values
    mmpose drew in ``TopDownCocoDataset._xywh2cs`` (``np.random.rand()`` and
    ``np.random.rand(2)``), in order, checking each call's shape."""

    def __init__(self, raw):
        self.values = [value for _, value, _ in raw]

    def random(self, size=None):
        if not self.values:
            raise AssertionError("the jitter asked for more draws than mmpose made")
        value = self.values.pop(0)
        assert np.shape(value) == (() if size is None else (size,)), (value, size)
        return np.asarray(value, dtype=np.float64) if size is not None else float(value)


def _sizes(name):
    s = golden(name)["sizes"]
    return dict(input_size=tuple(s["input_size_hw"]), heatmap_size=tuple(s["heatmap_size_hw"]))


def _train_dataset(name, root, group, monkeypatch=None):
    g = golden(name)["groups"][group]
    protocol = load_protocol(PROTOCOLS[name])
    if name == "mpii":
        return MPIIDataset.from_protocol(protocol, root, split=g["train_split"], train=True,
                                         **_sizes(name))
    replay = _JitterReplay(g["build_raw"])
    with monkeypatch.context() as m:
        m.setattr(np.random, "default_rng", lambda *a, **k: replay)
        ds = COCODataset.from_protocol(protocol, root, split=g["train_split"], train=True,
                                       **_sizes(name))
    assert replay.values == [], "mmpose drew more jitter values than HRBench used"
    return ds


def _eval_dataset(name, root, group, key):
    g = golden(name)["groups"][group]
    protocol = load_protocol(PROTOCOLS[name])
    if name == "mpii":
        return MPIIDataset.from_protocol(protocol, root, split=g["val_split"], **_sizes(name))
    extra = dict(use_gt_bbox=True) if key == "val_gt" else dict(
        use_gt_bbox=False, detection_file=root / DETECTIONS)
    return COCODataset.from_protocol(protocol, root, split=g["val_split"], **_sizes(name),
                                     **extra)


def _as_ours(ours, official):
    """The official value in HRBench's dtype (float32 records round float64 ones)."""
    return np.asarray(official, dtype=np.asarray(ours).dtype)


def _image_of(rec) -> np.ndarray:
    """The official float32 tensor: (levels / 255 - mean) / std of the recorded crop."""
    levels = _unpack(rec["levels_zlib_b64"], rec["shape"])
    table = (np.arange(256, dtype=np.float32)[:, None] / np.float32(255.0) - MEAN) / STD
    return np.stack([table[levels[c], c] for c in range(levels.shape[0])])


def _target_of(s) -> np.ndarray:
    codes = _unpack(s["target_codes_zlib_b64"], s["target_shape"])
    return np.asarray(s["target_values"], dtype=np.float32)[codes]


def _pixel_diff(name, x, rec):
    """The number of image values that differ from the recorded tensor at all."""
    x = x.numpy()
    assert list(x.shape) == rec["shape"] and str(x.dtype) == rec["dtype"]
    ref = _image_of(rec)
    pos = np.asarray(golden(name)["image_positions"])
    np.testing.assert_array_equal(ref[pos[:, 0], pos[:, 1], pos[:, 2]],
                                  np.asarray(rec["values_at_positions"], np.float32))
    return int((x != ref).sum())


def _sample_cases(kind):
    for name in ("coco", "mpii"):
        for group, g in golden(name)["groups"].items():
            keys = ("train",) if kind == "train" else (
                ("val_gt", "val_det") if name == "coco" else ("val",))
            for key in keys:
                for k in range(len(g[key])):
                    yield pytest.param(name, group, key, k, id=f"{name}-{group}-{key}-{k}")


def _replayed(ds, s):
    replay = ReplayDraws(s["draws"])
    ds.draws_for = lambda index: replay
    out = ds[s["index"]]
    assert replay.unused() == {}, f"recorded draws never asked for: {replay.unused()}"
    return out


@pytest.fixture(scope="module")
def datasets(roots):
    cache = {}
    mp = pytest.MonkeyPatch()

    def get(name, group, key):
        if (name, group, key) not in cache:
            root = _root(roots, name, group)
            cache[name, group, key] = _train_dataset(name, root, group, mp) if key == "train" \
                else _eval_dataset(name, root, group, key)
        return cache[name, group, key]
    yield get
    mp.undo()


# ----------------------------------------------------------------------------- the golden
def test_golden_samples_take_every_branch():
    for name, needed in (("coco", {"flip", "no_flip", "half_upper", "half_lower",
                                   "half_not_drawn", "half_not_eligible", "rot", "no_rot",
                                   "outside_heatmap", "padded", "unpadded"}),
                         ("mpii", {"flip", "no_flip", "rot", "no_rot", "outside_heatmap",
                                   "padded", "unpadded"})):
        g = golden(name)
        assert set(g["groups"]["synthetic"]["branches_covered"]) >= needed, name
        assert sum(len(gr["train"]) for gr in g["groups"].values()) >= 20
        assert g["provenance"]["commit"] == "7b9049d264fa40402a27d1f175deff3b46a6b91b"
    # the clips: a rotation normal beyond 2 (angle clipped to +-60, applied) and a zoom
    # normal beyond 1 (scale clipped to [0.75, 1.25])
    coco = [s for gr in golden("coco")["groups"].values() for s in gr["train"]]
    assert any(abs(s["draws"]["rotation"][0]) > 2 and s["draws"]["rotation_prob"][0] <= 0.6
               and abs(s["meta"]["rotation"]) == 60.0 for s in coco)
    assert any(abs(s["draws"]["scale"][0]) > 1 for s in coco)
    jittered = golden("coco")["groups"]["synthetic"]["build_draws"]
    n = len(golden("coco")["groups"]["synthetic"]["train_db"])
    assert 0 < len(jittered["box_center_shift"]) < n      # some centres moved, not all


def test_protocols_carry_the_config_settings():
    """The Lite-HRNet protocols hold the recorded configs' augmentation settings."""
    for name in ("coco", "mpii"):
        aug = load_protocol(PROTOCOLS[name]).model_dump()["augmentation"]
        ref = golden(name)["augmentation"]
        assert aug["order"] == "mmpose"
        assert aug["flip_prob"] == ref["flip_prob"] and aug["scale"] == ref["scale"]
        assert aug["rotation"] == ref["rotation"] and aug["rotation_prob"] == ref["rotation_prob"]
        assert load_protocol(PROTOCOLS[name]).model_dump()["sigma"] == ref["sigma"]
        if name == "coco":
            assert aug["half_body"] == ref["half_body"]
            assert aug["box_center_jitter"] == ref["box_center_jitter"]
        else:
            assert not aug.get("half_body") and not aug.get("box_center_jitter")


# ----------------------------------------------------------------------------- records
@pytest.mark.parametrize("name, group", [(n, g) for n in ("coco", "mpii")
                                         for g in ("synthetic", "real")])
def test_training_records_equal_mmpose(datasets, name, group):
    """Person records (COCO: with mmpose's box-centre jitter replayed) equal mmpose's db."""
    ds = datasets(name, group, "train")
    db = golden(name)["groups"][group]["train_db"]
    assert len(ds.records) == len(db)
    for rec, ref in zip(ds.records, db):
        assert rec["image_file"].endswith(ref["image_file"])
        np.testing.assert_array_equal(rec["joints"], _as_ours(rec["joints"], ref["joints_3d"]))
        np.testing.assert_array_equal(rec["visible"], np.float32(ref["joints_3d_visible"]))
        # COCO boxes are float32 on both sides, MPII's centre/scale float64
        np.testing.assert_array_equal(rec["center"], _as_ours(rec["center"], ref["center"]))
        np.testing.assert_array_equal(rec["scale"], _as_ours(rec["scale"], ref["scale"]))


def test_mpii_records_exact(datasets):
    for group in golden("mpii")["groups"]:
        ds = datasets("mpii", group, "train")
        for rec, ref in zip(ds.records, golden("mpii")["groups"][group]["train_db"]):
            assert np.asarray(rec["center"], np.float64).tolist() == ref["center"]
            assert np.asarray(rec["scale"], np.float64).tolist() == ref["scale"]


@pytest.mark.parametrize("group", ["synthetic", "real"])
def test_evaluation_records_equal_mmpose(datasets, group):
    """GT boxes (val config) and detector boxes (test config: use_gt_bbox=False,
    image_thr 0.0): the same boxes, centres, scales and scores in the same order."""
    for key in ("val_gt", "val_det"):
        ds = datasets("coco", group, key)
        db = golden("coco")["groups"][group][key + "_db"]
        assert len(ds.records) == len(db), key
        for rec, ref in zip(ds.records, db):
            assert rec["image_file"].endswith(ref["image_file"])
            np.testing.assert_array_equal(rec["center"], _as_ours(rec["center"], ref["center"]))
            np.testing.assert_array_equal(rec["scale"], _as_ours(rec["scale"], ref["scale"]))
            assert rec["score"] == float(ref["bbox_score"])
        if key == "val_gt":
            # mmpose numbers GT boxes per image from 0, HRBench across the dataset; the
            # evaluation only needs them distinct within an image, in the same order
            by_image: dict = {}
            for rec, ref in zip(ds.records, db):
                by_image.setdefault(rec["image_id"], []).append((rec["bbox_id"], ref["bbox_id"]))
            for pairs in by_image.values():
                ours, theirs = zip(*pairs)
                assert list(theirs) == list(range(len(theirs)))
                assert list(ours) == sorted(set(ours))


def _edge_root(roots, tmp_path, recipe) -> Path:
    """The synthetic COCO val files with one box 1 px wide and one 1 px high."""
    root = tmp_path / "coco_edge"
    (root / "annotations").mkdir(parents=True)
    (root / "images" / "val2017").mkdir(parents=True)
    data = json.loads((roots["coco", "synthetic"] / "annotations" /
                       "person_keypoints_val2017.json").read_text())
    kp = [a for a in data["annotations"] if a.get("iscrowd", 0) == 0
          and a.get("num_keypoints", 0) > 0]
    kp[recipe["bbox_width_1_on_keypoint_annotation"]]["bbox"][2] = 1.0
    kp[recipe["bbox_height_1_on_keypoint_annotation"]]["bbox"][3] = 1.0
    (root / "annotations" / "person_keypoints_val2017.json").write_text(json.dumps(data))
    return root


def test_degenerate_boxes_dropped_as_mmpose(roots, tmp_path):
    edge = golden("coco")["edge"]
    root = _edge_root(roots, tmp_path, edge["recipe"])
    ds = COCODataset.from_protocol(load_protocol(PROTOCOLS["coco"]), root, split="val2017",
                                   use_gt_bbox=True, **_sizes("coco"))
    assert [r["center"].tolist() for r in ds.records] == \
        [np.float32(r["center"]).tolist() for r in edge["val_gt_db"]]


# ----------------------------------------------------------------------------- samples
def _assert_same_crop(name, out, s):
    """Meta centre and scale equal as float64 values, image tensor bit for bit."""
    for field in ("center", "scale"):
        assert np.asarray(out["meta"][field], np.float64).tolist() == s["meta"][field], field
    diff = _pixel_diff(name, out["image"], s["image"])
    assert diff == 0, f"{diff} image values differ"


@pytest.mark.parametrize("name, group, key, k", list(_sample_cases("train")))
def test_training_sample_equals_mmpose(datasets, name, group, key, k):
    s = golden(name)["groups"][group]["train"][k]
    out = _replayed(datasets(name, group, "train"), s)
    np.testing.assert_array_equal(out["target"].numpy(), _target_of(s))
    np.testing.assert_array_equal(out["target_weight"].numpy(),
                                  np.asarray(s["target_weight"], np.float32))
    meta = out["meta"]
    assert meta["rotation"] == float(s["meta"]["rotation"])
    assert meta["flipped"] == s["branches"]["flip"]
    # MPII's Collect keeps no bbox_score: the db entry's (1)
    db = golden(name)["groups"][group]["train_db"][s["index"]]
    assert meta["score"] == float(s["meta"].get("bbox_score", db["bbox_score"]))
    assert meta["image_file"].endswith(s["meta"]["image_file"])
    _assert_same_crop(name, out, s)


@pytest.mark.parametrize("name, group, key, k", list(_sample_cases("eval")))
def test_evaluation_crop_equals_mmpose(datasets, name, group, key, k):
    s = golden(name)["groups"][group][key][k]
    out = datasets(name, group, key)[s["index"]]
    meta = out["meta"]
    assert meta["rotation"] == 0.0 == float(s["meta"]["rotation"])
    db = golden(name)["groups"][group][key + "_db"][s["index"]]
    assert meta["score"] == float(s["meta"].get("bbox_score", db["bbox_score"]))
    _assert_same_crop(name, out, s)


def test_box_filter_option(roots, tmp_path):
    """``box_filter: hrnet`` (HRNet's protocols) keeps the 1-px boxes mmpose drops."""
    edge = golden("coco")["edge"]
    root = _edge_root(roots, tmp_path, edge["recipe"])
    common = dict(split="val2017", use_gt_bbox=True, **_sizes("coco"))
    mmpose = COCODataset.from_protocol(load_protocol(PROTOCOLS["coco"]), root, **common)
    hrnet = COCODataset.from_protocol(load_protocol("coco_256x192_hrnet"), root, **common)
    assert load_protocol("coco_256x192_hrnet").box_filter == "hrnet"
    assert len(hrnet.records) == len(mmpose.records) + 2
    with pytest.raises(ValueError, match="box_filter must be one of"):
        COCODataset(root, "val2017", box_filter="strict")
