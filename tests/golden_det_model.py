"""The stand-in detection network of ``tests/golden/predictions_centernet_voc.json`` (issue 28).

Both the recording (CenterNet's own ``CtdetDetector``, run outside the project) and the
test (HRBench's ``DetectionTask.predict``) feed their test crops to this model. It has no
weights: it looks each crop up by the crc32 of its float32 bytes (the two loaders make the
same crops bit for bit, ``tests/test_samples_golden_det.py``) and returns CenterNet's three
heads ``(hm logits (C, h, w), wh (2, h, w), reg (2, h, w))`` made from the image's true
boxes: per box (some missed) a logit bump near its centre cell, sizes near its size and
offsets near its sub-cell centre; a few false bumps (other places, other classes); noise
logits elsewhere at a per-image level from low (many top-100 scores below 1e-4) to
moderate, and now and then a peak logit above 9.3 (a score above 1 - 1e-4). The mirrored
crop gets the mirrored maps with their own noise. So the decoded boxes are near the truth
(AP clearly between 0 and 1), and both sides run the same model.
"""
from __future__ import annotations

import zlib
from typing import Iterable, Sequence

import numpy as np
import torch


def crop_key(crop: np.ndarray) -> int:
    """crc32 of a (C, H, W) float32 crop."""
    return zlib.crc32(np.ascontiguousarray(crop, dtype=np.float32).tobytes())


def grid_boxes(objects: Sequence[Sequence[float]], center, scale: float,
               out_size: Sequence[int]) -> np.ndarray:
    """Devkit boxes [xmin, ymin, xmax, ymax] (1-based, as the XML) -> (N, 4) float64 boxes
    on the output grid of the test crop (centre, scale = long side) of ``out_size``
    (w, h), the box taken as [xmin - 1, ymin - 1, xmax, ymax]; closed form, the model's
    own arithmetic."""
    out_w, out_h = float(out_size[0]), float(out_size[1])
    k = out_w / float(scale)
    c = np.asarray(center, dtype=np.float64).reshape(2)
    b = np.array(objects, dtype=np.float64).reshape(-1, 4)
    b[:, :2] -= 1.0
    b[:, [0, 2]] = (b[:, [0, 2]] - c[0]) * k + out_w / 2
    b[:, [1, 3]] = (b[:, [1, 3]] - c[1]) * k + out_h / 2
    return b


def _maps(boxes: np.ndarray, labels: np.ndarray, shape, seed: int):
    rng = np.random.default_rng(seed)
    c, h, w = shape
    level = rng.uniform(-16.0, -4.0)
    hm = rng.normal(level, 1.0, size=(c, h, w))
    wh = rng.uniform(1.0, 12.0, size=(2, h, w))
    reg = rng.uniform(0.0, 1.0, size=(2, h, w))
    yy, xx = np.mgrid[0:h, 0:w]

    def bump(cls, ix, iy, peak, bw, bh, off):
        d2 = (xx - ix) ** 2 + (yy - iy) ** 2
        hm[cls] = np.maximum(hm[cls], peak - 1.5 * d2)
        y0, y1, x0, x1 = max(iy - 1, 0), min(iy + 2, h), max(ix - 1, 0), min(ix + 2, w)
        wh[0, y0:y1, x0:x1] = bw * (1 + rng.normal(0, 0.08, size=(y1 - y0, x1 - x0)))
        wh[1, y0:y1, x0:x1] = bh * (1 + rng.normal(0, 0.08, size=(y1 - y0, x1 - x0)))
        reg[:, iy, ix] = off

    for box, cls in zip(boxes, labels):
        if rng.random() < 0.12:                              # a missed object
            continue
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        bw, bh = box[2] - box[0], box[3] - box[1]
        ix = int(np.clip(np.floor(cx) + (rng.integers(-1, 2) if rng.random() < 0.2 else 0),
                         0, w - 1))
        iy = int(np.clip(np.floor(cy), 0, h - 1))
        peak = 10.5 if rng.random() < 0.1 else rng.uniform(-3.0, 4.0)
        off = np.array([cx - ix, cy - iy]) + rng.normal(0, 0.15, size=2)
        bump(int(cls), ix, iy, peak, bw, bh, off)
        if rng.random() < 0.2:                               # the same box, another class
            bump(int(rng.integers(0, c)), ix, iy, rng.uniform(-4.0, 0.0), bw, bh, off)
    for _ in range(int(rng.integers(1, 4))):                 # false positives
        ix, iy = int(rng.integers(0, w)), int(rng.integers(0, h))
        bump(int(rng.integers(0, c)), ix, iy, rng.uniform(-4.0, 1.0),
             rng.uniform(2.0, 15.0), rng.uniform(2.0, 15.0), rng.uniform(0, 1, size=2))
    return hm, wh, reg


def build_table(items: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]], num_classes: int,
                out_size: Sequence[int]) -> dict[int, tuple[np.ndarray, ...]]:
    """{crop key: (hm logits, wh, reg) float32} for each (crop (3, H, W), grid boxes (N, 4)
    from ``grid_boxes``, class indices (N,)) and for the mirrored crop."""
    out_w, out_h = int(out_size[0]), int(out_size[1])
    table: dict[int, tuple[np.ndarray, ...]] = {}
    for crop, boxes, labels in items:
        crop = np.asarray(crop, dtype=np.float32)
        key = crop_key(crop)
        hm, wh, reg = _maps(np.asarray(boxes, np.float64).reshape(-1, 4),
                            np.asarray(labels).reshape(-1), (num_classes, out_h, out_w), key)
        rng = np.random.default_rng(key ^ 0x5F5F5F5F)
        hm_m = hm[:, :, ::-1] + rng.normal(0.0, 0.3, size=hm.shape)
        wh_m = wh[:, :, ::-1] * (1 + rng.normal(0.0, 0.05, size=wh.shape))
        reg_m = rng.uniform(0.0, 1.0, size=reg.shape)        # neither side reads it
        f32 = lambda *a: tuple(np.ascontiguousarray(v, dtype=np.float32) for v in a)  # noqa: E731
        table[key] = f32(hm, wh, reg)
        table[crop_key(crop[:, :, ::-1])] = f32(hm_m, wh_m, reg_m)
    return table


def table_digest(table: dict[int, tuple[np.ndarray, ...]]) -> dict[str, list[float]]:
    """{crop key: float64 sums of its three maps}: what the golden stores of the model."""
    return {str(k): [float(m.astype(np.float64).sum()) for m in v]
            for k, v in sorted(table.items())}


class TableModel(torch.nn.Module):
    """``(hm logits, wh, reg)`` looked up by the crop (see module docstring)."""

    def __init__(self, table: dict[int, tuple[np.ndarray, ...]]):
        super().__init__()
        self.table = table

    def forward(self, x: torch.Tensor):
        found = [self.table[crop_key(c)] for c in x.detach().cpu().numpy()]
        return tuple(torch.from_numpy(np.stack([f[i] for f in found])) for i in range(3))
