"""Top-down inference: crops -> heatmaps (with the flip test) -> keypoints in image
pixels, sharded over ranks and gathered on rank 0; then the dataset's metric.

Flip test as HRNet and mmpose: the mirrored crop's heatmaps are mirrored back with
the dataset's joint pairs, shifted one pixel right (``shift_heatmap``, the reference
compensation for the asymmetric pixel grid) and averaged with the plain ones.
Decoding (quarter offset / Gaussian / DARK) and the metric functions are the numpy ones
in ``bench.data.codecs`` and ``bench.evaluation``.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..data.codecs import decode_heatmaps, flip_test_average
from ..suite import Evaluation
from .distributed import DistInfo, all_gather_objects
from .loop import autocast_context
from .sampler import EpochSampler

META_FOR_EVAL = ("center", "scale", "score", "image_id", "bbox_id", "area", "index")


def evaluation_settings(evaluation) -> Evaluation:
    """A protocol's ``evaluation`` (mapping, ``Evaluation`` or None) with the schema's
    defaults filled in, so the defaults live in one place (``bench.suite.Evaluation``)."""
    if isinstance(evaluation, Evaluation):
        return evaluation
    return Evaluation.model_validate(dict(evaluation or {}))


@torch.no_grad()
def predict_keypoints(model: torch.nn.Module, dataset, evaluation, device: torch.device,
                      dist_info: DistInfo = DistInfo(), amp: str = "off",
                      channels_last: bool = False, num_workers: int = 2,
                      batch_size: int | None = None) -> dict[str, np.ndarray] | None:
    """Keypoints of every sample of ``dataset`` (its ``train`` flag should be False).

    Returns, on rank 0, ``preds`` (N, K, 2) image pixels, ``maxvals`` (N, K, 1) and the
    meta columns needed by the metrics, all in dataset order; None on other ranks.
    """
    ev = evaluation_settings(evaluation)
    model.eval()
    sampler = EpochSampler(len(dataset), shuffle=False, rank=dist_info.rank,
                           world_size=dist_info.world_size)
    loader = DataLoader(dataset, batch_size=batch_size or ev.batch_size, sampler=sampler,
                        num_workers=num_workers, pin_memory=device.type == "cuda")
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    parts: list[dict[str, np.ndarray]] = []
    for batch in loader:
        x = batch["image"].to(device, non_blocking=True, memory_format=fmt)
        with autocast_context(device, amp):
            heatmaps = model(x).float().cpu().numpy()
            if ev.flip_test:
                flipped = model(torch.flip(x, dims=[3])).float().cpu().numpy()
                heatmaps = flip_test_average(heatmaps, flipped, dataset.flip_pairs,
                                             ev.shift_heatmap)
        meta = {k: np.asarray(batch["meta"][k]) for k in META_FOR_EVAL}
        preds, maxvals = decode_heatmaps(heatmaps, meta["center"], meta["scale"],
                                         ev.post_process, ev.modulate_kernel)
        parts.append({"preds": preds, "maxvals": maxvals, **meta})
    gathered = all_gather_objects(parts)
    if not dist_info.is_main:
        return None
    flat = [p for rank_parts in gathered for p in rank_parts]
    cols = {k: np.concatenate([p[k] for p in flat]) for k in flat[0]}
    # padded duplicates (the last shard wraps around) are dropped by index
    _, first = np.unique(cols["index"], return_index=True)
    order = first[np.argsort(cols["index"][first])]
    return {k: v[order] for k, v in cols.items()}


def evaluate_keypoints(dataset, predictions: Mapping[str, np.ndarray], evaluation
                       ) -> "OrderedDict[str, float]":
    """The dataset's paper metrics for ``predict_keypoints`` output, named as the suite
    measures name them (AP..., PCKh@0.5 / PCKh@0.1 / AUC, PCK@0.2) plus the details
    (per joint, per part)."""
    ev = evaluation_settings(evaluation)
    name = dataset.dataset_name
    if len(predictions["index"]) != len(dataset):
        raise ValueError(f"{len(predictions['index'])} predictions for {len(dataset)} samples")
    if name == "coco":
        from ..data.coco import to_coco_results
        from ..evaluation import coco_keypoint_ap, rescore_and_nms
        kpts = np.concatenate([predictions["preds"], predictions["maxvals"]], axis=2)
        results = to_coco_results(kpts, {k: predictions[k] for k in META_FOR_EVAL})
        results = rescore_and_nms(results, in_vis_thr=ev.keypoint_score_threshold,
                                  oks_thr=ev.oks_nms_threshold)
        return coco_keypoint_ap(results, dataset.coco)
    if name == "mpii":
        from ..data.mpii import gt_order
        from ..evaluation import mpii_pckh
        preds = gt_order(predictions["preds"], predictions["index"], len(dataset))
        out = mpii_pckh(preds, dataset.gt_file)
        out["PCKh@0.1"] = out["Mean@0.1"]
        return out
    if name == "lsp":
        from ..evaluation import lsp_pck
        gts, visible = dataset.ground_truth()
        return lsp_pck(predictions["preds"], gts, visible, threshold=ev.pck_threshold)
    raise ValueError(f"no metric for dataset {name!r}")


def predict_from_targets(dataset, evaluation, batch_size: int = 16) -> dict[str, np.ndarray]:
    """Keypoints decoded from the dataset's own target heatmaps (no model): the best a
    heatmap model can score under this codec and crop. Evaluated like a model's output,
    it checks the evaluation half of the pipeline (targets, decoding, the inverse crop
    transform, the metric) on the very files a run uses; the smoke gate records it."""
    ev = evaluation_settings(evaluation)
    parts = []
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        heatmaps = np.stack([it["target"].numpy() for it in items])
        meta = {k: np.asarray([it["meta"][k] for it in items]) for k in META_FOR_EVAL}
        preds, maxvals = decode_heatmaps(heatmaps, meta["center"], meta["scale"],
                                         ev.post_process, ev.modulate_kernel)
        parts.append({"preds": preds, "maxvals": maxvals, **meta})
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
