"""The detection task plug-in (FlatteNet Table X): loss terms, the target oracle through
the codec and the VOC metric, and a smoke job on generated VOC data."""
import math

import numpy as np
import pytest
import torch

from bench.suite import load_protocol
from bench.tasks import get_task
from conftest import SHARED_DATA

TASK = get_task("detection")
VOC_SAMPLE = SHARED_DATA / "voc_sample"


def protocol(**changes):
    return {**load_protocol("voc_512x512_flattenet").model_dump(mode="json"), **changes}


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("det")
    TASK.write_smoke_data(root, seed=0)
    return root


def test_the_task_is_registered_and_reports_the_suites_measure():
    assert TASK.name == "detection" and TASK.datasets == ("voc",)
    assert "mAP@0.5" in TASK.metric_names


def test_loss_has_centernets_three_weighted_terms(voc_root):
    from bench.tasks.detection.losses import centernet_focal_loss, reg_l1_loss
    ds = TASK.build_dataset(protocol(input_size=[128, 128]), voc_root, train=True)
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    torch.manual_seed(0)
    hm, wh, reg = torch.randn(2, 20, 32, 32), torch.rand(2, 2, 32, 32), torch.rand(2, 2, 32, 32)
    terms = TASK.loss({"out": (hm, wh, reg)}, batch, protocol())
    assert set(terms) == {"heatmap", "size", "offset"}
    assert terms["heatmap"].item() == pytest.approx(centernet_focal_loss(hm, batch["hm"]).item())
    assert terms["size"].item() == pytest.approx(
        0.1 * reg_l1_loss(wh, batch["ind"], batch["reg_mask"], batch["wh"]).item())
    with pytest.raises(ValueError, match=r"\(heatmap logits, sizes, offsets\)"):
        TASK.loss({"out": hm}, batch, protocol())


def test_decoded_targets_score_map_100_on_generated_voc(voc_root):
    from bench.training.evaluate import evaluate_targets
    p = protocol()
    val = TASK.build_dataset(p, voc_root, train=False)
    metrics = evaluate_targets(TASK, val, p)
    _assert_every_present_class_found(metrics, val)
    assert metrics["mAP"] == metrics["mAP@0.5"]


def _present(val) -> set:
    return {o["category"] for objs in val.annotations().values() for o in objs
            if not o["difficult"]}


def _assert_every_present_class_found(metrics, val):
    """AP 100 for each class with ground truth; the others score 0 in the mean, as
    CenterNet's ``np.mean(aps)`` over the 20 classes (``empty_classes="zero"``)."""
    present = _present(val)
    assert 0 < len(present) < 20
    for name in val.class_names:
        assert metrics[f"AP.{name}"] == pytest.approx(100.0 if name in present else 0.0), name
    assert metrics["mAP@0.5"] == pytest.approx(100.0 * len(present) / 20)


@pytest.mark.data
@pytest.mark.skipif(not VOC_SAMPLE.is_dir(), reason="../shared/data/voc_sample is absent")
def test_decoded_targets_score_map_100_on_the_real_voc_sample():
    """The real VOC 2007 test images (000005 has two difficult chairs: found again, they
    are neither true nor false positives)."""
    from bench.training.evaluate import evaluate_targets
    p = protocol()
    val = TASK.build_dataset(p, VOC_SAMPLE, train=False)
    assert len(val) == 5
    metrics = evaluate_targets(TASK, val, p)
    _assert_every_present_class_found(metrics, val)


def test_the_flip_test_averages_a_mirrored_pass(voc_root):
    """A model whose heatmap is a function of the column index: the flip test makes it
    mirror-symmetric, which the plain pass is not."""
    class Ramp(torch.nn.Module):
        def forward(self, x):
            b, _, h, w = x.shape
            col = torch.linspace(-3, 3, w // 4).expand(b, 20, h // 4, w // 4)
            return col, torch.full((b, 2, h // 4, w // 4), 8.0), torch.zeros(b, 2, h // 4, w // 4)
    p = protocol(input_size=[128, 128])
    val = TASK.build_dataset(p, voc_root, train=False)
    batch = torch.utils.data.default_collate([val[0]])
    plain = TASK.predict(Ramp(), batch, val, {**p, "evaluation": {**p["evaluation"], "flip": False}},
                         torch.device("cpu"))["detections"]
    flipped = TASK.predict(Ramp(), batch, val, p, torch.device("cpu"))["detections"]
    assert max(d["score"] for d in plain) > 0.9              # sigmoid(3): the right edge
    assert max(d["score"] for d in flipped) == pytest.approx(0.5, abs=1e-6)


def test_a_smoke_job_trains_and_scores_map(voc_root, tmp_path):
    from bench.job import Job
    job = Job("flattenet_resnet101_det", protocol(), work_dir=str(tmp_path / "w"),
              profile="smoke", data_root=str(voc_root), overrides={"backbone": "resnet50"},
              record_path=str(tmp_path / "run.json"))
    assert job.protocol["input_size"] == [256, 256]          # fitted to the generated images
    record = job()
    assert record["status"] == "ok", record.get("traceback")
    assert record["task"] == "detection" and record["val_samples"] == 4
    assert 0.0 <= record["metrics"]["mAP@0.5"] <= 100.0
    val = TASK.build_dataset(job.protocol, voc_root, train=False)
    # the smoke profile leaves classes without ground truth out, so the oracle scores 100
    assert job.protocol["evaluation"]["empty_classes"] == "skip"
    assert 0 < len(_present(val)) < 20
    assert record["target_metrics"]["mAP@0.5"] == pytest.approx(100.0)
    assert record["training"]["iterations"] == 6 and math.isfinite(record["training"]["final_loss"])


# --- CenterNet's test-time details (tests/test_predictions_golden_det.py), each default
# --- against its alternative


class _Const(torch.nn.Module):
    """Heatmap logits -12 everywhere but one peak of +12 (class 3), sizes 8, offsets 0."""

    def forward(self, x):
        b, _, h, w = x.shape
        hm = torch.full((b, 20, h // 4, w // 4), -12.0)
        hm[:, 3, 5, 7] = 12.0
        return hm, torch.full((b, 2, h // 4, w // 4), 8.0), torch.zeros(b, 2, h // 4, w // 4)


def test_the_test_time_heatmap_is_centernets_plain_sigmoid(voc_root):
    """detectors/ctdet.py ``process``: ``sigmoid_()``, so scores below 1e-4 and above
    1 - 1e-4 survive; "clamped_sigmoid" (the loss's) cuts them."""
    p = protocol(input_size=[128, 128])
    val = TASK.build_dataset(p, voc_root, train=False)
    batch = torch.utils.data.default_collate([val[0]])
    scores = {}
    for kind in ("sigmoid", "clamped_sigmoid"):
        q = {**p, "evaluation": {**p["evaluation"], "heatmap_activation": kind, "flip": False}}
        dets = TASK.predict(_Const(), batch, val, q, torch.device("cpu"))["detections"]
        scores[kind] = sorted(d["score"] for d in dets)
    assert scores["sigmoid"][-1] == pytest.approx(float(torch.sigmoid(torch.tensor(12.0))))
    assert scores["sigmoid"][0] == pytest.approx(float(torch.sigmoid(torch.tensor(-12.0))))
    assert scores["clamped_sigmoid"][-1] == pytest.approx(1 - 1e-4)
    assert scores["clamped_sigmoid"][0] == pytest.approx(1e-4)
    with pytest.raises(ValueError):
        TASK.predict(_Const(), batch, val, {**p, "evaluation": {**p["evaluation"],
                     "heatmap_activation": "tanh"}}, torch.device("cpu"))


def test_top_k_is_centernets_two_stage_selection():
    """models/decode.py ``_topk``: the top k of each class, then the top k of those; the
    same boxes as one top-k over everything when no two scores are equal."""
    from bench.tasks.detection.codecs import CenterNetCodec
    codec = CenterNetCodec(input_size=(64, 64), num_classes=5)
    torch.manual_seed(3)
    hm, wh, reg = torch.rand(2, 5, 16, 16), torch.rand(2, 2, 16, 16) * 6, torch.rand(2, 2, 16, 16)
    peaks = hm * (torch.nn.functional.max_pool2d(hm, 3, 1, 1) == hm).float()
    k = 20
    s1, i1 = torch.topk(peaks.view(2, 5, -1), k)            # CenterNet's two steps
    s2, j = torch.topk(s1.view(2, -1), k)
    per_class = codec.decode(hm, wh, reg, k=k, selection="per_class")
    one = codec.decode(hm, wh, reg, k=k, selection="global")
    for b in range(2):
        np.testing.assert_array_equal(per_class[b][:, 4], s2[b].numpy())
        np.testing.assert_array_equal(per_class[b][:, 5], (j[b] // k).numpy())
        pix = i1[b].reshape(-1)[j[b]]
        np.testing.assert_array_equal(per_class[b][:, 0],
                                      ((pix % 16).float() + reg[b, 0].reshape(-1)[pix]
                                       - wh[b, 0].reshape(-1)[pix] / 2).numpy() * 4)
        np.testing.assert_array_equal(per_class[b], one[b])
    with pytest.raises(ValueError, match="selection"):
        codec.decode(hm, wh, reg, selection="nms")


def test_boxes_map_back_with_centernets_three_point_inverse():
    """utils/post_process.py ``ctdet_post_process``: ``get_affine_transform(c, s, 0,
    (w, h), inv=1)`` from three float32 point pairs and one ``np.dot`` per float32 corner;
    "exact" (the closed form in float64) agrees to 1e-4 px."""
    import cv2
    from bench.tasks.detection.codecs import CenterNetCodec
    codec = CenterNetCodec(input_size=(128, 128))
    torch.manual_seed(4)
    hm, wh, reg = torch.rand(1, 20, 32, 32), torch.rand(1, 2, 32, 32) * 9, torch.rand(1, 2, 32, 32)
    c, s = np.array([150.5, 97.0], np.float32), 301.0
    det = codec.decode(hm, wh, reg, [c], [s], k=30)[0]
    grid = codec.decode(hm, wh, reg, k=30)[0][:, :4] / np.float32(4)   # boxes on the grid
    src = np.float32([c, c + [0, -s / 2], c + [-s / 2, -s / 2]])         # CenterNet's points
    dst = np.float32([[16, 16], [16, 0], [0, 0]])
    inv = cv2.getAffineTransform(dst, src)
    want = np.array([np.dot(inv, np.array([x, y, 1.0], np.float32))
                     for x, y in grid.reshape(-1, 2)]).reshape(-1, 4).astype(np.float32)
    np.testing.assert_array_equal(det[:, :4], want)
    exact = codec.decode(hm, wh, reg, [c], [s], k=30, numerics="exact")[0]
    np.testing.assert_allclose(exact[:, :4], want, rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="numerics"):
        codec.decode(hm, wh, reg, [c], [s], numerics="float16")


def _evaluator(annotations, classes=("a", "b", "c"), **options):
    from bench.tasks.detection.task import MapAtThreshold
    return MapAtThreshold(annotations=annotations, class_names=list(classes),
                          iou_threshold=0.5, use_07_metric=options.pop("use_07_metric", True),
                          **options)


def _det(image, category, score, box):
    return {"image_id": image, "category": category, "score": score, "bbox": box}


def test_detections_are_rounded_as_the_devkit_results_file():
    """pascal_voc._write_voc_results_file writes scores {:.3f} and boxes {:.1f}, which
    voc_eval reads back: two detections 0.1231 (a miss) and 0.1234 (a hit) tie at 0.123
    and keep the file's order, so the miss comes first."""
    ann = {"i": [{"category": "a", "bbox": [11, 11, 50, 50], "difficult": False}]}
    dets = [_det("i", "a", 0.1231, [100.04, 100.0, 120.0, 130.0]),
            _det("i", "a", 0.1234, [11.04, 11.0, 50.06, 49.95])]
    ev = _evaluator(ann)
    ev.process({"detections": dets})
    assert [d["score"] for d in ev.results[0]] == [0.123, 0.123]
    assert ev.results[0][1]["bbox"] == [11.0, 11.0, 50.1, 50.0]
    assert ev.compute()["AP.a"] == pytest.approx(50.0)        # precision 1/2 at recall 1
    exact = _evaluator(ann, results_rounding="none")
    exact.process({"detections": dets})
    assert exact.compute()["AP.a"] == pytest.approx(100.0)


def _voc07_ap(hits_in_order, npos):
    tp = np.cumsum(hits_in_order)
    prec = tp / np.arange(1, len(tp) + 1)
    rec = tp / npos
    return 100.0 * sum((prec[rec >= t].max() if (rec >= t).any() else 0.0) / 11
                       for t in np.arange(0.0, 1.1, 0.1))


def test_equal_scores_are_ordered_as_voc_evals_argsort():
    """voc_eval sorts with ``np.argsort(-confidence)``, numpy's default (unstable) sort:
    among equal scores its order, not the input order, decides which come first."""
    rng = np.random.default_rng(7)
    n = 60
    scores = rng.choice([0.5, 0.3], size=n)
    hit = rng.random(n) < 0.5
    ann = {"i": [{"category": "a", "bbox": [10 * k + 1, 1, 10 * k + 8, 8], "difficult": False}
                 for k in range(n)]}
    # detection k: on object k when a hit, far away otherwise
    dets = [_det("i", "a", float(scores[k]),
                 [10 * k + 1, 1, 10 * k + 8, 8] if hit[k] else [10 * k + 1, 500, 10 * k + 8, 508])
            for k in range(n)]
    want = {}
    for kind, order in (("quicksort", np.argsort(-scores)),
                        ("stable", np.argsort(-scores, kind="stable"))):
        ev = _evaluator(ann, score_sort=kind)
        ev.process({"detections": dets})
        got = ev.compute()["AP.a"]
        want[kind] = _voc07_ap(hit[order].astype(float), n)
        assert got == pytest.approx(want[kind], abs=1e-9), kind
    if not np.array_equal(np.argsort(-scores), np.argsort(-scores, kind="stable")):
        assert want["quicksort"] != pytest.approx(want["stable"])


def test_classes_without_ground_truth_score_zero_in_the_mean():
    """_do_python_eval's ``np.mean(aps)`` over every class; voc_eval gives a class without
    non-difficult objects AP 0 (its recall 0 / 0 is NaN: no 11-point threshold reached),
    or, with the area metric and detections, NaN. "skip" leaves such classes out."""
    ann = {"i": [{"category": "a", "bbox": [1, 1, 40, 40], "difficult": False},
                 {"category": "c", "bbox": [60, 60, 90, 90], "difficult": True}]}
    dets = [_det("i", "a", 0.9, [1, 1, 40, 40]), _det("i", "b", 0.8, [1, 1, 40, 40])]
    results = {}
    for options in ({}, {"empty_classes": "skip"}, {"use_07_metric": False}):
        ev = _evaluator(ann, **options)
        ev.process({"detections": dets})
        results[str(options)] = ev.compute()
    zero, skip, area = results.values()
    assert (zero["AP.a"], zero["AP.b"], zero["AP.c"]) == (100.0, 0.0, 0.0)
    assert zero["mAP"] == pytest.approx(100.0 / 3) and zero["mAP@0.5"] == zero["mAP"]
    assert skip["mAP"] == 100.0 and math.isnan(skip["AP.b"]) and math.isnan(skip["AP.c"])
    assert math.isnan(area["AP.b"]) and area["AP.c"] == 0.0 and math.isnan(area["mAP"])
    with pytest.raises(ValueError, match="empty_classes"):
        _evaluator(ann, empty_classes="nan")
