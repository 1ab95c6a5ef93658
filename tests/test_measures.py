"""Structure measures read from the built model by the runner: ``attribute`` (a number at
a dotted path, optionally over another), ``output_stride`` / ``subsamplings`` /
``out_channels`` (from a shape-only forward); their column fields are validated with
file, line and field."""
import textwrap

import pytest

from bench import create_model, results as res
from bench.complexity.cache import MeasurementCache
from bench.runner import run_suite
from bench.suite import SuiteError, load_suite

HEADER = """\
suite: measures_demo
paper: flattenet
table: demo
title: structure measures
protocols: {mpii: mpii_256x256_flattenet}
columns:
"""


def write_suite(tmp_path, columns: str, rows: str | None = None):
    rows = rows or """\
rows:
  - name: ShuffleNet
    model: flattenet_shufflenetv2
"""
    path = tmp_path / "measures_demo.yaml"
    path.write_text(HEADER + textwrap.indent(textwrap.dedent(columns), "  ") + rows)
    return path


def run(tmp_path, path, **kw):
    return run_suite(path, results_dir=tmp_path / "results",
                     cache=MeasurementCache(tmp_path / "cache"), **kw)


COLUMNS = """\
k:      {measure: attribute, submodule: flatten.layers.0, attribute: dwconv.kernel_size, tolerance: {abs: 0}}
g1:     {measure: attribute, submodule: flatten.layers.0, attribute: pwconv1.groups, tolerance: {abs: 0}}
g2:     {measure: attribute, attribute: flatten.layers.0.shuffle_groups}
spg:    {measure: attribute, submodule: flatten.layers.0, attribute: pwconv2.out_channels, divided_by: pwconv2.in_channels}
u:      {measure: attribute, submodule: flatten.rearrange, attribute: upscale}
slope:  {measure: attribute, submodule: flatten.layers.0.act, attribute: weight.0}
stride: {measure: output_stride, protocol: mpii}
coarse: {measure: output_stride, protocol: mpii, submodule: flatten.layers}
subs:   {measure: subsamplings, protocol: mpii, submodule: flatten.layers}
joints: {measure: out_channels, protocol: mpii}
width:  {measure: out_channels, input: [[3, 128, 96]], submodule: flatten.layers}
"""


def test_structure_cells_equal_the_built_modules(tmp_path):
    (record,) = run(tmp_path, write_suite(tmp_path, COLUMNS)).records
    cells = {cid: c["value"] for cid, c in record["cells"].items()}
    model = create_model("flattenet_shufflenetv2", num_joints=16)
    layer = model.flatten.layers[0]
    assert cells["k"] == layer.dwconv.kernel_size[0] == 3           # a square kernel's k
    assert cells["g1"] == layer.pwconv1.groups == 64
    assert cells["g2"] == layer.shuffle_groups == 64                # a path across modules
    assert cells["spg"] == layer.pwconv2.out_channels / layer.pwconv2.in_channels == 2
    assert cells["u"] == model.flatten.rearrange.upscale == 8
    assert cells["slope"] == pytest.approx(float(layer.act.weight[0].detach())) == 1.0   # PReLU init
    # ShuffleNetV2 at stride 32, then the pixel shuffle by 8: heatmaps at 1/4
    assert cells["stride"] == 4 and cells["coarse"] == 32 and cells["subs"] == 5
    assert cells["joints"] == 16                                     # the protocol's num_joints
    assert cells["width"] == layer.pwconv2.out_channels == 2048
    details = record["details"]
    assert details["spg"]["path"] == "flatten.layers.0.pwconv2.out_channels"
    assert details["spg"]["divided_by_path"] == "flatten.layers.0.pwconv2.in_channels"
    assert details["stride"]["forward"] == "meta" and details["stride"]["output"] == [1, 16, 64, 64]
    assert details["width"]["output"] == [1, 2048, 4, 3] and details["width"]["input"] == [3, 128, 96]
    assert record["status"] == "ok"
    # a second run reads every cell from the cache, with the same values
    (again,) = run(tmp_path, write_suite(tmp_path, COLUMNS)).records
    assert all(c["source"] == "cache" for c in again["cells"].values())
    assert {cid: c["value"] for cid, c in again["cells"].items()} == cells


def test_output_stride_of_known_models(tmp_path):
    rows = """\
rows:
  - name: HRNet-W16
    model: small_hrnet_w16
  - name: FlatteNet 7 subsamplings
    model: flattenet_resnet50_sub7
"""
    path = write_suite(tmp_path, """\
stride: {measure: output_stride, protocol: mpii, tolerance: {abs: 0}}
subs:   {measure: subsamplings, input: [[3, 256, 256]], submodule: flatten.layers}
""", rows)
    hrnet, sub7 = run(tmp_path, path).records
    assert hrnet["cells"]["stride"]["value"] == 4                      # 64x64 heatmaps at 256x256
    assert hrnet["cells"]["subs"]["status"] == res.CELL_ERROR         # HRNet has no such module
    assert "no submodule 'flatten.layers'" in hrnet["cells"]["subs"]["reason"]
    assert sub7["cells"]["stride"]["value"] == 4                       # heatmaps stay at 1/4
    assert sub7["cells"]["subs"]["value"] == 7                         # 2x2 features at 256x256


def test_bad_paths_give_error_cells_naming_them(tmp_path, capsys):
    path = write_suite(tmp_path, """\
ok:      {measure: attribute, submodule: flatten.rearrange, attribute: upscale, tolerance: {abs: 0}}
typo:    {measure: attribute, submodule: flatten.layers.0, attribute: pwconv1.grups, tolerance: {abs: 0}}
module:  {measure: attribute, submodule: flatten.layerz.0, attribute: stride, tolerance: {abs: 0}}
index:   {measure: attribute, submodule: flatten.layers.3, attribute: stride, tolerance: {abs: 0}}
tuple:   {measure: attribute, submodule: flatten.layers.0.pwconv1, attribute: weight, tolerance: {abs: 0}}
uncalled: {measure: out_channels, protocol: mpii, submodule: backbone.fc}
""", """\
rows:
  - name: ShuffleNet
    model: flattenet_shufflenetv2
    published: {ok: 8, typo: 64, module: 1, index: 1, tuple: 1}
""")
    (record,) = run(tmp_path, path).records
    cells = record["cells"]
    assert cells["ok"]["value"] == 8 and cells["ok"]["status"] == res.CELL_MEASURED
    for cid, named in (("typo", "'flatten.layers.0.pwconv1.grups'"), ("module", "'flatten.layerz.0'"),
                       ("index", "'flatten.layers.3'"), ("tuple", "'flatten.layers.0.pwconv1.weight'")):
        assert cells[cid]["status"] == res.CELL_ERROR, cid
        assert named in cells[cid]["reason"], cells[cid]["reason"]
    assert "has no 'grups'" in cells["typo"]["reason"]
    assert "not a number" in cells["tuple"]["reason"]
    assert cells["uncalled"]["status"] == res.CELL_ERROR
    assert record["status"] == "failed"
    # a broken cell fails the gate: it is not silently passed
    from bench.cli import main
    code = main([str(path), "--check", "-q", "--results-dir", str(tmp_path / "results"),
                 "--cache-dir", str(tmp_path / "cache"), "--no-report"])
    assert code == 3                # the row failed (exit 3 outranks the gate's 1)
    err = capsys.readouterr().err
    assert "column 'typo'" in err and "FAILED ROW measures_demo: 'ShuffleNet'" in err


BAD_COLUMNS = [
    ("attribute column without a path", "x: {measure: attribute, tolerance: {abs: 0}}",
     "columns.x", "an attribute column names the attribute it reads"),
    ("attribute on a params column", "x: {measure: params, attribute: groups}",
     "columns.x.attribute", "attribute applies to attribute columns only"),
    ("divided_by on an output_stride column",
     "x: {measure: output_stride, protocol: mpii, divided_by: in_channels}",
     "columns.x.divided_by", "divided_by applies to attribute columns only"),
    ("submodule on a flops column",
     "x: {measure: flops, protocol: mpii, convention: fvcore, submodule: flatten}",
     "columns.x.submodule", "submodule applies to params and attribute"),
    ("malformed path", "x: {measure: attribute, attribute: 'pwconv1..groups'}",
     "columns.x.attribute", "not a dotted path"),
    ("malformed submodule", "x: {measure: attribute, submodule: 'flatten/layers', attribute: groups}",
     "columns.x.submodule", "not a dotted path"),
    ("a structure column in G", "x: {measure: output_stride, unit: G, protocol: mpii}",
     "columns.x.unit", "is a count"),
    ("a convention on an attribute", "x: {measure: attribute, attribute: groups, convention: fvcore}",
     "columns.x.convention", "counts nothing"),
    ("output_stride without an input", "x: {measure: output_stride}",
     "columns.x", "needs a protocol or an explicit input"),
    ("a ratio of an attribute", "x: {measure: attribute, attribute: groups, relative_to: {backbone: resnet50}}",
     "columns.x.relative_to", "relative_to applies to params and flops columns"),
]


@pytest.mark.parametrize("label,column,field,message", BAD_COLUMNS, ids=[c[0] for c in BAD_COLUMNS])
def test_bad_structure_columns_name_file_line_and_field(tmp_path, label, column, field, message):
    good = "ok: {measure: attribute, attribute: flatten.rearrange.upscale}\n"
    path = write_suite(tmp_path, good + column + "\n")
    line = HEADER.count("\n") + 2                    # the bad column's line
    with pytest.raises(SuiteError) as err:
        load_suite(path, check_models=False)
    e = err.value
    assert (e.path, e.field, e.line) == (str(path), field, line), str(e)
    assert message in e.message


def test_flattenet_table1_hyperparameters_are_the_built_modules(tmp_path):
    """Table I's cells are read from the built networks: every gated cell is within, and
    each known deviation (ShuffleNet-v2's complementary groups) really deviates."""
    from bench.report import cell_verdicts
    from conftest import REPO
    suite = load_suite(REPO / "suites" / "flattenet_table1.yaml")
    records = run(tmp_path, suite).records
    verdicts = cell_verdicts(suite, records)
    assert verdicts and all(v["status"] in ("within", "known deviation") for v in verdicts)
    for row in suite.rows:
        record = next(r for r in records if r["row_key"] == row.key)
        for cid in row.known_deviations:
            assert record["cells"][cid]["value"] != row.published[cid], (row.name, cid)
