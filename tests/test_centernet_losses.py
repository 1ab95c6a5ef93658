"""CenterNet's heatmap focal loss and RegL1Loss (FlatteNet Table X detection training), on
hand-computed cases."""
from __future__ import annotations

import math

import pytest
import torch

from bench.tasks.detection.losses import centernet_focal_loss, reg_l1_loss


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_focal_loss_one_positive_one_gaussian_negative():
    # pixels: positive (p .5), Gaussian negative (target .5, p .5), plain negatives (p .2
    # and p clamped up to 1e-4)
    logits = torch.tensor([[[[0.0, 0.0], [logit(0.2), -30.0]]]], dtype=torch.float64)
    target = torch.tensor([[[[1.0, 0.5], [0.0, 0.0]]]], dtype=torch.float64)
    pos = math.log(0.5) * 0.5 ** 2
    neg = (math.log(0.5) * 0.5 ** 2 * 0.5 ** 4          # (1 - 0.5)^4 down-weighting
           + math.log(0.8) * 0.2 ** 2
           + math.log(1 - 1e-4) * 1e-4 ** 2)
    loss = centernet_focal_loss(logits, target)
    assert loss.item() == pytest.approx(-(pos + neg) / 1, rel=1e-12)
    # two positives: the sum is divided by 2
    target2 = target.clone()
    target2[0, 0, 1, 0] = 1.0
    pos2 = pos + math.log(0.2) * 0.8 ** 2
    neg2 = neg - math.log(0.8) * 0.2 ** 2
    assert centernet_focal_loss(logits, target2).item() == pytest.approx(-(pos2 + neg2) / 2)


def test_focal_loss_without_positive_is_the_negative_sum():
    logits = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    target = torch.tensor([[[[0.0, 0.5], [0.0, 0.0]]]], dtype=torch.float64)
    neg = 3 * math.log(0.5) * 0.25 + math.log(0.5) * 0.25 * 0.5 ** 4
    assert centernet_focal_loss(logits, target).item() == pytest.approx(-neg, rel=1e-12)


def test_focal_loss_clamps_like_centernet_sigmoid():
    # a confidently wrong positive: log(1e-4) (1 - 1e-4)^2 instead of about -50
    logits = torch.tensor([[[[-50.0]]]], requires_grad=True)
    target = torch.ones(1, 1, 1, 1)
    loss = centernet_focal_loss(logits, target)
    assert loss.item() == pytest.approx(-math.log(1e-4) * (1 - 1e-4) ** 2, rel=1e-5)
    loss.backward()
    assert logits.grad.item() == 0.0          # clamped: no gradient, as the reference
    assert logits.item() == -50.0             # the logits are not overwritten


def test_focal_loss_half_precision_stays_finite():
    logits = torch.full((1, 1, 2, 2), 30.0, dtype=torch.float16)
    target = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]], dtype=torch.float16)
    loss = centernet_focal_loss(logits, target)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    with pytest.raises(ValueError):
        centernet_focal_loss(logits, target[:, :, :1])


def _reg_case():
    # channel 0 = [[0 1 2] [3 4 5]], channel 1 = [[6 7 8] [9 10 11]]: index y * 3 + x
    pred = torch.arange(12, dtype=torch.float64).reshape(1, 2, 2, 3)
    ind = torch.tensor([[4, 0, 5]])
    mask = torch.tensor([[1, 1, 0]], dtype=torch.uint8)
    target = torch.tensor([[[3.5, 10.0], [1.0, 4.0], [100.0, -100.0]]], dtype=torch.float64)
    return pred, ind, mask, target


def test_reg_l1_by_hand():
    pred, ind, mask, target = _reg_case()
    # slot 0 reads (4, 10): |4 - 3.5| + |10 - 10| = 0.5; slot 1 reads (0, 6): 1 + 2 = 3;
    # normalised by the expanded mask: 2 objects x 2 channels
    loss = reg_l1_loss(pred, ind, mask, target)
    assert loss.item() == pytest.approx(3.5 / (4 + 1e-4), rel=1e-12)


def test_reg_l1_ignores_masked_slots():
    pred, ind, mask, target = _reg_case()
    reference = reg_l1_loss(pred, ind, mask, target)
    target2 = target.clone()
    target2[0, 2] = torch.tensor([-7.0, 3.0])
    ind2 = ind.clone()
    ind2[0, 2] = 1
    assert reg_l1_loss(pred, ind2, mask, target2).item() == reference.item()
    # no object at all: 0, not a division by zero
    empty = reg_l1_loss(pred, ind, torch.zeros_like(mask), target)
    assert empty.item() == 0.0


def test_reg_l1_gathers_per_image_and_flows_gradient():
    pred, ind, mask, target = _reg_case()
    pred2 = torch.cat([pred, -pred]).requires_grad_(True)      # image 1: negated maps
    ind2 = torch.cat([ind, torch.tensor([[5, 0, 0]])])    # image 1 slot 0: index 5
    mask2 = torch.cat([mask, torch.tensor([[1, 0, 0]], dtype=torch.uint8)])
    target2 = torch.cat([target, torch.tensor([[[-5.0, -12.0], [0.0, 0.0], [0.0, 0.0]]],
                                              dtype=torch.float64)])
    # image 1 slot 0 reads (-5, -11): 0 + 1 = 1; 3 objects x 2 channels
    loss = reg_l1_loss(pred2, ind2, mask2, target2)
    assert loss.item() == pytest.approx(4.5 / (6 + 1e-4), rel=1e-12)
    loss.backward()
    # d|p - t| / dp = sign(p - t) / normaliser, at the gathered positions only
    grad = pred2.grad
    assert grad[0, 0, 1, 1].item() == pytest.approx(1 / (6 + 1e-4))      # 4 - 3.5 > 0
    assert grad[0, 1, 0, 0].item() == pytest.approx(1 / (6 + 1e-4))      # 6 - 4 > 0
    assert grad[0, 0, 0, 0].item() == pytest.approx(-1 / (6 + 1e-4))     # 0 - 1 < 0
    assert grad[0, :, 1, 2].abs().sum().item() == 0.0                    # masked slot
    assert grad[1, 1, 1, 2].item() == pytest.approx(1 / (6 + 1e-4))      # -11 - -12 > 0
    with pytest.raises(ValueError, match="target"):
        reg_l1_loss(pred, ind, mask, target[:, :2])
