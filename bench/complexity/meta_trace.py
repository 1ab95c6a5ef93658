"""One shape-only forward that every FLOP convention can be counted from.

``run_traced(model, inputs)`` runs the model once, on meta tensors (storage-free; shapes,
no arithmetic), and records what each counting engine looks at:

* every leaf-module call with its input and output tensors (the module-hook conventions),
  and the ATen ops run while no leaf module executes (what those conventions leave out);
* every tensor function called from Python, named as ``torch.jit.trace`` names it
  (``F.conv2d`` -> ``aten::_convolution``, ``F.interpolate`` -> ``aten::upsample_*``), with
  its arguments laid out as the traced op's inputs and the module scope it ran in, which is
  what fvcore's handles read.

The forward is also made cheap: the dispatch mode answers the ops that dominate a forward
(convolution, batch norm, element-wise ops) with an empty tensor of the right shape instead
of PyTorch's Python meta kernels, which cost ~0.3 ms an op. Counts need shapes only.
``build_on_meta(build)`` builds a model on the meta device in the first place, skipping
its weight initialisation (there are no values to initialise).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


import torch
from torch import nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

# ATen ops that move or view data and do no arithmetic: never worth reporting as
# "not counted" by the module-hook conventions.
DATA_MOVEMENT = frozenset({
    "view", "_unsafe_view", "reshape", "transpose", "permute", "t", "expand", "split",
    "split_with_sizes", "chunk", "slice", "select", "cat", "clone", "contiguous", "detach",
    "alias", "unsqueeze", "squeeze", "flatten", "copy", "empty", "empty_like", "_to_copy",
    "unbind", "stack", "lift_fresh", "zeros", "ones", "zeros_like", "ones_like", "as_strided",
})


@dataclass
class LeafCall:
    name: str
    module: nn.Module
    inputs: tuple
    outputs: tuple


@dataclass
class TracedOp:
    """One Python-level tensor function call, as the jit tracer would record it."""
    kind: str          # "aten::_convolution"
    scope: str         # canonical name of the innermost module running it ("" = root)
    inputs: list       # tensors and plain values, in the traced op's argument order
    outputs: list      # tensors


@dataclass
class ForwardTrace:
    leaf_calls: list[LeafCall] = field(default_factory=list)
    ops_outside_leaves: Counter = field(default_factory=Counter)
    ops: list[TracedOp] = field(default_factory=list)
    module_names: dict[int, str] = field(default_factory=dict)   # id(module) -> name


def flatten_tensors(x) -> tuple:
    if isinstance(x, torch.Tensor):
        return (x,)
    if isinstance(x, (list, tuple)):
        return tuple(t for item in x for t in flatten_tensors(item))
    if isinstance(x, dict):
        return tuple(t for item in x.values() for t in flatten_tensors(item))
    return ()


# --- fast shape rules (dispatch level) ---------------------------------------------

def _meta_like(x: torch.Tensor, shape=None) -> torch.Tensor:
    return torch.empty(x.shape if shape is None else shape, dtype=x.dtype, device="meta")


def _conv_shape(x, w, stride, padding, dilation, transposed, output_padding, groups):
    spatial = []
    for i, size in enumerate(x.shape[2:]):
        k = w.shape[2 + i]
        s, p, d = stride[i % len(stride)], padding[i % len(padding)], dilation[i % len(dilation)]
        if transposed:
            op = output_padding[i % len(output_padding)]
            spatial.append((size - 1) * s - 2 * p + d * (k - 1) + op + 1)
        else:
            spatial.append((size + 2 * p - d * (k - 1) - 1) // s + 1)
    channels = w.shape[1] * groups if transposed else w.shape[0]
    return (x.shape[0], channels, *spatial)


_aten = torch.ops.aten
_UNARY = {_aten.relu.default, _aten.sigmoid.default, _aten.hardtanh.default,
          _aten.hardswish.default, _aten.gelu.default, _aten.silu.default, _aten.tanh.default,
          _aten.neg.default, _aten.elu.default, _aten.leaky_relu.default}
_UNARY_INPLACE = {_aten.relu_.default, _aten.sigmoid_.default, _aten.hardtanh_.default,
                  _aten.hardswish_.default, _aten.silu_.default, _aten.elu_.default,
                  _aten.leaky_relu_.default}
_BINARY = {_aten.add.Tensor, _aten.mul.Tensor, _aten.sub.Tensor, _aten.div.Tensor}
_RESIZE = {_aten.upsample_bilinear2d.default, _aten.upsample_nearest2d.default,
           _aten._adaptive_avg_pool2d.default}
_BINARY_INPLACE = {_aten.add_.Tensor, _aten.mul_.Tensor, _aten.sub_.Tensor, _aten.div_.Tensor}


def _fast_result(func, args):
    """The op's result made without its meta kernel, or None to run the kernel."""
    if func is _aten.convolution.default:
        x, w = args[0], args[1]
        return torch.empty(_conv_shape(x, w, *args[3:9]), dtype=x.dtype, device="meta")
    if func is _aten._native_batch_norm_legit_no_training.default or (
            func is _aten.native_batch_norm.default and not args[5]):   # eval: no statistics
        x = args[0]
        return (_meta_like(x), _meta_like(x, (0,)), _meta_like(x, (0,)))
    if func in _RESIZE:      # (input, output_size, ...): the size is given
        x = args[0]
        return _meta_like(x, (*x.shape[:2], *args[1]))
    if func is _aten.mean.dim and len(args) >= 2 and args[1] is not None:
        x, dims = args[0], [d % args[0].dim() for d in args[1]]
        keep = len(args) > 2 and args[2]
        shape = [1 if i in dims else n for i, n in enumerate(x.shape) if keep or i not in dims]
        return _meta_like(x, shape)
    if func in _UNARY:
        return _meta_like(args[0])
    if func in _UNARY_INPLACE:
        return args[0]
    if func in _BINARY or func in _BINARY_INPLACE:
        a, b = args[0], args[1]
        if isinstance(b, torch.Tensor):
            if b.dtype != a.dtype:
                return None     # type promotion: the kernel knows best
            shape = torch.broadcast_shapes(a.shape, b.shape)
            if func in _BINARY_INPLACE:
                return a if shape == a.shape else None
            return _meta_like(a, shape)
        elif not isinstance(b, (int, float)) or (isinstance(b, float) and not a.is_floating_point()):
            return None
        return a if func in _BINARY_INPLACE else _meta_like(a)
    return None


class _ShapesAndUncountedOps(TorchDispatchMode):
    def __init__(self, leaf_depth: list[int], outside: Counter, fast_shapes: bool):
        super().__init__()
        self.leaf_depth = leaf_depth
        self.outside = outside
        self.fast_shapes = fast_shapes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if self.leaf_depth[0] == 0:
            name = func.overloadpacket.__name__.rstrip("_")
            if name not in DATA_MOVEMENT:
                self.outside[f"aten::{name}"] += 1
        # only among meta tensors: a real tensor meeting a meta one is the kernel's to
        # refuse (the caller then counts on the CPU)
        if self.fast_shapes and not kwargs and all(
                a.is_meta for a in args if isinstance(a, torch.Tensor)):
            result = _fast_result(func, args)
            if result is not None:
                return result
        return func(*args, **(kwargs or {}))


# --- Python-level functions as the jit tracer names them ---------------------------

_DUNDER = {"__add__": "add", "__radd__": "add", "__iadd__": "add_", "__mul__": "mul",
           "__rmul__": "mul", "__imul__": "mul_", "__sub__": "sub", "__rsub__": "rsub",
           "__isub__": "sub_", "__truediv__": "div", "__itruediv__": "div_",
           "__rtruediv__": "reciprocal", "__matmul__": "matmul", "__neg__": "neg",
           "__pow__": "pow", "__getitem__": "slice", "__setitem__": "copy_",
           "__and__": "__and__", "__or__": "__or__", "__eq__": "eq", "__ne__": "ne",
           "__gt__": "gt", "__lt__": "lt", "__ge__": "ge", "__le__": "le"}

_CONVS = {torch.conv1d, torch.conv2d, torch.conv3d, torch.conv_transpose1d,
          torch.conv_transpose2d, torch.conv_transpose3d}
_TRANSPOSED = {torch.conv_transpose1d, torch.conv_transpose2d, torch.conv_transpose3d}
_INTERPOLATE_OPS = {("nearest", 3): "upsample_nearest1d", ("nearest", 4): "upsample_nearest2d",
                    ("nearest", 5): "upsample_nearest3d", ("linear", 3): "upsample_linear1d",
                    ("bilinear", 4): "upsample_bilinear2d", ("bicubic", 4): "upsample_bicubic2d",
                    ("trilinear", 5): "upsample_trilinear3d", ("area", 4): "adaptive_avg_pool2d",
                    ("nearest-exact", 4): "_upsample_nearest_exact2d"}


def _arg(args, kwargs, index, name, default=None):
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def traced_op(func, args, kwargs) -> tuple[str, list] | None:
    """(jit op kind, inputs in the traced op's order) for a Python-level tensor function;
    None for calls that are no op (attribute reads)."""
    name = getattr(func, "__name__", "")
    if func in _CONVS:
        x, w = args[0], args[1]
        b = _arg(args, kwargs, 2, "bias")
        # aten::_convolution: input, weight, bias, stride, padding, dilation, transposed,
        # output_padding, groups, benchmark, deterministic, cudnn_enabled, allow_tf32
        return "aten::_convolution", [x, w, b, None, None, None, func in _TRANSPOSED,
                                      None, None, False, False, True, True]
    if func is F.batch_norm:
        x, mean, var = args[0], args[1], args[2]
        weight, bias = _arg(args, kwargs, 3, "weight"), _arg(args, kwargs, 4, "bias")
        training = bool(_arg(args, kwargs, 5, "training", False))
        return "aten::batch_norm", [x, weight, bias, mean, var, training, None, None, True]
    if func is F.instance_norm:
        x = args[0]
        weight, bias = _arg(args, kwargs, 3, "weight"), _arg(args, kwargs, 4, "bias")
        return "aten::instance_norm", [x, weight, bias, None, None, True, None, None, True]
    if func is F.group_norm:
        return "aten::group_norm", [args[0], args[1], _arg(args, kwargs, 2, "weight"),
                                    _arg(args, kwargs, 3, "bias"), None, True]
    if func is F.layer_norm:
        return "aten::layer_norm", [args[0], args[1], _arg(args, kwargs, 2, "weight"),
                                    _arg(args, kwargs, 3, "bias"), None, True]
    if func is F.interpolate:
        mode = _arg(args, kwargs, 3, "mode", "nearest")
        return "aten::" + _INTERPOLATE_OPS.get((mode, args[0].dim()), f"upsample_{mode}"), [args[0]]
    if func is F.relu or func is F.relu6 or func is F.hardtanh:
        base = "relu" if func is F.relu else "hardtanh"
        inplace = bool(_arg(args, kwargs, 1 if func is not F.hardtanh else 3, "inplace", False))
        return f"aten::{base}{'_' if inplace else ''}", [args[0]]
    if func in (F.dropout1d, F.dropout2d, F.dropout3d):
        return "aten::feature_dropout", [args[0]]
    if func is F.grid_sample:
        return "aten::grid_sampler", [args[0], args[1]]
    if func is torch.einsum:
        operands = args[1] if len(args) == 2 and isinstance(args[1], (list, tuple)) else args[1:]
        return "aten::einsum", [args[0], list(operands)]
    if name in ("__get__", "__set__") or name in ("size", "dim", "numel", "__len__",
                                                   "__format__", "__repr__", "__bool__",
                                                   "item", "tolist", "stride", "is_contiguous",
                                                   "data_ptr", "element_size", "__hash__"):
        return None
    if name in _DUNDER:
        name = _DUNDER[name]
    elif name.startswith("_") and not name.startswith("__"):
        name = name.lstrip("_") if name in ("_max_pool2d", "_max_pool1d", "_max_pool3d") else name
    elif name in ("fn",) or not name:
        name = getattr(func, "__qualname__", "unknown")
    return f"aten::{name}", list(args) + list((kwargs or {}).values())


class _TracedOps(TorchFunctionMode):
    def __init__(self, trace: ForwardTrace, scope: list[str]):
        super().__init__()
        self.trace = trace
        self.scope = scope

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        op = traced_op(func, args, kwargs)
        outputs = flatten_tensors(out)
        if op is not None and outputs:
            self.trace.ops.append(TracedOp(op[0], self.scope[-1], op[1], list(outputs)))
        return out


def canonical_names(model: nn.Module) -> dict[int, str]:
    """id(module) -> its first name in ``named_modules`` (a shared module keeps one)."""
    names: dict[int, str] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        names.setdefault(id(module), name)
    return names


def run_traced(model: nn.Module, inputs: tuple, fast_shapes: bool = True) -> ForwardTrace:
    """Run ``model(*inputs)`` once, recording a ``ForwardTrace``. On meta inputs (and a
    meta model) nothing is computed; on real ones the same record comes from real values
    (``fast_shapes`` only applies to meta tensors)."""
    trace = ForwardTrace(module_names=canonical_names(model))
    leaf_depth = [0]
    scope = [""]
    handles = []

    def push(module, args):
        scope.append(trace.module_names[id(module)])
        if next(module.children(), None) is None:
            leaf_depth[0] += 1

    def pop(module, args, output):
        scope.pop()
        if next(module.children(), None) is None:
            leaf_depth[0] -= 1
            trace.leaf_calls.append(LeafCall(trace.module_names[id(module)], module,
                                             flatten_tensors(args), flatten_tensors(output)))

    for module in {id(m): m for m in model.modules()}.values():
        handles.append(module.register_forward_pre_hook(push))
        handles.append(module.register_forward_hook(pop))
    on_meta = any(t.device.type == "meta" for t in flatten_tensors(inputs))
    dispatch = _ShapesAndUncountedOps(leaf_depth, trace.ops_outside_leaves,
                                      fast_shapes and on_meta)
    try:
        with dispatch, _TracedOps(trace, scope):
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return trace


# Errors that mean "this cannot run on meta tensors": an op without a meta kernel
# (NotImplementedError), a data-dependent op or value read (.item(), nonzero, bool of a
# tensor: RuntimeError), a meta tensor meeting a real one (RuntimeError). Anything else
# (a shape error, a bug) would fail on the CPU too and is not worth a second run, but
# those are RuntimeErrors as well, so every RuntimeError falls back.
META_FAILURES = (NotImplementedError, RuntimeError)


# In-place ops that only write values (weight initialisation): on a meta tensor they
# change nothing, but PyTorch runs them through Python decompositions (~1 ms a call;
# building GSTO-HRNet-W48 on meta takes half the time without them).
_VALUE_ONLY_INPLACE = frozenset({
    "normal_", "uniform_", "fill_", "zero_", "erfinv_", "mul_", "add_", "sub_", "div_",
    "clamp_", "clamp_min_", "clamp_max_", "exp_", "log_", "sqrt_", "neg_", "abs_",
    "random_", "bernoulli_", "exponential_", "log_normal_", "cauchy_", "geometric_",
    "copy_",
})


class _SkipValuesOnMeta(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", None) in _VALUE_ONLY_INPLACE:
            # Tensor.normal_(self, ...) or nn.init.normal_(tensor=..., ...)
            target = args[0] if args else kwargs.get("tensor")
            tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
            if isinstance(target, torch.Tensor) and all(t.is_meta for t in tensors):
                return target
        return func(*args, **kwargs)


def build_on_meta(build, *args, **kwargs):
    """``build(*args, **kwargs)`` with every tensor created on the meta device and the
    writes of weight initialisation skipped: the module tree, shapes and attributes of
    the real build, in a fraction of its time and no memory."""
    with torch.device("meta"), _SkipValuesOnMeta():
        return build(*args, **kwargs)


__all__ = ["ForwardTrace", "LeafCall", "TracedOp", "run_traced", "traced_op", "build_on_meta",
           "META_FAILURES",
           "canonical_names", "flatten_tensors", "DATA_MOVEMENT"]
