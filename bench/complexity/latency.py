"""Latency: warm-up, then timed forward passes (CUDA-synchronised on a GPU); median and
spread in milliseconds. Used by the runner's ``--latency`` mode, never in unit tests.

A CPU forward pass of a large model at batch 32 takes seconds, so timing stops after
``iters`` passes or once ``budget_s`` seconds of timed passes have run, whichever comes
first, but never before ``min_iters`` passes: the median is always of at least three.

On a CPU, denormal floats are flushed to zero while timing. Freshly initialised pose
networks (convolutions ~ N(0, 0.001^2)) push activations into the denormal range, which
x86 cores compute many times slower; trained weights do not, so without the flush a
random-init latency would say more about the init than about the architecture.
"""
from __future__ import annotations

import statistics
import time
from typing import Sequence

import torch
from torch import nn

from .flops import make_inputs, normalize_shapes


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    from ..env import cpu_name
    return f"{cpu_name()} ({torch.get_num_threads()} threads)"


def measure_latency(model: nn.Module, input_shape: Sequence, device: str = "cpu",
                    warmup: int = 3, iters: int = 20, batch: int = 1, min_iters: int = 3,
                    budget_s: float = 20.0) -> dict:
    shapes = [[batch, *s[1:]] for s in normalize_shapes(input_shape)]
    model = model.to(device).eval()
    inputs = tuple(x.to(device) if isinstance(x, torch.Tensor) else [t.to(device) for t in x]
                   for x in make_inputs(shapes))
    sync = (lambda: torch.cuda.synchronize(device)) if device.startswith("cuda") else (lambda: None)
    times: list[float] = []
    flush = not device.startswith("cuda") and torch.set_flush_denormal(True)
    try:
        _time(model, inputs, sync, warmup, iters, min_iters, budget_s, times)
    finally:
        if flush:
            torch.set_flush_denormal(False)      # PyTorch's default
    q = statistics.quantiles(times, n=10) if len(times) >= 2 else [times[0]] * 9
    return {"median_ms": statistics.median(times), "p10_ms": q[0], "p90_ms": q[-1],
            "iters": len(times), "warmup": warmup, "batch": batch, "device": device,
            "device_name": device_name(device), "threads": torch.get_num_threads(),
            "input_shape": shapes[0], "flush_denormal": bool(flush)}


def _time(model, inputs, sync, warmup, iters, min_iters, budget_s, times: list) -> None:
    with torch.inference_mode():
        for _ in range(warmup):
            model(*inputs)
        sync()
        while len(times) < iters and (len(times) < min_iters or sum(times) < budget_s * 1e3):
            start = time.perf_counter()
            model(*inputs)
            sync()
            times.append((time.perf_counter() - start) * 1e3)
