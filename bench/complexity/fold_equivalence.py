"""The folding equivalence of FlatteNet (Sec. III-C), measured on a built model.

The claim: predicting through the rearrangement R (pixelwise descriptors moved from
depth to space, then an affine predictor per pixel) equals predicting *folded* targets
T = R^-1(Y) directly at the coarse resolution with the same parameters, i.e.
Y = R(P) with P = fc(DWSGConv(F)). A model that makes this claim exposes three methods,
which is all this module knows of it:

* ``predict_folded(x)``: P, the predictor applied to each descriptor at the coarse
  resolution, without R;
* ``fold_targets(y)``: R^-1 applied to a label map at the output resolution;
* ``unfold_predictions(p)``: R applied to a folded prediction.

The measure runs the model both ways on a copy with weights of order one (the pose
initialisation draws convolutions from N(0, 0.001^2), which would make any difference
vanish below every tolerance) in float64, and reports the largest absolute difference,
along with the output's own scale and the difference of an element-wise loss computed
both ways (Eq. 9 on the unfolded vs. the folded pair).
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

METHODS = ("predict_folded", "fold_targets", "unfold_predictions")


def _probe_copy(model: nn.Module, seed: int) -> nn.Module:
    """A float64 copy in eval mode with weights of order one: convolutions ~ N(0, 1/fan_in),
    norm scales and running variances ~ U(0.5, 1.5), shifts, means and biases ~ N(0, 0.1^2),
    PReLU slopes ~ U(0, 1) (so that the activation is not the identity it starts as)."""
    probe = copy.deepcopy(model).double().eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in probe.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen, dtype=torch.float64)
                               / math.sqrt(fan_in))
                if m.bias is not None:
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen, dtype=torch.float64))
            elif isinstance(m, nn.modules.batchnorm._NormBase):
                for t, kind in ((m.weight, "scale"), (m.running_var, "scale"),
                                (m.bias, "shift"), (m.running_mean, "shift")):
                    if t is None:
                        continue
                    if kind == "scale":
                        t.copy_(0.5 + torch.rand(t.shape, generator=gen, dtype=torch.float64))
                    else:
                        t.copy_(0.1 * torch.randn(t.shape, generator=gen, dtype=torch.float64))
            elif isinstance(m, nn.PReLU):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen, dtype=torch.float64))
    return probe


def fold_equivalence(model: nn.Module, input_shape, seed: int = 0) -> dict:
    """Run ``model`` on one random (C, H, W) input both ways. Returns
    ``max_abs_error`` (max |T(Y) - P| and |R(P) - Y| over every element), ``output_scale``
    (max |Y|), ``loss_error`` (|MSE(Y, G) - MSE(P, R^-1(G))| for a random label map G) and
    the shapes of Y and P."""
    missing = [m for m in METHODS if not callable(getattr(model, m, None))]
    if missing:
        name = getattr(model, "registry_name", type(model).__name__)
        raise ValueError(f"model {name!r} does not expose {', '.join(missing)}: it makes no "
                         "folding-equivalence claim to measure")
    channels, height, width = (int(v) for v in list(input_shape)[-3:])
    probe = _probe_copy(model, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(1, channels, height, width, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        y = probe(x)
        p = probe.predict_folded(x)
        folded_y = probe.fold_targets(y)
        if folded_y.shape != p.shape:
            raise ValueError(f"folded output {tuple(folded_y.shape)} and folded prediction "
                             f"{tuple(p.shape)} differ in shape")
        error = max(float((folded_y - p).abs().max()),
                    float((probe.unfold_predictions(p) - y).abs().max()))
        target = torch.randn(y.shape, generator=gen, dtype=torch.float64)
        loss_error = abs(float(((y - target) ** 2).mean())
                         - float(((p - probe.fold_targets(target)) ** 2).mean()))
    return {"max_abs_error": error, "output_scale": float(y.abs().max()),
            "loss_error": loss_error, "output_shape": list(y.shape),
            "folded_shape": list(p.shape)}
