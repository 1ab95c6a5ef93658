"""FLOP counting: one generic engine per backend, conventions as data, a separate printer.

``count_flops(model, input_shape, convention=...)`` always counts in eval mode with
batch 1 and returns a ``FlopReport``: the total, the count per module (every prefix of
the module tree) and per operator, and what the convention did *not* count (operators
or module types it has no rule for), so nothing is dropped silently.
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import re
import weakref
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import torch
from torch import nn

from .conventions import Convention, get_convention
from .meta_trace import META_FAILURES, ForwardTrace, run_traced

Shape = Sequence[int]

@dataclass
class FlopReport:
    total: int
    convention: str
    unit_base: int
    input_shapes: list[list[int]]
    by_module: dict[str, int] = field(default_factory=dict)
    by_operator: dict[str, int] = field(default_factory=dict)
    not_counted: dict[str, int] = field(default_factory=dict)  # op or module type -> calls
    # where the forward ran: "meta" (shapes only, no arithmetic), "cpu", or "cpu (meta
    # forward failed: <error>)" when the meta forward hit an op without a meta kernel or a
    # data-dependent one and the count was taken again on real tensors
    counted_on: str = "cpu"

    def scaled(self, unit: str = "M") -> float:
        return self.total / get_convention(self.convention).scale(unit)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FlopReport":
        return cls(**d)


def normalize_shapes(input_shape: Shape | Sequence[Shape]) -> list[list[int]]:
    """(C,H,W), (1,C,H,W) or a list of them (multi-resolution input) -> batch-1 shapes."""
    if len(input_shape) and isinstance(input_shape[0], (list, tuple)):
        return [s for shape in input_shape for s in normalize_shapes(shape)]
    shape = [int(v) for v in input_shape]
    if len(shape) == 3:
        shape = [1] + shape
    if len(shape) != 4 or shape[0] != 1:
        raise ValueError(f"input shape must be (C, H, W) or (1, C, H, W), got {tuple(input_shape)}")
    return [shape]


def make_inputs(shapes: list[list[int]], device: str | torch.device = "cpu") -> tuple:
    if torch.device(device).type == "meta":
        tensors = [torch.empty(*s, device="meta") for s in shapes]
    else:
        tensors = [torch.rand(*s, device=device) for s in shapes]
    return (tensors[0],) if len(tensors) == 1 else (tensors,)


def is_on_meta(model: nn.Module) -> bool:
    """Whether the model was built (or moved) onto the meta device: it has tensors, all
    without storage."""
    tensors = [*model.parameters(), *model.buffers()]
    return bool(tensors) and all(t.device.type == "meta" for t in tensors)


def meta_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose parameters and buffers live on the meta device (shapes,
    dtypes and ``requires_grad`` kept, no storage). The real weights are never copied:
    ``deepcopy`` is handed meta stand-ins for them through its memo, so a large network
    costs nothing to copy. Tensors kept as plain attributes stay real (a forward that
    mixes them with meta tensors fails and the count falls back to the CPU)."""
    memo: dict[int, Any] = {}
    for t in [*model.parameters(), *model.buffers()]:
        if id(t) in memo:
            continue
        stand_in = torch.empty_like(t, device="meta")
        if isinstance(t, nn.Parameter):
            stand_in = nn.Parameter(stand_in, requires_grad=t.requires_grad)
        memo[id(t)] = stand_in
    return copy.deepcopy(model, memo).to("meta")


def _with_prefixes(per_leaf: dict[str, int]) -> dict[str, int]:
    """Counts per module name -> counts per module and every ancestor ("" the root)."""
    totals: dict[str, int] = defaultdict(int)
    for name, n in per_leaf.items():
        totals[""] += n
        if name:
            parts = name.split(".")
            for k in range(1, len(parts) + 1):
                totals[".".join(parts[:k])] += n
    return dict(totals)


def _count_module_hooks(trace: ForwardTrace, conv: Convention):
    """The module-hook conventions: each leaf-module call charged by the convention's
    rule for its type; leaf types without a rule and ops run outside leaf modules are
    reported as not counted."""
    per_module: dict[str, int] = {}
    module_type: dict[str, str] = {}
    no_rule: Counter[str] = Counter()
    for call in trace.leaf_calls:
        rule = conv.rule_for(call.module)
        if rule is None:
            no_rule[f"module::{type(call.module).__name__}"] += 1
            continue
        n = int(rule(call.module, call.inputs, call.outputs))
        module_type[call.name] = type(call.module).__name__
        per_module[call.name] = n if conv.once_per_module else per_module.get(call.name, 0) + n
    by_operator: Counter[str] = Counter()
    for name, n in per_module.items():
        by_operator[module_type[name]] += n
    not_counted = dict(sorted((no_rule + trace.ops_outside_leaves).items()))
    return sum(per_module.values()), _with_prefixes(per_module), dict(by_operator), not_counted


class _JitValue:
    """What fvcore's handles read of a ``torch._C.Value``, over a recorded argument:
    ``isCompleteTensor``/``type().sizes()`` (shapes), ``toIValue`` (plain arguments) and
    ``node().inputs()`` (einsum's operand list)."""

    def __init__(self, value):
        self.value = value

    def isCompleteTensor(self) -> bool:
        return isinstance(self.value, torch.Tensor)

    def type(self):
        return self

    def sizes(self) -> list[int]:
        return list(self.value.shape)

    def toIValue(self):
        return self.value

    def node(self):
        return self

    def inputs(self) -> list["_JitValue"]:
        return [_JitValue(v) for v in self.value]


def _fvcore_handles(conv: Convention) -> dict:
    from fvcore.nn.flop_count import _DEFAULT_SUPPORTED_OPS  # lazy: training never needs fvcore

    from .conventions import FVCORE_HANDLES
    handles = dict(_DEFAULT_SUPPORTED_OPS)
    handles.update({op: FVCORE_HANDLES[h] for op, h in conv.fvcore_ops.items()})
    return handles


def _count_fvcore_from_trace(trace: ForwardTrace, conv: Convention):
    """fvcore's FlopCountAnalysis over a recorded forward: its own handles, its ignored
    ops and its scoping (an op belongs to the innermost module running it and to that
    module's ancestors), fed the recorded shapes instead of a jit graph."""
    from fvcore.nn.jit_analysis import _IGNORED_OPS

    handles = _fvcore_handles(conv)
    per_scope: Counter[str] = Counter()
    by_operator: Counter[str] = Counter()
    unsupported: Counter[str] = Counter()
    for op in trace.ops:
        handle = handles.get(op.kind)
        if handle is None:
            if op.kind not in _IGNORED_OPS:
                unsupported[op.kind] += 1
            continue
        counts = handle([_JitValue(v) for v in op.inputs], [_JitValue(v) for v in op.outputs])
        if not isinstance(counts, Counter):
            counts = Counter({op.kind.split("::", 1)[1]: counts})
        by_operator.update(counts)
        per_scope[op.scope] += sum(counts.values())
    by_module = {k: int(v) for k, v in _with_prefixes(per_scope).items() if v}
    return (int(sum(by_operator.values())), by_module,
            {k: int(v) for k, v in by_operator.items()}, dict(sorted(unsupported.items())))


def _count_fvcore(model: nn.Module, inputs: tuple, conv: Convention):
    """fvcore itself: a jit trace of a real forward (the reference for the trace path)."""
    from fvcore.nn import FlopCountAnalysis

    from .conventions import FVCORE_HANDLES

    analysis = (FlopCountAnalysis(model, inputs)
                .unsupported_ops_warnings(False)
                .uncalled_modules_warnings(False)
                .tracer_warnings("none"))
    for op, handle in conv.fvcore_ops.items():
        analysis.set_op_handle(op, FVCORE_HANDLES[handle])
    total = int(analysis.total())
    by_module = {k: int(v) for k, v in analysis.by_module().items() if v}
    by_operator = {k: int(v) for k, v in analysis.by_operator().items()}
    not_counted = dict(sorted(analysis.unsupported_ops().items()))
    return total, by_module, by_operator, not_counted


_ZERO_OP = re.compile(r"Warning: module (\w+) is treated as a zero-op")


def _count_ptflops(model: nn.Module, inputs: tuple, backend: str):
    from ptflops import get_model_complexity_info  # lazy

    log = io.StringIO()
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        # input_res only feeds input_constructor, which hands over our batch-1 inputs;
        # ptflops still asserts it is a non-empty tuple
        macs, _ = get_model_complexity_info(
            model, (1,), input_constructor=lambda _res: inputs[0],
            as_strings=False, print_per_layer_stat=False, verbose=True, ost=log,
            backend=backend)
    # ptflops warns for every module type without a hook, containers included; only leaf
    # modules compute anything themselves
    leaf_types = {type(m).__name__ for m in model.modules() if next(m.children(), None) is None}
    not_counted = Counter(f"module::{m}" for m in _ZERO_OP.findall(log.getvalue()) if m in leaf_types)
    return int(macs), {"": int(macs)}, {}, dict(not_counted)


# The last few forwards, so that a model counted under several conventions at one input
# (the paper's and the canonical fvcore figure) runs once. Keyed by the model object:
# a model is not modified between counts.
_TRACES: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def _trace(model: nn.Module, shapes: list[list[int]], meta: bool) -> tuple[ForwardTrace, str]:
    """The model's forward at ``shapes`` recorded on a meta copy (nothing computed), or on
    the CPU when ``meta`` is False or the meta forward fails (from scratch: nothing of the
    failed attempt is kept). Returns (trace, where it ran)."""
    key = (json.dumps(shapes), meta)
    cached = _TRACES.setdefault(model, {}) if meta else {}
    if key in cached:
        return cached[key]
    reason = None
    built_on_meta = is_on_meta(model)
    if meta or built_on_meta:
        try:
            meta_model = model if built_on_meta else meta_copy(model).eval()
            found = (run_traced(meta_model, make_inputs(shapes, "meta")), "meta")
        except META_FAILURES as e:
            if built_on_meta:
                raise        # nothing real to fall back on: the caller builds the model for real
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            reason = f"{type(e).__name__}: {first}"
    if not meta or reason is not None:
        where = "cpu" if reason is None else f"cpu (meta forward failed: {reason[:300]})"
        found = (run_traced(model, make_inputs(shapes)), where)
    if found[1] == "meta":   # a real forward's activations are not worth their memory
        cached.clear()       # one input per model is what a run asks for; memory stays flat
        cached[key] = found
    return found


def count_flops(model: nn.Module, input_shape: Shape | Sequence[Shape],
                convention: str = "fvcore", meta: bool = True) -> FlopReport:
    """``meta=False`` counts on a real CPU forward, and for the fvcore conventions with
    fvcore's own jit trace: the references the meta counts are tested against. A model
    built on the meta device is counted as it is; a forward it cannot run raises."""
    conv = get_convention(convention)
    shapes = normalize_shapes(input_shape)
    was_training = model.training
    model.eval()
    counted_on = "cpu"
    try:
        with torch.no_grad():
            if conv.engine == "fvcore" and not meta:
                result = _count_fvcore(model, make_inputs(shapes), conv)
            elif conv.engine in ("module_hooks", "fvcore"):
                trace, counted_on = _trace(model, shapes, meta)
                count = _count_module_hooks if conv.engine == "module_hooks" else _count_fvcore_from_trace
                result = count(trace, conv)
            elif conv.engine == "ptflops":
                result = _count_ptflops(model, make_inputs(shapes), conv.ptflops_backend)
            else:
                raise ValueError(f"convention {conv.name!r} has unknown engine {conv.engine!r}")
    finally:
        model.train(was_training)
    total, by_module, by_operator, not_counted = result
    return FlopReport(total=total, convention=conv.name, unit_base=conv.unit_base,
                      input_shapes=shapes, by_module=by_module, by_operator=by_operator,
                      not_counted=not_counted, counted_on=counted_on)
