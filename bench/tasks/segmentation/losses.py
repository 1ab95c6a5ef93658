"""Pixel-wise cross-entropy (plain and OHEM) of the segmentation tables (HRNetV2
Cityscapes / LIP / PASCAL-Context, Lite-HRNet, GSTO, FlatteNet), after
HRNet-Semantic-Segmentation's ``lib/core/criterion.py`` (the OHEM loss is checked against
it by ``training_hrnetv2_cityscapes_ohem.json``, the plain one is not)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


#: HRNet-Semantic-Segmentation's Cityscapes class weights (``lib/datasets/cityscapes.py``),
#: in the 19 train-id order road .. bicycle.
HRNET_CITYSCAPES_CLASS_WEIGHTS = (0.8373, 0.918, 0.866, 1.0345, 1.0166, 0.9969, 0.9754, 1.0489,
                                  0.8786, 1.0023, 0.9539, 0.9843, 1.1116, 0.9037, 1.0865,
                                  1.0955, 1.0865, 1.1529, 1.0507)


def _logits_at_label_size(logits: torch.Tensor, labels: torch.Tensor, align_corners: bool
                          ) -> torch.Tensor:
    if logits.dim() != 4 or labels.dim() != 3 or logits.shape[0] != labels.shape[0]:
        raise ValueError(f"logits must be B x C x h x w and labels B x H x W; got "
                         f"{tuple(logits.shape)} and {tuple(labels.shape)}")
    if logits.shape[-2:] != labels.shape[-2:]:
        logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear",
                               align_corners=align_corners)
    return logits


def _weights(class_weights, logits: torch.Tensor):
    if class_weights is None:
        return None
    w = torch.as_tensor(class_weights, dtype=logits.dtype, device=logits.device)
    if w.shape != (logits.shape[1],):
        raise ValueError(f"{tuple(w.shape)} class weights for {logits.shape[1]} classes")
    return w


def pixel_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = 255,
                        class_weights=None, align_corners: bool = True) -> torch.Tensor:
    """HRNet's ``CrossEntropy`` as we read it (no test runs the official plain CE):
    ``logits`` (B x C x h x w) resized bilinearly to the label size, then cross-entropy
    over the pixels not labelled ``ignore_index``; with ``class_weights`` the weighted
    mean ``sum w_y * l / sum w_y`` of torch's weighted CE. ``align_corners`` True is the
    HRNet-OCR config default (``MODEL.ALIGN_CORNERS``); the pytorch-v1.1 criterion and the
    released HRNetV2 configs resize with False (``hrnet_official.json``, OHEM golden).

    Deviation: a batch without a single counted pixel gives 0 (connected to the graph)
    where torch's mean gives NaN, so a fully ignored crop cannot poison training.
    """
    logits = _logits_at_label_size(logits, labels, align_corners)
    labels = labels.long()
    if not (labels != ignore_index).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits, labels, weight=_weights(class_weights, logits),
                           ignore_index=ignore_index)


def ohem_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = 255,
                       thresh: float = 0.9, min_kept: int = 131072, class_weights=None,
                       align_corners: bool = True) -> torch.Tensor:
    """HRNet's ``OhemCrossEntropy`` (Cityscapes configs: ``thresh`` 0.9, ``min_kept``
    131072): online hard-pixel mining on the softmax probability of the true class.

    Over the pixels not ignored, with probabilities sorted ascending ``p_(0) <= ...``,
    the threshold is ``max(thresh, p_(k))`` with ``k = min(min_kept, n_valid - 1)``; the
    loss is the plain mean of the per-pixel (class-weighted) CE of the pixels with
    ``p < threshold``. So every pixel below ``thresh`` is kept, and when fewer than
    ``min_kept`` are, the ``min_kept`` hardest ones are (the comparison is strict, as in
    the reference: with ``n_valid <= min_kept`` the easiest pixel drops out when its
    probability is above ``thresh``; ties at ``p_(k)`` drop out too).

    Same as the reference, including that class weights scale the per-pixel losses but
    the mean is not normalised by them. Deviations: ``min_kept`` selects with
    ``kthvalue`` instead of a full sort (same threshold); no counted pixel, or none
    below the threshold, gives 0 (connected to the graph) instead of an indexing error
    or NaN.
    """
    logits = _logits_at_label_size(logits, labels, align_corners)
    labels = labels.long()
    valid = labels != ignore_index
    n_valid = int(valid.sum())
    if n_valid == 0:
        return logits.sum() * 0.0
    pixel_losses = F.cross_entropy(logits, labels, weight=_weights(class_weights, logits),
                                   ignore_index=ignore_index, reduction="none")[valid]
    with torch.no_grad():
        # the mining only selects pixels: no gradient flows through the probabilities
        # at least float32: half-precision probabilities would tie at the threshold
        prob = F.softmax(logits, dim=1, dtype=torch.promote_types(logits.dtype, torch.float32))
        safe = torch.where(valid, labels, torch.zeros_like(labels))   # ignore value is no class
        prob = prob.gather(1, safe.unsqueeze(1)).squeeze(1)[valid]
        k = min(max(1, int(min_kept)), n_valid - 1)
        threshold = max(float(thresh), float(prob.kthvalue(k + 1).values))
        keep = prob < threshold
    if not keep.any():
        return logits.sum() * 0.0
    return pixel_losses[keep].mean()
