"""Complexity measurement: parameters, FLOPs under named conventions, latency.

Serves every paper table's #Params / FLOPs columns (Lite-HRNet Tables 1-7 first).
Counting needs torch; the conventions do not, so this package resolves its torch-using
names lazily and ``bench.complexity.conventions`` stays importable without torch (the
suite loader and the reporter use it).
"""
from __future__ import annotations

from .conventions import CANONICAL, CONVENTIONS, Convention, get_convention

__all__ = ["CANONICAL", "CONVENTIONS", "Convention", "get_convention", "FlopReport",
           "count_flops", "count_params", "params_by_module", "measure_latency"]

_LAZY = {"FlopReport": "flops", "count_flops": "flops", "count_params": "params",
         "params_by_module": "params", "measure_latency": "latency"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
