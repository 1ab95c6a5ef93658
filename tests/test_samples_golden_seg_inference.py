"""Issue 28: HRBench's test-time segmentation inference against HRNet-Semantic-Segmentation's
own (pytorch-v1.1 @88419ab, the branch the protocols cite, and two cases of the HRNet-OCR
branch @0bbb288 for MODEL.ALIGN_CORNERS True and a model returning [aux, main]; its
lib/core/function.py ``testval`` through the datasets' ``multi_scale_inference`` /
``inference``), recorded in tests/golden/samples_hrnet_seg_inference.json by
/work/scratch/samples_seg_infer/record.py with the model of tests/golden_samples_model.py.

Every case runs HRBench's real path: the protocol's ``evaluation:`` entry (stored in the
case, validated by ``bench.suite.SegEvaluation``), ``SegmentationTask._inference_args`` and
``predict_scores``. Checked: the size of each scale, every window and every model input
(in order), the combined scores (per-class sums and a grid of values, float64, within
1e-5), and the final prediction (argmax counts and a crc32 of the argmax map, exactly).
"""
from __future__ import annotations

import json
import types
import zlib

import cv2
import numpy as np
import pytest
import torch

from bench.tasks.segmentation.protocol import SegEvaluation, SegmentationProtocol
from bench.tasks.segmentation import inference as si
from bench.tasks.segmentation.task import SegmentationTask
from conftest import GOLDEN, SHARED_DATA
from golden_samples_model import golden_model, synthetic_image

GOLDEN_FILE = GOLDEN / "samples_hrnet_seg_inference.json"
DOC = json.loads(GOLDEN_FILE.read_text())
CASES = {c["name"]: c for c in DOC["cases"]}
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
LIP_PAIRS = ((14, 15), (16, 17), (18, 19))


def _bgr(case) -> np.ndarray:
    src = case["image"]
    if src["kind"] == "file":
        path = SHARED_DATA / src["path"]
        if not path.is_file():
            pytest.skip("../shared/data is missing")
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    else:
        image = synthetic_image(src)
    if case.get("loader_resize"):
        # LIP's testval loader resizes the uint8 image to the crop (the same OpenCV call)
        image = cv2.resize(image, tuple(case["loader_resize"]), interpolation=cv2.INTER_LINEAR)
    return image


def _normalised(bgr: np.ndarray) -> torch.Tensor:
    x = bgr.astype(np.float64)[:, :, ::-1] / 255.0
    x = (x - np.array(MEAN)) / np.array(STD)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]


def _protocol(evaluation: dict, num_classes: int) -> SegmentationProtocol:
    """A protocol of the case's evaluation; the rest at the schema's defaults (the loss's
    align_corners among them, which an evaluation without its own follows)."""
    return SegmentationProtocol(name="golden", task="segmentation", dataset="cityscapes",
                                input_size=(64, 128), num_classes=num_classes,
                                evaluation=SegEvaluation.model_validate(evaluation))


def _run(case, monkeypatch):
    image = _normalised(_bgr(case))
    np.testing.assert_allclose(image[0].sum((1, 2)).numpy(), case["input"]["channel_sums"],
                               rtol=1e-12)
    protocol = _protocol(case["evaluation"], case["num_classes"])
    dataset = types.SimpleNamespace(
        flip_pairs=LIP_PAIRS if case["dataset"] == "lip" else (), mean=MEAN, std=STD,
        num_classes=case["num_classes"])
    args = SegmentationTask()._inference_args(dataset, protocol)
    boxes = []
    real_boxes = si.window_boxes

    def logged(h, w, crop, stride, style="shift"):
        out = real_boxes(h, w, crop, stride, style)
        boxes.extend(out)
        return out

    monkeypatch.setattr(si, "window_boxes", logged)
    # HRBench's models return {"out", "aux"} where HRNet-OCR's return [aux, out]
    model = golden_model(case["num_classes"], seed=case["model_seed"],
                         outputs="dict" if case.get("num_outputs", 1) > 1 else "tensor")
    sizes = []
    model.register_forward_pre_hook(lambda m, a: sizes.append(list(a[0].shape[-2:])))
    scores = si.predict_scores(model, image, case["num_classes"],
                               out_size=tuple(case["label_size"]), **args)
    return scores, boxes, sizes, args


@pytest.mark.parametrize("name", list(CASES))
def test_scores_match_hrnet_seg(name, monkeypatch):
    case = CASES[name]
    scores, boxes, sizes, args = _run(case, monkeypatch)
    # the scaled sizes of HRNet's multi_scale_aug
    base = args["image_size"]
    got_sizes = [[s, list(si._scaled_size(base or case["input"]["shape"][-2:], s,
                                          args["base_size"], base))]
                 for s in case["scales"]]
    assert got_sizes == case["scaled_sizes"]
    # every window (y0, y1, x0, x1), in order, and every model input size, in order
    assert [list(b) for b in boxes] == [w[1:5] for w in case["windows"]]
    assert sizes == case["forward_sizes"]
    ref = case["scores"]
    p = scores[0].numpy()
    assert list(p.shape) == ref["shape"] and p.dtype == np.float64
    np.testing.assert_allclose(p.sum(axis=(1, 2)), ref["class_sums"], rtol=1e-5, atol=1e-8)
    grid = p[:, ref["grid_rows"]][:, :, ref["grid_cols"]]
    np.testing.assert_allclose(grid, np.array(ref["grid_values"]), rtol=1e-5, atol=1e-8)
    am = p.argmax(0).astype(np.uint8)
    assert np.bincount(am.reshape(-1), minlength=p.shape[0]).tolist() == ref["argmax_counts"]
    assert zlib.crc32(am.tobytes()) == ref["argmax_crc32"]


def test_golden_cases_take_every_branch():
    """The recorded cases cover: whole image at scale <= 1 larger than the crop
    (Cityscapes), shifted-back overlapping windows, padded edge windows and a padded whole
    image (BaseDataset), the LIP channel swap, and scores resized to a different label."""
    small = CASES["cityscapes_synth_small_crop"]
    assert [48, 96] in small["forward_sizes"] and small["crop_size"] == [32, 64]
    shifted = [w for w in small["windows"] if w[2] - w[1] == 32 and w[1] % 32]
    assert shifted                                     # a window moved back to fit
    pc = CASES["pascal_context_synth_ms_flip"]
    assert all(w[5] == [60, 60] for w in pc["windows"])
    assert any(w[2] - w[1] < 60 for w in pc["windows"])  # edge windows padded to the crop
    assert pc["forward_sizes"][0] == [60, 60] and pc["scaled_sizes"][0][1] == [24, 33]
    assert CASES["lip_synth_ms_flip"]["windows"] and CASES["lip_synth_ms_flip"]["flip"]
    lip = CASES["lip_sample_val_flip"]
    assert lip["label_size"] != lip["crop_size"]
    assert DOC["provenance"]["pytorch-v1.1"]["commit"] == "88419ab18813f2c9193985e2d4d31d3d07abe839"
    assert {c["evaluation"]["align_corners"] for c in DOC["cases"]} == {False, True}


def test_softmax_mean_is_an_explicit_option_and_differs(monkeypatch):
    """The other ensemble (mean of softmax probabilities) stays available; on a
    multi-scale + flip case it is not HRNet's score."""
    case = CASES["cityscapes_synth_ms_flip"]
    hrnet, *_ = _run(case, monkeypatch)
    ev = dict(case["evaluation"], ensemble="softmax_mean")
    ev["sliding_window"] = dict(ev["sliding_window"], style="shift")
    protocol = _protocol(ev, 19)
    dataset = types.SimpleNamespace(flip_pairs=(), mean=MEAN, std=STD)
    args = SegmentationTask()._inference_args(dataset, protocol)
    assert "pad_value" not in args
    probs = si.predict_scores(golden_model(19, seed=case["model_seed"]),
                              _normalised(_bgr(case)), 19, out_size=(64, 128), **args)
    torch.testing.assert_close(probs.sum(1), torch.ones(1, 64, 128, dtype=torch.float64))
    assert not torch.allclose(probs / probs.sum(1, keepdim=True),
                              hrnet / hrnet.sum(1, keepdim=True), atol=1e-6)


def test_hrnet_window_styles_need_the_hrnet_ensemble():
    from pydantic import ValidationError
    window = {"crop": [4, 4], "stride": [2, 2], "style": "hrnet"}
    assert SegEvaluation(ensemble="hrnet", sliding_window=window).sliding_window.style == "hrnet"
    with pytest.raises(ValidationError, match="needs ensemble: hrnet"):
        SegEvaluation(sliding_window=window)
    with pytest.raises(ValueError, match="needs ensemble: hrnet"):
        si.predict_scores(golden_model(3), torch.zeros(1, 3, 8, 8), 3,
                          sliding_window=((4, 4), (2, 2), "hrnet"))
