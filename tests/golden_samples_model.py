"""A small deterministic float64 segmentation network for the test-time golden samples
(issue 28, tests/golden/samples_hrnet_seg_inference.json).

The same module, with the same seed, is run inside the official inference code when the
golden file is recorded and inside HRBench's inference in the test. It mimics what the
inference code sees from HRNetV2: class logits at one quarter of the input resolution
(two stride-2 3x3 convolutions, zero padded, so the borders and any padding of a window
change the answer), one output tensor, no normalisation layers, no randomness.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class GoldenSegNet(nn.Module):
    """3 -> ``width`` (stride 2) -> ``width`` (stride 2) -> ``num_classes`` (1x1).

    Weights come from ``numpy.random.default_rng(seed)`` (normal, scaled by 1 / sqrt(fan
    in)), so the network is the same on any machine and in any process.

    ``outputs``: ``"tensor"`` (the logits), ``"list"`` ([auxiliary, main], as the HRNet-OCR
    branch's models with MODEL.NUM_OUTPUTS 2 and TEST.OUTPUT_INDEX -1 return) or
    ``"dict"`` ({"out": main, "aux": auxiliary}, HRBench's output mapping); the auxiliary
    logits are the main ones with the class order reversed, so a wrong pick shows."""

    def __init__(self, num_classes: int, seed: int = 0, width: int = 8,
                 outputs: str = "tensor"):
        super().__init__()
        if outputs not in ("tensor", "list", "dict"):
            raise ValueError(f"outputs must be tensor, list or dict, got {outputs!r}")
        self.outputs = outputs
        rng = np.random.default_rng(seed)
        shapes = [(width, 3, 3, 3), (width, width, 3, 3), (num_classes, width, 1, 1)]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for shape in shapes:
            fan_in = shape[1] * shape[2] * shape[3]
            w = rng.standard_normal(shape) / np.sqrt(fan_in)
            b = 0.1 * rng.standard_normal(shape[0])
            self.weights.append(nn.Parameter(torch.from_numpy(w), requires_grad=False))
            self.biases.append(nn.Parameter(torch.from_numpy(b), requires_grad=False))
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float64)
        w, b = self.weights, self.biases
        x = F.relu(F.conv2d(x, w[0], b[0], stride=2, padding=1))
        x = F.relu(F.conv2d(x, w[1], b[1], stride=2, padding=1))
        # logits of a few units: exp() of them (HRNet-Seg's scores) stays well conditioned
        main = 2.0 * F.conv2d(x, w[2], b[2])
        if self.outputs == "tensor":
            return main
        aux = main.flip(1)
        return [aux, main] if self.outputs == "list" else {"out": main, "aux": aux}


def golden_model(num_classes: int, seed: int = 0, outputs: str = "tensor") -> GoldenSegNet:
    return GoldenSegNet(num_classes, seed=seed, outputs=outputs).eval()


def synthetic_image(recipe: dict) -> np.ndarray:
    """A uint8 H x W x 3 BGR image from a stored recipe (``seed``, ``height``, ``width``):
    a smooth colour field (a coarse random grid, bilinearly enlarged) plus noise, so the
    model's scores vary over the image."""
    rng = np.random.default_rng(int(recipe["seed"]))
    h, w = int(recipe["height"]), int(recipe["width"])
    coarse = rng.uniform(0, 255, size=(1, 3, 4, 6))
    smooth = F.interpolate(torch.from_numpy(coarse), size=(h, w), mode="bilinear",
                           align_corners=True)[0].permute(1, 2, 0).numpy()
    noise = rng.normal(0, 20, size=(h, w, 3))
    return np.clip(np.rint(smooth + noise), 0, 255).astype(np.uint8)
