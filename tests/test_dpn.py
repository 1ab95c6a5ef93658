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


@pytest.mark.parametrize("name", ["dpn4_32", "dpn4_64"])
def test_exact_parameter_counts(name, golden):
    golden("param_counts", name, count_params(bench.create_model(name)))


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
    with every position contributing; constant D >= 2 contributes less than all."""
    from bench.complexity.cache import MeasurementCache
    from bench.runner import gate_failures, run_suite
    from bench.suite import load_suite
    from conftest import REPO
    suite = load_suite(REPO / "suites" / "dpn_receptive_field.yaml")
    run = run_suite(suite, results_dir=tmp_path / "results", cache=MeasurementCache(tmp_path / "c"))
    assert gate_failures(suite, run.records) == []
    fractions = {r["row"]: r["cells"]["contributing"]["value"] for r in run.records}
    for d in (2, 4, 6, 8):
        assert fractions[f"Constant D={d}, N=6"] < 1.0
    assert fractions["Constant D=1 (normal), N=6"] == 1.0
