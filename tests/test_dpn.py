"""DPN: the dilation schemes of Tables II, III and V, the DPM structure of Table I, the
high-resolution variant of Table IV and exact parameter counts. Published parameter and
FLOP values are checked from the suites in tests/test_complexity.py."""
import pytest
import torch

import bench
from bench.complexity import count_params
from bench.models.dpn import DilationPyramidModule, dpm_dilations, dpm_receptive_field
from bench.registry import BadOverrideError


@pytest.mark.parametrize("scheme,expected", [
    ("pyramid", (32, 16, 8, 4, 2, 1)), ("reversed", (1, 2, 4, 8, 16, 32)),
    ("normal", (1,) * 6), (4, (4,) * 6)])
def test_dilation_schemes(scheme, expected):
    assert dpm_dilations(scheme, 6) == expected


@pytest.mark.parametrize("bad", ["pyramids", 0, 2.5, True])
def test_a_bad_dilation_scheme_is_refused(bad):
    with pytest.raises(BadOverrideError, match="dilation must be|constant dilation must be"):
        bench.registry.resolve_spec("dpn4_32", dilation=bad)


@pytest.mark.parametrize("n", range(1, 7))
def test_pyramid_receptive_field_is_eq6(n):
    """Eq. (2) summed over a pyramid DPM equals the paper's (k - 1)(2^N - 1) + 1."""
    for k in (3, 5):
        assert dpm_receptive_field(k, dpm_dilations("pyramid", n)) == (k - 1) * (2 ** n - 1) + 1


@pytest.mark.parametrize("name,dpms,width", [("dpn4_32", 4, 32), ("dpn4_64", 4, 64),
                                             ("dpn1_64", 1, 64), ("dpn2_32", 2, 32)])
def test_table1_structure(name, dpms, width):
    model = bench.create_model(name, dilation="reversed")
    assert len(model.dpms) == dpms
    for dpm in model.dpms:
        assert isinstance(dpm, DilationPyramidModule)
        assert [b.conv2.dilation[0] for b in dpm] == [1, 2, 4, 8, 16, 32]
        assert [b.conv2.padding[0] for b in dpm] == [1, 2, 4, 8, 16, 32]
        assert all(b.conv1.out_channels == width and b.downsample is None for b in dpm)


@pytest.mark.parametrize("high", [False, True])
def test_heatmaps_at_quarter_resolution_and_dpms_at_the_chosen_one(high):
    model = bench.create_model("dpn1_32", high_resolution=high).eval()
    seen = []
    model.dpms.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape[-2:])))
    with torch.no_grad():
        out = model(torch.rand(1, 3, 256, 192))
    assert out.shape == (1, 17, 64, 48)
    assert seen == [(64, 48) if high else (32, 24)]


def test_dilation_schemes_share_parameters():
    """Tables II, III and V compare schemes at equal parameters and FLOPs."""
    base = count_params(bench.create_model("dpn4_32"))
    for scheme in ("reversed", "normal", 8):
        assert count_params(bench.create_model("dpn4_32", dilation=scheme)) == base


@pytest.mark.parametrize("name", ["dpn4_32", "dpn4_64", "dpn2_hrnet_w32"])
def test_exact_parameter_counts(name, golden):
    golden("param_counts", name, count_params(bench.create_model(name)))


def test_dpn2_hrnet_is_hrnet_w32_plus_a_transition_two_dpms_and_a_wider_head():
    """DPN2_hrnet = HRNet-W32's backbone unchanged (same keys and shapes) + a 3x3/2 conv
    32 -> 256 + two DPMs of width 64 + a 1x1 head 256 -> 17; counted here by hand."""
    ours, hrnet = bench.create_model("dpn2_hrnet_w32"), bench.create_model("hrnet_w32")
    backbone = {k: v.shape for k, v in hrnet.state_dict().items() if not k.startswith("final_layer")}
    assert {k: v.shape for k, v in ours.state_dict().items() if k in backbone} == backbone
    dpm = 6 * (256 * 64 + 9 * 64 * 64 + 64 * 256 + 2 * (64 + 64 + 256))   # six bottlenecks
    transition = 9 * 32 * 256 + 2 * 256
    head_delta = (256 * 17 + 17) - (32 * 17 + 17)
    assert count_params(ours) == count_params(hrnet) + transition + 2 * dpm + head_delta
    assert [b.conv2.dilation[0] for b in ours.dpms[1]] == [32, 16, 8, 4, 2, 1]
    seen = []
    ours.dpms.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape[1:])))
    with torch.no_grad():
        out = ours.eval()(torch.rand(1, 3, 256, 192))
    assert seen == [(256, 32, 24)] and out.shape == (1, 17, 64, 48)


def test_dpn2_hrnet_starts_from_hrnet_imagenet_weights(tmp_path):
    """The row's pretrained file is HRNet-W32's ImageNet checkpoint: the backbone loads,
    the DPMs and the head keep their init."""
    from bench.checkpoints import load_pretrained_backbone
    source = bench.create_model("hrnet_w32")
    state = {k: v for k, v in source.state_dict().items() if not k.startswith("final_layer")}
    state["classifier.weight"] = torch.zeros(1000, 2048)
    torch.save(state, tmp_path / "hrnet_w32-36af842e.pth")
    model = bench.create_model("dpn2_hrnet_w32")
    dpm_weight = model.dpms[0][0].conv1.weight.clone()
    done = load_pretrained_backbone(model, tmp_path / "hrnet_w32-36af842e.pth")
    assert done["classifier_keys_dropped"] == 1
    assert torch.equal(model.stage4[2].fuse_layers[0][1][0].weight,
                       source.stage4[2].fuse_layers[0][1][0].weight)
    assert torch.equal(model.dpms[0][0].conv1.weight, dpm_weight)


# --- receptive fields measured on the built module (bench.complexity.receptive_field) ---
from bench.complexity.receptive_field import measure_footprint  # noqa: E402


def _dpm(n: int, scheme) -> DilationPyramidModule:
    return DilationPyramidModule(8, 2, dpm_dilations(scheme, n))


@pytest.mark.parametrize("n", range(1, 7))
def test_measured_receptive_field_of_a_pyramid_dpm_is_eq6_and_complete(n):
    """Measured from the gradient of one output position: (k - 1)(2^N - 1) + 1, with
    every position inside it contributing (no gridding)."""
    rf = 2 * (2 ** n - 1) + 1
    footprint = measure_footprint(_dpm(n, "pyramid"), 8, rf + 8)
    assert footprint.height == footprint.width == rf
    assert footprint.contributing_fraction == 1.0


@pytest.mark.parametrize("d", [2, 4, 6, 8])
def test_constant_dilation_leaves_holes(d):
    footprint = measure_footprint(_dpm(3, d), 8, 2 * 3 * d + 9)
    assert footprint.receptive_field == 2 * 3 * d + 1           # Eq. (2): 1 + 3 (k-1) d
    assert footprint.contributing_fraction < 1.0


def test_a_plain_stack_of_3x3_convolutions_grows_linearly():
    stack = torch.nn.Sequential(*[torch.nn.Conv2d(2, 2, 3, padding=1) for _ in range(4)])
    footprint = measure_footprint(stack, 2, 20)
    assert footprint.receptive_field == 9 and footprint.contributing_fraction == 1.0


def test_a_footprint_cut_by_the_border_is_refused():
    with pytest.raises(ValueError, match="larger size"):
        measure_footprint(_dpm(4, "pyramid"), 8, 20)


def test_receptive_field_suite_passes_its_gate_and_constant_dilations_grid(tmp_path):
    """dpn_receptive_field.yaml, run by the runner: the pyramid rows reproduce Eq. (6)
    with every position contributing; constant D >= 2 contributes less than all; the
    FLOPs ratios of Table IV are those of the printed cells."""
    from bench.complexity.cache import MeasurementCache
    from bench.runner import gate_failures, run_suite
    from bench.suite import load_suite
    from conftest import REPO
    suite = load_suite(REPO / "suites" / "dpn_receptive_field.yaml")
    run = run_suite(suite, results_dir=tmp_path / "results", cache=MeasurementCache(tmp_path / "c"))
    assert gate_failures(suite, run.records) == []
    fractions = {r["row"]: r["cells"]["contributing"]["value"] for r in run.records
                 if "contributing" in r["cells"]}
    for d in (2, 4, 6, 8):
        assert fractions[f"Constant D={d}, N=6"] < 1.0
    assert fractions["Constant D=1 (normal), N=6"] == 1.0
    # Table IV: the 32x24 DPN needs "about one-third" of the 64x48 one's FLOPs, and less
    # of it as DPMs (which cost 4x at 64x48) are added; rows fill only their own columns
    ratios = [r["cells"]["flops_ratio"]["value"] for r in run.records if "flops_ratio" in r["cells"]]
    assert len(ratios) == 4 and all(0.3 < x < 0.37 for x in ratios)
    assert ratios == sorted(ratios, reverse=True)
    assert sum("rf" in r["cells"] for r in run.records) == 12
