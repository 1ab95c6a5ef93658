"""Named FLOP counting conventions.

Papers print "FLOPs" but count different things. A convention is data: which engine
counts (hooks on leaf modules with per-type rules, fvcore's tracer, or ptflops with an
explicit backend), what each rule charges, whether a module called twice is charged once,
and the unit base of the printed "M"/"G". A convention is right when it reproduces the
printed numbers of the paper's own rows to their printed precision. What a convention
says an official tool counts is our reading of that tool's source, checked against the
tool's own output only for HRNet's ``get_model_summary`` on its pose models
(``hrnet_paper``: ``tests/test_flops_official_tool.py``, exact); torchstat (Lite-HRNet)
and GSTO's summary.py are not run by a test, and ``tests/test_complexity.py`` checks the
printed paper numbers.

Rules take ``(module, inputs, outputs)`` (tuples of tensors) and return a count. They are
keyed by module class *name* and looked up along the class's MRO, so subclasses are
charged like their base and this module imports without torch (suites validate
convention names before any model is built).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

Rule = Callable[[object, tuple, tuple], int]   # (module, inputs, outputs) -> count


# --- torchstat-style rules, as we read tools/torchstat/compute_flops.py in Lite-HRNet's
# repository (not run by a test)

def conv_macs_plus_bias(m, inputs, outputs) -> int:
    """k_h k_w C_in (C_out / groups) per output position, plus one add per output if biased."""
    out = outputs[0]
    positions = out.shape[0] * out.shape[2] * out.shape[3]
    macs = m.kernel_size[0] * m.kernel_size[1] * inputs[0].shape[1] * (out.shape[1] // m.groups)
    return macs * positions + (out.shape[1] * positions if m.bias is not None else 0)


def conv_transpose_on_input_grid(m, inputs, outputs) -> int:
    """Per *input* position (plus bias per output): torchstat's rule as we read it."""
    x, out = inputs[0], outputs[0]
    macs = m.kernel_size[0] * m.kernel_size[1] * m.in_channels * (m.out_channels // m.groups)
    bias = out.shape[1] * out.shape[0] * out.shape[2] * out.shape[3] if m.bias is not None else 0
    return macs * x.shape[0] * x.shape[2] * x.shape[3] + bias


def batchnorm_scale_shift(m, inputs, outputs) -> int:
    """One op per element, two when affine (scale and shift)."""
    return inputs[0].numel() * (2 if m.affine else 1)


def one_per_input_element(m, inputs, outputs) -> int:
    return inputs[0].numel()


def upsample_torchstat(m, inputs, outputs) -> int:
    """torchstat's nn.Upsample count as we read it: its code indexes the already-selected
    output tensor once more (``out[0].shape[1:]``), so it charges N x H_out x W_out: the
    channels are lost. Kept on purpose: with C x H x W, Small HRNet-W16 gives 551.95M,
    not the printed 551.7M."""
    out = outputs[0]
    return out.shape[0] * out.shape[2] * out.shape[3]


def pool_window(m, inputs, outputs) -> int:
    """Kernel area per output element (output size from torchstat's own formula)."""
    x = inputs[0]
    k = _pair(m.kernel_size)
    s = _pair(m.stride)
    p = _pair(m.padding)
    out_w = math.floor((x.shape[3] + 2 * p[0] - k[0]) / s[0] + 1)
    out_h = math.floor((x.shape[2] + 2 * p[1] - k[1]) / s[0] + 1)
    return x.shape[0] * x.shape[1] * out_w * out_h * k[0] * k[1]


def adaptive_pool_torchstat(m, inputs, outputs) -> int:
    """torchstat's adaptive pooling count as we read it: every output cell is charged its
    window *plus one row and one column* ((y1 - y0 + 1)(x1 - x0 + 1)), a quirk kept on
    purpose: a global pool over H x W costs (H + 1)(W + 1) per channel."""
    x, out = inputs[0], outputs[0]
    h, w = x.shape[2], x.shape[3]
    oh, ow = out.shape[2], out.shape[3]
    total = 0
    for i in range(oh):
        y0, y1 = math.floor(i * h / oh), math.ceil((i + 1) * h / oh)
        for j in range(ow):
            x0, x1 = math.floor(j * w / ow), math.ceil((j + 1) * w / ow)
            total += (y1 - y0 + 1) * (x1 - x0 + 1)
    return x.shape[0] * x.shape[1] * total


def linear_macs(m, inputs, outputs) -> int:
    return inputs[0].shape[0] * m.in_features * m.out_features


# --- HRNet-repository rules, as we read lib/utils/utils.py get_model_summary (not run
# by a test) -----------------------------------------------------------------------------

def conv_weight_times_output_grid(m, inputs, outputs) -> int:
    """numel(weight) x output positions, no bias; transposed convs too (on the output grid)."""
    out = outputs[0]
    return m.weight.numel() * out.shape[2] * out.shape[3]


def linear_output_times_input(m, inputs, outputs) -> int:
    return outputs[0].numel() * inputs[0].shape[-1]


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _fvcore_elementwise_product(inputs, outputs) -> int:
    """One multiply per output element (fvcore skips element-wise ops by default)."""
    from fvcore.nn.jit_handles import get_shape
    return int(math.prod(get_shape(outputs[0])))


def _fvcore_not_counted(inputs, outputs):
    # fvcore's set_op_handle(name, None) does not remove a default handle, so ops a
    # convention leaves out get a handle that charges nothing.
    from collections import Counter
    return Counter()


FVCORE_HANDLES = {"elementwise_product": _fvcore_elementwise_product,
                  "not_counted": _fvcore_not_counted}


@dataclass(frozen=True)
class Convention:
    name: str
    engine: str                   # "module_hooks" | "fvcore" | "ptflops"
    unit_base: int                # 1000 (decimal M/G) or 1024 (binary, 2**20 / 2**30)
    description: str
    rules: Mapping[str, Rule] = field(default_factory=dict)
    once_per_module: bool = True  # module_hooks: a module called twice is charged once
    ptflops_backend: str | None = None
    # fvcore: op name -> name of a handle in FVCORE_HANDLES
    fvcore_ops: Mapping[str, str] = field(default_factory=dict)
    # params columns: class names (looked up along the MRO, like ``rules``) of the modules
    # whose own parameters the paper's counter included; None: the convention defines no
    # parameter count of its own, and a params column under it counts every parameter
    param_modules: tuple[str, ...] | None = None

    def rule_for(self, module) -> Rule | None:
        for cls in type(module).__mro__:
            rule = self.rules.get(cls.__name__)
            if rule is not None:
                return rule
        return None

    def counts_params_of(self, module) -> bool:
        """Whether a params column under this convention counts ``module``'s own parameters."""
        if self.param_modules is None:
            return True
        return any(cls.__name__ in self.param_modules for cls in type(module).__mro__)

    def scale(self, unit: str) -> int:
        return self.unit_base ** {"": 0, "K": 1, "M": 2, "G": 3, "T": 4}[unit]


CONVENTIONS: dict[str, Convention] = {}


def _register(c: Convention) -> Convention:
    if c.name in CONVENTIONS:
        raise ValueError(f"convention {c.name!r} defined twice")
    CONVENTIONS[c.name] = c
    return c


CANONICAL = "fvcore"

_register(Convention(
    name="fvcore", engine="fvcore", unit_base=1000,
    description="fvcore FlopCountAnalysis: one fused multiply-add = one flop; convolutions, "
                "matmuls, norms and upsampling counted, element-wise ops skipped (reported "
                "as unsupported). Decimal units. The canonical figure shown for every row."))

_register(Convention(
    name="lite_hrnet_paper", engine="module_hooks", unit_base=1024,
    description="Lite-HRNet's tools/summary_network.py (a torchstat copy): forward hooks on "
                "leaf modules, each module charged once; conv MACs + bias, BN 2/element, "
                "ReLU 1/element, nn.Upsample 1/output position (channels dropped, a bug kept), adaptive pooling with "
                "torchstat's (+1)x(+1) window; functional ops, element-wise products, "
                "sigmoid and F.interpolate not counted. Printed in binary units (2**20).",
    rules={
        "Conv2d": conv_macs_plus_bias,
        "ConvTranspose2d": conv_transpose_on_input_grid,
        "BatchNorm2d": batchnorm_scale_shift,
        "AvgPool2d": pool_window, "MaxPool2d": pool_window,
        "AdaptiveAvgPool2d": adaptive_pool_torchstat,
        "AdaptiveMaxPool2d": adaptive_pool_torchstat,
        "ReLU": one_per_input_element, "ReLU6": one_per_input_element,
        "PReLU": one_per_input_element, "ELU": one_per_input_element,
        "LeakyReLU": one_per_input_element,
        "Upsample": upsample_torchstat,
        "Linear": linear_macs,
    }))

_HRNET_TOOL_RULES = {
    "Conv2d": conv_weight_times_output_grid,
    "ConvTranspose2d": conv_weight_times_output_grid,
    "Linear": linear_output_times_input,
}

_register(Convention(
    name="hrnet_paper", engine="module_hooks", unit_base=1024,
    description="HRNet's get_model_summary (lib/utils/utils.py of the pose and segmentation "
                "repositories): convolutions (numel(weight) x output positions, transposed "
                "convs on the output grid, no bias) and linear layers only, charged at every "
                "call; normalisation, activations, pooling and resampling not counted. "
                "Printed as multiply-adds / 1024^3 'GFLOPs'.",
    once_per_module=False,
    rules=_HRNET_TOOL_RULES))

_register(Convention(
    name="gsto_paper", engine="module_hooks", unit_base=1024,
    description="GSTO's summary.py: HRNet's get_model_summary run where BatchNorm was "
                "InPlaceABNSync. FLOPs as hrnet_paper. Parameters: the tool adds those of "
                "modules whose class name holds Conv, BatchNorm or Linear, so InPlaceABNSync's "
                "affine weights were left out: conv and linear parameters (biases included) "
                "only: HRNetV2-W18-Small-v2 3.92M and W48 65.77M, printed 3.92M / 65.78M "
                "(3.94M / 65.86M in all).",
    once_per_module=False,
    rules=_HRNET_TOOL_RULES,
    param_modules=("Conv1d", "Conv2d", "Conv3d", "ConvTranspose2d", "Linear")))

_register(Convention(
    name="macs_and_products", engine="fvcore", unit_base=1024,
    description="The accounting of Lite-HRNet's Table 2 'theory complexity': convolution "
                "multiply-accumulates (no bias) plus one per element-wise product (channel "
                "weighting); pooling, normalisation, activations and resampling not "
                "counted. Binary units, as the paper prints.",
    fvcore_ops={"aten::mul": "elementwise_product", "aten::batch_norm": "not_counted",
                "aten::adaptive_avg_pool2d": "not_counted",
                "aten::upsample_nearest2d": "not_counted",
                "aten::upsample_bilinear2d": "not_counted", "aten::sigmoid": "not_counted",
                "aten::relu": "not_counted", "aten::relu_": "not_counted"}))

_register(Convention(
    name="ptflops_pytorch", engine="ptflops", unit_base=1000, ptflops_backend="pytorch",
    description="ptflops, backend='pytorch' (module hooks plus patched functionals; MACs)."))

_register(Convention(
    name="ptflops_aten", engine="ptflops", unit_base=1000, ptflops_backend="aten",
    description="ptflops, backend='aten' (ATen-level counting of conv/mm ops; MACs)."))


def get_convention(name: str) -> Convention:
    try:
        return CONVENTIONS[name]
    except KeyError:
        raise KeyError(f"unknown counting convention {name!r}; known: {', '.join(CONVENTIONS)}") from None
