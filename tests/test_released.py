"""The released profile: suites name the authors' released weights; checkpoints written in
each official key layout (deterministic weights) are scored on the real COCO / MPII
samples and on synthetic data; a wrong sha256 is refused, a missing file skipped with one
message; released cells are compared with the published values, smoke cells are not."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import bench
from bench import results as res
from bench.checkpoints import CheckpointMismatchError, file_sha256, load_official_checkpoint
from bench.compare import OUTSIDE, WITHIN
from bench.complexity.cache import MeasurementCache
from bench.report import cell_verdicts
from bench.cli import main
from bench.runner import gate_failures, run_suite
from bench.suite import SuiteError, discover_suites, load_suite
from conftest import REPO, SHARED_DATA, official_weights

SUITES = REPO / "suites"
needs_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is missing")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("released-cache")


def _run(suite, tmp_path, cache_dir, weights, data, rows, log=None, **kw):
    lines = [] if log is None else log
    return run_suite(load_suite(suite) if not hasattr(suite, "rows") else suite, "released",
                     results_dir=tmp_path / "results", data_root=data,
                     cache=MeasurementCache(cache_dir), rows=rows, work_dir=tmp_path / "work",
                     weights_dir=weights, log=lines.append, **kw)


# --- official key layouts ----------------------------------------------------------------

def save_hrnet_layout(model, path):
    """deep-high-resolution-net.pytorch: ``torch.save(model.module.state_dict())``, a bare
    state dict (pose_hrnet_*, pose_resnet_*)."""
    torch.save(model.state_dict(), path)


def save_mmpose_layout(model, path):
    """Lite-HRNet (mmcv): ``{"meta", "state_dict", "optimizer"}``, numpy scalars in meta."""
    torch.save({"meta": {"epoch": 210, "seed": np.int64(0), "best_score": np.float64(0.648)},
                "state_dict": model.state_dict(), "optimizer": {"state": {}, "param_groups": []}},
               path)


def save_fullmodel_layout(model, path, class_weights=True, inplace_abn=False):
    """HRNet-Semantic-Segmentation: the state dict of ``FullModel(model, loss)``, every
    network key under ``model.``, the loss's class weights as ``loss.criterion.weight``.
    ``inplace_abn``: a file of its PyTorch 0.4 branch (``*_torch04.pth``), normalised by
    InPlaceABNSync, which has no ``num_batches_tracked``; otherwise one of the PyTorch 1.1
    branch (``*_torch11.pth``, SyncBatchNorm, with the counter)."""
    state = {f"model.{k}": v for k, v in model.state_dict().items()
             if not (inplace_abn and k.endswith("num_batches_tracked"))}
    if class_weights:
        state["loss.criterion.weight"] = torch.linspace(0.8, 1.1, 19)
    torch.save(state, path)


def test_fullmodel_layout_loads_and_computes_the_official_forward(tmp_path):
    """HRNetV2-W48 in HRNet-Semantic-Segmentation's saved layout loads strictly after the
    key map, and computes the golden output of the authors' seg_hrnet.py."""
    from conftest import GOLDEN, assert_output_matches, golden_input
    ref = json.loads((GOLDEN / "hrnet_official.json").read_text())["models"]["hrnetv2_w48_seg"]
    source = official_weights(bench.create_model("hrnetv2_w48_seg"))
    path = tmp_path / "hrnet_cs_8090_torch11.pth"
    save_fullmodel_layout(source, path)
    model = load_official_checkpoint(bench.create_model("hrnetv2_w48_seg"), path).eval()
    with torch.no_grad():
        assert_output_matches(model(golden_input(ref["output_checksum"])), ref["output_checksum"])
    # a PyTorch 0.4 file (InPlaceABN: no num_batches_tracked) gets InPlaceABN's scale,
    # |weight| + eps, in every BatchNorm; the torch 1.1 file above keeps its weights
    old = tmp_path / "hrnet_lip_5583_torch04.pth"
    save_fullmodel_layout(source, old, inplace_abn=True)
    abn = load_official_checkpoint(bench.create_model("hrnetv2_w48_seg"), old)
    bn, bn_abn = model.last_layer[1], abn.last_layer[1]
    assert torch.equal(bn.weight, source.last_layer[1].weight)
    assert torch.equal(bn_abn.weight, source.last_layer[1].weight.abs() + bn.eps)
    # the same file without the key map is refused with the keys listed
    with pytest.raises(CheckpointMismatchError, match=r"unexpected keys \(\d+\): loss.criterion.weight, model\."):
        load_official_checkpoint(_without_key_map(bench.create_model("hrnetv2_w48_seg")), path)


def _without_key_map(model):
    model.official_key_renames = ()
    model.official_key_ignored = ()
    return model


def test_unreadable_pickles_are_refused_naming_the_file(tmp_path):
    path = tmp_path / "bad.pth"
    torch.save({"state_dict": {}, "meta": {"hook": Path("x")}}, path)
    with pytest.raises(CheckpointMismatchError, match=r"bad.pth: cannot be read as weights only: "
                                                      r"it holds an object of type pathlib"):
        load_official_checkpoint(bench.create_model("litehrnet_18"), path)


# --- suites ------------------------------------------------------------------------------

def test_bundled_suites_name_released_weights_with_their_sources():
    """HRNet Table 1's rows name the model zoo's files; where the zoo prints other numbers
    than the paper, both are kept (HRNet-W32 384x288: AP75 82.5 in the zoo, 82.7 printed)."""
    t1 = load_suite(SUITES / "hrnet_table1.yaml", check_models=False)
    files = {r.name: r.released["coco"].file for r in t1.rows if r.released}
    assert files == {
        "SimpleBaseline ResNet-50": "pose_resnet_50_256x192.pth",
        "SimpleBaseline ResNet-101": "pose_resnet_101_256x192.pth",
        "SimpleBaseline ResNet-152": "pose_resnet_152_256x192.pth",
        "HRNet-W32 (ImageNet pretrained)": "pose_hrnet_w32_256x192.pth",
        "HRNet-W48 (ImageNet pretrained)": "pose_hrnet_w48_256x192.pth",
        "SimpleBaseline ResNet-152 (384x288)": "pose_resnet_152_384x288.pth",
        "HRNet-W32 (384x288)": "pose_hrnet_w32_384x288.pth",
        "HRNet-W48 (384x288)": "pose_hrnet_w48_384x288.pth"}
    w32 = next(r for r in t1.rows if r.name == "HRNet-W32 (384x288)")
    assert t1.reference(w32, "coco.AP75", "released") == (82.5, "model zoo")
    assert t1.reference(w32, "coco.AP75", "full") == (82.7, "paper")
    # every released entry of every suite says where it is published and where its
    # numbers come from, and names a file of the model's family
    seen = 0
    for path in discover_suites(SUITES):
        suite = load_suite(path, check_models=False)
        for row in suite.rows:
            for key, rel in row.released.items():
                seen += 1
                assert rel.published_at.startswith("https://") and rel.source, (path, row.name)
                assert rel.file.endswith(".pth")
    assert seen >= 22
    lite = load_suite(SUITES / "lite_hrnet_table5.yaml", check_models=False)
    lh18 = next(r for r in lite.rows if r.name == "Lite-HRNet-18")
    assert lite.reference(lh18, "mpii.PCKh", "released") == (85.4, "model zoo")
    assert lite.published(lh18, "mpii.PCKh") == 86.1


SUITE_WITH_RELEASED = """\
suite: released_check
paper: lite_hrnet
table: 0
title: released weights schema
protocols: {{coco: coco_256x192_lite_hrnet}}
columns:
  params:  {{unit: M, measure: params, protocol: coco, tolerance: {{abs: 0.05}}}}
  coco.AP: {{measure: AP, protocol: coco, tolerance: {{abs: 1.0, side: below}}}}
rows:
  - name: Lite-HRNet-18
    model: litehrnet_18
    published: {{params: 1.1, coco.AP: 64.8}}
    released:
{released}
"""


@pytest.mark.parametrize("released,line,field,message", [
    ("      mpii: {file: a.pth, published_at: https://x}", 14, "rows[0].released.mpii",
     "unknown protocol key 'mpii'; the suite's protocols are: coco"),
    ("      coco: {file: a.pth, published_at: https://x, model_zoo: {params: 1.1}}", 14,
     "rows[0].released.coco.model_zoo.params",
     "'params' is not an accuracy column of protocol 'coco'; those are: coco.AP"),
    ("      coco: {file: a.pth, published_at: https://x, sha256: abc}", 14,
     "rows[0].released.coco.sha256", "'abc' is not a sha256 digest (64 hexadecimal digits)"),
    ("      coco: {file: a.pth, published_at: https://x, sha256: 1234}", 14,
     "rows[0].released.coco.sha256", "YAML read the digest as a int: write it in quotes"),
    ("      coco: {file: zoo/a.pth, published_at: https://x}", 14,
     "rows[0].released.coco.file", "'zoo/a.pth': give the file name alone"),
    ("      coco: {file: a.pth}", 14, "rows[0].released.coco.published_at", "Field required"),
])
def test_bad_released_entries_name_file_line_and_field(tmp_path, released, line, field, message):
    path = tmp_path / "released_check.yaml"
    path.write_text(SUITE_WITH_RELEASED.format(released=released))
    with pytest.raises(SuiteError) as err:
        load_suite(path, check_models=False, protocols_dir=SUITES / "protocols")
    assert (err.value.line, err.value.field) == (line, field)
    assert err.value.message.startswith(message)


# --- the report: released cells compared, smoke cells not ---------------------------------

def _row_record(suite, row, profile, value):
    return {"suite": suite.suite, "row": row.name, "row_key": row.key, "profile": profile,
            "status": "ok", "cells": {"coco.AP": {"status": res.CELL_MEASURED, "value": value,
                                                  "profile": profile}}}


def _accuracy_failures(suite, records):
    return [f for f in gate_failures(suite, records) if not f["is_complexity"]]


def test_released_cell_is_compared_and_gated_while_a_smoke_cell_is_not():
    suite = load_suite(SUITES / "hrnet_table1.yaml", check_models=False)
    w32 = next(r for r in suite.rows if r.name == "HRNet-W32 (384x288)")
    smoke = [_row_record(suite, w32, "smoke", 1.5)]
    v = next(v for v in cell_verdicts(suite, smoke) if v["row"] == w32.name and v["column"] == "coco.AP")
    assert v["measured"] is None and v["status"] != WITHIN      # shown apart, never compared
    assert not _accuracy_failures(suite, smoke)
    released = [_row_record(suite, w32, "released", 75.41)]
    v = next(v for v in cell_verdicts(suite, released) if v["row"] == w32.name and v["column"] == "coco.AP")
    assert (v["status"], v["reference"], v["published"], v["measured"]) == (WITHIN, "model zoo", 75.8, 75.41)
    low = [_row_record(suite, w32, "released", 70.0)]
    failed = _accuracy_failures(suite, low)
    assert [(f["row"], f["column"], f["status"]) for f in failed
            if f["status"] != "not measured"] == [(w32.name, "coco.AP", OUTSIDE)]
    # a cell compared with the zoo where it differs from the paper says both
    rec = _row_record(suite, w32, "released", 82.6)
    rec["cells"]["coco.AP75"] = rec["cells"].pop("coco.AP")
    v = next(v for v in cell_verdicts(suite, [rec]) if v["row"] == w32.name and v["column"] == "coco.AP75")
    assert v["published"] == 82.5 and v["paper"] == 82.7 and v["status"] == WITHIN
    assert "model-zoo value 82.5 (the paper prints 82.7)" in v["reason"]


# --- data roots ---------------------------------------------------------------------------

def coco_sample_root(tmp_path, boxes_per_image=2) -> Path:
    """The shared COCO sample in the official layout, with the detector file cut to the
    best ``boxes_per_image`` boxes of each image (a fast evaluation, the same code path)."""
    src = SHARED_DATA / "coco_sample"
    root = tmp_path / "data"
    (root / "coco" / "person_detection_results").mkdir(parents=True)
    (root / "coco" / "annotations").symlink_to(src / "annotations")
    (root / "coco" / "images").symlink_to(src / "images")
    name = "COCO_val2017_detections_AP_H_56_person.json"
    dets = json.loads((src / "person_detection_results" / name).read_text())
    kept = []
    for image in sorted({d["image_id"] for d in dets}):
        kept += sorted((d for d in dets if d["image_id"] == image), key=lambda d: -d["score"])[:boxes_per_image]
    (root / "coco" / "person_detection_results" / name).write_text(json.dumps(kept))
    return root


def mpii_sample_root(tmp_path) -> Path:
    """The shared MPII sample; its gt_valid.mat is the full 2,958-person file, of which
    valid.json holds the first 5, so the test writes those 5 (the evaluator needs one
    prediction per gt_valid person)."""
    from scipy.io import loadmat, savemat
    src = SHARED_DATA / "mpii_sample"
    root = tmp_path / "data"
    (root / "mpii" / "annot").mkdir(parents=True)
    (root / "mpii" / "images").symlink_to(src / "images")
    (root / "mpii" / "annot" / "valid.json").symlink_to(src / "annot" / "valid.json")
    gt = loadmat(str(src / "annot" / "gt_valid.mat"))
    n = len(json.loads((src / "annot" / "valid.json").read_text()))
    savemat(str(root / "mpii" / "annot" / "gt_valid.mat"), {
        "dataset_joints": gt["dataset_joints"], "jnt_missing": gt["jnt_missing"][:, :n],
        "pos_gt_src": gt["pos_gt_src"][:, :, :n], "headboxes_src": gt["headboxes_src"][:, :, :n]})
    return root


# --- the whole profile --------------------------------------------------------------------

@needs_shared
def test_hrnet_table1_scores_released_w32_on_the_coco_sample(tmp_path, cache_dir, capsys):
    """The issue's command on HRNet Table 1: an official-layout pose_hrnet_w32_256x192.pth
    scored through the CLI, a record with AP, the report comparing it with the paper."""
    weights = tmp_path / "weights" / "pose_coco"
    weights.mkdir(parents=True)
    save_hrnet_layout(official_weights(bench.create_model("hrnet_w32")),
                      weights / "pose_hrnet_w32_256x192.pth")
    data = coco_sample_root(tmp_path, boxes_per_image=1)
    code = main([str(SUITES / "hrnet_table1.yaml"), "--profile", "released",
                 "--weights-dir", str(tmp_path / "weights"), "--data-root", str(data),
                 "--rows", "HRNet-W32 (ImageNet pretrained)", "--results-dir", str(tmp_path / "results"),
                 "--reports-dir", str(tmp_path / "reports"), "--work-dir", str(tmp_path / "work"),
                 "--cache-dir", str(cache_dir), "--check"])
    out, err = capsys.readouterr()
    assert code == 1                         # random weights: far below the paper's 74.4
    run = res.read_record(res.run_record_path("coco_256x192_hrnet", "hrnet_w32+imagenet", "released",
                                              tmp_path / "results"))
    assert run["status"] == "ok" and run["job"]["eval_only"] and run["val_samples"] == 4
    assert run["weights_sha256"] == file_sha256(weights / "pose_hrnet_w32_256x192.pth")
    assert 0.0 <= run["metrics"]["AP"] < 5.0
    row = res.read_record(tmp_path / "results" / "hrnet_table1" / "hrnet-w32-imagenet-pretrained.released.json")
    assert row["cells"]["coco.AP"]["value"] == run["metrics"]["AP"]
    assert row["cells"]["coco.AP"]["weights"]["file"] == "pose_hrnet_w32_256x192.pth"
    assert "CHECK FAILED hrnet_table1: row 'HRNet-W32 (ImageNet pretrained)', column 'coco.AP': published 74.4" in err
    page = (tmp_path / "reports" / "hrnet_table1.html").read_text()
    assert "released" in page


@needs_shared
def test_mmpose_layout_on_the_mpii_sample(tmp_path, cache_dir):
    """Lite-HRNet-18's released MPII file (an mmcv container) scored on the MPII sample."""
    weights = tmp_path / "weights"
    weights.mkdir()
    save_mmpose_layout(official_weights(bench.create_model("litehrnet_18", num_joints=16)),
                       weights / "litehrnet_18_mpii_256x256.pth")
    run = _run(SUITES / "lite_hrnet_table5.yaml", tmp_path, cache_dir, weights,
               mpii_sample_root(tmp_path), "Lite-HRNet-18")
    cell = run.records[0]["cells"]["mpii.PCKh"]
    assert cell["status"] == res.CELL_MEASURED and 0.0 <= cell["value"] <= 100.0
    rec = res.read_record(Path(cell["source"]))
    assert rec["val_samples"] == 5 and set(rec["metrics"]) >= {"Head", "PCKh@0.5", "AUC"}
    assert rec["job"]["checkpoint"] == str(weights / "litehrnet_18_mpii_256x256.pth")


def test_mmpose_layout_on_synthetic_coco(tmp_path, cache_dir):
    """The COCO file scored on data generated in COCO's official layout (no shared data)."""
    from bench.tasks.pose.synthetic import write_coco
    weights = tmp_path / "weights"
    weights.mkdir()
    save_mmpose_layout(official_weights(bench.create_model("litehrnet_18")),
                       weights / "litehrnet_18_coco_256x192.pth")
    synthetic = tmp_path / "synthetic"
    write_coco(synthetic / "coco", num_images=4)
    run = _run(SUITES / "lite_hrnet_table3.yaml", tmp_path, cache_dir, weights, synthetic,
               "Lite-HRNet-18 (256x192)")
    cell = run.records[0]["cells"]["coco.AP"]
    assert cell["status"] == res.CELL_MEASURED and cell["profile"] == "released"
    assert 0.0 <= cell["value"] <= 100.0


def test_sha256_mismatch_is_refused_with_both_hashes(tmp_path, cache_dir):
    from bench.tasks.pose.synthetic import write_all
    weights = tmp_path / "weights"
    weights.mkdir()
    save_mmpose_layout(official_weights(bench.create_model("litehrnet_18")),
                       weights / "litehrnet_18_coco_256x192.pth")
    actual = file_sha256(weights / "litehrnet_18_coco_256x192.pth")
    expected = "ab" * 32
    text = (SUITES / "lite_hrnet_table3.yaml").read_text().replace(
        "        file: litehrnet_18_coco_256x192.pth\n",
        f"        file: litehrnet_18_coco_256x192.pth\n        sha256: {expected}\n")
    suite_file = tmp_path / "lite_hrnet_table3.yaml"
    suite_file.write_text(text)
    shutil.copytree(SUITES / "protocols", tmp_path / "protocols")
    data = tmp_path / "synthetic"
    write_all(data)
    log = []
    run = _run(suite_file, tmp_path, cache_dir, weights, data, "Lite-HRNet-18 (256x192)", log)
    refused = [line for line in log if "refused" in line]
    assert len(refused) == 1 and actual in refused[0] and expected in refused[0]
    assert refused[0].startswith("error: released weights of 'Lite-HRNet-18 (256x192)' (coco): refused ")
    cell = run.records[0]["cells"]["coco.AP"]
    assert cell["status"] == res.CELL_NOT_MEASURED and actual in cell["reason"]
    assert not (tmp_path / "results" / "runs").exists()          # nothing was evaluated
    suite = load_suite(suite_file)
    assert [f["column"] for f in gate_failures(suite, run.records)
            if f["row"] == "Lite-HRNet-18 (256x192)"][:1] == ["coco.AP"]   # a refusal fails --check


def test_missing_file_skips_the_row_with_one_message(tmp_path, cache_dir, capsys):
    from bench.tasks.pose.synthetic import write_mpii
    (tmp_path / "weights").mkdir()
    data = tmp_path / "synthetic"
    write_mpii(data / "mpii", num_train=2, num_val=2)
    code = main([str(SUITES / "hrnet_table7.yaml"), "--profile", "released", "--check", "-q",
                 "--weights-dir", str(tmp_path / "weights"), "--data-root", str(data),
                 "--results-dir", str(tmp_path / "results"), "--no-report",
                 "--work-dir", str(tmp_path / "work"), "--cache-dir", str(cache_dir)])
    out = capsys.readouterr().out
    skipped = [line for line in out.splitlines() if line.startswith("skipped: ")]
    assert skipped == [
        f"skipped: released weights of '{name}' (mpii): {file} is not in {tmp_path / 'weights'} "
        "(nor in a folder below it); the authors publish it at "
        "https://github.com/leoxiaobin/deep-high-resolution-net.pytorch#quick-start (model zoo, "
        "step 6: Google Drive https://drive.google.com/drive/folders/1hOTihvbyIxsm5ygDpbUuJ7O_tzv4oXjC "
        "or OneDrive https://1drv.ms/f/s!AhIXJn_J-blW231MH2krnmLq5kkQ; models/pytorch/pose_mpii/)"
        for name, file in [("SimpleBaseline ResNet-152 (single-scale)", "pose_resnet_152_256x256.pth"),
                           ("HRNet-W32 (single-scale)", "pose_hrnet_w32_256x256.pth")]]
    assert code == 0 and "hrnet_table7: 0 rows" in out           # skipped rows are not gated
    assert not (tmp_path / "results" / "hrnet_table7").exists()


def test_released_profile_needs_a_weights_dir(tmp_path, capsys):
    assert main([str(SUITES / "hrnet_table1.yaml"), "--profile", "released",
                 "--results-dir", str(tmp_path)]) == 2
    assert "--profile released needs --weights-dir" in capsys.readouterr().err


# --- segmentation: HRNet-Semantic-Segmentation's released W48 models -----------------------

@pytest.mark.parametrize("entry", ["hrnetv2_w48_seg", "hrnetv2_w48_seg_lip"])
def test_hrnetv2_with_the_released_configs_computes_the_authors_forward(entry):
    """The released W48 configs set ALIGN_CORNERS False; with that override our HRNetV2
    computes the authors' seg_hrnet.py on the same weights (golden recorded outside the
    project), and the default (aligned corners) does not."""
    from conftest import GOLDEN, assert_output_matches, golden_input
    ref = json.loads((GOLDEN / "hrnet_official.json").read_text())["released_configs"]["models"][entry]
    model = official_weights(bench.create_model("hrnetv2_w48_seg", num_classes=ref["num_classes"],
                                                align_corners=False))
    aligned = official_weights(bench.create_model("hrnetv2_w48_seg", num_classes=ref["num_classes"]))
    x = golden_input(ref["output_checksum"])
    with torch.no_grad():
        out = model(x)
        assert (aligned(x) - out).abs().max().item() > 1.0
    assert_output_matches(out, ref["output_checksum"])


SEG_SUITE = """\
suite: released_seg
paper: gsto
table: 7
title: HRNetV2's released Cityscapes weights (a small model in the same layout)
protocols: {cityscapes: cityscapes_512x1024_gsto}
columns:
  cityscapes.mIoU: {measure: mIoU, protocol: cityscapes, tolerance: {abs: 1.0, side: below}}
rows:
  - name: HRNetV2
    model: hrnetv2_w18_small_v2_seg
    published: {cityscapes.mIoU: 75.9}
    released:
      cityscapes:
        file: hrnet_small_cs.pth
        published_at: https://example.org/zoo
        source: a model zoo
        model_zoo: {cityscapes.mIoU: 76.2}
        model_overrides: {align_corners: false}
        protocol: cityscapes_512x1024_hrnet_seg_released
"""


@needs_shared
def test_fullmodel_layout_scored_on_the_cityscapes_sample(tmp_path, cache_dir):
    """A file in HRNet-Semantic-Segmentation's layout (model. prefix, the loss's class
    weights, InPlaceABN: no num_batches_tracked) through the whole profile on the real Cityscapes
    frame, with the entry's forward (align_corners false) and test protocol."""
    suite_file = tmp_path / "released_seg.yaml"
    suite_file.write_text(SEG_SUITE)
    shutil.copytree(SUITES / "protocols", tmp_path / "protocols")
    weights = tmp_path / "weights"
    weights.mkdir()
    save_fullmodel_layout(official_weights(bench.create_model("hrnetv2_w18_small_v2_seg")),
                          weights / "hrnet_small_cs.pth", inplace_abn=True)
    data = tmp_path / "data"
    data.mkdir()
    (data / "cityscapes").symlink_to(SHARED_DATA / "cityscapes_sample")
    run = _run(suite_file, tmp_path, cache_dir, weights, data, None)
    cell = run.records[0]["cells"]["cityscapes.mIoU"]
    assert cell["status"] == res.CELL_MEASURED and 0.0 <= cell["value"] <= 100.0
    assert cell["source"] == str(res.run_record_path(
        "cityscapes_512x1024_hrnet_seg_released", "hrnetv2_w18_small_v2_seg(align_corners=False)",
        "released", tmp_path / "results"))
    rec = res.read_record(Path(cell["source"]))
    assert rec["model"]["overrides"] == {"align_corners": False, "num_classes": 19}
    assert rec["protocol"]["loss"]["align_corners"] is False and rec["val_samples"] == 1
    v = next(v for v in cell_verdicts(load_suite(suite_file), run.records))
    assert (v["reference"], v["published"], v["paper"]) == ("model zoo", 76.2, 75.9)


# --- segmentation: GSTO-HRNet-W48 as VDIGPKU/GSTO released it ------------------------------

def gsto_official_state(model) -> dict:
    """``gsto_hrnet.py``'s state dict for ``model`` (a GSTO-HRNet-W48 seg model): our keys
    less ``num_batches_tracked`` (InPlaceABN has none), plus the transition-1 gate ``att1``
    that the released model builds and its forward never calls; filled with the
    deterministic weights of ``tests/golden/gsto_official.json`` (``weight_init``: about a
    quarter of the BatchNorm weights negative, so InPlaceABN's ``|weight|`` matters)."""
    import math
    classes = model.last_layer[-1].out_channels
    state = {k: v.clone() for k, v in model.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    state["att1.1.0.0.weight"] = torch.empty(1, classes, 3, 3)
    for name in ("weight", "bias", "running_mean", "running_var"):
        state[f"att1.1.0.1.{name}"] = torch.empty(1)
    with torch.no_grad():
        torch.manual_seed(0)
        for name, t in sorted(state.items()):
            if t.dim() > 1:
                t.copy_(torch.randn_like(t) * (0.7 / math.sqrt(t[0].numel())))
            elif name.endswith("running_var"):
                t.copy_(torch.rand_like(t) + 0.5)
            elif name.endswith(".weight"):
                sign = torch.where(torch.rand_like(t) < 0.25, -1.0, 1.0)
                t.copy_((torch.rand_like(t) + 0.5) * sign)
            else:
                t.copy_(torch.randn_like(t) * 0.1)
    return state


def save_gsto_layout(state: dict, path, class_weights: bool = False) -> None:
    """VDIGPKU/GSTO's saved layout: the FullModel state dict, ``model.`` before every
    network key (its test.py strips six characters), the Cityscapes loss's class weights
    as ``loss.criterion.weight`` where the training had them."""
    saved = {f"model.{k}": v for k, v in state.items()}
    if class_weights:
        saved["loss.criterion.weight"] = torch.linspace(0.8, 1.1, 19)
    torch.save(saved, path)


def _gsto_golden():
    from conftest import GOLDEN
    return json.loads((GOLDEN / "gsto_official.json").read_text())["models"]


@pytest.mark.parametrize("entry", ["gsto_hrnet_w48_seg", "gsto_hrnet_w48_seg_lip"])
def test_gsto_layout_loads_and_computes_the_authors_forward(entry, tmp_path):
    """The released layout (model. prefix, InPlaceABN BatchNorm, the unused att1) loads
    strictly into gsto_hrnet_w48_seg with align_corners=False and computes the golden
    outputs of the authors' gsto_hrnet.py (recorded outside the project): the final and
    the stage predictions."""
    import hashlib
    from conftest import assert_output_matches, golden_input
    ref = _gsto_golden()[entry]
    model = bench.create_model("gsto_hrnet_w48_seg", num_classes=ref["num_classes"],
                               align_corners=False)
    state = gsto_official_state(model)
    lines = sorted(f"{k}:{','.join(map(str, v.shape))}" for k, v in state.items())
    assert len(state) == ref["official_num_state_keys"]
    assert hashlib.sha256("\n".join(lines).encode()).hexdigest() == ref["official_state_dict_sha256"]
    cityscapes = ref["num_classes"] == 19
    if cityscapes:     # through a file, with the loss's class weights
        save_gsto_layout(state, tmp_path / "gsto_hrnet_w48_cityscapes.pth", class_weights=True)
        load_official_checkpoint(model, tmp_path / "gsto_hrnet_w48_cityscapes.pth")
    else:
        load_official_checkpoint(model, {f"model.{k}": v for k, v in state.items()})
    stages = {}
    for k in (2, 3):
        getattr(model, f"last_layer_stage{k}").register_forward_hook(
            lambda m, i, o, k=k: stages.__setitem__(k, o))
    x = golden_input(ref["output_checksum"])
    with torch.no_grad():
        out = model.eval()(x)
    assert_output_matches(out, ref["output_checksum"])
    assert_output_matches(stages[2], ref["stage2_checksum"])
    assert_output_matches(stages[3], ref["stage3_checksum"])
    if cityscapes:
        # without the att1 entry of the key map the file is refused, its keys listed
        model.official_key_ignored = (r"^loss\.",)
        with pytest.raises(CheckpointMismatchError,
                           match=r"unexpected keys \(5\): att1\.1\.0\.0\.weight, att1\.1\.0\.1\.bias"):
            load_official_checkpoint(model, {f"model.{k}": v for k, v in state.items()})
    else:
        # InPlaceABN scales by |weight| + eps; a file with num_batches_tracked is not
        # InPlaceABN's, its weights are read as they are: here, another forward
        plain = {**state, "stage4.0.fuse_layers.0.1.1.num_batches_tracked": torch.tensor(0)}
        load_official_checkpoint(model, plain)
        with torch.no_grad():
            assert (model(x) - out).abs().max().item() > 0.05


def test_gsto_default_forward_aligns_corners():
    """The default (aligned corners, the project's HRNetV2 setting) is not the authors'
    forward: the released entries need the override."""
    from conftest import golden_input
    ref = _gsto_golden()["gsto_hrnet_w48_seg_lip"]
    model = bench.create_model("gsto_hrnet_w48_seg", num_classes=ref["num_classes"])
    state = gsto_official_state(model)
    load_official_checkpoint(model, {f"model.{k}": v for k, v in state.items()}).eval()
    with torch.no_grad():
        out = model(golden_input(ref["output_checksum"]))
    assert abs(out.double().abs().sum().item() - ref["output_checksum"]["abs_sum"]) \
        > 1e-3 * ref["output_checksum"]["abs_sum"]


def test_gsto_table9_scores_the_released_lip_file_on_synthetic_lip(tmp_path, cache_dir):
    """gsto_table9's GSTO-HRNet-W48 row: a file in the authors' layout, named as the entry
    names it, scored end to end on LIP data written in the official layout, with the
    entry's forward (align_corners false) and the authors' test settings (no flip)."""
    from bench.tasks.segmentation.synthetic import write_lip
    weights = tmp_path / "weights" / "model_pth"
    weights.mkdir(parents=True)
    model = bench.create_model("gsto_hrnet_w48_seg", num_classes=20, align_corners=False)
    save_gsto_layout(gsto_official_state(model), weights / "gsto_hrnet_w48_lip.pth")
    del model
    data = tmp_path / "data"
    write_lip(data / "lip", num_train=1, num_val=1, size_range=(60, 80))
    run = _run(SUITES / "gsto_table9.yaml", tmp_path, cache_dir, tmp_path / "weights", data,
               "GSTO-HRNet-W48 (ours)")
    cells = run.records[0]["cells"]
    for column in ("lip.aAcc", "lip.mAcc", "lip.mIoU"):
        assert cells[column]["status"] == res.CELL_MEASURED and 0.0 <= cells[column]["value"] <= 100.0
        assert cells[column]["weights"]["file"] == "gsto_hrnet_w48_lip.pth"
    rec = res.read_record(Path(cells["lip.mIoU"]["source"]))
    assert rec["status"] == "ok" and rec["val_samples"] == 1
    assert rec["model"]["overrides"] == {"align_corners": False, "num_classes": 20}
    assert rec["protocol"]["name"] == "lip_473x473_gsto_released"
    assert rec["protocol"]["loss"]["align_corners"] is False
    assert rec["protocol"]["evaluation"]["flip"] is False
    v = next(v for v in cell_verdicts(load_suite(SUITES / "gsto_table9.yaml"), run.records)
             if v["row"] == "GSTO-HRNet-W48 (ours)" and v["column"] == "lip.mIoU")
    assert (v["reference"], v["published"], v["paper"]) == ("model zoo", 57.4, 57.37)
