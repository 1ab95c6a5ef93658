"""COCO keypoint evaluation: OKS-NMS, the top-down rescoring, and OKS AP via pycocotools.

Serves the COCO val columns of the pose tables: HRNet (Sun et al., CVPR 2019) Tables 1
and 6, Lite-HRNet (Yu et al., CVPR 2021) Table 3 and the ablations of Tables 6-7, the
COCO rows of GSTO, DPN and FlatteNet (test-dev tables, HRNet Table 2 / Lite-HRNet
Table 4, need the evaluation server: ``rescore_and_nms`` writes what it takes, as
``CocoKeypointEvaluator.dump``). The protocol follows our reading of the HRNet code
(lib/dataset/coco.py ``evaluate`` and lib/nms/nms.py) and of mmpose 0.x's
``TopDownCocoDataset.evaluate``, which Lite-HRNet uses; no test runs either:

1. every person box yields one pose (17 x 3: x, y, heatmap maximum);
2. rescoring: pose score = box score x mean of the keypoint scores above ``in_vis_thr``
   (0.2), or 0 when no keypoint is above it;
3. per image, greedy OKS-NMS at ``oks_thr`` (0.9), OKS measured with the mean of the two
   poses' areas (area = box w x h after the 1.25 padding, i.e. prod(scale * 200));
4. ``COCOeval(iouType='keypoints')`` with its defaults (maxDets 20, OKS 0.50:0.05:0.95).

All numbers are returned as percentages (pycocotools gives fractions).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
from collections import OrderedDict, defaultdict
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ....evaluation.base import Evaluator, batch_columns, unique_by_index

#: Per-keypoint OKS constants of the 17 COCO person keypoints (pycocotools' values).
COCO_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62,
                        1.07, 1.07, .87, .87, .89, .89]) / 10.0

#: Order of ``COCOeval.stats`` for keypoints, under the names the paper tables use.
STATS_NAMES = ("AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL")

#: ``pixel_std`` of the reference code: a scale of 1.0 means 200 pixels.
PIXEL_STD = 200.0


# --------------------------------------------------------------------------- OKS / NMS
def oks_iou(g: np.ndarray, d: np.ndarray, area_g: float, area_d: np.ndarray,
            sigmas: np.ndarray | None = None,
            in_vis_thr: float | None = None) -> np.ndarray:
    """OKS between one pose ``g`` (flat 3K) and poses ``d`` (M x 3K), as used by OKS-NMS.

    Unlike pycocotools' GT-vs-detection OKS, both sides are predictions, so the scale is
    the mean of the two areas: e_i = d_i^2 / (2 * (2 sigma_i)^2 * ((a_g + a_d) / 2)).
    With ``in_vis_thr`` only keypoints whose scores exceed it on *both* poses count (as
    we read HRNet's nms.py, its ``list(a) and list(b)`` tests only ``d``; it is called
    with None in the evaluation path, so this never affects reported numbers).
    Returns M values in [0, 1]; 0 where no keypoint is left.
    """
    sigmas = COCO_SIGMAS if sigmas is None else np.asarray(sigmas, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64).reshape(-1)
    d = np.asarray(d, dtype=np.float64).reshape(-1, g.size)
    var = (2.0 * sigmas) ** 2
    dx = d[:, 0::3] - g[None, 0::3]
    dy = d[:, 1::3] - g[None, 1::3]
    scale = (area_g + np.asarray(area_d, dtype=np.float64).reshape(-1)) / 2.0 + np.spacing(1)
    e = (dx ** 2 + dy ** 2) / var[None, :] / scale[:, None] / 2.0
    valid = np.ones_like(e, dtype=bool)
    if in_vis_thr is not None:
        valid = (d[:, 2::3] > in_vis_thr) & (g[None, 2::3] > in_vis_thr)
    n = valid.sum(axis=1)
    total = np.where(valid, np.exp(-e), 0.0).sum(axis=1)
    return np.divide(total, n, out=np.zeros(len(d)), where=n > 0)


def oks_nms(kpts_db: Sequence[Mapping[str, Any]], thr: float,
            sigmas: np.ndarray | None = None,
            in_vis_thr: float | None = None, style: str = "hrnet") -> list[int]:
    """Greedy OKS non-maximum suppression; returns the indices kept, best score first.

    ``kpts_db``: one dict per pose with ``keypoints`` (K x 3 or flat 3K), ``score`` and
    ``area``. A pose is suppressed when its OKS with an already kept, higher-scored pose
    is *above* ``thr`` (OKS == thr is kept, as we read HRNet's ``oks_nms``).
    ``style='mmpose'``: mmpose 0.13's nms.py ``oks_nms``: float32 scores, poses and areas,
    ``argsort()[::-1]`` order (a tie keeps the later pose), ``mmpose_oks_iou``.
    """
    if len(kpts_db) == 0:
        return []
    mmpose = style == "mmpose"
    dtype = np.float32 if mmpose else np.float64
    scores = np.array([p["score"] for p in kpts_db], dtype=dtype)
    kpts = np.stack([np.asarray(p["keypoints"], dtype=dtype).reshape(-1) for p in kpts_db])
    areas = np.array([p["area"] for p in kpts_db], dtype=dtype)
    # HRNet: a stable sort on -score, ties in input order (its argsort()[::-1], as we
    # read it, leaves tie order to numpy's quicksort; only exact score ties can differ)
    order = scores.argsort()[::-1] if mmpose else np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size > 0:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        ovr = (mmpose_oks_iou(kpts[i], kpts[rest], areas[i], areas[rest], sigmas) if mmpose
               else oks_iou(kpts[i], kpts[rest], areas[i], areas[rest], sigmas, in_vis_thr))
        order = rest[ovr <= thr]
    return keep


def mmpose_oks_iou(g: np.ndarray, d: np.ndarray, area_g: float, area_d: np.ndarray,
                   sigmas: np.ndarray | None = None) -> np.ndarray:
    """``oks_iou`` in mmpose 0.13's arithmetic (mmpose/core/post_processing/nms.py
    ``oks_iou``, vis_thr None): float32 poses and areas, the exponent in float64, each
    OKS stored as float32."""
    var = (2.0 * (COCO_SIGMAS if sigmas is None else np.asarray(sigmas, np.float64))) ** 2
    g = np.asarray(g, dtype=np.float32).reshape(-1)
    d = np.asarray(d, dtype=np.float32).reshape(-1, g.size)
    area_g = np.float32(area_g)
    area_d = np.asarray(area_d, dtype=np.float32).reshape(-1)
    out = np.zeros(len(d), dtype=np.float32)
    for n in range(len(d)):
        dx, dy = d[n, 0::3] - g[0::3], d[n, 1::3] - g[1::3]
        e = (dx ** 2 + dy ** 2) / var / ((area_g + area_d[n]) / 2 + np.spacing(1)) / 2
        out[n] = np.sum(np.exp(-e)) / len(e) if len(e) else 0.0
    return out


#: whose arithmetic rescoring and OKS-NMS follow (``evaluation.coco_postprocess``)
POSTPROCESS_STYLES = ("hrnet", "mmpose")


# --------------------------------------------------------------------------- rescoring
def _pose_area(p: Mapping[str, Any]) -> float:
    if "area" in p and p["area"] is not None:
        return float(p["area"])
    if "scale" in p and p["scale"] is not None:
        return float(np.prod(np.asarray(p["scale"], dtype=np.float64) * PIXEL_STD))
    raise ValueError("each pose needs an 'area' or a 'scale' (in units of 200 px) for OKS-NMS")


def rescore_and_nms(results: Iterable[Mapping[str, Any]], in_vis_thr: float = 0.2,
                    oks_thr: float = 0.9, sigmas: np.ndarray | None = None,
                    use_nms: bool = True, category_id: int = 1,
                    style: str = "hrnet") -> list[dict]:
    """HRNet's post-processing of top-down predictions, per image (checked against its
    ``COCODataset.evaluate`` by ``tests/test_predictions_golden_pose_hrnet.py``).

    ``results``: dicts with ``image_id``, ``keypoints`` (K x 3: x, y, score), ``score``
    (the person *box* score) and ``area`` (or ``scale`` in 200-px units, area =
    prod(scale * 200)).

    Pose score = box score x mean of the keypoint scores > ``in_vis_thr`` (0 when none
    is), then OKS-NMS per image at ``oks_thr`` (skipped with ``use_nms=False``).
    Returns COCO keypoint result dicts (image_id, category_id, flat keypoints, score).
    """
    if style not in POSTPROCESS_STYLES:
        raise ValueError(f"style must be one of {POSTPROCESS_STYLES}, got {style!r}")
    per_image: dict[Any, list[dict]] = defaultdict(list)
    for r in results:
        kpts = np.asarray(r["keypoints"], dtype=np.float64).reshape(-1, 3)
        # the keypoint scores (float32 heatmap maxima) summed one by one in float32 and
        # divided in float32, then times the float64 box score: HRNet's arithmetic
        # (tests/test_predictions_golden_pose_hrnet.py); numpy's pairwise sum would differ
        kpt_score, valid = np.float32(0.0), 0
        for t in kpts[:, 2].astype(np.float32):
            if t > in_vis_thr:
                kpt_score, valid = kpt_score + t, valid + 1
        kpt_score = float(kpt_score / np.float32(valid)) if valid else 0.0
        # style 'mmpose': the product in float32 too (topdown_coco_dataset.py evaluate:
        # its box scores are float32, TopDownBaseHead.decode's boxes array)
        score = float(np.float32(kpt_score) * np.float32(r["score"])) if style == "mmpose" \
            else float(r["score"]) * kpt_score
        per_image[r["image_id"]].append({
            "image_id": r["image_id"],
            "keypoints": kpts,
            "score": score,
            "area": _pose_area(r),
        })
    out: list[dict] = []
    for image_id, poses in per_image.items():
        keep = oks_nms(poses, oks_thr, sigmas, style=style) if use_nms else range(len(poses))
        for k in keep:
            p = poses[k]
            out.append({
                "image_id": image_id,
                "category_id": category_id,
                "keypoints": [float(v) for v in p["keypoints"].reshape(-1)],
                "score": p["score"],
            })
    return out


# --------------------------------------------------------------------------- COCO AP
@contextlib.contextmanager
def _maybe_quiet(verbose: bool):
    if verbose:
        yield
    else:
        with contextlib.redirect_stdout(io.StringIO()):
            yield


def load_coco(ann_file: str | os.PathLike, verbose: bool = False):
    """Load a COCO annotation file into a ``pycocotools.coco.COCO`` (quietly)."""
    from pycocotools.coco import COCO  # heavy-ish; only when evaluating
    with _maybe_quiet(verbose):
        return COCO(os.fspath(ann_file))


def _as_result_list(results) -> list[dict]:
    if isinstance(results, (str, os.PathLike)):
        with open(results) as f:
            results = json.load(f)
    results = list(results)
    out = []
    for r in results:
        r = dict(r)
        # pycocotools slices keypoints with [0::3] and writes area/bbox/id into the dicts:
        # give it flat float lists and our own copies so callers' data stay untouched.
        r["keypoints"] = [float(v) for v in np.asarray(r["keypoints"], dtype=np.float64).reshape(-1)]
        r["score"] = float(r["score"])
        r.setdefault("category_id", 1)
        out.append(r)
    return out


def coco_keypoint_ap(results, ann_file, verbose: bool = False,
                     sigmas: np.ndarray | None = None) -> "OrderedDict[str, float]":
    """COCO OKS keypoint AP/AR of ``results`` against ``ann_file``, in percent.

    ``results``: a list of COCO keypoint result dicts ({image_id, category_id: 1,
    keypoints: [x, y, v] * 17, score}) or a path to such a JSON file. ``ann_file``: a
    path or an already loaded ``pycocotools.coco.COCO``. Every image of ``ann_file`` is
    evaluated (as we read HRNet's ``evaluate``): GT persons without a prediction count
    as misses.
    Returns AP, AP50, AP75, APM, APL, AR, AR50, AR75, ARM, ARL; a metric pycocotools
    cannot define (e.g. APM with no medium person) is NaN rather than its -1 sentinel.
    """
    from pycocotools.cocoeval import COCOeval

    dets = _as_result_list(results)
    if not dets:
        raise ValueError("coco_keypoint_ap: no results to evaluate (empty list or file)")
    coco_gt = ann_file if hasattr(ann_file, "loadRes") else load_coco(ann_file, verbose)
    unknown = {d["image_id"] for d in dets} - set(coco_gt.getImgIds())
    if unknown:
        raise ValueError(f"coco_keypoint_ap: results name image ids absent from the "
                         f"annotations: {sorted(unknown)[:10]}")
    with _maybe_quiet(verbose):
        coco_dt = coco_gt.loadRes(dets)
        ev = COCOeval(coco_gt, coco_dt, iouType="keypoints")
        if sigmas is not None:
            ev.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        ev.params.useSegm = None  # as HRNet's coco.py sets it; irrelevant for keypoints
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return OrderedDict((name, float("nan") if s < 0 else 100.0 * float(s))
                       for name, s in zip(STATS_NAMES, ev.stats))


# --------------------------------------------------------------------------- evaluators
#: Columns of a batch of top-down predictions (``bench.tasks.pose.task.PoseTask.predict``):
#: ``preds`` (B, K, 2) image pixels, ``maxvals`` (B, K, 1), and the samples' meta.
PREDICTION_KEYS = ("preds", "maxvals", "center", "scale", "score", "image_id", "bbox_id",
                   "area", "index")


class CocoKeypointEvaluator(Evaluator):
    """Top-down COCO evaluation: rescoring + OKS-NMS (``rescore_and_nms``) + OKS AP.

    ``ann_file``: the annotation JSON or an already loaded ``pycocotools`` COCO object
    (a dataset's ``.coco``); ``oks_thr`` / ``in_vis_thr``: the protocol's
    ``oks_nms_threshold`` / ``keypoint_score_threshold``; ``num_samples``: the number of
    person boxes the predictions must cover (None: any).

    ``process`` keeps one small item per person box; ``compute_metrics`` drops the
    padded repeats by ``index``, orders by index and returns ``coco_keypoint_ap``'s
    AP, AP50, ..., ARL.

    >>> ev = CocoKeypointEvaluator(dataset.coco, num_samples=len(dataset))
    >>> for batch in batches: ev.process(batch)      # preds, maxvals, score, area, ...
    >>> ev.compute()["AP"]
    """

    def __init__(self, ann_file, oks_thr: float = 0.9, in_vis_thr: float = 0.2,
                 use_nms: bool = True, sigmas: np.ndarray | None = None,
                 num_samples: int | None = None, verbose: bool = False,
                 style: str = "hrnet"):
        super().__init__()
        if style not in POSTPROCESS_STYLES:
            raise ValueError(f"style must be one of {POSTPROCESS_STYLES}, got {style!r}")
        self.style = style
        self.ann_file = ann_file
        self.oks_thr = oks_thr
        self.in_vis_thr = in_vis_thr
        self.use_nms = use_nms
        self.sigmas = sigmas
        self.num_samples = num_samples
        self.verbose = verbose
        self._coco = ann_file if hasattr(ann_file, "loadRes") else None

    def process(self, predictions: Mapping[str, Any]) -> None:
        """One batch: ``preds`` (B, K, 2) image pixels, ``maxvals`` (B, K, 1), ``score``
        (box score), ``image_id``, ``index`` and ``area`` (px^2; else ``scale`` in 200-px
        units, area = prod(scale * 200))."""
        keys = ["preds", "maxvals", "score", "image_id", "index"]
        keys.append("area" if "area" in predictions else "scale")
        c = batch_columns(predictions, keys, type(self).__name__)
        kpts = np.concatenate([c["preds"], c["maxvals"]], axis=2)
        if kpts.ndim != 3 or kpts.shape[2] != 3:
            raise ValueError(f"preds must be B x K x 2 and maxvals B x K x 1; got "
                             f"{c['preds'].shape} and {c['maxvals'].shape}")
        for i in range(len(kpts)):
            area = (float(c["area"][i]) if "area" in c
                    else _pose_area({"scale": c["scale"][i]}))
            self.results.append({"index": int(c["index"][i]),
                                 "image_id": int(c["image_id"][i]),
                                 "keypoints": kpts[i].copy(), "score": float(c["score"][i]),
                                 "area": area})

    def coco_results(self, results: Sequence[Mapping[str, Any]] | None = None) -> list[dict]:
        """The COCO result dicts after rescoring and OKS-NMS (what is scored, and what
        an evaluation server takes) of ``results`` (default: this process's)."""
        poses = unique_by_index(self.results if results is None else results,
                                self.num_samples, type(self).__name__)
        return rescore_and_nms(poses, self.in_vis_thr, self.oks_thr, self.sigmas,
                               self.use_nms, style=self.style)

    def compute_metrics(self, results: Sequence[Mapping[str, Any]]
                        ) -> "OrderedDict[str, float]":
        if self._coco is None:
            self._coco = load_coco(self.ann_file, self.verbose)
        return coco_keypoint_ap(self.coco_results(results), self._coco,
                                verbose=self.verbose, sigmas=self.sigmas)

    def dump(self, path: str | os.PathLike) -> None:
        """Write the post-processed results as a COCO result JSON (test-dev submissions)."""
        from ....results import atomic_write_text
        atomic_write_text(path, json.dumps(self.coco_results()))


__all__ = ["COCO_SIGMAS", "STATS_NAMES", "PREDICTION_KEYS", "POSTPROCESS_STYLES", "oks_iou",
           "oks_nms", "mmpose_oks_iou",
           "rescore_and_nms", "load_coco", "coco_keypoint_ap", "CocoKeypointEvaluator"]
