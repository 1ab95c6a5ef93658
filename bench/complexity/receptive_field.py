"""Receptive fields measured on a built module, not recomputed from a formula.

Serves DPN's claims (Eq. 6 and the gridding issue of Sec. III-A / Table III): the input
positions one output position depends on are found from the gradient of that output with
respect to the input. So that no path cancels another, the module is measured on a copy
whose convolutions average their inputs (every weight 1 / fan-in, no bias), whose
normalisation layers are identities, and on an all-positive input: every activation is
then positive, ReLUs pass everything, residual sums only add, and the gradient is
non-zero exactly where some path of the network connects the input to the output.

``receptive_field`` is the extent of that footprint (rows, columns); ``contributing
fraction`` is the share of positions inside the extent that are actually connected: 1.0
for a complete receptive field, below 1.0 when dilations leave holes (gridding).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Footprint:
    height: int                 # extent of the connected input positions
    width: int
    connected: int              # connected positions inside the extent
    input_size: tuple[int, int]

    @property
    def receptive_field(self) -> int:
        return max(self.height, self.width)

    @property
    def contributing_fraction(self) -> float:
        return self.connected / (self.height * self.width)


def _averaging_copy(module: nn.Module) -> nn.Module:
    probe = copy.deepcopy(module).eval()
    with torch.no_grad():
        for m in probe.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d)):
                m.weight.fill_(1.0 / m.weight[0].numel())
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.modules.batchnorm._NormBase):
                if m.affine:
                    m.weight.fill_(1.0)
                    m.bias.zero_()
                if m.track_running_stats:
                    m.running_mean.zero_()
                    m.running_var.fill_(1.0 - m.eps)    # (x - 0) / sqrt(var + eps) = x
    return probe


def measure_footprint(module: nn.Module, in_channels: int, size: int) -> Footprint:
    """The input footprint of the centre output position of ``module`` applied to a
    ``size`` x ``size`` input with ``in_channels`` channels. ``size`` must exceed the
    receptive field, or zero padding at the borders cuts the footprint (checked)."""
    probe = _averaging_copy(module)
    x = torch.ones(1, in_channels, size, size, requires_grad=True)
    y = probe(x)
    if y.shape[-2:] != x.shape[-2:]:
        raise ValueError("measure_footprint needs a module that keeps the spatial size "
                         f"(got {tuple(x.shape[-2:])} -> {tuple(y.shape[-2:])})")
    centre = size // 2
    y[0, :, centre, centre].sum().backward()
    connected = (x.grad[0].abs().sum(0) > 0).nonzero()
    if connected.numel() == 0:
        raise ValueError("no input position reaches the output")
    rows, cols = connected[:, 0], connected[:, 1]
    if rows.min() == 0 or cols.min() == 0 or rows.max() == size - 1 or cols.max() == size - 1:
        raise ValueError(f"the footprint reaches the border of the {size}x{size} input: "
                         "measure with a larger size")
    height = int(rows.max() - rows.min() + 1)
    width = int(cols.max() - cols.min() + 1)
    return Footprint(height, width, int(connected.shape[0]), (size, size))
