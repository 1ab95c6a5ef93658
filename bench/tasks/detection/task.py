"""Object detection as a task plug-in, CenterNet-style: FlatteNet Table X (PASCAL VOC
2007 test, mAP at IoU 0.5, flip test).

Data and targets: ``bench.tasks.detection.data.voc.VOCDetection`` with its ``CenterNetCodec`` (centre
heatmaps with CenterNet's radius rule, sizes and sub-pixel offsets at stride 4). Loss:
the penalty-reduced focal loss on the heatmaps plus L1 on sizes and offsets at the
object centres (weights 1 / 0.1 / 1). Prediction: the flip test averages heatmaps and
sizes with the mirrored pass (offsets from the plain one), 3x3 peak picking, the top
boxes mapped back through the inverse crop transform. Metric: the VOC devkit's AP
(``bench.tasks.detection.metrics``). The model returns ``(heatmap logits, sizes, offsets)`` as
its main output. By default prediction and scoring are CenterNet's test path and
``run_eval`` (``tests/test_predictions_golden_det.py``); ``DetEvaluation`` names the
alternatives.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
import torch

from .metrics import VOCDetectionEvaluator
from ..base import MAIN_OUTPUT, Task, loss_precision, main_output
from .protocol import DetectionProtocol, det_protocol

# the smoke profile's input (H, W): the generated VOC images are 160-320 px, and the CPU
# must take a ResNet-101 detector through 6 iterations in seconds
SMOKE_INPUT = (256, 256)


def _heads(output) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    heads = main_output(output)
    if not isinstance(heads, (tuple, list)) or len(heads) != 3:
        raise ValueError("a detection model returns (heatmap logits, sizes, offsets) as its "
                         f"main output, got {type(heads).__name__}")
    return tuple(heads)


def _activation(logits: torch.Tensor, kind: str) -> torch.Tensor:
    """Heatmap probabilities: "sigmoid" as CenterNet's test (``detectors/ctdet.py``
    ``process``: ``sigmoid_()``), "clamped_sigmoid" as its loss (in [1e-4, 1 - 1e-4])."""
    probs = torch.sigmoid(logits.float())
    if kind == "clamped_sigmoid":
        return probs.clamp(1e-4, 1 - 1e-4)
    if kind != "sigmoid":
        raise ValueError(f"heatmap_activation must be 'sigmoid' or 'clamped_sigmoid', "
                         f"got {kind!r}")
    return probs


def _round_as_results_file(det: dict) -> dict:
    """A detection as py-faster-rcnn's ``pascal_voc._write_voc_results_file`` writes it and
    ``voc_eval`` reads it back: score ``{:.3f}``, devkit box ``{:.1f}``."""
    return {**det, "score": float(f"{det['score']:.3f}"),
            "bbox": [float(f"{v:.1f}") for v in det["bbox"]]}


class MapAtThreshold(VOCDetectionEvaluator):
    """The VOC evaluator whose metrics also hold ``mAP@<threshold>``, the suites' name,
    with CenterNet's evaluation details as options (``DetEvaluation``):
    ``results_rounding="devkit_file"`` rounds each detection as the results file does;
    ``score_sort="quicksort"`` orders each class's detections as ``voc_eval``'s
    ``np.argsort(-confidence)`` (numpy's default sort: equal scores in its order, not the
    input order); ``empty_classes="zero"`` scores a class without non-difficult ground
    truth 0 (what ``voc_eval`` returns under the VOC07 metric, or without detections) and
    keeps it in the mean, as ``_do_python_eval``'s ``np.mean(aps)``."""

    def __init__(self, *args, results_rounding: str = "devkit_file",
                 score_sort: str = "quicksort", empty_classes: str = "zero", **kwargs):
        super().__init__(*args, **kwargs)
        for name, value, allowed in (
                ("results_rounding", results_rounding, ("devkit_file", "none")),
                ("score_sort", score_sort, ("quicksort", "stable")),
                ("empty_classes", empty_classes, ("zero", "skip"))):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        self.results_rounding = results_rounding
        self.score_sort = score_sort
        self.empty_classes = empty_classes

    def process(self, predictions) -> None:
        if self.results_rounding == "devkit_file":
            predictions = {**predictions, "detections": [
                _round_as_results_file(d) for d in predictions["detections"]]}
        super().process(predictions)

    def compute_metrics(self, results):
        dets = [det for batch in results for det in batch]
        if self.score_sort == "quicksort":
            # per class in arrival order (images in order, each image's boxes by score),
            # then numpy's default argsort; the stable sort inside keeps this order
            by_class: dict = {}
            for det in dets:
                by_class.setdefault(det["category"], []).append(det)
            dets = []
            for group in by_class.values():
                order = np.argsort(-np.array([d["score"] for d in group]))
                dets.extend(group[i] for i in order)
        metrics = super().compute_metrics([dets])
        if self.empty_classes == "zero":
            with_dets = {d["category"] for d in dets}
            aps = []
            for name in metrics:
                if name.startswith("AP.") and np.isnan(metrics[name]):
                    # voc_eval: rec = tp / 0 is NaN; the 11-point AP is then 0, the area
                    # AP 0 only without detections
                    if self.use_07_metric or name[3:] not in {str(c) for c in with_dets}:
                        metrics[name] = 0.0
                if name.startswith("AP."):
                    aps.append(metrics[name])
            metrics["mAP"] = float(np.mean(aps)) if aps else float("nan")
        return {f"mAP@{self.iou_threshold:g}": metrics["mAP"], **metrics}


class DetectionTask(Task):
    """CenterNet-style detection (see the module docstring)."""

    # --- data -------------------------------------------------------------------------
    def build_dataset(self, protocol, data_root, train: bool, seed: int = 0):
        from .data.voc import VOCDetection
        return VOCDetection.from_protocol(protocol, data_root, train=train, seed=seed)

    def write_smoke_data(self, root, seed: int = 0) -> None:
        from pathlib import Path

        from .synthetic import write_voc
        # 2007 + 2012 trainval, 6 images each: 3 iterations per epoch at the smoke batch
        # of 4, as pose
        write_voc(Path(root) / "voc", seed=seed, num_trainval=6, num_test=4)

    def smoke_protocol(self, protocol):
        """Inputs of at most ``SMOKE_INPUT`` for the generated images; classes without
        ground truth left out of the mAP (the small generated sets miss classes, and the
        target oracle must still score 100)."""
        ev = protocol.evaluation.model_copy(update={"empty_classes": "skip"})
        size = tuple(min(s, m) for s, m in zip(protocol.input_size, SMOKE_INPUT))
        return protocol.model_copy(update={"input_size": size, "evaluation": ev})

    # --- training ---------------------------------------------------------------------
    def loss(self, outputs: Mapping, batch: Mapping,
             protocol: DetectionProtocol) -> dict[str, torch.Tensor]:
        from .losses import centernet_focal_loss, reg_l1_loss
        w = det_protocol(protocol).loss
        hm, wh, reg = (loss_precision(t) for t in _heads(outputs[MAIN_OUTPUT]))
        ind, mask = batch["ind"], batch["reg_mask"]
        return {"heatmap": w.heatmap_weight * centernet_focal_loss(hm, batch["hm"]),
                "size": w.size_weight * reg_l1_loss(wh, ind, mask, batch["wh"]),
                "offset": w.offset_weight * reg_l1_loss(reg, ind, mask, batch["reg"])}

    # --- evaluation -------------------------------------------------------------------
    def eval_batch_size(self, protocol) -> int:
        return det_protocol(protocol).evaluation.batch_size

    @torch.no_grad()
    def predict(self, model, batch: Mapping, dataset, protocol, device,
                amp: str = "off", channels_last: bool = False) -> dict:
        from ...training.loop import autocast_context
        ev = det_protocol(protocol).evaluation
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        x = batch["image"].to(device, non_blocking=True, memory_format=fmt)
        n = len(x)
        if ev.flip:
            x = torch.cat([x, torch.flip(x, dims=[3])])
        with autocast_context(device, amp):
            hm, wh, reg = _heads(model(x))
        hm, wh, reg = _activation(hm, ev.heatmap_activation), wh.float(), reg.float()
        if ev.flip:
            # CenterNet: heatmaps and sizes averaged with the mirrored pass mirrored back;
            # offsets from the plain pass only (a mirrored offset belongs to another cell)
            hm = (hm[:n] + torch.flip(hm[n:], dims=[3])) / 2
            wh = (wh[:n] + torch.flip(wh[n:], dims=[3])) / 2
            reg = reg[:n]
        meta = batch["meta"]
        dets = dataset.codec.decode(hm.cpu(), wh.cpu(), reg.cpu(),
                                    np.asarray(meta["center"]), np.asarray(meta["scale"]),
                                    k=ev.top_k, selection=ev.top_k_selection,
                                    numerics=getattr(dataset, "numerics", "centernet"))
        return {"detections": self._as_dicts(dataset, dets, meta["image_id"])}

    @staticmethod
    def _as_dicts(dataset, detections, image_ids) -> list[dict]:
        """Decoded float32 boxes in the devkit's 1-based coordinates: + 1 in float64
        (exact), as the results file's ``dets[k, 0] + 1``."""
        from .data.voc import DEVKIT_PIXEL_OFFSET
        out = []
        for image_id, det in zip(image_ids, detections):
            for row in np.asarray(det):
                box = row[:4].astype(np.float64) + DEVKIT_PIXEL_OFFSET
                out.append({"image_id": str(image_id), "category": dataset.class_names[int(row[5])],
                            "score": float(row[4]), "bbox": box.tolist()})
        return out

    def evaluator(self, dataset, protocol):
        ev = det_protocol(protocol).evaluation
        return MapAtThreshold(annotations=dataset.annotations(),
                              class_names=dataset.class_names,
                              iou_threshold=ev.iou_threshold,
                              use_07_metric=ev.use_07_metric,
                              results_rounding=ev.results_rounding,
                              score_sort=ev.score_sort, empty_classes=ev.empty_classes)

    def target_predictions(self, dataset, protocol) -> Iterable[dict]:
        """Each image's boxes, difficult ones included, through the evaluation crop and the
        codec (heatmap peaks, sizes, offsets), then decoded and mapped back like a
        model's output: every box found again at score 1 (up to CenterNet's clipping of
        boxes at the crop's last cell) gives mAP 100."""
        from ...data.transforms import affine_transform, get_affine_transform
        codec = dataset.codec
        h, w = codec.input_size
        ev = det_protocol(protocol).evaluation
        for index in range(len(dataset)):
            meta = dataset[index]["meta"]
            boxes, labels = dataset.boxes(index, with_difficult=True)
            M = get_affine_transform(meta["center"], meta["scale"], 0.0, (w, h), pixel_std=1.0)
            crop_boxes = affine_transform(boxes.reshape(-1, 2), M).reshape(-1, 4)
            t = codec.encode(crop_boxes, labels)
            size, offset = codec.dense_maps(t["wh"], t["reg"], t["ind"], t["reg_mask"])
            dets = codec.decode(torch.from_numpy(t["hm"])[None], torch.from_numpy(size)[None],
                                torch.from_numpy(offset)[None], np.asarray([meta["center"]]),
                                np.asarray([meta["scale"]]), k=ev.top_k,
                                selection=ev.top_k_selection,
                                numerics=getattr(dataset, "numerics", "centernet"))
            yield {"detections": self._as_dicts(dataset, dets, [meta["image_id"]])}
