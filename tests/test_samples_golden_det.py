"""HRBench's VOC detection samples against CenterNet's own ctdet pascal loader (issue 28).

``tests/golden/samples_centernet_voc.json`` was recorded outside the project by running
xingyizhou/CenterNet's ``PascalVOC`` + ``CTDetDataset`` (combined as
``get_dataset('pascal', 'ctdet')`` does, options from ``opts().parse`` for
``experiments/ctdet_pascal_resdcn101_512.sh`` with a small ``--input_res``) and its
``BaseDetector.pre_process`` (``fix_res``, ``--flip_test``), every random value logged by
call site; its provenance block says what ran and what was stubbed, and how the
Detectron-style json CenterNet reads was written from the XML files. Here HRBench's real
``VOCDetection``, built from the protocol that cites CenterNet (only ``input_size`` made
small, as in the recording), is handed those values by name (``ReplayDraws``) and must
give the same targets (``hm``, ``wh``, ``reg``, ``ind``, ``reg_mask``: bit for bit),
the same crop (centre, scale, flip) and the same image tensor bit for bit: both sides
make the same OpenCV calls (imread, warpAffine with the same float32-built matrix,
cvtColor to grey) and the same numpy arithmetic, so no tolerance is needed.

Data: synthetic files written here by ``bench.tasks.detection.synthetic.write_voc`` (the
writer call is in the golden file, so these run on a fresh clone), plus the shared real
VOC 2007 sample (``../shared/data/voc_sample``; skipped when missing).
"""
from __future__ import annotations

import hashlib
import json
import zlib
from functools import lru_cache

import cv2
import numpy as np
import pytest
import torch

from bench.tasks.detection import synthetic as synthetic_det
from bench.data.draws import ReplayDraws
from bench.tasks.detection.data.voc import VOCDetection
from bench.suite import load_protocol
from conftest import GOLDEN, SHARED_DATA

PROTOCOL = "voc_512x512_flattenet"          # cites xingyizhou/CenterNet's ctdet pascal
REAL = SHARED_DATA / "voc_sample"
#: CenterNet call site (file:line of the recorded commit) -> the draw name HRBench asks for
SITES = {"datasets/sample/ctdet.py:52": "scale", "datasets/sample/ctdet.py:55": "center_x",
         "datasets/sample/ctdet.py:56": "center_y", "datasets/sample/ctdet.py:60": "shift_x",
         "datasets/sample/ctdet.py:61": "shift_y", "datasets/sample/ctdet.py:62": "scale",
         "datasets/sample/ctdet.py:64": "flip", "utils/image.py:224": "color_order",
         "utils/image.py:215": "brightness", "utils/image.py:219": "contrast",
         "utils/image.py:211": "saturation", "utils/image.py:202": "lighting"}


@lru_cache(maxsize=None)
def golden() -> dict:
    return json.loads((GOLDEN / "samples_centernet_voc.json").read_text())


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    recipe = golden()["data"]["synthetic"]
    root = tmp_path_factory.mktemp("voc_golden")
    getattr(synthetic_det, recipe["writer"])(root, **recipe["kwargs"])
    crcs = {str(p.relative_to(root)): zlib.crc32(np.ascontiguousarray(
        cv2.imread(str(p), cv2.IMREAD_UNCHANGED)).tobytes()) for p in sorted(root.rglob("*.jpg"))}
    # the decoded pixels of the recording's files (another JPEG codec would differ)
    assert crcs == recipe["decoded_crc32"], "synthetic files differ from the recording"
    out = {"synthetic": root}
    if REAL.is_dir():
        out["real"] = REAL
    return out


def _dataset(roots, f: dict, train: bool, shift=None) -> VOCDetection:
    """HRBench's dataset from the protocol, with the recording's small input."""
    if f["kind"] not in roots:
        pytest.skip(f"shared sample data ({REAL}) is not present")
    settings = golden()["settings"]
    p = load_protocol(PROTOCOL).model_dump()
    res = settings["input_res"]
    p.update(input_size=[res, res], train_sets=[[f["year"], f["split"]]],
             val_sets=[[f["year"], f["split"]]])
    # the protocol's own settings: those are what this test proves
    assert (p["channel_order"], p["box_convention"], p["numerics"], p["heatmap_radius"]) == \
        ("bgr", "centernet", "centernet", "centernet")
    assert p["output_stride"] == settings["down_ratio"] and p["max_objects"] == settings["max_objs"]
    aug = p["augmentation"]
    assert aug["flip_prob"] == settings["flip"] and aug["color_jitter"]
    assert tuple(aug["scale_range"]) == (1 - settings["scale"], 1 + settings["scale"])
    if shift is not None:                   # the recording's --not_rand_crop samples
        aug["shift"] = shift
    ds = VOCDetection.from_protocol(p, roots[f["kind"]], train=train)
    np.testing.assert_array_equal(ds.mean.ravel(), np.float32(settings["mean"]))
    np.testing.assert_array_equal(ds.std.ravel(), np.float32(settings["std"]))
    return ds


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _check_image(x: np.ndarray, want: dict):
    assert list(x.shape) == want["shape"] and str(x.dtype) == want["dtype"]
    flat = x.reshape(-1, *x.shape[-3:])
    pos = np.asarray(want["positions"])
    got = np.stack([flat[b][:, pos[:, 0], pos[:, 1]].T for b in range(flat.shape[0])])
    # bit for bit: the same OpenCV calls on the same bytes and the same arithmetic
    np.testing.assert_array_equal(got, np.asarray(want["values"], dtype=np.float32))
    sums = [float(flat[:, c].astype(np.float64).sum()) for c in range(flat.shape[1])]
    np.testing.assert_allclose(sums, want["channel_sums"], rtol=1e-12, atol=1e-9)
    assert _sha(x) == want["sha256"], "image tensors differ somewhere off the sampled positions"


def _check_targets(item: dict, want: dict):
    hm = item["hm"].numpy()
    w = want["hm"]
    assert list(hm.shape) == w["shape"] and str(hm.dtype) == want["dtypes"]["hm"]
    got_sparse = [[int(a), int(b), int(c), float(hm[a, b, c])] for a, b, c in np.argwhere(hm > 0)]
    assert got_sparse == w["sparse"] and int((hm > 0).sum()) == w["nonzero"]
    assert [float(hm[k].astype(np.float64).sum()) for k in range(len(hm))] == w["class_sums"]
    assert np.argwhere(hm == 1.0).tolist() == w["peaks"]
    assert _sha(hm) == w["sha256"]
    n = want["slots_used"]
    for key in ("wh", "reg", "ind", "reg_mask"):
        value = item[key].numpy()
        assert len(value) == want["max_objs"]
        assert value[:n].tolist() == want[key], key
        assert not value[n:].any(), key
    # CenterNet's reg_mask is uint8, HRBench's float32 (the loss multiplies by it)
    assert item["reg_mask"].dtype == torch.float32 and want["dtypes"]["reg_mask"] == "uint8"
    for key in ("wh", "reg", "ind"):
        assert str(item[key].numpy().dtype) == want["dtypes"][key], key


def _cases():
    return [pytest.param(i, id=f"{i}-{s['file']['kind']}-{s['branch']}")
            for i, s in enumerate(golden()["samples"])]


@pytest.mark.parametrize("i", _cases())
def test_training_sample_matches_official(roots, i):
    sample = golden()["samples"][i]
    f = sample["file"]
    shift = golden()["settings"]["shift"] if sample["branch"] == "not_rand_crop" else None
    ds = _dataset(roots, f, train=True, shift=shift)
    index = ds.ids.index((f["year"], f["image_id"]))
    replay = ReplayDraws(sample["draws"])
    ds.draws_for = lambda _: replay
    item = ds[index]
    assert replay.unused() == {}, "the official loader drew values HRBench did not use"
    # asked for in the order the official code draws them
    official = [SITES[r[2].split("src/lib/", 1)[1]] for r in sample["raw"]]
    assert [n for n, _ in replay.log] == official
    meta = sample["meta"]
    assert item["meta"]["flipped"] == meta["flipped"]
    assert item["meta"]["center"].dtype == np.float32
    assert item["meta"]["center"].tolist() == meta["c"]
    assert item["meta"]["scale"] == meta["s"]
    assert ds._matrix(item["meta"]["center"], item["meta"]["scale"],
                      ds.input_size[::-1]).tolist() == meta["trans_input"]
    _check_targets(item, sample["targets"])
    _check_image(item["image"].numpy(), sample["image"])


@pytest.mark.parametrize("i", range(len(golden()["evaluation"])))
def test_evaluation_input_matches_official(roots, i):
    """CenterNet's test input (``pre_process`` with ``fix_res``; ``flip_test`` stacks the
    mirrored copy, as HRBench's detection task does before the forward pass)."""
    ev = golden()["evaluation"][i]
    ds = _dataset(roots, ev["file"], train=False)
    item = ds[ds.ids.index((ev["file"]["year"], ev["file"]["image_id"]))]
    meta = item["meta"]
    assert meta["center"].tolist() == ev["meta"]["c"] and meta["scale"] == ev["meta"]["s"]
    assert list(ds.codec.output_size) == [ev["meta"]["out_height"], ev["meta"]["out_width"]]
    x = item["image"][None]
    assert ev["flip_test"] and ev["fix_res"]
    x = torch.cat([x, torch.flip(x, dims=[3])])            # bench/tasks/detection/task.py
    _check_image(x.numpy(), ev["images"])


def test_golden_takes_every_branch():
    """The recorded samples flip and do not, draw every value of CenterNet's scale grid,
    halve the crop border (small images) and keep it (the real ones), clip boxes at the
    crop edge and drop boxes that leave it, shuffle the colour operations every way, and
    take the --not_rand_crop branch."""
    g = golden()
    b = g["branches_taken"]
    assert len(g["samples"]) >= 20 and b["evaluation_inputs"] >= 3
    assert b["flipped"] and b["not_flipped"] and b["not_rand_crop"] >= 3
    assert b["scale_values"] == [0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3]
    assert b["border_halved"] and b["border_full"]
    assert b["samples_with_clipped_boxes"] and b["annotations_dropped"]
    assert len(b["color_orders"]) == 6
    assert g["provenance"]["repository"] == "xingyizhou/CenterNet"
