"""``latency_ms``: the median time of one forward pass at the column's ``batch``, timed
with ``--latency`` (HRNet and Lite-HRNet speed columns); never cached."""
from __future__ import annotations

from ..results import CELL_NOT_MEASURED
from .base import Measure, register_measure


class Latency(Measure):
    """Median wall time of a forward (``bench.complexity.latency.measure_latency``) on
    ``--device`` (auto: cuda when available); without ``--latency`` the cell says so."""
    name = "latency_ms"
    batch = True
    needs_input = True

    def compute(self, req):
        col, ctx = req.col, req.ctx
        if not ctx.latency:
            return {"unit": col.unit, "status": CELL_NOT_MEASURED,
                    "reason": "latency not requested (run with --latency)"}, {}, False
        from ..complexity.latency import measure_latency
        device = ctx.device
        if device == "auto":
            import torch
            device = "cuda" if torch.cuda.is_available() else "cpu"
        # a CPU pass at batch 32 takes seconds: one warm-up pass is enough there
        warmup = 1 if device == "cpu" and col.batch > 1 else 3
        stats = measure_latency(req.models.get(req.protocol), req.inputs, device=device,
                                batch=col.batch, warmup=warmup)
        cell = req.cell()
        cell.update(raw=stats["median_ms"], value=stats["median_ms"], batch=col.batch,
                    device=device, device_name=stats["device_name"])
        return cell, stats, False


register_measure(Latency())
