"""CenterNet's detection losses (Zhou et al., "Objects as Points"; its
``src/lib/models/losses.py``), FlatteNet Table X."""
from __future__ import annotations

import torch


def centernet_focal_loss(pred_logits: torch.Tensor, target_hm: torch.Tensor) -> torch.Tensor:
    """CenterNet's (CornerNet's) penalty-reduced pixel-wise focal loss (``_neg_loss``,
    alpha = 2, beta = 4) on centre-heatmap logits (B x C x h x w).

    ``p = clamp(sigmoid(logits), 1e-4, 1 - 1e-4)`` (CenterNet's ``_sigmoid``); positives
    are the pixels where ``target == 1``, negatives those below 1:

        pos = sum_pos log(p) (1 - p)^2,  neg = sum_neg log(1 - p) p^2 (1 - target)^4,
        loss = -(pos + neg) / num_pos,   or -neg when there is no positive.

    As the reference, the clamp has no gradient outside [1e-4, 1 - 1e-4]. Differences
    that change no value: the logits are not overwritten (the reference's ``sigmoid_`` is
    in place); the loss is computed in at least float32 (in half precision 1 - 1e-4
    rounds to 1 and log(1 - p) to -inf); dividing by ``max(num_pos, 1)`` replaces the
    branch (pos is 0 without positives), so no host synchronisation is needed.
    """
    if pred_logits.shape != target_hm.shape:
        raise ValueError(f"logits {tuple(pred_logits.shape)} and target "
                         f"{tuple(target_hm.shape)} differ")
    dtype = torch.promote_types(pred_logits.dtype, torch.float32)
    pred = pred_logits.to(dtype).sigmoid().clamp(min=1e-4, max=1 - 1e-4)
    target = target_hm.to(dtype)
    pos = target.eq(1).to(dtype)
    neg = target.lt(1).to(dtype)
    pos_loss = (torch.log(pred) * (1 - pred).pow(2) * pos).sum()
    neg_loss = (torch.log(1 - pred) * pred.pow(2) * (1 - target).pow(4) * neg).sum()
    return -(pos_loss + neg_loss) / pos.sum().clamp(min=1)


def reg_l1_loss(pred: torch.Tensor, ind: torch.Tensor, mask: torch.Tensor,
                target: torch.Tensor) -> torch.Tensor:
    """CenterNet's ``RegL1Loss`` (box sizes and centre offsets): ``pred`` (B x D x h x w,
    D = 2 for both heads) read at the flattened positions ``ind`` (B x M, ``y * w + x``)
    of the M object slots, against ``target`` (B x M x D); ``mask`` (B x M) marks the
    slots holding an object (padding slots 0).

    Exactly the reference's normalisation: the mask is expanded to the D channels, so
        loss = sum |pred - target| over masked slots and channels / (D * mask.sum() + 1e-4),
    i.e. the mean over masked *coordinates* (not objects), with 1e-4 guarding an empty
    batch (loss 0). Masked-out slots contribute nothing, whatever ``ind`` points at.
    """
    if pred.dim() != 4 or ind.dim() != 2 or ind.shape != mask.shape:
        raise ValueError(f"pred must be B x D x h x w, ind and mask B x M; got "
                         f"{tuple(pred.shape)}, {tuple(ind.shape)}, {tuple(mask.shape)}")
    b, d = pred.shape[:2]
    if target.shape != (b, ind.shape[1], d):
        raise ValueError(f"target must be {(b, ind.shape[1], d)}, got {tuple(target.shape)}")
    dtype = torch.promote_types(pred.dtype, torch.float32)
    flat = pred.to(dtype).flatten(2).transpose(1, 2)                  # B x hw x D
    gathered = flat.gather(1, ind.long().unsqueeze(2).expand(-1, -1, d))
    weight = mask.to(dtype).unsqueeze(2).expand_as(gathered)
    # |m (pred - target)| is the reference's |pred * m - target * m|, one subtraction less
    loss = ((gathered - target.to(dtype)) * weight).abs().sum()
    return loss / (weight.sum() + 1e-4)
