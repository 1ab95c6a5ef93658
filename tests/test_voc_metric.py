"""PASCAL VOC detection mAP (the devkit's voc_eval.py rules) and its evaluator, on
hand-computed cases (numpy only)."""
from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from bench.tasks.detection.labels import VOC_CLASSES
from bench.tasks.detection.metrics import VOCDetectionEvaluator, voc_ap, voc_detection_map, voc_iou

BOX = [0, 0, 9, 9]              # 10 x 10 pixels with the +1 convention: area 100
FAR = [50, 50, 60, 60]          # overlaps nothing


def det(image_id, score, bbox=BOX, category="cat"):
    return {"image_id": image_id, "category": category, "score": score, "bbox": list(bbox)}


def obj(bbox=BOX, category="cat", difficult=False):
    return {"category": category, "bbox": list(bbox), "difficult": difficult}


def test_iou_uses_inclusive_pixels():
    # x overlap 5..9 = 5 pixels, full 10 rows: 50 / (100 + 100 - 50)
    iou = voc_iou(np.array([BOX]), np.array([[5, 0, 14, 9], FAR, BOX]))
    np.testing.assert_allclose(iou, [[1 / 3, 0.0, 1.0]])
    # a one-pixel box has area 1, not 0
    assert voc_iou([[3, 3, 3, 3]], [[3, 3, 3, 3]])[0, 0] == 1.0


def test_voc_ap_11_point_and_area_by_hand():
    # npos 4; detections TP, FP, TP, TP, FP
    rec = [0.25, 0.25, 0.5, 0.75, 0.75]
    prec = [1.0, 0.5, 2 / 3, 0.75, 0.6]
    # envelope: 1 up to recall 0.25, then 0.75 up to 0.75, then 0
    assert voc_ap(rec, prec, use_07_metric=False) == pytest.approx(0.25 * 1 + 0.5 * 0.75)
    # t = 0, .1, .2 -> 1; t = .3 .. .7 -> 0.75; t = .8, .9, 1 -> 0
    assert voc_ap(rec, prec, use_07_metric=True) == pytest.approx((3 * 1 + 5 * 0.75) / 11)
    assert voc_ap([], [], use_07_metric=True) == 0.0
    assert voc_ap([], [], use_07_metric=False) == 0.0


def test_voc_ap_keeps_the_devkit_float_thresholds():
    # np.arange(0, 1.1, 0.1)[3] is 0.30000000000000004: a recall of exactly 3/10 does
    # not reach it, so three perfect detections of ten objects score 3/11, not 4/11
    assert voc_ap([1 / 10, 2 / 10, 3 / 10], [1.0, 1.0, 1.0]) == pytest.approx(3 / 11)


def test_map_11_point_and_area_end_to_end():
    # four images with one cat each; TP, FP, TP, TP, FP in score order; img3's cat missed
    annotations = {f"img{i}": [obj()] for i in range(4)}
    dets = [det("img0", 0.9), det("img0", 0.8, FAR), det("img1", 0.7), det("img2", 0.6),
            det("img3", 0.5, FAR)]
    area = voc_detection_map(dets, annotations, use_07_metric=False)
    assert list(area) == ["mAP", "AP.cat"]
    assert area["AP.cat"] == pytest.approx(62.5) and area["mAP"] == pytest.approx(62.5)
    assert voc_detection_map(dets, annotations)["mAP"] == pytest.approx(100 * 6.75 / 11)
    # the input order is irrelevant: detections are sorted by score
    assert voc_detection_map(dets[::-1], annotations)["mAP"] == pytest.approx(100 * 6.75 / 11)


def test_duplicate_detection_is_a_false_positive():
    annotations = {"a": [obj()], "b": [obj()]}
    dets = [det("a", 0.9), det("a", 0.8, [0, 0, 9, 8]), det("b", 0.7)]
    # TP, FP, TP: recall .5 .5 1, precision 1 .5 2/3
    out = voc_detection_map(dets, annotations, use_07_metric=False)
    assert out["mAP"] == pytest.approx(100 * (0.5 * 1 + 0.5 * 2 / 3))
    out = voc_detection_map(dets, annotations)
    assert out["mAP"] == pytest.approx(100 * (6 * 1 + 5 * 2 / 3) / 11)
    # without the duplicate both objects are found at precision 1
    assert voc_detection_map([dets[0], dets[2]], annotations)["mAP"] == pytest.approx(100.0)


def test_best_object_already_matched_means_false_positive():
    # the devkit takes the best-overlapping object before looking at the matched flags:
    # the second detection overlaps A (0.9) more than B (80/90), A is taken -> FP,
    # although B is free and overlaps it by more than 0.5
    a, b = [0, 0, 9, 9], [0, 0, 9, 7]
    iou = voc_iou([[0, 0, 9, 8]], [a, b])[0]
    assert iou[0] == pytest.approx(0.9) and iou[1] == pytest.approx(80 / 90)
    annotations = {"img": [obj(a), obj(b)]}
    dets = [det("img", 0.9, a), det("img", 0.8, [0, 0, 9, 8])]
    # TP, FP on two objects: recall .5 .5, precision 1 .5 -> area 0.5
    assert voc_detection_map(dets, annotations, use_07_metric=False)["mAP"] == pytest.approx(50.0)


def test_detection_of_a_difficult_object_is_ignored():
    annotations = {"a": [obj()], "d": [obj(difficult=True)], "b": [obj()]}
    on_difficult = det("d", 0.95)            # first in score order: the 0/0 precision case
    rest = [det("a", 0.9), det("a", 0.85, FAR), det("b", 0.8)]
    for use_07 in (True, False):
        with_it = voc_detection_map([on_difficult] + rest, annotations, use_07_metric=use_07)
        without = voc_detection_map(rest, annotations, use_07_metric=use_07)
        assert with_it == without
    # npos is 2 (the difficult object does not count): TP, FP, TP as in the duplicate case
    assert without["mAP"] == pytest.approx(100 * (0.5 + 0.5 * 2 / 3))
    # a box that misses the difficult object (IoU 0) is an ordinary FP
    missing = voc_detection_map([det("d", 0.95, FAR)] + rest, annotations, use_07_metric=False)
    assert missing["mAP"] < without["mAP"]
    # only difficult objects: no positive -> NaN, not a division by zero
    only = voc_detection_map([on_difficult], {"d": [obj(difficult=True)]})
    assert math.isnan(only["mAP"]) and math.isnan(only["AP.cat"])


def test_iou_exactly_at_threshold_does_not_match():
    annotations = {"img": [obj()]}
    half = [0, 0, 9, 4]            # 10 x 5 = 50 pixels inside the 100: IoU exactly 0.5
    above = [0, 0, 9, 4.01]        # 10 x 5.01: IoU 0.501
    assert voc_iou([half], [BOX])[0, 0] == 0.5
    assert voc_detection_map([det("img", 0.9, half)], annotations)["mAP"] == 0.0
    assert voc_detection_map([det("img", 0.9, above)], annotations)["mAP"] == pytest.approx(100.0)
    assert voc_detection_map([det("img", 0.9, above)], annotations,
                             iou_threshold=0.6)["mAP"] == 0.0


def test_multi_class_mean_leaves_out_the_nan_class():
    annotations = {"i0": [obj(category="cat"), obj(FAR, "dog")],
                   "i1": [obj(category="dog"), obj(FAR, "bird", difficult=True)],
                   "i2": [obj(category="cow")]}
    dets = [det("i0", 0.9, BOX, "cat"), det("i1", 0.8, BOX, "dog"),
            det("i1", 0.7, FAR, "bird")]    # bird: on its difficult object, ignored
    out = voc_detection_map(dets, annotations, use_07_metric=False,
                            class_names=["cat", "dog", "bird", "cow"])
    assert list(out) == ["mAP", "AP.cat", "AP.dog", "AP.bird", "AP.cow"]
    assert out["AP.cat"] == pytest.approx(100.0)
    assert out["AP.dog"] == pytest.approx(50.0)        # 1 of 2 at precision 1
    assert math.isnan(out["AP.bird"])                  # no non-difficult object
    assert out["AP.cow"] == 0.0                        # objects, no detection
    assert out["mAP"] == pytest.approx((100.0 + 50.0 + 0.0) / 3)
    # without class_names: the annotated categories, sorted
    assert list(voc_detection_map(dets, annotations)) == [
        "mAP", "AP.bird", "AP.cat", "AP.cow", "AP.dog"]
    # the 20 VOC classes: the 16 without objects are NaN and out of the mean
    voc = voc_detection_map(dets, annotations, use_07_metric=False, class_names=VOC_CLASSES)
    assert len(voc) == 21 and voc["mAP"] == pytest.approx(50.0)
    assert sum(math.isnan(v) for v in voc.values()) == 17


def test_invalid_inputs():
    annotations = {"img": [obj()]}
    with pytest.raises(ValueError, match="bbox"):
        voc_detection_map([det("img", 0.9, [0, 0, 9])], annotations)
    with pytest.raises(ValueError, match="bbox"):
        voc_detection_map([], {"img": [obj([0, 0, 9, 9, 1])]})
    with pytest.raises(ValueError, match="'nowhere'"):
        voc_detection_map([det("nowhere", 0.9)], annotations)
    with pytest.raises(ValueError, match="'score'"):
        voc_detection_map([{"image_id": "img", "category": "cat", "bbox": BOX}], annotations)
    with pytest.raises(ValueError, match="'dog'"):
        voc_detection_map([det("img", 0.9, category="dog")], annotations, class_names=["cat"])
    with pytest.raises(ValueError, match="'dog'"):
        voc_detection_map([], {"img": [obj(category="dog")]}, class_names=["cat"])
    # without class_names a category nobody annotated forms no class
    out = voc_detection_map([det("img", 0.9), det("img", 0.99, category="dog")], annotations)
    assert list(out) == ["mAP", "AP.cat"] and out["mAP"] == pytest.approx(100.0)


# --- evaluator ----------------------------------------------------------------------------

ANNOTATIONS = {"i0": [obj(category="cat"), obj(FAR, "dog")],
               "i1": [obj(category="dog"), obj([20, 20, 40, 40], "cat", difficult=True)],
               "i2": [obj(category="cat"), obj(category="dog")]}
BATCHES = [[det("i0", 0.9, BOX, "cat"), det("i0", 0.6, [51, 50, 60, 61], "dog"),
            det("i0", 0.3, [0, 0, 9, 8], "cat")],
           [det("i1", 0.8, [20, 20, 40, 41], "cat"), det("i1", 0.7, BOX, "dog"),
            det("i1", 0.2, FAR, "cat")],
           [det("i2", 0.5, [1, 1, 9, 9], "cat"), det("i2", 0.4, FAR, "dog")]]


def _evaluator():
    return VOCDetectionEvaluator(ANNOTATIONS, class_names=["cat", "dog"])


def test_evaluator_batches_equal_one_call():
    ev = _evaluator()
    for batch in BATCHES:
        ev.process({"detections": batch})
    assert len(ev) == 3
    expected = voc_detection_map([d for b in BATCHES for d in b], ANNOTATIONS,
                                 class_names=["cat", "dog"])
    assert ev.compute() == expected
    assert 0.0 < expected["mAP"] < 100.0
    # results are plain python: they pickle for the cross-rank gather
    assert pickle.loads(pickle.dumps(ev.results)) == ev.results


def test_evaluator_converts_numpy_values():
    ev = _evaluator()
    ev.process({"detections": [{"image_id": "i0", "category": "cat",
                                "score": np.float32(0.9), "bbox": np.array(BOX, np.float32)}]})
    stored = ev.results[0][0]
    assert type(stored["score"]) is float and stored["bbox"] == [0.0, 0.0, 9.0, 9.0]
    with pytest.raises(ValueError, match="'i9'"):
        ev.process({"detections": [det("i9", 0.5)]})


def test_evaluator_two_rank_gather_equals_single_process():
    single = _evaluator()
    ranks = [_evaluator(), _evaluator()]
    for i, batch in enumerate(BATCHES):
        single.process({"detections": batch})
        ranks[i % 2].process({"detections": batch})

    def gather(obj):
        # every rank contributes its own results, in rank order
        return [r.results for r in ranks]

    assert ranks[0].evaluate(gather, is_main=True) == single.compute()
    assert ranks[1].evaluate(gather, is_main=False) is None
