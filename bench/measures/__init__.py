"""Complexity and structure measures: one registered handle per suite column ``measure``.

A handle (``bench.measures.base.Measure``) holds its columns' field rules (``check``, run
by the suite loader) and its cell's computation on the built model (``compute``, run by
the runner through the measurement cache). The bundled handles are one module each,
listed below; a measure outside HRBench registers its handle with ``register_measure``
(from a module named by ``--import``). Accuracy measures are no handles: tasks name
them and their cells are read from run records. Imports no torch.
"""
from __future__ import annotations

import importlib

from .base import (COUNT_UNITS, DECIMAL, FORBIDDEN, OPTIONAL, REQUIRED, CellRequest, Measure,
                   StructureMeasure, UnknownMeasureError, check_column, complexity_measure_names,
                   get_measure, is_complexity_measure, register_measure, structure_measure_names)

# the bundled measures, one module each, registered in this order (which orders the
# names in messages and listings)
_MODULES = (
    "bench.measures.params",            # params
    "bench.measures.flops",             # flops, formula_flops
    "bench.measures.latency",           # latency_ms
    "bench.measures.footprint",         # receptive_field, contributing_fraction
    "bench.measures.fold_equivalence",  # fold_equivalence_error
    "bench.measures.attribute",         # attribute
    "bench.measures.output_shape",      # output_stride, subsamplings, out_channels
)
for _module in _MODULES:
    importlib.import_module(_module)

__all__ = ["COUNT_UNITS", "DECIMAL", "FORBIDDEN", "OPTIONAL", "REQUIRED", "CellRequest",
           "Measure", "StructureMeasure", "UnknownMeasureError", "check_column",
           "complexity_measure_names", "get_measure", "is_complexity_measure",
           "register_measure", "structure_measure_names"]
