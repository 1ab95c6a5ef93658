"""Every file HRBench writes while it runs a suite lies under its output folders (issue 29).

A Python audit hook (``sys.addaudithook``) sees every file opened for writing (``open``,
``os.open``: the atomic writer's temporary files, torch.save, the JSONL log), every
rename or replace, removal, folder creation and ``shutil.rmtree`` of this process, whoever
calls it: the test needs no list of writers that could fall behind the code. A tiny suite
goes through the real command line: the complexity profile, the smoke profile (smoke data,
training, checkpoints, the log, the run and row records), ``--update-baseline``, a
``--rerun`` (staging dir promoted), JUnit XML and the JSON summary, the released profile
(weights of the user's scored on the smoke data), the reports, and then ``hrbench report``. Every path written must lie in results/, reports/, work_dirs/ or the
cache folder, or be a CI file the command line was given. Writes by compiled code that
bypasses Python's ``open`` (OpenCV's image encoder in the smoke-data writer) are not
audited; the files it writes are checked to lie under the work folder instead.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from audit_writes import recording
from bench import cli


@pytest.fixture
def recorded():
    with recording() as events:
        yield events


SUITE = """
suite: confined_demo
paper: lite_hrnet
table: 1
title: One row, one accuracy column
protocols: {mpii: mpii_256x256_lite_hrnet}
columns:
  params: {unit: M, measure: params, tolerance: {abs: 0.05}}
  mpii.mflops: {unit: M, measure: flops, protocol: mpii, convention: lite_hrnet_paper,
                tolerance: {rel: 0.03}}
  mpii.PCKh: {measure: PCKh@0.5, protocol: mpii, tolerance: {abs: 1.0, side: below}}
rows:
  - name: Lite-HRNet-18
    model: litehrnet_18
    published: {params: 1.1, mpii.mflops: 273.4, mpii.PCKh: 86.1}
    released:
      mpii: {file: litehrnet_18_mpii_256x256.pth, published_at: "the test"}
"""


def _under(path: str, roots: list[Path]) -> bool:
    return any(path == str(r) or path.startswith(str(r) + os.sep) for r in roots)


def _third_party(path: str) -> bool:
    """Writes that are not HRBench's: Python's bytecode cache, matplotlib's font cache,
    torch's compile cache folder, the null device."""
    if "__pycache__" in Path(path).parts or path == os.devnull:
        return True
    if Path(path).name.startswith("torchinductor_"):
        return True
    import matplotlib
    return _under(path, [Path(matplotlib.get_cachedir()).resolve(),
                         Path(matplotlib.get_configdir()).resolve()])


@pytest.fixture
def user(tmp_path, monkeypatch):
    user = tmp_path / "user"            # the working directory: the user's own files
    user.mkdir()
    (user / "suite.yaml").write_text(SUITE)
    monkeypatch.chdir(user)
    return user


def _ci_file(path: str, ci: list[Path]) -> bool:
    """A CI file the command line named, or the atomic writer's temporary beside it."""
    p = Path(path)
    return any(p == c or (p.parent == c.parent and p.name.startswith(f".{c.name}.")
                          and p.name.endswith(".tmp")) for c in ci)


def test_every_write_of_a_suite_run_stays_in_the_output_folders(tmp_path, user, recorded):
    out, cache = tmp_path / "out", tmp_path / "cache"
    ci = [tmp_path / "ci" / "gate.xml", tmp_path / "ci" / "gate.json"]
    common = ["suite.yaml", "--out", str(out), "--cache-dir", str(cache), "-q"]
    ci_args = ["--junit-xml", str(ci[0]), "--summary-json", str(ci[1])]

    assert cli.main([*common, *ci_args]) == 0                               # complexity
    assert cli.main([*common, "--profile", "smoke", "--update-baseline", *ci_args]) == 0
    assert cli.main([*common, "--profile", "smoke", "--rerun", "--check"]) == 0
    # the released profile: weights from a folder of the user's, scored on the smoke data
    mark = len(recorded)                # the test's own writes are not HRBench's
    weights = tmp_path / "weights"
    weights.mkdir()
    import torch
    from bench.registry import create_model
    torch.save(create_model("litehrnet_18", num_joints=16).state_dict(),
               weights / "litehrnet_18_mpii_256x256.pth")
    del recorded[mark:]
    assert cli.main([*common, "--profile", "released", "--weights-dir", str(weights),
                     "--data-root", str(out / "work_dirs" / "smoke_data")]) == 0
    assert cli.main(["report", "--out", str(out), "--force"]) == 0

    roots = [(out / d).resolve() for d in ("results", "reports", "work_dirs")] + [cache.resolve()]
    outside = sorted({(e, p) for e, p in recorded
                      if not _under(p, roots) and not _ci_file(p, ci)
                      and not (e == "os.mkdir" and _under(str(out), [Path(p)]))
                      and not (e == "os.mkdir" and p == str(ci[0].parent))
                      and not _third_party(p)})
    assert outside == [], "\n".join(map(str, outside))
    # the run did write through every kind of writer, each inside its folder
    kinds = {"row record": out / "results" / "confined_demo" / "lite-hrnet-18.smoke.json",
             "run record": out / "results" / "runs" / "mpii_256x256_lite_hrnet" / "litehrnet_18.smoke.json",
             "baseline": out / "results" / "baselines" / "confined_demo.smoke.json",
             "page": out / "reports" / "confined_demo.html",
             "summary": out / "reports" / "confined_demo" / "summary.json",
             "index": out / "reports" / "index.html",
             "checkpoint": out / "work_dirs" / "smoke" / "mpii_256x256_lite_hrnet" / "litehrnet_18" / "latest.pth",
             "released record": out / "results" / "runs" / "mpii_256x256_lite_hrnet" / "litehrnet_18.released.json"}
    written = {p for _, p in recorded}
    for what, path in kinds.items():
        assert str(path.resolve()) in written or any(w.startswith(str(path.resolve()) + ".")
                                                     or Path(w).parent == path.parent.resolve()
                                                     for w in written), what
        assert path.exists(), what
    assert any(p.startswith(str(cache.resolve())) for p in written)         # the cache
    assert any(p.endswith(".png") for p in written)                         # plots
    assert any(p.endswith(".jsonl") or "log" in Path(p).name for p in written)
    # files compiled code wrote (smoke images) are under the work folder too
    assert list(user.iterdir()) == [user / "suite.yaml"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "ci", "out", "user", "weights"]
    assert sorted(p.name for p in out.iterdir()) == ["reports", "results", "work_dirs"]


def test_the_hook_sees_each_kind_of_write(tmp_path, recorded):
    import shutil
    from bench.results import atomic_write_text
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("a")
    atomic_write_text(tmp_path / "b.txt", "b")
    os.replace(tmp_path / "b.txt", tmp_path / "c.txt")
    shutil.rmtree(tmp_path / "d")
    seen = {(e, Path(p).name) for e, p in recorded}
    assert {("os.mkdir", "d"), ("open", "a.txt"), ("os.rename", "c.txt"),
            ("shutil.rmtree", "d"), ("os.remove", "a.txt")} <= seen, seen
    assert any(e == "open" and n.startswith(".b.txt.") for e, n in seen)      # mkstemp
    assert all(p.startswith(str(tmp_path)) for _, p in recorded)             # dir_fd resolved
