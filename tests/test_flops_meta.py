"""Module-hook and fvcore conventions count on the meta device (shapes, no arithmetic).
The counts must be *exactly* those of a real CPU forward (for fvcore: of fvcore's own
FlopCountAnalysis over a jit trace): total, per module, per operator and what was not
counted. A forward that cannot run on meta falls back to the CPU by itself."""
import pytest
import torch
from torch import nn

import bench
from bench.complexity import count_flops

CASES = [
    # (model, input, convention)
    ("litehrnet_18", (3, 256, 192), "lite_hrnet_paper"),
    ("hrnet_w32", (3, 256, 192), "hrnet_paper"),
    ("gsto_hrnet_w18_small_v2_seg", (3, 128, 256), "gsto_paper"),
    ("flattenet_resnet101_det", (3, 128, 128), "hrnet_paper"),   # DCNv2 in layer4
    ("dpn4_32", (3, 256, 192), "lite_hrnet_paper"),
    # fvcore: the canonical convention every FLOPs cell carries, and the GSTO paper's
    # (matmul/bmm rules of its own over fvcore's handles)
    ("litehrnet_18", (3, 256, 192), "fvcore"),
    ("hrnet_w32", (3, 256, 192), "fvcore"),
    ("gsto_hrnet_w18_small_v2_seg", (3, 128, 256), "fvcore"),
    ("flattenet_resnet101_det", (3, 128, 128), "fvcore"),      # grid_sample, einsum
    ("dpn4_32", (3, 256, 192), "fvcore"),
]


def _same(meta, real):
    assert meta.total == real.total
    assert meta.by_module == real.by_module
    assert meta.by_operator == real.by_operator
    assert meta.not_counted == real.not_counted
    assert meta.input_shapes == real.input_shapes


@pytest.mark.parametrize("name,shape,convention", CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_meta_count_equals_the_real_forward_count(name, shape, convention):
    torch.manual_seed(0)
    model = bench.create_model(name)
    real = count_flops(model, shape, convention, meta=False)
    meta = count_flops(model, shape, convention)
    assert real.counted_on == "cpu"
    assert meta.counted_on == "meta", meta.counted_on
    _same(meta, real)
    # the original model is untouched: still real, still in its former mode
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert all(b.device.type == "cpu" for b in model.buffers())


class ReadsAValue(nn.Module):
    """A data-dependent forward (a value read decides the path): no meta kernel can run it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x):
        y = self.conv(x)
        if y.sum() > -1e9:           # Tensor.__bool__: a value, not a shape
            y = self.relu(y)
        return y[y.abs() >= 0].sum() + y.mean()   # nonzero: data-dependent output shape


class PlainTensorAttribute(nn.Module):
    """A real tensor kept outside parameters/buffers: it meets meta tensors and fails."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.scale = torch.ones(1, 4, 1, 1)

    def forward(self, x):
        return self.conv(x) * self.scale


@pytest.mark.parametrize("module", [ReadsAValue, PlainTensorAttribute])
@pytest.mark.parametrize("convention", ["lite_hrnet_paper", "hrnet_paper"])
def test_a_forward_meta_cannot_run_falls_back_to_the_cpu_exactly(module, convention):
    model = module()
    real = count_flops(model, (3, 8, 8), convention, meta=False)
    fallback = count_flops(model, (3, 8, 8), convention)
    assert fallback.counted_on.startswith("cpu (meta forward failed: ")
    _same(fallback, real)
    assert real.total > 0


def test_meta_copy_shares_no_storage_and_keeps_tied_parameters_tied():
    from bench.complexity.flops import meta_copy

    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(2, 2, 1)
            self.b = nn.Conv2d(2, 2, 1)
            self.b.weight = self.a.weight
            self.bn = nn.BatchNorm2d(2)

    model = Tied()
    copy = meta_copy(model)
    assert copy.a.weight is copy.b.weight
    assert all(t.device.type == "meta" for t in [*copy.parameters(), *copy.buffers()])
    assert isinstance(copy.a.weight, nn.Parameter)
    assert model.a.weight.device.type == "cpu"


@pytest.mark.parametrize("name,shape,convention", [
    ("litehrnet_18", (3, 256, 192), "lite_hrnet_paper"),
    ("gsto_hrnet_w18_small_v2_seg", (3, 128, 256), "fvcore"),
])
def test_a_model_built_on_the_meta_device_counts_as_the_real_one(name, shape, convention):
    real = count_flops(bench.create_model(name), shape, convention, meta=False)
    with torch.device("meta"):
        model = bench.create_model(name)
    assert all(p.device.type == "meta" for p in model.parameters())
    meta = count_flops(model, shape, convention)
    assert meta.counted_on == "meta"
    _same(meta, real)


def test_a_meta_built_model_that_cannot_run_on_meta_raises_for_the_caller_to_rebuild():
    with torch.device("meta"):
        model = ReadsAValue()
    from bench.complexity.meta_trace import META_FAILURES
    with pytest.raises(META_FAILURES):
        count_flops(model, (3, 8, 8), "hrnet_paper")


def test_the_ptflops_engine_counts_on_the_cpu():
    report = count_flops(nn.Conv2d(3, 4, 3), (3, 8, 8), "ptflops_pytorch")
    assert report.counted_on == "cpu"
    assert report.total == 4 * 3 * 9 * 6 * 6 + 4 * 6 * 6     # MACs + bias adds
