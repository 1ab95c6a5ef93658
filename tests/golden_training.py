"""Inputs and digests of the training golden files (``tests/golden/training_*.json``).

The same functions made the inputs on the official side (scratch drivers outside the
project imported this file) and make them here, so both sides start from the same
float64 weights and see the same batches. Weights are drawn per state-dict entry from a
generator seeded by the entry's name, so the draw does not depend on the order in which
either code base lists its modules.
"""
from __future__ import annotations

import math
import zlib
from typing import Iterable, Mapping

import torch

INIT_RULE = ("v1: per state-dict entry, torch.Generator seeded with zlib.crc32(name); "
             "float64; integer buffers 0; dim > 1: randn * 0.7 / sqrt(numel of one output "
             "slice); running_var and 1-D weights: rand + 0.5; other 1-D entries "
             "(biases, running_mean): 0.1 * randn")
BATCH_SEED = 12345


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def init_entry(name: str, shape: Iterable[int], integer: bool = False) -> torch.Tensor:
    """The initial value of one state-dict entry (``INIT_RULE``)."""
    shape = tuple(int(s) for s in shape)
    if integer:
        return torch.zeros(shape, dtype=torch.long)
    g = _generator(zlib.crc32(name.encode()))
    if len(shape) > 1:
        fan = math.prod(shape[1:])
        return torch.randn(shape, generator=g, dtype=torch.float64) * (0.7 / math.sqrt(fan))
    if name.endswith("running_var") or name.endswith("weight"):
        return torch.rand(shape, generator=g, dtype=torch.float64) + 0.5
    return torch.randn(shape, generator=g, dtype=torch.float64) * 0.1


def init_state(entries: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Initial values for a state dict's entries (name -> tensor giving shape and kind)."""
    return {name: init_entry(name, t.shape, integer=not t.is_floating_point())
            for name, t in entries.items()}


def init_state_from_shapes(shapes: Mapping[str, dict]) -> dict[str, torch.Tensor]:
    """The same from a golden file's ``{name: {"shape": [...], "integer": bool}}``."""
    return {name: init_entry(name, s["shape"], integer=s.get("integer", False))
            for name, s in shapes.items()}


# --- batches (canonical keys; each side maps them onto its own batch layout) ----------

def pose_batch(step: int, batch: int, size: tuple[int, int], heatmap: tuple[int, int],
               joints: int) -> dict[str, torch.Tensor]:
    """``image`` B x 3 x H x W, ``target`` B x K x h x w (peaked values in [0, 1)),
    ``target_weight`` B x K x 1 (about a quarter of the joints unlabelled: 0)."""
    g = _generator(BATCH_SEED + step)
    image = torch.randn(batch, 3, *size, generator=g, dtype=torch.float64)
    target = torch.rand(batch, joints, *heatmap, generator=g, dtype=torch.float64) ** 8
    weight = (torch.rand(batch, joints, 1, generator=g, dtype=torch.float64) > 0.25).double()
    return {"image": image, "target": target, "target_weight": weight}


def segmentation_batch(step: int, batch: int, size: tuple[int, int], classes: int,
                       ignore_label: int = 255) -> dict[str, torch.Tensor]:
    """``image`` B x 3 x H x W, ``label`` B x H x W (int64 classes, ~10% ``ignore_label``)."""
    g = _generator(BATCH_SEED + step)
    image = torch.randn(batch, 3, *size, generator=g, dtype=torch.float64)
    label = torch.randint(0, classes, (batch, *size), generator=g, dtype=torch.long)
    ignored = torch.rand(batch, *size, generator=g, dtype=torch.float64) < 0.1
    label[ignored] = ignore_label
    return {"image": image, "label": label}


def detection_batch(step: int, batch: int, size: tuple[int, int], classes: int,
                    stride: int = 4, max_objects: int = 8) -> dict[str, torch.Tensor]:
    """CenterNet's ctdet targets: ``image``; ``hm`` B x C x h x w (values in [0, 0.8)
    with a 1 at each object's centre); ``ind`` B x M (int64, y * w + x), ``reg_mask``
    B x M (uint8, the first n_b slots), ``wh`` and ``reg`` B x M x 2."""
    g = _generator(BATCH_SEED + step)
    h, w = size[0] // stride, size[1] // stride
    image = torch.randn(batch, 3, *size, generator=g, dtype=torch.float64)
    hm = torch.rand(batch, classes, h, w, generator=g, dtype=torch.float64) * 0.8
    count = torch.randint(1, max_objects + 1, (batch,), generator=g)
    ind = torch.randint(0, h * w, (batch, max_objects), generator=g, dtype=torch.long)
    cls = torch.randint(0, classes, (batch, max_objects), generator=g, dtype=torch.long)
    wh = torch.rand(batch, max_objects, 2, generator=g, dtype=torch.float64) * 30 + 1
    reg = torch.rand(batch, max_objects, 2, generator=g, dtype=torch.float64)
    mask = (torch.arange(max_objects).unsqueeze(0) < count.unsqueeze(1)).to(torch.uint8)
    for b in range(batch):
        for m in range(int(count[b])):
            hm[b, cls[b, m], ind[b, m] // w, ind[b, m] % w] = 1.0
    return {"image": image, "hm": hm, "ind": ind, "reg_mask": mask, "wh": wh, "reg": reg}


# --- digests ---------------------------------------------------------------------------

def _probe(n: int) -> torch.Tensor:
    return torch.cos(0.37 * torch.arange(n, dtype=torch.float64) + 0.1)


def digest(before: Mapping[str, torch.Tensor], after: Mapping[str, torch.Tensor]) -> dict:
    """Per entry: sum, norm and a fixed cosine-weighted sum (``probe``) of the values after
    training and of the change from ``before`` (``delta_*``); integer buffers: the sum."""
    out = {}
    for name, t in after.items():
        t = t.detach().cpu()
        if not t.is_floating_point():
            out[name] = {"sum": int(t.sum())}
            continue
        t = t.double().flatten()
        d = t - before[name].detach().cpu().double().flatten()
        p = _probe(t.numel())
        out[name] = {"sum": float(t.sum()), "norm": float(t.norm()), "probe": float(t @ p),
                     "delta_sum": float(d.sum()), "delta_norm": float(d.norm()),
                     "delta_probe": float(d @ p)}
    return out


def digest_differences(golden: Mapping[str, dict], ours: Mapping[str, dict]) -> dict[str, float]:
    """Relative difference per (entry, field): |a - b| / max(|b|, the entry's norm of the
    same kind, 1e-300); the norm bounds sums that cancel to near zero."""
    diffs = {}
    for name, g in golden.items():
        o = ours[name]
        for field, ref in g.items():
            if field == "sum" and "norm" not in g:       # integer buffer: exact
                diffs[f"{name}.{field}"] = float(o[field] != ref)
                continue
            if field.startswith("delta"):
                # an entry training leaves (nearly) alone is judged against its own size
                scale = max(abs(ref), abs(g["delta_norm"]), 1e-9 * abs(g["norm"]), 1e-300)
            else:
                scale = max(abs(ref), abs(g["norm"]), 1e-300)
            diffs[f"{name}.{field}"] = abs(o[field] - ref) / scale
    return diffs
