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
import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from .conventions import Convention, get_convention

Shape = Sequence[int]

# ATen ops that move or view data and do no arithmetic: never worth reporting as
# "not counted".
_DATA_MOVEMENT = {
    "view", "_unsafe_view", "reshape", "transpose", "permute", "t", "expand", "split",
    "split_with_sizes", "chunk", "slice", "select", "cat", "clone", "contiguous", "detach",
    "alias", "unsqueeze", "squeeze", "flatten", "copy", "empty", "empty_like", "_to_copy",
    "unbind", "stack", "lift_fresh", "zeros", "ones", "zeros_like", "ones_like", "as_strided",
}


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


def _flatten(x) -> tuple:
    if isinstance(x, torch.Tensor):
        return (x,)
    if isinstance(x, (list, tuple)):
        return tuple(t for item in x for t in _flatten(item))
    return ()


def _with_prefixes(per_leaf: dict[str, int]) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for name, n in per_leaf.items():
        parts = name.split(".")
        totals[""] += n
        for k in range(1, len(parts) + 1):
            totals[".".join(parts[:k])] += n
    return dict(totals)


class _OpsOutsideLeaves(TorchDispatchMode):
    """Records ATen ops run while no leaf module is executing (functional calls such as
    F.interpolate, element-wise products and sums), which module hooks cannot see."""

    def __init__(self, depth: list[int]):
        super().__init__()
        self.depth = depth
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if self.depth[0] == 0:
            name = func.overloadpacket.__name__.rstrip("_")
            if name not in _DATA_MOVEMENT:
                self.ops[f"aten::{name}"] += 1
        return func(*args, **(kwargs or {}))


def _count_module_hooks(model: nn.Module, inputs: tuple, conv: Convention):
    per_module: dict[str, int] = {}
    module_type: dict[str, str] = {}
    no_rule: Counter[str] = Counter()
    depth = [0]
    handles = []

    def pre(module, args):
        depth[0] += 1

    def make_post(name):
        def post(module, args, output):
            depth[0] -= 1
            rule = conv.rule_for(module)
            if rule is None:
                no_rule[f"module::{type(module).__name__}"] += 1
                return
            n = int(rule(module, _flatten(args), _flatten(output)))
            module_type[name] = type(module).__name__
            per_module[name] = n if conv.once_per_module else per_module.get(name, 0) + n
        return post

    for name, module in model.named_modules():
        if next(module.children(), None) is None:
            handles.append(module.register_forward_pre_hook(pre))
            handles.append(module.register_forward_hook(make_post(name)))
    recorder = _OpsOutsideLeaves(depth)
    try:
        with recorder:
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
    by_operator: Counter[str] = Counter()
    for name, n in per_module.items():
        by_operator[module_type[name]] += n
    not_counted = dict(sorted((no_rule + recorder.ops).items()))
    return sum(per_module.values()), _with_prefixes(per_module), dict(by_operator), not_counted


def _count_fvcore(model: nn.Module, inputs: tuple, conv: Convention):
    from fvcore.nn import FlopCountAnalysis  # lazy: training never needs fvcore

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


# Errors that mean "this forward cannot run on meta tensors": an op without a meta kernel
# (NotImplementedError), a data-dependent op or value read (.item(), nonzero, bool of a
# tensor: RuntimeError), a meta tensor meeting a real one (RuntimeError). Anything else
# (a shape error, a bug) would fail on the CPU too and is not worth a second forward, but
# those are RuntimeErrors as well, so every RuntimeError falls back.
_META_FAILURES = (NotImplementedError, RuntimeError)


def _count_module_hooks_on_meta(model: nn.Module, shapes: list[list[int]], conv: Convention):
    """Module-hook counts need shapes only: run the forward on a meta copy of the model.
    Falls back to a real CPU forward (from scratch: nothing of the failed attempt is kept)
    when the meta forward fails. Returns (result, counted_on)."""
    try:
        meta_model = meta_copy(model)
        meta_model.eval()
        return _count_module_hooks(meta_model, make_inputs(shapes, "meta"), conv), "meta"
    except _META_FAILURES as e:
        reason = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
    return (_count_module_hooks(model, make_inputs(shapes), conv),
            f"cpu (meta forward failed: {reason[:300]})")


def count_flops(model: nn.Module, input_shape: Shape | Sequence[Shape],
                convention: str = "fvcore", meta: bool = True) -> FlopReport:
    """``meta=False`` forces the real CPU forward (the reference the meta counts are
    tested against)."""
    conv = get_convention(convention)
    shapes = normalize_shapes(input_shape)
    was_training = model.training
    model.eval()
    counted_on = "cpu"
    try:
        with torch.no_grad():
            if conv.engine == "module_hooks" and meta:
                result, counted_on = _count_module_hooks_on_meta(model, shapes, conv)
            elif conv.engine == "module_hooks":
                result = _count_module_hooks(model, make_inputs(shapes), conv)
            elif conv.engine == "fvcore":
                result = _count_fvcore(model, make_inputs(shapes), conv)
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
