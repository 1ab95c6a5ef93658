"""Semantic segmentation as a task plug-in: GSTO Tables 1-9 and 11, Lite-HRNet Table 8,
FlatteNet Table VIII (Cityscapes, LIP, PASCAL-Context; mIoU).

Data: ``bench.tasks.segmentation.data.base`` (official layouts; random scale, pad, crop, flip).
Loss: pixel cross-entropy with the ignore label, optional class weights and OHEM, plus
one term per auxiliary output of the model weighted by the protocol's ``aux_weights``.
Prediction: ``bench.tasks.segmentation.inference`` (scales, flip with the dataset's
label pairs swapped, sliding window, logits resized to the label). Metric: one
confusion matrix, ``bench.tasks.segmentation.metrics``.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
import torch
from torch import nn

from ..base import MAIN_OUTPUT, Task, loss_precision
from .protocol import SegLoss, SegmentationProtocol, seg_protocol

# the target oracle's logit for the labelled class (softmax ~ 1 - 1e-8 per class)
_ORACLE_LOGIT = 20.0
# the smoke profile's largest training crop (H, W): the generated images are 100-256 px,
# and the CPU must take a W48 network through 6 iterations in seconds
SMOKE_CROP = (64, 128)


def class_weights(loss: SegLoss, num_classes: int):
    """The protocol's per-class weights as a tensor (None: unweighted)."""
    weights = loss.class_weights
    if weights is None:
        return None
    if weights == "hrnet_cityscapes":
        from .losses import HRNET_CITYSCAPES_CLASS_WEIGHTS
        weights = HRNET_CITYSCAPES_CLASS_WEIGHTS
    if len(weights) != num_classes:
        raise ValueError(f"{len(weights)} class weights for {num_classes} classes")
    return torch.tensor(list(weights), dtype=torch.float32)


class LabelEcho(nn.Module):
    """The target oracle's 'model': its input is the label as one-hot channels plus a
    horizontal ramp; it answers the one-hot as logits, with the flip pairs' channels
    swapped when the ramp runs right to left (a mirrored input: an ideal model names a
    mirrored left arm 'right arm'). Pushed through the prediction path it must give the
    labels back: any error in resizing, flipping, window stitching or the metric shows."""

    def __init__(self, num_classes: int, flip_pairs=()):
        super().__init__()
        self.num_classes = num_classes
        swap = list(range(num_classes))
        for a, b in flip_pairs:
            swap[a], swap[b] = b, a
        self.register_buffer("swap", torch.tensor(swap), persistent=False)

    @staticmethod
    def encode(label: torch.Tensor, num_classes: int) -> torch.Tensor:
        """B x H x W labels (ignore: any value outside 0..C-1) -> B x (C + 1) x H x W."""
        valid = (label >= 0) & (label < num_classes)
        onehot = torch.nn.functional.one_hot(torch.where(valid, label, 0), num_classes)
        onehot = onehot.permute(0, 3, 1, 2).float() * valid[:, None]
        width = label.shape[-1]
        ramp = (1.0 + torch.arange(width, dtype=torch.float32) / width).expand_as(label)
        return torch.cat([onehot, ramp[:, None]], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = x[:, :self.num_classes] * _ORACLE_LOGIT
        # the first row's ramp runs right to left: its ramp-weighted centre lies left of
        # the centre of its unpadded (ramp > 0) pixels; zero padding (a window padded at
        # the right, then mirrored) does not move either centre off its side
        ramp = x[:, self.num_classes, 0]
        pos = torch.arange(ramp.shape[-1], dtype=ramp.dtype, device=x.device)
        inside = (ramp > 0).to(ramp.dtype)
        weighted = (ramp * pos).sum(-1) / ramp.sum(-1).clamp_min(1e-12)
        plain = (inside * pos).sum(-1) / inside.sum(-1).clamp_min(1.0)
        mirrored = weighted < plain - 1e-6
        return torch.where(mirrored[:, None, None, None], logits[:, self.swap], logits)


class SegmentationTask(Task):
    """Semantic segmentation (see the module docstring)."""

    # --- data -------------------------------------------------------------------------
    def build_dataset(self, protocol, data_root, train: bool, seed: int = 0):
        from .data.base import build_segmentation_dataset
        return build_segmentation_dataset(protocol, data_root, train=train, seed=seed)

    def write_smoke_data(self, root, seed: int = 0) -> None:
        from .synthetic import write_segmentation_all
        # 12 training images: 3 iterations per epoch at the smoke batch of 4, as pose
        write_segmentation_all(root, seed=seed, num_train=12)

    def smoke_protocol(self, protocol):
        """Crops of at most ``SMOKE_CROP`` and the generated images at their own size
        (no base size); the evaluation's scales and flip as the protocol says, its
        sliding window shrunk by the same factor as the crop."""
        crop = protocol.crop_size or SMOKE_CROP
        small = tuple(min(c, m) for c, m in zip(crop, SMOKE_CROP))
        ev = protocol.evaluation
        window = ev.sliding_window
        if window is not None:
            factor = min(1.0, *(s / c for s, c in zip(small, crop)))
            window = window.model_copy(update={
                "crop": tuple(max(8, round(c * factor)) for c in window.crop),
                "stride": tuple(max(4, round(s * factor)) for s in window.stride)})
        # the generated images at their own size (nothing left to resize to); the small
        # generated sets miss classes, and the target oracle must still score 100
        ev = ev.model_copy(update={"sliding_window": window, "base_size": None,
                                   "image_size": None, "image_resize": "inference",
                                   "absent_classes": "skip"})
        return protocol.model_copy(update={"crop_size": small, "base_size": None,
                                           "evaluation": ev})

    # --- training ---------------------------------------------------------------------
    def loss(self, outputs: Mapping[str, torch.Tensor], batch: Mapping,
             protocol: SegmentationProtocol) -> dict[str, torch.Tensor]:
        from .losses import ohem_cross_entropy, pixel_cross_entropy
        p = seg_protocol(protocol)
        cfg, labels, ignore = p.loss, batch["label"], p.ignore_label
        weights = class_weights(cfg, outputs[MAIN_OUTPUT].shape[1])
        if weights is not None:
            weights = weights.to(labels.device)

        def ce(logits: torch.Tensor) -> torch.Tensor:
            logits = loss_precision(logits)   # outside autocast, in float32 (or float64)
            if cfg.ohem:
                return ohem_cross_entropy(logits, labels, ignore_index=ignore,
                                          thresh=cfg.ohem.threshold, min_kept=cfg.ohem.min_kept,
                                          class_weights=weights, align_corners=cfg.align_corners)
            return pixel_cross_entropy(logits, labels, ignore_index=ignore,
                                       class_weights=weights, align_corners=cfg.align_corners)

        terms = {"ce": cfg.main_weight * ce(outputs[MAIN_OUTPUT])}
        for name, pred in outputs.items():
            if name == MAIN_OUTPUT:
                continue
            if name not in cfg.aux_weights:
                raise KeyError(f"the model returns an auxiliary output {name!r} but protocol "
                               f"{p.name!r} gives it no weight (loss.aux_weights: "
                               f"{dict(cfg.aux_weights) or 'none'})")
            terms[f"aux.{name}"] = cfg.aux_weights[name] * ce(pred)
        return terms

    # --- evaluation -------------------------------------------------------------------
    def eval_batch_size(self, protocol) -> int:
        return seg_protocol(protocol).evaluation.batch_size

    def _inference_args(self, dataset, protocol) -> dict:
        p = seg_protocol(protocol)
        ev, window = p.evaluation, p.evaluation.sliding_window
        args = {"scales": ev.scales, "flip": ev.flip,
                "flip_pairs": tuple(dataset.flip_pairs), "base_size": ev.base_size,
                "image_size": ev.image_size,
                "sliding_window": (window.crop, window.stride, window.style) if window else None,
                "align_corners": p.loss.align_corners if ev.align_corners is None
                else ev.align_corners,
                "ensemble": ev.ensemble}
        if args["ensemble"] == "hrnet" and hasattr(dataset, "mean"):
            # HRNet pads windows with -mean / std: a black pixel after normalisation
            mean, std = (np.asarray(v, dtype=np.float64).reshape(-1) for v in (dataset.mean, dataset.std))
            args["pad_value"] = tuple(float(v) for v in -mean / std)
        return args

    def predict(self, model, batch: Mapping, dataset, protocol, device,
                amp: str = "off", channels_last: bool = False) -> dict:
        from ...training.loop import autocast_context
        from .inference import predict_scores
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        image = batch["image"].to(device, non_blocking=True, memory_format=fmt)
        label = batch["label"]
        with autocast_context(device, amp):
            scores = predict_scores(model, image, dataset.num_classes,
                                    out_size=tuple(label.shape[-2:]),
                                    **self._inference_args(dataset, protocol))
        return {"pred": scores.argmax(1).cpu().numpy(), "label": label.numpy()}

    def evaluator(self, dataset, protocol):
        from .metrics import SegmentationEvaluator
        return SegmentationEvaluator(dataset.num_classes, ignore_index=dataset.ignore_label,
                                     class_names=dataset.class_names,
                                     absent=seg_protocol(protocol).evaluation.absent_classes)

    def target_predictions(self, dataset, protocol) -> Iterable[dict]:
        from .inference import predict_scores
        oracle = LabelEcho(dataset.num_classes, dataset.flip_pairs).eval()
        args = self._inference_args(dataset, protocol)
        args.pop("pad_value", None)   # the oracle's input has C + 1 channels: zero padding
        for index in range(len(dataset)):
            label = torch.from_numpy(np.asarray(dataset.load_label(index), dtype=np.int64))[None]
            scores = predict_scores(oracle, LabelEcho.encode(label, dataset.num_classes),
                                    dataset.num_classes, out_size=tuple(label.shape[-2:]), **args)
            yield {"pred": scores.argmax(1).numpy(), "label": label.numpy()}
