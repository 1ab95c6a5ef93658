"""Top-down human pose estimation: the task of most tables (HRNet, Lite-HRNet, DPN,
GSTO and FlatteNet on COCO and MPII; LSP-extended for the CPU sanity runs).

* data: ``COCODataset`` / ``MPIIDataset`` / ``LSPDataset`` from the protocol
  (``bench.data``); each dataset owns one ``MSRAHeatmapCodec`` (``dataset.codec``) that
  makes its targets and decodes the predictions made on its crops;
* loss: JointsMSELoss on the main heatmaps (``heatmap``; HRNet's half or mmpose's whole
  mean squared error, the protocol's ``loss.mse_factor``), plus one term per
  auxiliary heatmap output (GSTO's stage predictors, ``aux.<name>``), weighted by the
  protocol's ``aux_weights``;
* prediction: the flip test (the mirrored crop's heatmaps flipped back with the
  dataset's joint pairs, shifted one pixel right, averaged with the plain ones), decoded
  by the dataset's codec into original-image pixels in HRNet's or mmpose's arithmetic
  (``evaluation.decode``); checked against both codes by the prediction goldens;
* evaluation: COCO OKS AP (rescoring + OKS-NMS), MPII PCKh, LSP PCK
  (``bench.evaluation``), one ``Evaluator`` interface;
* the smoke gate's target oracle: the dataset's own target heatmaps decoded and scored
  like a model's, on ground-truth boxes (``oracle_dataset``);
* the LSP mean-pose baseline as an extra metric.
"""
from __future__ import annotations

import importlib
from typing import Any, Iterator, Mapping, Optional

import numpy as np
import torch

from .codecs import flip_test_average
from .data.topdown import pose_protocol
from ...evaluation.base import finite_or_none
from .protocol import PoseEvaluation, PoseProtocol
from .losses import joints_mse
from ..base import MAIN_OUTPUT, Task, as_outputs, loss_precision, main_output

#: dataset name (the protocol's ``dataset``) -> (module, class)
DATASETS = {"coco": ("bench.tasks.pose.data.coco", "COCODataset"),
            "mpii": ("bench.tasks.pose.data.mpii", "MPIIDataset"),
            "lsp": ("bench.tasks.pose.data.lsp", "LSPDataset")}

#: the meta columns a prediction batch carries beside ``preds`` and ``maxvals``
META_FOR_EVAL = ("center", "scale", "score", "image_id", "bbox_id", "area", "index")


def _numpy(value) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def build_dataset(protocol, data_root, train: bool, **overrides):
    """The protocol's dataset (its ``dataset``) under ``data_root``."""
    p = pose_protocol(protocol)
    if p.dataset not in DATASETS:
        raise ValueError(f"no dataset loader for {p.dataset!r}; known: {', '.join(DATASETS)}")
    module, cls = DATASETS[p.dataset]
    return getattr(importlib.import_module(module), cls).from_protocol(
        p, data_root, train=train, **overrides)


class PoseTask(Task):
    """Top-down pose (see the module docstring)."""

    # --- data -------------------------------------------------------------------------
    def build_dataset(self, protocol, data_root, train: bool, seed: int = 0, **overrides):
        """``COCODataset`` / ``MPIIDataset`` / ``LSPDataset`` of the protocol under
        ``data_root``; ``seed`` seeds the training augmentation (unused otherwise)."""
        if train:
            overrides.setdefault("seed", seed)
        return build_dataset(protocol, data_root, train, **overrides)

    def oracle_dataset(self, protocol, data_root):
        """The evaluation dataset the target oracle runs on: the validation split on
        ground-truth boxes (a detector box has no annotated person, hence no target)."""
        p = pose_protocol(protocol)
        on_boxes = p.evaluation.model_copy(update={"boxes": "ground_truth"})
        return build_dataset(p.model_copy(update={"evaluation": on_boxes}), data_root,
                             train=False)

    def write_smoke_data(self, root, seed: int = 0) -> None:
        """COCO, MPII and LSP-extended in their official layouts under
        ``root/{coco,mpii,lspet}``."""
        from .synthetic import write_all
        write_all(root, seed=seed)

    # --- training ---------------------------------------------------------------------
    def loss(self, outputs: Mapping[str, Any], batch: Mapping[str, Any],
             protocol: PoseProtocol) -> dict[str, torch.Tensor]:
        """``heatmap``: JointsMSE (``loss.mse_factor`` x the mean) of the main heatmaps (cast to float32, as the trainer
        did outside autocast) against ``batch['target']``, joints weighted by
        ``batch['target_weight']`` when the protocol's ``use_target_weight`` (default
        True); ``aux.<name>``: the same loss of each auxiliary heatmap output times
        ``protocol.aux_weights[name]`` (a KeyError names a missing weight)."""
        outputs = as_outputs(outputs)
        p = pose_protocol(protocol)
        main = outputs[MAIN_OUTPUT]
        target = batch["target"].to(main.device, non_blocking=True)
        weight = batch["target_weight"].to(main.device, non_blocking=True) \
            if p.use_target_weight else None
        factor = p.loss.mse_factor
        terms = {"heatmap": joints_mse(loss_precision(main), target, weight, factor)}
        for name in (n for n in outputs if n != MAIN_OUTPUT):
            if name not in p.aux_weights:
                raise KeyError(
                    f"protocol {p.name!r} gives no aux_weights entry for the model's "
                    f"auxiliary output {name!r} (aux_weights: {dict(p.aux_weights) or 'none'})")
            terms[f"aux.{name}"] = p.aux_weights[name] * joints_mse(
                loss_precision(outputs[name]), target, weight, factor)
        return terms

    # --- evaluation -------------------------------------------------------------------
    def eval_batch_size(self, protocol) -> int:
        return pose_protocol(protocol).evaluation.batch_size

    @torch.no_grad()
    def predict(self, model, batch: Mapping[str, Any], dataset, protocol, device,
                amp: str = "off", channels_last: bool = False) -> dict[str, np.ndarray]:
        """Keypoints of one batch of evaluation crops (the caller puts the model in eval
        mode): heatmaps of the crop, averaged with those of the mirrored crop when the
        protocol's ``evaluation.flip_test``, decoded by ``dataset.codec`` with the
        protocol's post-processing into original-image pixels.

        Returns numpy arrays: ``preds`` (B, K, 2), ``maxvals`` (B, K, 1) and the meta
        columns ``center``, ``scale``, ``score``, ``image_id``, ``bbox_id``, ``area``,
        ``index`` (what the pose evaluators ``process``)."""
        from ...training.loop import autocast_context
        ev = pose_protocol(protocol).evaluation
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        x = batch["image"].to(device, non_blocking=True, memory_format=fmt)
        with autocast_context(device, amp):
            heatmaps = main_output(model(x)).float().cpu().numpy()
            if ev.flip_test:
                flipped = main_output(model(torch.flip(x, dims=[3]))).float().cpu().numpy()
                heatmaps = flip_test_average(heatmaps, flipped, dataset.flip_pairs,
                                             ev.shift_heatmap)
        meta = {k: _numpy(batch["meta"][k]) for k in META_FOR_EVAL}
        return self._decoded(dataset, heatmaps, meta, ev)

    @staticmethod
    def _decoded(dataset, heatmaps: np.ndarray, meta: dict, ev: PoseEvaluation) -> dict:
        preds, maxvals = dataset.codec.decode(heatmaps, meta["center"], meta["scale"],
                                              ev.post_process, ev.modulate_kernel,
                                              decode=ev.decode)
        return {"preds": preds, "maxvals": maxvals, **meta}

    def evaluator(self, dataset, protocol):
        """The dataset's metric over the whole split: ``CocoKeypointEvaluator`` (AP...),
        ``MpiiPCKhEvaluator`` (PCKh@0.5, PCKh@0.1, AUC, parts) or ``LspPCKEvaluator``
        (PCK@<threshold>, parts)."""
        from .metrics import CocoKeypointEvaluator, LspPCKEvaluator, MpiiPCKhEvaluator
        ev = pose_protocol(protocol).evaluation
        name = dataset.dataset_name
        if name == "coco":
            return CocoKeypointEvaluator(dataset.coco, oks_thr=ev.oks_nms_threshold,
                                         in_vis_thr=ev.keypoint_score_threshold,
                                         num_samples=len(dataset),
                                         style=ev.coco_postprocess)
        if name == "mpii":
            return MpiiPCKhEvaluator(dataset.gt_file, num_samples=len(dataset),
                                     low_alpha=ev.pckh_low_alpha,
                                     style=ev.pckh_arithmetic)
        if name == "lsp":
            gts, visible = dataset.ground_truth()
            return LspPCKEvaluator(gts, visible, threshold=ev.pck_threshold)
        raise ValueError(f"no metric for dataset {name!r}")

    def target_predictions(self, dataset, protocol) -> Iterator[dict]:
        """Batches decoded from ``dataset``'s own target heatmaps (no model), through the
        same codec, post-processing and inverse crop transform as a model's heatmaps:
        the best a heatmap model can score. Run it on ``oracle_dataset`` (ground-truth
        boxes): a detector box has no target."""
        ev = pose_protocol(protocol).evaluation
        size = self.eval_batch_size(protocol)
        for start in range(0, len(dataset), size):
            items = [dataset[i] for i in range(start, min(start + size, len(dataset)))]
            heatmaps = np.stack([it["target"].numpy() for it in items])
            meta = {k: np.asarray([it["meta"][k] for it in items]) for k in META_FOR_EVAL}
            yield self._decoded(dataset, heatmaps, meta, ev)

    def extra_metrics(self, train_set, val_set, protocol) -> Optional[dict]:
        """LSP only (None otherwise, or without a training set): the mean-pose baseline
        (``bench.evaluation.mean_pose_predictions``) scored like a model.

        Returns ``{"baselines": {"mean_pose": {<lsp_pck's metrics>}}, "metrics":
        {"MeanPose-PCK@<threshold>": value}}``; non-finite values are None."""
        if train_set is None or val_set.dataset_name != "lsp":
            return None
        from .metrics import lsp_pck, mean_pose_predictions
        threshold = pose_protocol(protocol).evaluation.pck_threshold
        preds = mean_pose_predictions(train_set.records, val_set.records)
        gts, visible = val_set.ground_truth()
        mean_pose = {k: finite_or_none(v)
                     for k, v in lsp_pck(preds, gts, visible, threshold=threshold).items()}
        pck = f"PCK@{threshold:g}"
        return {"baselines": {"mean_pose": mean_pose},
                "metrics": {f"MeanPose-{pck}": mean_pose[pck]}}


__all__ = ["DATASETS", "META_FOR_EVAL", "PoseTask", "build_dataset"]
