import pytest
import torch

from bench.tasks.pose.losses import JointsMSELoss, joints_mse
from bench.training.schedule import StepWarmupSchedule, scaled_lr


def test_joints_mse_by_hand():
    pred = torch.zeros(1, 2, 2, 2)
    target = torch.zeros(1, 2, 2, 2)
    target[0, 0, 0, 0] = 1.0          # one pixel of joint 0 off by 1
    target[0, 1] = 2.0                # joint 1 off everywhere, but unlabelled
    weight = torch.tensor([[1.0, 0.0]])
    # 0.5 x (1^2) / (1 x 2 joints x 4 pixels)
    assert joints_mse(pred, target, weight).item() == pytest.approx(0.5 / 8)
    assert JointsMSELoss(use_target_weight=False)(pred, target, weight).item() == pytest.approx(
        0.5 * (1 + 4 * 4) / 8)
    with pytest.raises(ValueError, match="differ"):
        joints_mse(pred, target[:, :1])


def test_loss_matches_the_per_joint_reference_loop():
    torch.manual_seed(0)
    pred, target = torch.rand(3, 5, 4, 6), torch.rand(3, 5, 4, 6)
    weight = torch.rand(3, 5, 1)
    loop = sum(0.5 * torch.mean((pred[:, j].reshape(3, -1) * weight[:, j]
                                  - target[:, j].reshape(3, -1) * weight[:, j]) ** 2)
               for j in range(5)) / 5
    assert joints_mse(pred, target, weight).item() == pytest.approx(loop.item(), rel=1e-6)


def test_step_schedule_with_linear_warmup():
    s = StepWarmupSchedule(2e-3, milestones=(170, 200), warmup_iters=500, warmup_ratio=0.001)
    assert s.lr(0, 0) == pytest.approx(2e-3 * 0.001)
    assert s.lr(0, 250) == pytest.approx(2e-3 * (1 - 0.5 * 0.999))
    assert s.lr(0, 500) == pytest.approx(2e-3)
    assert s.lr(169, 10**6) == pytest.approx(2e-3)
    assert s.lr(170, 10**6) == pytest.approx(2e-4)
    assert s.lr(209, 10**6) == pytest.approx(2e-5)


def test_linear_scaling_rule():
    assert scaled_lr(2e-3, 64, 256) == pytest.approx(5e-4)
    with pytest.raises(ValueError):
        scaled_lr(2e-3, 0, 256)
