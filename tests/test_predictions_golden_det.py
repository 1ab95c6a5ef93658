"""HRBench's detection test-time prediction and VOC evaluation against CenterNet's own
test path (issue 28).

``tests/golden/predictions_centernet_voc.json`` was recorded outside the project by running
xingyizhou/CenterNet's ``src/test.py`` prefetch loop (``PrefetchDataset`` ->
``CtdetDetector.run``: ``pre_process`` with ``fix_res``, ``process`` with ``--flip_test``
(plain ``sigmoid_()``, heatmaps and sizes averaged with the mirrored pass, offsets from
the plain one, ``ctdet_decode`` with K = 100), ``post_process`` (``ctdet_post_process``)
and ``merge_outputs`` (100 per image, no NMS)) and its ``PascalVOC.run_eval``
(``save_results`` + ``tools/reval.py``: py-faster-rcnn's results files and ``voc_eval``,
VOC07 11-point AP), with the options of ``experiments/ctdet_pascal_resdcn101_512.sh``'s
flip-test line (``--input_res`` 128, and the experiment's 512 on the synthetic images),
on synthetic VOC images and the shared VOC 2007 sample, and with the table model of ``tests/golden_det_model.py`` (the provenance block
says what was patched). Here HRBench's ``VOCDetection``, built from the protocol that cites
CenterNet, feeds the same model (checked: the same maps for the same crops) through
``DetectionTask.predict`` and the task's evaluator (``bench.training.evaluate``), and must
give:

* every image's detections per class (boxes and scores after ``merge_outputs``) bit for
  bit: the same float32 torch arithmetic, the same two-stage top-k, the same float32
  three-point inverse matrix and per-corner ``np.dot``;
* the results files' lines (scores ``{:.3f}``, devkit boxes ``{:.1f}``) exactly;
* every class's AP and the mAP to 1e-9 (HRBench reports percent).
"""
from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from bench.tasks.detection import synthetic as synthetic_det
from bench.tasks.detection.data.voc import VOCDetection
from bench.suite import load_protocol
from bench.tasks import get_task
from bench.training.evaluate import evaluate
from conftest import GOLDEN, SHARED_DATA
from golden_det_model import TableModel, build_table, grid_boxes, table_digest

PROTOCOL = "voc_512x512_flattenet"          # cites xingyizhou/CenterNet's ctdet pascal
REAL = SHARED_DATA / "voc_sample"
TASK = get_task("detection")


@lru_cache(maxsize=None)
def golden() -> dict:
    return json.loads((GOLDEN / "predictions_centernet_voc.json").read_text())


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    data = golden()["cases"]["synthetic"]["data"]
    root = tmp_path_factory.mktemp("pred_voc")
    getattr(synthetic_det, data["writer"])(root, **data["kwargs"])
    out = {"synthetic": root, "synthetic_512": root}
    if REAL.is_dir():
        out["real"] = REAL
    return out


def _protocol(res: int = 0, **evaluation) -> dict:
    p = load_protocol(PROTOCOL).model_dump()
    res = res or golden()["settings"]["input_res"]
    p.update(input_size=[res, res], val_sets=[["2007", "test"]])
    p["evaluation"] = {**p["evaluation"], **evaluation}
    return p


@lru_cache(maxsize=None)
def _setup(case: str, root: str):
    """(dataset, model) of a golden case, the model checked against the recorded one."""
    g = golden()["cases"][case]
    p = _protocol(g["input_res"])
    ev, s = p["evaluation"], golden()["settings"]
    # the protocol's own settings: those are what this test proves
    assert (ev["flip"], ev["top_k"], ev["use_07_metric"], ev["iou_threshold"]) == \
        (s["flip_test"], s["K"], g["use_07_metric"], g["voc_eval"]["ovthresh"])
    assert (ev["heatmap_activation"], ev["top_k_selection"], ev["results_rounding"],
            ev["score_sort"], ev["empty_classes"], p["numerics"]) == \
        ("sigmoid", "per_class", "devkit_file", "quicksort", "zero", "centernet")
    ds = VOCDetection.from_protocol(p, root, train=False)
    assert [i for _, i in ds.ids] == g["image_ids"]
    out_h, out_w = ds.codec.output_size
    items = []
    for i in range(len(ds)):
        item = ds[i]
        objs = ds.records[i]["objects"]
        boxes = grid_boxes([o["bbox"] for o in objs], item["meta"]["center"],
                           item["meta"]["scale"], (out_w, out_h))
        items.append((item["image"].numpy(), boxes, [o["label"] for o in objs]))
    table = build_table(items, ds.num_classes, (out_w, out_h))
    assert table_digest(table) == g["model"], "not the recorded model (crops differ?)"
    return ds, TableModel(table)


def _case(case, roots):
    if case not in roots:
        pytest.skip(f"shared sample data ({REAL}) is not present")
    return _setup(case, str(roots[case]))


def _predictions(ds, model, p, batch_size=4) -> list[dict]:
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False,
                        collate_fn=TASK.collate_fn(train=False))
    out = []
    for batch in loader:
        out.extend(TASK.predict(model, batch, ds, p, torch.device("cpu"))["detections"])
    return out


def _per_image(dets: list[dict]) -> dict:
    """{image_id: {class: [[x1, y1, x2, y2, score] 0-based]}} in arrival order."""
    out: dict = {}
    for d in dets:
        box = [v - 1.0 for v in d["bbox"]]                 # exact: float32 + 1 in float64
        out.setdefault(d["image_id"], {}).setdefault(d["category"], []).append(
            box + [d["score"]])
    return out


#: 128 px inputs as the samples golden, and the experiment's own 512 (synthetic images)
CASES = ["synthetic", "real", "synthetic_512"]


@pytest.mark.parametrize("case", CASES)
def test_detections_equal_centernet_ctdet_detector(roots, case):
    g = golden()["cases"][case]
    ds, model = _case(case, roots)
    ours = _per_image(_predictions(ds, model, _protocol(g["input_res"])))
    assert list(ours) == g["image_ids"]
    for image in g["images"]:
        got = ours[image["image_id"]]
        assert set(got) == set(image["detections"]), image["image_id"]
        for cls, theirs in image["detections"].items():
            # bit for bit (both float32 values)
            np.testing.assert_array_equal(np.float32(got[cls]), np.float32(theirs),
                                          err_msg=f"{image['image_id']} {cls}")
    assert sum(len(v) for im in ours.values() for v in im.values()) == g["num_detections"]


@pytest.mark.parametrize("case", CASES)
def test_results_file_lines_equal_centernet(roots, case):
    """The lines py-faster-rcnn writes (``{:s} {:.3f} {:.1f} {:.1f} {:.1f} {:.1f}``, boxes
    + 1) from HRBench's detections, rounded as its evaluator rounds them."""
    g = golden()["cases"][case]
    ds, model = _case(case, roots)
    p = _protocol(g["input_res"])
    evaluator = TASK.evaluator(ds, p)
    evaluator.process({"detections": _predictions(ds, model, p)})
    lines: dict = {}
    for d in evaluator.results[0]:
        x1, y1, x2, y2 = d["bbox"]
        lines.setdefault(d["category"], []).append(
            f"{d['image_id']} {d['score']:.3f} {x1:.1f} {y1:.1f} {x2:.1f} {y2:.1f}")
    for cls, want in g["voc_eval"]["classes"].items():
        assert lines.get(cls, []) == want["results_file_lines"], cls


@pytest.mark.parametrize("case", CASES)
def test_metrics_equal_centernet_voc_eval(roots, case):
    g = golden()["cases"][case]
    ds, model = _case(case, roots)
    metrics = evaluate(TASK, model, ds, _protocol(g["input_res"]), torch.device("cpu"),
                       num_workers=0)
    classes = g["voc_eval"]["classes"]
    assert list(classes) == list(ds.class_names)
    for cls, want in classes.items():
        assert metrics[f"AP.{cls}"] == pytest.approx(100.0 * want["ap"], abs=1e-9), cls
    assert metrics["mAP"] == pytest.approx(100.0 * g["voc_eval"]["mAP"], abs=1e-9)
    assert metrics["mAP@0.5"] == metrics["mAP"]
    # not a trivial case: some classes found, some missed, some half
    aps = [c["ap"] for c in classes.values()]
    assert 0.1 < g["voc_eval"]["mAP"] < 0.9 and any(0 < a < 1 for a in aps)


def test_golden_takes_every_branch():
    """Scores on both sides of the loss's clamp (so the test-time sigmoid is seen), several
    images per case, and classes without ground truth (scored 0 into the mean)."""
    for case in golden()["cases"].values():
        assert case["scores_below_1e-4"] > 0 and case["scores_above_1-1e-4"] > 0
        assert len(case["images"]) >= 5
        # detections of a class without ground truth: voc_eval's recall 0 / 0 (NaN), AP 0
        assert any(c["rec"] and np.isnan(c["rec"]).all() and c["ap"] == 0.0
                   for c in case["voc_eval"]["classes"].values())
    assert golden()["provenance"]["repository"] == "xingyizhou/CenterNet"


def test_the_alternatives_differ_from_centernet(roots):
    """Each non-default option moves a number of the synthetic case, so the defaults are
    what the equality above shows."""
    g = golden()["cases"]["synthetic"]
    ds, model = _case("synthetic", roots)
    want = {im["image_id"]: im["detections"] for im in g["images"]}

    def scores_equal(p):
        got = _per_image(_predictions(ds, model, p))
        return all(np.array_equal(np.float32(got[i].get(c, [])), np.float32(v))
                   for i, im in want.items() for c, v in im.items())

    assert not scores_equal(_protocol(heatmap_activation="clamped_sigmoid"))
    p = _protocol()
    # the closed-form float64 inverse: these whole-image crops (centre (w/2, h/2), integer
    # scale) give three-point matrices whose round-off does not reach the float32 boxes,
    # so it agrees here too; the bound is what it promises in general
    p["numerics"] = "exact"
    got = _per_image(_predictions(ds, model, p))
    diffs = [np.abs(np.float32(got[i][c])[:, :4] - np.float32(v)[:, :4]).max()
             for i, im in want.items() for c, v in im.items()]
    assert max(diffs) <= 1e-4
    skip = evaluate(TASK, model, ds, _protocol(empty_classes="skip"), torch.device("cpu"),
                    num_workers=0)
    assert skip["mAP"] > 100.0 * g["voc_eval"]["mAP"] + 1.0


@pytest.mark.parametrize("case", CASES)
def test_golden_ap_does_not_hang_on_the_order_of_equal_scores(roots, case):
    """voc_eval orders equal (rounded) scores by numpy's default sort, which can differ
    between CPUs; the golden's APs are the same in arrival order, so the recording holds
    on any machine."""
    g = golden()["cases"][case]
    ds, model = _case(case, roots)
    stable = evaluate(TASK, model, ds, _protocol(g["input_res"], score_sort="stable"),
                      torch.device("cpu"), num_workers=0)
    assert stable["mAP"] == pytest.approx(100.0 * g["voc_eval"]["mAP"], abs=1e-9)


def test_the_clamp_and_unrounded_results_move_the_512_map(roots):
    """At 512 the loss's clamped sigmoid (equal scores at 1e-4 pick other peaks) and
    unrounded results files (other ties and IoUs) each change the mAP."""
    g = golden()["cases"]["synthetic_512"]
    ds, model = _case("synthetic_512", roots)
    for option in ({"heatmap_activation": "clamped_sigmoid"}, {"results_rounding": "none"}):
        m = evaluate(TASK, model, ds, _protocol(512, **option), torch.device("cpu"),
                     num_workers=0)
        assert abs(m["mAP"] - 100.0 * g["voc_eval"]["mAP"]) > 1e-3, option
