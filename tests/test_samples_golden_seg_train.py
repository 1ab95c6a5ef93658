"""HRBench's segmentation training samples against HRNet-Semantic-Segmentation's own
loaders (issue 28).

``tests/golden/samples_hrnet_seg_{cityscapes,lip,pascal_context}.json`` were recorded
outside the project by running the official Dataset classes (``lib/datasets/
cityscapes.py`` and ``lip.py`` of the pytorch-v1.1 branch, ``pascal_ctx.py`` of master;
the provenance block of each file says what ran and what was stubbed), with every random
value they drew logged by call site. Here HRBench's real datasets, built from the
protocols that cite those configs (only base_size and crop_size made small, as in the
recording), are handed those values by name (``ReplayDraws``) and must give the same
labels (exactly: whole label maps as run-lengths, crc32, class counts) and the same image
values: bit for bit, since both sides make the same OpenCV calls (imread, resize,
cvtColor on the same bytes) and the same float32/float64 normalisation arithmetic.

Data: synthetic files written here by ``bench.tasks.segmentation.synthetic`` (the writer call is
in the golden file, so these run on a fresh clone), plus the shared real samples
(``../shared/data``; skipped when missing).
"""
from __future__ import annotations

import json
import zlib
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.tasks.segmentation import synthetic as synthetic_seg
from bench.tasks.segmentation.data.cityscapes import CityscapesDataset
from bench.data.draws import ReplayDraws
from bench.tasks.segmentation.data.lip import LIPDataset
from bench.tasks.segmentation.data.pascal_context import PascalContextDataset
from bench.suite import load_protocol
from conftest import GOLDEN, SHARED_DATA

#: dataset -> (class, the protocol citing the recorded config, shared sample folder)
CASES = {
    "cityscapes": (CityscapesDataset, "cityscapes_512x1024_hrnet_seg_ohem", "cityscapes_sample"),
    "lip": (LIPDataset, "lip_473x473_gsto", "lip_sample"),
    "pascal_context": (PascalContextDataset, "pascal_context_480x480_gsto_59", None),
}


@lru_cache(maxsize=None)
def golden(name: str) -> dict:
    return json.loads((GOLDEN / f"samples_hrnet_seg_{name}.json").read_text())


def _decoded_crcs(paths) -> dict:
    return {p.name: zlib.crc32(np.ascontiguousarray(cv2.imread(str(p), cv2.IMREAD_UNCHANGED))
                               .tobytes()) for p in paths}


def _kwargs(recipe: dict) -> dict:
    kw = dict(recipe["kwargs"])
    if "sizes" in kw:
        kw["sizes"] = [tuple(s) for s in kw["sizes"]]
    if "size_range" in kw:
        kw["size_range"] = tuple(kw["size_range"])
    return kw


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    """{(dataset, 'synthetic' | 'real'): dataset folder}."""
    out = {}
    for name in CASES:
        recipe = golden(name)["data"]["synthetic"]
        root = tmp_path_factory.mktemp(f"{name}_syn")
        getattr(synthetic_seg, recipe["writer"])(root, **_kwargs(recipe))
        files = [p for p in sorted(root.rglob("*")) if p.suffix in (".png", ".jpg")]
        # the decoded pixels of the recording's files (another JPEG codec would differ)
        assert _decoded_crcs(files) == recipe["decoded_crc32"], \
            f"{name}: synthetic files differ from the recording"
        out[name, "synthetic"] = root
        sample = CASES[name][2]
        if sample and (SHARED_DATA / sample).is_dir():
            out[name, "real"] = SHARED_DATA / sample
    return out


def _dataset(name: str, root: Path, split: str, num_classes=None):
    """HRBench's dataset from the protocol, with the recording's small sizes."""
    cls, protocol, _ = CASES[name]
    settings = golden(name)["settings"]
    p = load_protocol(protocol).model_dump()
    p.update(crop_size=list(settings["crop_size"]), base_size=settings["base_size"],
             train_split=split)
    if num_classes is not None:
        p["num_classes"] = num_classes
    # the protocol's own augmentation settings: those are what this test proves
    aug = p["augmentation"]
    assert (aug["scale_factor"], aug["flip_prob"]) == (settings["scale_factor"], 0.5)
    return cls.from_protocol(p, root, train=True)


def _index(ds, image_name: str) -> int:
    names = [Path(f[0]).name for f in ds.files]
    return names.index(image_name)


def _check_label(label: np.ndarray, want: dict):
    assert list(label.shape) == want["shape"]
    flat = label.ravel()
    cuts = np.flatnonzero(np.diff(flat)) + 1
    starts = np.concatenate([[0], cuts])
    runs = np.diff(np.concatenate([starts, [flat.size]]))
    rle = " ".join(f"{int(flat[s])}:{int(n)}" for s, n in zip(starts, runs))
    assert rle == want["rle"]
    assert zlib.crc32(np.ascontiguousarray(label.astype(np.int64)).tobytes()) == want["crc32_int64"]
    values, counts = np.unique(label, return_counts=True)
    assert {str(int(v)): int(c) for v, c in zip(values, counts)} == want["counts"]


def _check_image(image: np.ndarray, want: dict):
    assert list(image.shape) == want["shape"] and str(image.dtype) == want["dtype"]
    pos = np.asarray(want["positions"])
    got = image[:, pos[:, 0], pos[:, 1]].T
    # bit for bit: the same OpenCV calls and the same normalisation arithmetic
    np.testing.assert_array_equal(got, np.asarray(want["values"], dtype=np.float32))
    sums = [float(image[c].astype(np.float64).sum()) for c in range(image.shape[0])]
    # equal pixels; only the float64 summation order may differ
    np.testing.assert_allclose(sums, want["channel_sums"], rtol=1e-12, atol=1e-9)


def _samples(name):
    return [pytest.param(name, i, id=f"{name}-{i}-{s['file']['kind']}")
            for i, s in enumerate(golden(name)["samples"])]


@pytest.mark.parametrize("name,i", _samples("cityscapes") + _samples("lip") +
                         _samples("pascal_context"))
def test_training_sample_matches_official(roots, name, i):
    sample = golden(name)["samples"][i]
    f = sample["file"]
    if (name, f["kind"]) not in roots:
        pytest.skip(f"shared sample data ({SHARED_DATA}) is not present")
    ds = _dataset(name, roots[name, f["kind"]], f["split"], f.get("num_classes"))
    index = _index(ds, f["image"])
    replay = ReplayDraws(sample["draws"])
    ds.draws_for = lambda _: replay
    item = ds[index]
    assert replay.unused() == {}, "the official loader drew values HRBench did not use"
    _check_label(item["label"].numpy(), sample["label"])
    _check_image(item["image"].numpy(), sample["image"])


def test_draws_are_named_in_the_official_order(roots):
    """HRBench asks for the draws in the order the official code makes them."""
    for name in CASES:
        for sample in golden(name)["samples"][:3]:
            f = sample["file"]
            if (name, f["kind"]) not in roots:
                continue
            ds = _dataset(name, roots[name, f["kind"]], f["split"], f.get("num_classes"))
            replay = ReplayDraws(sample["draws"])
            ds.draws_for = lambda _: replay
            ds[_index(ds, f["image"])]
            order = [n for n, _ in replay.log]
            official = {"base_dataset.py:120": "scale", "base_dataset.py:104": "scale",
                        "base_dataset.py:70": "crop_x", "base_dataset.py:71": "crop_y"}
            expected = [official.get(r[2].rsplit("/", 1)[1], "flip") for r in sample["raw"]]
            assert order == expected, (name, order, expected)


@pytest.mark.parametrize("name", ["cityscapes", "pascal_context", "lip"])
def test_evaluation_item_matches_official(roots, name):
    """The evaluation items of the protocols' datasets: Cityscapes and PASCAL-Context the
    whole normalised image, LIP's testval the uint8 image resized to 473 x 473 first
    (``evaluation.image_resize: loader``), each with its label at the image's own size."""
    cls, protocol, _ = CASES[name]
    for ev in golden(name)["evaluation"]:
        f = ev["file"]
        if (name, f["kind"]) not in roots:
            pytest.skip(f"shared sample data ({SHARED_DATA}) is not present")
        p = load_protocol(protocol).model_dump()
        p["val_split"] = f["split"]
        if "num_classes" in f:
            p["num_classes"] = f["num_classes"]
        ds = cls.from_protocol(p, roots[name, f["kind"]], train=False)
        item = ds[_index(ds, f["image"])]
        _check_label(item["label"].numpy(), ev["label"])
        image = item["image"].numpy()
        _check_image(image, ev["image"])
        if "crc32_float32" in ev["image"]:
            assert zlib.crc32(np.ascontiguousarray(image).tobytes()) == ev["image"]["crc32_float32"]


def test_lip_resize_in_inference_differs_from_the_loader(roots):
    """``image_resize: inference`` (the normalised tensor resized inside the prediction)
    keeps the image at its own size in the item: the option is what makes LIP match."""
    p = load_protocol("lip_473x473_gsto").model_dump()
    assert p["evaluation"]["image_resize"] == "loader"
    p["evaluation"]["image_resize"] = "inference"
    ds = LIPDataset.from_protocol(p, roots["lip", "synthetic"], train=False)
    ev = golden("lip")["evaluation"][0]
    item = ds[_index(ds, ev["file"]["image"])]
    assert list(item["image"].shape[1:]) == ev["original_size_hw"] != ev["image"]["shape"][1:]


def test_goldens_take_every_branch():
    """The recorded samples flip and do not, scale down and up (both grid ends), and
    crop with and without padding (LIP: left/right labels present in flipped crops)."""
    need = {"flip", "no_flip", "scale_down", "scale_up", "scale_one", "scale_k0",
            "unpadded"}
    for name in CASES:
        g = golden(name)
        taken = set().union(*map(set, g["branches_taken"].values()))
        top = g["settings"]["scale_factor"]
        assert need | {f"scale_k{top}", "pad_h", "pad_w"} <= taken, (name, taken)
        assert len(g["samples"]) >= 20
    lip = golden("lip")["samples"]
    assert any(s["draws"]["flip"] == [0] and set(s["flipped_pairs_present"]) & {14, 15}
               for s in lip)
