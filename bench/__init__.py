"""HRBench: reproduce and extend the tables of high-resolution network papers.

The public API is imported lazily so that ``import bench`` (and ``bench.report``) work
without torch; ``create_model`` and friends import the model families on first use.
"""
from __future__ import annotations

__all__ = ["create_model", "list_models", "register_model", "load_suite", "run_suite",
           "load_official_checkpoint"]

_LAZY = {
    "create_model": ("bench.registry", "create_model"),
    "list_models": ("bench.registry", "list_models"),
    "register_model": ("bench.registry", "register_model"),
    "load_suite": ("bench.suite", "load_suite"),
    "run_suite": ("bench.runner", "run_suite"),
    "load_official_checkpoint": ("bench.checkpoints", "load_official_checkpoint"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
