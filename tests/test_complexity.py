"""Counting rules on hand-computed cases, the conventions on the papers' own rows
(published values read from the suite files), and the measurement cache."""
import pytest
import torch
from torch import nn

import bench
from bench.compare import WITHIN, compare_cell, round_half_up
from bench.complexity import count_flops, count_params, get_convention, params_by_module
from bench.complexity.cache import MeasurementCache
from bench.runner import model_overrides
from bench.suite import load_suite
from conftest import REPO


def test_conv_rule_counts_macs_and_bias_by_hand():
    conv = nn.Conv2d(4, 6, 3, padding=1, bias=True)
    report = count_flops(conv, (4, 5, 5), "lite_hrnet_paper")
    assert report.total == 3 * 3 * 4 * 6 * 25 + 6 * 25
    # HRNet's tool: numel(weight) x output positions, no bias
    assert count_flops(conv, (4, 5, 5), "hrnet_paper").total == 6 * 4 * 3 * 3 * 25
    # fvcore: one fused multiply-add per flop, no bias
    assert count_flops(conv, (4, 5, 5), "fvcore").total == 3 * 3 * 4 * 6 * 25


@pytest.mark.parametrize("convention", ["ptflops_pytorch", "ptflops_aten"])
def test_ptflops_backends_count_conv_macs_and_bias(convention):
    conv = nn.Conv2d(4, 6, 3, padding=1, bias=True)
    assert count_flops(conv, (4, 5, 5), convention).total == 3 * 3 * 4 * 6 * 25 + 6 * 25


def test_ptflops_reports_leaf_modules_it_has_no_hook_for():
    report = count_flops(bench.create_model("litehrnet_18"), (3, 256, 192), "ptflops_pytorch")
    assert report.not_counted == {"module::Sigmoid": 1}


def test_depthwise_conv_counts_one_input_channel_per_output():
    conv = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
    assert count_flops(conv, (8, 4, 4), "lite_hrnet_paper").total == 9 * 8 * 16


def test_torchstat_quirks_are_kept():
    # global pooling over H x W is charged (H + 1)(W + 1) per channel
    assert count_flops(nn.AdaptiveAvgPool2d(1), (3, 6, 4), "lite_hrnet_paper").total == 3 * 7 * 5
    # nn.Upsample loses the channels: N x H_out x W_out
    up = nn.Upsample(scale_factor=2, mode="nearest")
    assert count_flops(up, (5, 3, 3), "lite_hrnet_paper").total == 6 * 6
    # BN with affine: two per element
    assert count_flops(nn.BatchNorm2d(3), (3, 4, 4), "lite_hrnet_paper").total == 2 * 48


class SharedReLU(nn.Module):
    """One ReLU module called twice: the paper's counter charges it once."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1, bias=False)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv(self.relu(x))) * 2 + torch.sigmoid(x)


def test_module_called_twice_is_counted_once_and_uncounted_ops_are_recorded():
    report = count_flops(SharedReLU(), (2, 3, 3), "lite_hrnet_paper")
    assert report.by_operator == {"Conv2d": 2 * 2 * 9, "ReLU": 2 * 9}
    assert report.not_counted == {"aten::add": 1, "aten::mul": 1, "aten::sigmoid": 1}


def test_fvcore_reports_unsupported_ops():
    report = count_flops(SharedReLU(), (2, 3, 3), "fvcore")
    assert report.total == 2 * 2 * 9
    assert "aten::sigmoid" in report.not_counted


def test_counting_restores_training_mode_and_uses_batch_one():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)).train()
    report = count_flops(model, (1, 3, 8, 8), "fvcore")
    assert model.training and report.input_shapes == [[1, 3, 8, 8]]
    with pytest.raises(ValueError, match=r"\(C, H, W\) or \(1, C, H, W\)"):
        count_flops(model, (2, 3, 8, 8), "fvcore")


def test_params_by_module_adds_up():
    model = bench.create_model("litehrnet_18")
    per = params_by_module(model)
    assert per[""] == count_params(model) == per["backbone"] + per["keypoint_head"]


def _suite_cells(suite_file: str):
    suite = load_suite(REPO / "suites" / suite_file)
    for row in suite.rows:
        if not row.built:
            continue
        for cid, col in suite.columns.items():
            if col.measure in ("flops", "params") and cid in row.published:
                yield pytest.param(suite, row, cid, id=f"{suite.suite}:{row.key}:{cid}")


PAPER_TABLES = ("lite_hrnet_table1.yaml", "lite_hrnet_table3.yaml", "lite_hrnet_table4.yaml",
                "lite_hrnet_table5.yaml", "lite_hrnet_table6.yaml", "lite_hrnet_table7.yaml",
                "lite_hrnet_table8.yaml",
                "hrnet_table1.yaml", "hrnet_table2.yaml", "hrnet_table4.yaml", "hrnet_table6.yaml",
                "dpn_table1.yaml", "dpn_table4.yaml", "dpn_table6.yaml", "dpn_table7.yaml",
                "flattenet_table2.yaml", "flattenet_table3.yaml", "flattenet_table4.yaml",
                "flattenet_table5.yaml", "flattenet_table8.yaml", "flattenet_table10.yaml",
                "gsto_table2.yaml", "gsto_table3.yaml", "gsto_table4.yaml", "gsto_table10.yaml")
CELLS = [c for f in PAPER_TABLES for c in _suite_cells(f)]


@pytest.mark.parametrize("suite,row,cid", CELLS)
def test_paper_complexity_reproduced(suite, row, cid, measurement_cache):
    """Every parameter and FLOPs cell of the built rows of Lite-HRNet Tables 1, 3-8 and
    HRNet Tables 1, 2, 4, 6, DPN Tables I, IV, VI, VII, FlatteNet Tables II-V, VIII, X and
    GSTO Tables 2, 3, 4, 10 is within its column's tolerance under the row's counting
    convention (the Lite-HRNet columns' tolerances are half a printed digit, so there it
    means "reproduced to the printed precision"). A cell the suite explains as a known
    deviation must really miss the printed value, so a stale note cannot hide a fix.
    Published values come from the suite files."""
    col = suite.columns[cid]
    protocol = suite.protocol_for(row, col.protocol)
    overrides = model_overrides(row, protocol)
    convention = suite.convention_for(row, cid)

    def count(overrides: dict) -> int:
        spec = bench.registry.resolve_spec(row.model.name, **overrides)

        def measure():
            model = bench.create_model(row.model.name, **overrides)
            if col.measure == "params":   # a params convention may leave some out (GSTO's)
                return count_params(model.get_submodule(col.submodule) if col.submodule else model,
                                    convention=convention)
            return count_flops(model, protocol.input_shape, convention).total

        raw, _ = measurement_cache.get_or_compute(
            measure, test=col.measure, spec=repr(spec), shape=protocol.input_shape,
            conv=convention, part=col.submodule)
        return raw

    if col.relative_to:   # a ratio: the row's model over the same with the column's overrides
        measured = count(overrides) / count({**overrides, **col.relative_to})
    else:
        scale = 1e6 if col.measure == "params" else get_convention(convention).scale(col.unit)
        measured = count(overrides) / scale
    published = row.published[cid]
    if row.known_deviations.get(cid):
        assert round_half_up(measured, suite.printed_digits(row, cid)) != published, (
            f"{row.name} {cid}: measured {measured:.4f} now matches the published {published}; "
            "drop the known deviation")
    else:
        verdict = compare_cell(published, measured, col.tolerance, suite.printed_digits(row, cid))
        assert verdict.status == WITHIN, (
            f"{row.name} {cid}: measured {measured:.4f}, published {published}, "
            f"allowed ±{verdict.allowed:g}")


@pytest.mark.parametrize("row_index", range(5))
def test_table2_formulas_reproduce_the_printed_example(row_index):
    suite = load_suite(REPO / "suites" / "lite_hrnet_table2.yaml")
    row = suite.rows[row_index]
    col = suite.columns["formula.mflops"]
    model = bench.create_model(row.model.name, **row.model.overrides)
    value = model.theory_macs(col.input) / 2 ** 20
    assert round_half_up(value, suite.printed_digits(row, "formula.mflops")) == row.published["formula.mflops"]
    modules = count_flops(model, col.input, "macs_and_products").total
    # the modules agree with the formula except for the cross-resolution function,
    # which runs at every position of the lowest resolution (32 x 32 here)
    if "modules.mflops" in row.known_deviations:
        assert modules > 50 * model.theory_macs(col.input)
    else:
        assert modules == model.theory_macs(col.input)


def test_cache_hits_and_is_keyed_by_code(tmp_path, monkeypatch):
    cache = MeasurementCache(tmp_path)
    calls = []
    compute = lambda: calls.append(1) or 42  # noqa: E731
    assert cache.get_or_compute(compute, model="m", input=[1]) == (42, False)
    assert cache.get_or_compute(compute, model="m", input=[1]) == (42, True)
    assert cache.get_or_compute(compute, model="m", input=[2]) == (42, False)
    assert len(calls) == 2
    # a change of the model code changes every key: never a stale number
    import bench.complexity.cache as cache_mod
    monkeypatch.setattr(cache_mod, "code_hash", lambda: "edited")
    assert cache.get_or_compute(compute, model="m", input=[1]) == (42, False)
    assert len(calls) == 3


def test_damaged_cache_entry_is_recomputed(tmp_path):
    cache = MeasurementCache(tmp_path)
    cache.get_or_compute(lambda: 1, k="x")
    (entry,) = tmp_path.rglob("*.json")
    entry.write_text("{not json")
    assert cache.get_or_compute(lambda: 2, k="x") == (2, False)
