"""Segmentation confusion matrix, mIoU / aAcc / mAcc and the evaluator, on hand-computed
cases (numpy only)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from bench.tasks.segmentation.metrics import SegmentationEvaluator, confusion_matrix, segmentation_metrics

# 4 classes; class 3 is in neither label nor prediction at counted pixels; one pixel is
# ignored (its prediction 3 must not count).
LABEL = np.array([[0, 0, 1, 255],
                  [1, 2, 2, 0]])
PRED = np.array([[0, 1, 1, 3],
                 [2, 2, 0, 0]])
# counted (label, pred): (0,0) (0,1) (1,1) (1,2) (2,2) (2,0) (0,0)
CONF = np.array([[2, 1, 0, 0],
                 [0, 1, 1, 0],
                 [1, 0, 1, 0],
                 [0, 0, 0, 0]])


def test_confusion_matrix_hand_case():
    conf = confusion_matrix(PRED, LABEL, 4)
    assert conf.dtype == np.int64 and conf.shape == (4, 4)
    np.testing.assert_array_equal(conf, CONF)
    # without an ignore index the 255 label is an error, not a dropped pixel
    with pytest.raises(ValueError, match="255"):
        confusion_matrix(PRED, LABEL, 4, ignore_index=None)


def test_confusion_matrix_other_ignore_index_and_dtypes():
    label = np.where(LABEL == 255, -1, LABEL).astype(np.int8)
    conf = confusion_matrix(PRED.astype(np.uint8), label, 4, ignore_index=-1)
    np.testing.assert_array_equal(conf, CONF)


def test_metrics_hand_case_with_nan_class():
    m = segmentation_metrics(CONF, class_names=["a", "b", "c", "d"])
    assert list(m)[:3] == ["mIoU", "aAcc", "mAcc"]
    # IoU = TP / (TP + FP + FN): 2/4, 1/3, 1/3, undefined
    assert m["IoU.a"] == pytest.approx(50.0)
    assert m["IoU.b"] == pytest.approx(100 / 3)
    assert m["IoU.c"] == pytest.approx(100 / 3)
    assert math.isnan(m["IoU.d"])
    assert m["mIoU"] == pytest.approx((50 + 100 / 3 + 100 / 3) / 3)
    # 4 of the 7 counted pixels are right
    assert m["aAcc"] == pytest.approx(400 / 7)
    # class accuracies 2/3, 1/2, 1/2; class d has no label pixel
    assert m["Acc.a"] == pytest.approx(200 / 3)
    assert m["Acc.b"] == pytest.approx(50.0)
    assert math.isnan(m["Acc.d"])
    assert m["mAcc"] == pytest.approx((200 / 3 + 50 + 50) / 3)


def test_class_only_predicted_counts_zero_iou_but_no_accuracy():
    m = segmentation_metrics(np.array([[1, 1], [0, 0]]))
    assert m["IoU.0"] == pytest.approx(50.0) and m["IoU.1"] == 0.0
    assert m["mIoU"] == pytest.approx(25.0)       # the false-positive class counts
    assert math.isnan(m["Acc.1"]) and m["mAcc"] == pytest.approx(50.0)


def test_default_names_and_empty_matrix():
    m = segmentation_metrics(np.zeros((2, 2), dtype=np.int64))
    assert set(m) == {"mIoU", "aAcc", "mAcc", "IoU.0", "IoU.1", "Acc.0", "Acc.1"}
    assert all(math.isnan(v) for v in m.values())


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"pred \(2, 3\), label \(3, 2\)"):
        confusion_matrix(np.zeros((2, 3), int), np.zeros((3, 2), int), 4)
    with pytest.raises(ValueError, match="prediction values outside 0..3: -1, 4"):
        confusion_matrix(np.array([0, 4, -1]), np.array([0, 1, 2]), 4)
    with pytest.raises(ValueError, match="label values outside 0..3.*: 7"):
        confusion_matrix(np.array([0, 1]), np.array([0, 7]), 4)
    with pytest.raises(ValueError, match="integer"):
        confusion_matrix(np.zeros(3), np.zeros(3, int), 4)
    with pytest.raises(ValueError, match="3 class names for 4 classes"):
        segmentation_metrics(CONF, class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="square"):
        segmentation_metrics(np.zeros((2, 3)))


def test_prediction_at_ignored_pixel_is_not_checked():
    # predictions made from the labels themselves carry the ignore value
    conf = confusion_matrix(LABEL, LABEL, 4)
    np.testing.assert_array_equal(np.diag(conf), [3, 2, 2, 0])


def _batches(seed=0):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 5, size=(4, 6, 7))
    label[rng.random(label.shape) < 0.1] = 255
    pred = np.where(rng.random(label.shape) < 0.6, np.where(label == 255, 0, label),
                    rng.integers(0, 5, size=label.shape))
    return pred, label


def test_evaluator_two_batches_equal_one_call():
    pred, label = _batches()
    ev = SegmentationEvaluator(5)
    ev.process({"pred": pred[:1], "label": label[:1]})
    ev.process({"pred": pred[1:], "label": label[1:]})
    assert len(ev) == 2
    whole = segmentation_metrics(confusion_matrix(pred, label, 5))
    got = ev.compute()
    assert list(got) == list(whole)
    np.testing.assert_allclose(list(got.values()), list(whole.values()))


def test_evaluator_lists_of_images_of_different_sizes():
    ev = SegmentationEvaluator(4, class_names=["a", "b", "c", "d"])
    ev.process({"pred": [PRED, PRED[:1, :2]], "label": [LABEL, LABEL[:1, :2]]})
    # the extra 1 x 2 image adds (0,0) and (0,1)
    expected = CONF + np.array([[1, 1, 0, 0]] + [[0] * 4] * 3)
    np.testing.assert_array_equal(ev.results[0], expected)
    assert ev.compute()["IoU.a"] == pytest.approx(50.0)   # TP 3 / (label 5 + pred 4 - 3)
    with pytest.raises(ValueError, match="lists of one length"):
        ev.process({"pred": [PRED], "label": [LABEL, LABEL]})


def test_evaluator_gathered_over_two_ranks_equals_one_process():
    pred, label = _batches(1)
    single = SegmentationEvaluator(5)
    ranks = [SegmentationEvaluator(5), SegmentationEvaluator(5)]
    for i in range(len(pred)):
        single.process({"pred": pred[i:i + 1], "label": label[i:i + 1]})
        ranks[i % 2].process({"pred": pred[i:i + 1], "label": label[i:i + 1]})

    def gather(obj):   # what all_gather_objects returns: every rank's object
        return [ranks[0].results, ranks[1].results]

    got = ranks[0].evaluate(gather=gather, is_main=True)
    assert ranks[1].evaluate(gather=gather, is_main=False) is None
    expected = single.evaluate()
    np.testing.assert_allclose(list(got.values()), list(expected.values()))
    assert got["mIoU"] != ranks[0].compute()["mIoU"]   # one rank alone would differ


def test_evaluator_without_results_raises():
    with pytest.raises(ValueError, match="no predictions"):
        SegmentationEvaluator(3).compute()


def test_absent_classes_zero_counts_them_as_0_in_the_means():
    """HRNet-Semantic-Segmentation's testval (``absent='zero'``): tp / max(1, union), so a
    class absent from label and prediction is 0 in mIoU and mAcc; 'skip' leaves it out."""
    from bench.tasks.segmentation.metrics import segmentation_metrics
    conf = np.array([[2, 0, 0], [0, 0, 0], [1, 0, 1]])
    skip = segmentation_metrics(conf)
    zero = segmentation_metrics(conf, absent="zero")
    assert skip["mIoU"] == pytest.approx((200 / 3 + 50) / 2)
    assert zero["mIoU"] == pytest.approx((200 / 3 + 0 + 50) / 3)
    assert skip["mAcc"] == pytest.approx(75.0) and zero["mAcc"] == pytest.approx(50.0)
    assert np.isnan(skip["IoU.1"]) and zero["IoU.1"] == 0.0
    assert skip["aAcc"] == zero["aAcc"] == pytest.approx(75.0)
    with pytest.raises(ValueError, match="absent must be one of"):
        segmentation_metrics(conf, absent="nan")
