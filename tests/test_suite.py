"""Suite files: every paper table loads; a bad suite stops with file, line and field."""
import shutil

import pytest

from bench.suite import SuiteError, discover_suites, load_suite
from conftest import REPO

TABLE6 = REPO / "suites" / "lite_hrnet_table6.yaml"


@pytest.mark.parametrize("path", discover_suites(), ids=lambda p: p.stem)
def test_every_suite_loads_and_checks_its_models(path):
    suite = load_suite(path)
    assert suite.rows and suite.columns
    for row in suite.rows:
        assert set(row.published) <= set(suite.columns)


def test_rows_override_model_arguments_and_keep_printed_digits():
    suite = load_suite(TABLE6)
    row = next(r for r in suite.rows if "one 1x1" in r.name)
    assert row.model.name == "wider_naive_litehrnet_18"
    assert row.model.overrides == {"drop_pointwise": 1}
    assert row.model.key == "wider_naive_litehrnet_18(drop_pointwise=1)"
    assert row.printed_digits["mpii.mflops"] == 1          # "331.0" keeps its decimal
    assert suite.protocols["mpii"].num_joints == 16


def broken_copy(tmp_path, old: str, new: str):
    text = TABLE6.read_text()
    assert old in text, old
    target = tmp_path / "suite.yaml"
    shutil.copytree(REPO / "suites" / "protocols", tmp_path / "protocols")
    target.write_text(text.replace(old, new, 1))
    line = text[: text.index(old)].count("\n") + 1
    return target, line


CASES = [
    ("unknown model", "model: litehrnet_30", "model: litehrnet_31", "rows[6].model", "unknown model 'litehrnet_31'"),
    ("bad override", "drop_pointwise: 1}", "drop_pointwise: 1, depth: 3}", "rows[3].model", "no argument 'depth'"),
    ("unknown column", "published: {params: 1.8,", "published: {params: 1.8, coco.GFLOPs: 0.3,",
     "rows[6].published.coco.GFLOPs", "unknown column 'coco.GFLOPs'"),
    ("wrong type", "published: {params: 1.8,", "published: {params: lots,",
     "rows[6].published.params", "valid number"),
    ("unknown protocol file", "mpii: mpii_256x256_lite_hrnet}", "mpii: mpii_512_lite_hrnet}",
     "protocols.mpii", "unknown protocol 'mpii_512_lite_hrnet'"),
    ("column on unknown protocol key", "measure: PCKh@0.5, protocol: mpii,",
     "measure: PCKh@0.5, protocol: lsp,", "columns.mpii.PCKh.protocol", "unknown protocol key 'lsp'"),
    ("unknown measure", "measure: AR,", "measure: ARR,", "columns.coco.AR.measure", "unknown measure 'ARR'"),
    ("unknown convention", "convention: lite_hrnet_paper, tolerance: {abs: 0.05}}\n  coco.AP",
     "convention: torchstat, tolerance: {abs: 0.05}}\n  coco.AP", "columns.coco.mflops.convention",
     "unknown counting convention 'torchstat'"),
    ("unknown field", "  - name: Lite-HRNet-30\n", "  - name: Lite-HRNet-30\n    notes: typo\n",
     "rows[6].notes", "unknown field"),
    ("no model and no reason", "    model: litehrnet_30\n", "",
     "rows[6]", "a row needs a model, or a not_built reason"),
    ("model and not_built", "    model: litehrnet_30\n", "    model: litehrnet_30\n    not_built: CPN\n",
     "rows[6]", "a row with not_built names no model"),
    ("row convention on a params column", "    model: litehrnet_30\n",
     "    model: litehrnet_30\n    conventions: {params: hrnet_paper}\n",
     "rows[6].conventions.params", "'params' is not a flops column"),
    ("unknown row convention", "    model: litehrnet_30\n",
     "    model: litehrnet_30\n    conventions: {coco.mflops: torchstat}\n",
     "rows[6].conventions.coco.mflops", "unknown counting convention 'torchstat'"),
    ("batch on a flops column", "convention: lite_hrnet_paper, tolerance: {abs: 0.05}}\n  coco.AP",
     "convention: lite_hrnet_paper, batch: 32, tolerance: {abs: 0.05}}\n  coco.AP",
     "columns.coco.mflops.batch", "batch applies to latency_ms columns only"),
    ("ratio of an accuracy column", "measure: AR,", "measure: AR, relative_to: {width: 2},",
     "columns.coco.AR.relative_to", "relative_to applies to params and flops columns"),
    ("ratio with a unit", "COCO MFLOPs, unit: M, measure: flops,",
     "COCO MFLOPs, unit: M, relative_to: {drop_pointwise: 1}, measure: flops,",
     "columns.coco.mflops.unit", "a relative_to column is a ratio: leave its unit empty"),
    ("ratio reference the model refuses", "COCO MFLOPs, unit: M, measure: flops,",
     "COCO MFLOPs, unit: '', relative_to: {depth: 3}, measure: flops,",
     "columns.coco.mflops.relative_to", "no argument 'depth'"),
    ("row fills an unknown column", "    model: litehrnet_30\n",
     "    model: litehrnet_30\n    columns: [params, coco.GFLOPs]\n",
     "rows[6].columns[1]", "unknown column 'coco.GFLOPs'"),
    ("published in a column the row does not fill", "    model: litehrnet_30\n",
     "    model: litehrnet_30\n    columns: [coco.AP]\n",
     "rows[6].published.params", "column 'params' is not among the row's columns (coco.AP)"),
]


@pytest.mark.parametrize("label,old,new,field,message", CASES, ids=[c[0] for c in CASES])
def test_bad_suite_names_file_line_and_field(tmp_path, label, old, new, field, message):
    path, line = broken_copy(tmp_path, old, new)
    if label in ("unknown field", "row convention on a params column", "unknown row convention",
                 "row fills an unknown column"):
        line += 1
    elif label == "published in a column the row does not fill":
        line += 2                                  # the row's published line, after columns
    elif label in ("no model and no reason", "model and not_built"):
        line -= 1                                  # a whole-row error: the row's first line
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    e = err.value
    assert e.path == str(path)
    assert e.field == field
    assert message in e.message
    assert e.line == line, f"{label}: reported line {e.line}, expected {line}"
    assert str(e).startswith(f"{path}:{line}: {field}: ")


def test_yaml_syntax_error_names_the_line(tmp_path):
    path, line = broken_copy(tmp_path, "  - name: Lite-HRNet-18\n", "  - name: [Lite-HRNet-18\n")
    with pytest.raises(SuiteError, match="YAML syntax error") as err:
        load_suite(path)
    assert err.value.path == str(path) and err.value.line is not None and err.value.line >= line


def test_duplicate_row_names_are_refused(tmp_path):
    path, line = broken_copy(tmp_path, "name: Lite-HRNet-30", "name: Lite-HRNet-18")
    with pytest.raises(SuiteError, match="duplicate row name") as err:
        load_suite(path)
    assert err.value.line == line


def test_reporter_loads_suites_without_the_model_registry(tmp_path):
    path, _ = broken_copy(tmp_path, "model: litehrnet_30", "model: someone_elses_net")
    suite = load_suite(path, check_models=False)
    assert suite.rows[-1].model.name == "someone_elses_net"


def test_a_row_can_override_a_protocol():
    suite = load_suite(REPO / "suites" / "lite_hrnet_table3.yaml")
    big = next(r for r in suite.rows if r.name == "Lite-HRNet-18 (384x288)")
    small = next(r for r in suite.rows if r.name == "Lite-HRNet-18 (256x192)")
    assert suite.protocol_for(big, "coco").input_shape == (3, 384, 288)
    assert suite.protocol_for(small, "coco").input_shape == (3, 256, 192)
    assert suite.protocol_for(big, "coco").heatmap_size == (96, 72)


def test_row_protocol_override_needs_a_suite_key(tmp_path):
    path, line = broken_copy(tmp_path, "  - name: Lite-HRNet-30\n",
                             "  - name: Lite-HRNet-30\n    protocols: {lsp: mpii_256x256_lite_hrnet}\n")
    with pytest.raises(SuiteError, match="no protocol key 'lsp'") as err:
        load_suite(path)
    assert err.value.line == line + 1 and err.value.field == "rows[6].protocols.lsp"


@pytest.mark.parametrize("path", sorted((REPO / "suites" / "protocols").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_every_protocol_is_a_complete_training_recipe(path):
    from bench.suite import load_protocol
    from bench.tasks.detection.protocol import DetectionProtocol
    from bench.tasks.pose.protocol import PoseProtocol
    from bench.tasks.segmentation.protocol import SegmentationProtocol
    from bench.tasks import get_task
    p = load_protocol(path.stem)
    assert p.trainable
    assert p.schedule.epochs or p.schedule.iterations
    assert all(0 < m < p.schedule.epochs for m in p.schedule.milestones)
    if p.dataset not in get_task(p.task).datasets:
        # a recipe recorded for a dataset no plug-in reads (PoseTrack, HRNet Tables 5, 8,
        # 9): the runner must say so instead of starting a job
        from bench.runner.jobs import unsupported_task
        assert f"no loader reads {p.dataset!r}" in unsupported_task(p)
        return
    if isinstance(p, PoseProtocol):
        assert p.sigma and p.heatmap_size and p.num_joints
        assert p.evaluation.boxes in ("detector", "ground_truth")
    elif isinstance(p, SegmentationProtocol):
        assert p.crop_size and p.num_classes and p.augmentation.flip_prob > 0
    else:
        assert isinstance(p, DetectionProtocol)
        assert p.train_sets and p.val_sets and p.augmentation.flip_prob > 0
    # server_only is for evaluation servers: their protocols score a withheld test split
    assert not p.server_only or p.val_split.startswith("test")


def _write(folder, name, text):
    (folder / f"{name}.yaml").write_text(text)


def test_a_protocol_extends_another_with_its_changed_fields(tmp_path):
    from bench.suite import load_protocol
    base = load_protocol("coco_256x192_dpn")
    longer = load_protocol("coco_256x192_dpn_210e")
    assert longer.base == "coco_256x192_dpn" and longer.name == "coco_256x192_dpn_210e"
    assert longer.schedule.epochs == 210 and longer.schedule.milestones == (170, 200)
    assert longer.model_copy(update={"schedule": base.schedule, "base": None,
                                     "name": base.name, "fidelity": base.fidelity}) == base
    assert longer.fidelity != base.fidelity      # each file states its own
    # nested mappings merge field by field
    ms = load_protocol("cityscapes_test_gsto_ms")
    assert ms.evaluation.flip and ms.evaluation.scales[-1] == 1.75
    assert ms.loss.aux_weights["stage2"] == 0.3 and ms.schedule.epochs == 600
    assert ms.server_only and ms.crop_size == (512, 1024)


def test_inherited_and_own_errors_name_the_file_that_set_the_field(tmp_path):
    from bench.suite import load_protocol
    text = (REPO / "suites" / "protocols" / "cityscapes_512x1024_hrnet_seg.yaml").read_text()
    _write(tmp_path, "parent", text.replace("crop_size: [512, 1024]", "crop_size: [512]"))
    _write(tmp_path, "child", "base: parent\nschedule: {epochs: 10, policy: poly}\n")
    with pytest.raises(SuiteError) as err:
        load_protocol("child", tmp_path)
    assert err.value.path.endswith("parent.yaml") and err.value.field.startswith("crop_size")
    _write(tmp_path, "parent", text)
    _write(tmp_path, "child", "base: parent\nevaluation:\n  scales: [1.0, -2]\n")
    with pytest.raises(SuiteError, match="positive") as err:
        load_protocol("child", tmp_path)
    assert err.value.path.endswith("child.yaml") and err.value.line == 3
    _write(tmp_path, "child", "base: nowhere\n")
    with pytest.raises(SuiteError, match="unknown protocol 'nowhere'") as err:
        load_protocol("child", tmp_path)
    assert err.value.field == "base" and err.value.line == 1
    _write(tmp_path, "loop", "base: child\n")
    _write(tmp_path, "child", "base: loop\n")
    with pytest.raises(SuiteError, match="cycle: child -> loop -> child"):
        load_protocol("child", tmp_path)


def test_a_protocol_is_validated_as_the_task_it_names(tmp_path):
    from bench.suite import load_protocol
    text = (REPO / "suites" / "protocols" / "mpii_256x256_hrnet.yaml").read_text()
    _write(tmp_path, "nameless", text.replace("task: pose\n", ""))
    with pytest.raises(SuiteError, match="task: missing; a protocol says which task"):
        load_protocol("nameless", tmp_path)
    _write(tmp_path, "odd", text.replace("task: pose", "task: depth"))
    with pytest.raises(SuiteError, match="unknown task 'depth'"):
        load_protocol("odd", tmp_path)
    # a segmentation field in a pose protocol is unknown there (and the reverse)
    _write(tmp_path, "mixed", text.replace("task: pose", "task: pose\ncrop_size: [64, 64]"))
    with pytest.raises(SuiteError, match="unknown field") as err:
        load_protocol("mixed", tmp_path)
    task_line = text[:text.index("task: pose")].count("\n") + 1
    assert err.value.field == "crop_size" and err.value.line == task_line + 1
    seg = (REPO / "suites" / "protocols" / "lip_473x473_gsto.yaml").read_text()
    _write(tmp_path, "seg", seg.replace("num_classes: 20", "num_classes: 20\nsigma: 2"))
    with pytest.raises(SuiteError, match="unknown field") as err:
        load_protocol("seg", tmp_path)
    assert err.value.field == "sigma"
    _write(tmp_path, "weights", seg.replace("loss:", "loss:\n  class_weights: [1.0, 2.0]"))
    with pytest.raises(SuiteError, match="2 entries for 20 classes"):
        load_protocol("weights", tmp_path)


def test_an_iteration_schedule_takes_no_epochs_or_milestones(tmp_path):
    from bench.suite import load_protocol
    text = (REPO / "suites" / "protocols" / "cityscapes_512x1024_lite_hrnet.yaml").read_text()
    assert load_protocol("cityscapes_512x1024_lite_hrnet").schedule.iterations == 160000
    _write(tmp_path, "both", text.replace("{iterations: 160000,", "{iterations: 160000, epochs: 3,"))
    with pytest.raises(SuiteError, match="one of them"):
        load_protocol("both", tmp_path)


def test_a_misspelt_protocol_field_is_located(tmp_path):
    from bench.suite import load_protocol
    text = (REPO / "suites" / "protocols" / "mpii_256x256_hrnet.yaml").read_text()
    (tmp_path / "bad.yaml").write_text(text.replace("optimizer:", "optimiser:"))
    line = text[:text.index("optimizer:")].count("\n") + 1
    with pytest.raises(SuiteError, match="unknown field") as err:
        load_protocol("bad", tmp_path)
    assert err.value.line == line and err.value.field == "optimiser"
    (tmp_path / "bad2.yaml").write_text(text.replace("milestones: [170, 200]", "milestones: [200, 170]"))
    with pytest.raises(SuiteError, match="strictly increasing"):
        load_protocol("bad2", tmp_path)


def test_not_built_rows_keep_published_cells_and_need_no_model():
    suite = load_suite(REPO / "suites" / "hrnet_table2.yaml")
    openpose = next(r for r in suite.rows if r.name == "OpenPose")
    assert not openpose.built and openpose.model is None
    assert "bottom-up" in openpose.not_built
    assert openpose.published["coco.AP"] == 61.8


@pytest.mark.parametrize("path", discover_suites(), ids=lambda p: p.stem)
def test_every_row_names_a_built_model_or_says_why_not(path):
    for row in load_suite(path).rows:
        assert row.built or row.not_built.strip(), row.name


def test_row_conventions_override_the_columns():
    suite = load_suite(REPO / "suites" / "lite_hrnet_table3.yaml")
    rows = {r.name: r for r in suite.rows}
    assert suite.convention_for(rows["HRNetV1-W32"], "coco.gflops") == "hrnet_paper"
    assert suite.convention_for(rows["Lite-HRNet-18 (256x192)"], "coco.gflops") == "lite_hrnet_paper"
