"""The stand-in pose network of ``tests/golden/predictions_hrnet_*.json`` (issue 28).

Both the recording (the official ``validate``, run outside the project) and the test
(HRBench's ``evaluate``) feed their evaluation crops to this model. It has no weights:
it looks each crop up by the crc32 of its float32 bytes (the two loaders make the same
crops bit for bit, ``tests/test_samples_golden_pose_hrnet.py``) and returns heatmaps made
from that crop's target, each joint's peak moved by a seeded whole-pixel shift and scaled,
plus seeded noise; the mirrored crop gets the mirrored target with its own noise. A crop
without a usable target (detector boxes: the loaders' targets differ there, HRBench
departs on purpose) gets Gaussians at seeded places instead. So
the decoded poses are near the truth (AP well above 0, with misses), every branch of the
decoding is taken (quarter offsets, low scores below the rescoring threshold, peaks on
the border), and both sides run the same model.
"""
from __future__ import annotations

import zlib
from typing import Iterable, Sequence

import numpy as np
import torch


def crop_key(crop: np.ndarray) -> int:
    """crc32 of a (C, H, W) float32 crop."""
    return zlib.crc32(np.ascontiguousarray(crop, dtype=np.float32).tobytes())


def _heatmaps(target: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    k, h, w = target.shape
    out = np.empty_like(target, dtype=np.float32)
    for j in range(k):
        dy, dx = rng.integers(-3, 4, size=2)
        amplitude = rng.uniform(0.1, 1.0)
        out[j] = np.roll(target[j], (int(dy), int(dx)), axis=(0, 1)) * amplitude
    out += rng.uniform(-0.02, 0.05, size=out.shape).astype(np.float32)
    return out.astype(np.float32)


def _blobs(shape, seed: int, sigma: float = 2.0) -> np.ndarray:
    """One Gaussian per joint at a seeded place (a target-free stand-in)."""
    rng = np.random.default_rng(seed)
    k, h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.zeros(shape, dtype=np.float32)
    for j in range(k):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        out[j] = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma ** 2))
    return out


def build_table(items: Iterable[tuple[np.ndarray, object]], heatmap_shape,
                flip_pairs: Sequence[Sequence[int]]) -> dict[int, np.ndarray]:
    """{crop key: heatmaps} for each (crop (C, H, W), target (K, h, w) or None) and the
    mirrored crop."""
    table: dict[int, np.ndarray] = {}
    for crop, target in items:
        crop = np.asarray(crop, dtype=np.float32)
        key = crop_key(crop)
        target = _blobs(heatmap_shape, key) if target is None \
            else np.asarray(target, dtype=np.float32)
        mirrored = target[:, :, ::-1].copy()
        for a, b in flip_pairs:
            mirrored[[a, b]] = mirrored[[b, a]]
        table[key] = _heatmaps(target, key)
        table[crop_key(crop[:, :, ::-1])] = _heatmaps(mirrored, key ^ 0x5F5F5F5F)
    return table


def table_digest(table: dict[int, np.ndarray]) -> dict[str, float]:
    """{crop key: float64 sum of its heatmaps}: what the golden stores of the model."""
    return {str(k): float(v.astype(np.float64).sum()) for k, v in sorted(table.items())}


class TableModel(torch.nn.Module):
    """Heatmaps looked up by the crop (see module docstring); float32 like a network."""

    def __init__(self, table: dict[int, np.ndarray]):
        super().__init__()
        self.table = table

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        crops = x.detach().cpu().numpy()
        return torch.from_numpy(np.stack([self.table[crop_key(c)] for c in crops]))


def dataset_table_model(dataset, use_targets: bool, recorded: dict) -> TableModel:
    """The table model of a pose dataset's evaluation crops (their targets with
    ``use_targets``, else target-free), checked against the recorded ``table_digest``."""
    items = []
    for i in range(len(dataset)):
        item = dataset[i]
        items.append((item["image"].numpy(), item["target"].numpy() if use_targets else None))
    shape = (dataset.num_joints, dataset.heatmap_size[0], dataset.heatmap_size[1])
    table = build_table(items, shape, dataset.flip_pairs)
    assert table_digest(table) == recorded, "not the recorded model (crops differ?)"
    return TableModel(table)
