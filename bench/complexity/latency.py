"""Latency: warm-up, then timed forward passes (CUDA-synchronised on a GPU); median and
spread in milliseconds. Used by the runner's ``--latency`` mode, never in unit tests."""
from __future__ import annotations

import statistics
import time
from typing import Sequence

import torch
from torch import nn

from .flops import make_inputs, normalize_shapes


def measure_latency(model: nn.Module, input_shape: Sequence, device: str = "cpu",
                    warmup: int = 5, iters: int = 20, batch: int = 1) -> dict:
    shapes = [[batch, *s[1:]] for s in normalize_shapes(input_shape)]
    model = model.to(device).eval()
    inputs = tuple(x.to(device) if isinstance(x, torch.Tensor) else [t.to(device) for t in x]
                   for x in make_inputs(shapes))
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            model(*inputs)
        sync()
        for _ in range(iters):
            start = time.perf_counter()
            model(*inputs)
            sync()
            times.append((time.perf_counter() - start) * 1e3)
    q = statistics.quantiles(times, n=10) if len(times) >= 2 else [times[0]] * 9
    return {"median_ms": statistics.median(times), "p10_ms": q[0], "p90_ms": q[-1],
            "iters": iters, "warmup": warmup, "batch": batch, "device": device,
            "threads": torch.get_num_threads()}
