"""The prepared GPU check (scripts/gpu_check.py) in its tiny CPU mode: every model x mode is
measured through the project's training step, the loss agreement, the loader section and
the markdown summary are written."""
import importlib.util
import json

import pytest

from conftest import REPO

# a benchmark script, not part of the package (scripts/gpu_check.sh runs it on the device)
_spec = importlib.util.spec_from_file_location("gpu_check", REPO / "scripts" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_check)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check")
    result = gpu_check.main(["--device", "cpu", "--tiny", "--out", str(out)])
    return out, result


def test_every_model_and_mode_is_measured(tiny_run):
    out, result = tiny_run
    data = json.loads((out / "gpu_check.json").read_text())
    assert set(data["training"]) == {m["model"] for m in gpu_check.MODELS}
    for model, entry in data["training"].items():
        assert set(entry["modes"]) == set(gpu_check.MODES), model
        for mode, r in entry["modes"].items():
            assert "error" not in r and "skipped" not in r, (model, mode, r)
            assert r["images_per_s"] > 0, (model, mode)
            assert len(r["losses"]) == data["settings"]["loss_iters"]
            # loss agreement against fp32, with its tolerance
            assert r["loss_tolerance"] == gpu_check.TOLERANCE[gpu_check.MODES[mode]["amp"]]
            assert r["loss_rel_diff_vs_fp32"] is not None and r["loss_rel_diff_vs_fp32"] >= 0
            assert isinstance(r["loss_agrees"], bool)
            assert "peak_memory_gib" not in r          # CPU: no peak memory
        assert entry["modes"]["fp32"]["loss_rel_diff_vs_fp32"] == 0
    assert data["settings"]["tiny"] and data["device"]["name"]
    assert data["provenance"]["python"] and data["torch"]
    assert data == json.loads(json.dumps(result, default=str))


def test_loader_section_and_summary(tiny_run):
    out, _ = tiny_run
    data = json.loads((out / "gpu_check.json").read_text())
    loader = data["loader"]
    assert loader["samples"] > 0 and loader["results"]["0"]["samples_per_s"] > 0
    verdict = loader["verdict"]
    assert verdict["model"] == "litehrnet_18" and isinstance(verdict["loader_bound"], bool)
    md = (out / "gpu_check.md").read_text()
    assert "## Training step" in md and "## Data loader" in md
    assert all(m["model"] in md for m in gpu_check.MODELS)
    assert "latency" not in data                     # skipped in tiny mode


def test_synthetic_batches_have_the_task_shapes():
    pose = gpu_check._sized(gpu_check._protocol("coco_256x192_hrnet"), tiny=False)
    (b,) = gpu_check.synthetic_batches(pose, batch=3, count=1, seed=0)
    assert b["image"].shape == (3, 3, 256, 192) and b["target"].shape == (3, 17, 64, 48)
    assert b["target_weight"].shape == (3, 17, 1) and float(b["target"].max()) <= 1
    seg = gpu_check._sized(gpu_check._protocol("cityscapes_512x1024_hrnet_seg"), tiny=True)
    (s,) = gpu_check.synthetic_batches(seg, batch=2, count=1, seed=0)
    assert s["image"].shape == (2, 3, 64, 128) and s["label"].shape == (2, 64, 128)
    assert set(s["label"].unique().tolist()) <= set(range(19)) | {255}
