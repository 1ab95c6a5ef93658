"""The ``hrbench`` command: run / list / report, bundled suites by name, outputs under
the working directory, bad input as file:line:field messages with exit status 2."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from bench import cli
from bench.paths import SHIPPED_BASELINES_DIR, SUITES_DIR, output_dirs
from bench.suite import SuiteError, find_suites, load_protocol, load_suite
from conftest import REPO


def test_bundled_suites_are_found_by_name_and_glob():
    assert find_suites("lite_hrnet_table6") == [SUITES_DIR / "lite_hrnet_table6.yaml"]
    assert [p.stem for p in find_suites("lite_hrnet_table[67]")] == ["lite_hrnet_table6",
                                                                     "lite_hrnet_table7"]
    with pytest.raises(SuiteError, match=r"^lite_hrnet_tabel6: neither a suite file nor a "
                                         r"bundled suite .*similar: lite_hrnet_table1"):
        find_suites("lite_hrnet_tabel6")
    with pytest.raises(SuiteError, match=r"^missing/x\.yaml: no such suite file"):
        find_suites("missing/x.yaml")
    with pytest.raises(SuiteError, match=r": a folder, not a suite file \(name its files: .*/\*\.yaml\)"):
        find_suites(SUITES_DIR)


def test_pyproject_ships_every_package_and_the_suites():
    """The wheel's package list is explicit (suites/ and results/baselines/ are mapped
    into it): a new subpackage of bench must be added there."""
    tomllib = pytest.importorskip("tomllib")     # Python 3.11+
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "bench").rglob("__init__.py")}
    assert on_disk <= set(config["packages"]), f"add to pyproject.toml: {sorted(on_disk - set(config['packages']))}"
    assert config["package-dir"] == {"bench.suites": "suites", "bench.baselines": "results/baselines"}
    assert set(config["package-data"]["bench.suites"]) == {"*.yaml", "protocols/*.yaml"}


def test_output_folders_default_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert output_dirs() == {"results": tmp_path / "results", "reports": tmp_path / "reports",
                             "work": tmp_path / "work_dirs"}
    assert output_dirs("out")["results"] == tmp_path / "out" / "results"


def test_run_a_bundled_suite_by_name_writes_under_the_working_directory(
        tmp_path, monkeypatch, measurement_cache, capsys):
    monkeypatch.chdir(tmp_path)
    code = cli.main(["run", "lite_hrnet_table6", "--rows", "Lite-HRNet-18", "--check", "-q",
                     "--cache-dir", str(measurement_cache.root),
                     "--summary-json", "summary.json"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "check passed: lite_hrnet_table6" in out
    assert (tmp_path / "results" / "lite_hrnet_table6" / "lite-hrnet-18.complexity.json").is_file()
    assert (tmp_path / "reports" / "lite_hrnet_table6.html").is_file()
    summary = json.loads((tmp_path / "summary.json").read_text())
    table6 = summary["suites"]["lite_hrnet_table6"]
    assert summary["passed"] and summary["exit_code"] == 0 and table6["passed"]
    # one row ran: its params and two FLOPs cells are gated (accuracy is not, profile complexity)
    ran = [c for c in table6["cells"] if c["ran"]]
    assert {c["column"]: c["gate"] for c in ran if c["gate"] != "not gated"} == {
        "params": "pass", "coco.mflops": "pass", "mpii.mflops": "pass"}
    assert table6["gated_cells"] == 3 and table6["failed_cells"] == 0
    mflops = next(c for c in ran if c["column"] == "coco.mflops")
    assert mflops["published"] == 205.2 and round(mflops["measured"], 1) == 205.2


def test_list_commands(capsys):
    assert cli.main(["list", "conventions"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["fvcore", "fvcore", "decimal"]
    assert "lite_hrnet_paper" in out and "hrnet_paper" in out
    assert cli.main(["list", "suites", "lite_hrnet_table6"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("lite_hrnet_table6  lite_hrnet table 6  Conditional channel weight")
    assert cli.main(["list", "protocols", "coco_256x192_lite*"]) == 0
    assert capsys.readouterr().out.split()[:5] == ["coco_256x192_lite_hrnet", "pose", "coco",
                                                   "256x192", "trainable"]
    # each protocol's training fidelity (bench.suite.Fidelity.summary)
    assert cli.main(["list", "protocols", "coco_256x192_hrnet"]) == 0
    assert ("official-code: leoxiaobin/deep-high-resolution-net.pytorch@6f69e4676ad8d43d0d61b64"
            "b1b9726f0c369e7b1, steps 10, max rel diff 1e-09") in capsys.readouterr().out
    assert cli.main(["list", "models", "litehrnet_[0-9][0-9]"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == [
        "litehrnet_18", "litehrnet_30"]
    assert cli.main(["list", "models", "no_such_*"]) == 1
    assert "no models match 'no_such_*'" in capsys.readouterr().err


def test_report_renders_from_records_without_torch(tmp_path):
    """``hrbench report`` with no suite named finds the suites that have records and
    draws their pages and the index; torch is never imported."""
    results = tmp_path / "results"
    shutil.copytree(REPO / "results" / "lite_hrnet_table6", results / "lite_hrnet_table6")
    code = ("import sys; from bench.cli import main; rc = main(['report']); "
            "print('torch imported:', 'torch' in sys.modules); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin",
                                          "HOME": str(tmp_path), "MPLBACKEND": "Agg"})
    assert proc.returncode == 0, proc.stderr
    assert "torch imported: False" in proc.stdout
    assert f"report: {tmp_path / 'reports' / 'lite_hrnet_table6.html'}" in proc.stdout
    assert (tmp_path / "reports" / "lite_hrnet_table6.html").is_file()
    assert (tmp_path / "reports" / "index.html").is_file()


def test_smoke_baseline_of_a_bundled_suite_is_found_when_the_results_folder_has_none(tmp_path):
    from bench.runner.smoke_gate import baseline_path, find_baseline
    bundled = load_suite(SUITES_DIR / "lite_hrnet_table6.yaml", check_models=False)
    assert find_baseline(bundled, tmp_path) == SHIPPED_BASELINES_DIR / "lite_hrnet_table6.smoke.json"
    assert find_baseline(bundled, tmp_path).is_file()
    # --update-baseline writes into the results folder, never beside the package
    assert baseline_path(bundled, tmp_path) == tmp_path / "baselines" / "lite_hrnet_table6.smoke.json"
    # a user's suite of the same name never gets the shipped baseline
    (tmp_path / "mine").mkdir()
    shutil.copy(SUITES_DIR / "lite_hrnet_table6.yaml", tmp_path / "mine" / "lite_hrnet_table6.yaml")
    shutil.copytree(SUITES_DIR / "protocols", tmp_path / "mine" / "protocols")
    own = load_suite(tmp_path / "mine" / "lite_hrnet_table6.yaml", check_models=False)
    assert find_baseline(own, tmp_path) == tmp_path / "baselines" / "lite_hrnet_table6.smoke.json"


# --- protocols beside a user's suite --------------------------------------------------

def test_a_users_protocol_beside_the_suite_extends_a_bundled_one(tmp_path):
    (tmp_path / "protocols").mkdir()
    (tmp_path / "protocols" / "small.yaml").write_text(
        "base: coco_256x192_lite_hrnet\ninput_size: [64, 48]\nheatmap_size: [16, 12]\n")
    (tmp_path / "mine.yaml").write_text(
        "suite: mine\npaper: me\ntable: 1\ntitle: t\n"
        "protocols: {coco: small, mpii: mpii_256x256_lite_hrnet}\n"
        "columns:\n  params: {unit: M, measure: params, protocol: coco, tolerance: {abs: 0.1}}\n"
        "rows:\n  - {name: a, model: litehrnet_18, published: {params: 1.1}}\n")
    suite = load_suite(tmp_path / "mine.yaml", check_models=False)
    coco, mpii = suite.protocols["coco"], suite.protocols["mpii"]
    assert coco.input_size == (64, 48) and coco.optimizer.lr == 2.0e-3   # the rest from the base
    assert mpii.input_size == (256, 256)                                 # bundled
    assert load_protocol("small", (tmp_path / "protocols", SUITES_DIR / "protocols")
                         ).heatmap_size == (16, 12)
    with pytest.raises(SuiteError, match=r"small\.yaml:1: base: unknown protocol "
                                         r"'coco_256x192_lite_hrnet' \(looked in .*; known: small"):
        load_protocol("small", tmp_path / "protocols")    # one folder: only its protocols
    with pytest.raises(FileNotFoundError, match=r"unknown protocol 'nope' \(looked in .*protocols"):
        load_protocol("nope", (tmp_path / "protocols", SUITES_DIR / "protocols"))


# --- bad input: a message naming file, line and field; exit status 2 ---------------------

SUITE = """\
suite: bad
paper: me
table: 1
title: {title}
protocols: {{coco: coco_256x192_lite_hrnet}}
columns:
  params: {{unit: M, measure: params, protocol: coco, tolerance: {{abs: 0.05}}}}
rows:
  - name: Lite-HRNet-18
    model: litehrnet_18
    published: {{params: {params}}}
"""


def _bad(tmp_path, capsys, text: str | bytes) -> str:
    path = tmp_path / "bad.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    assert cli.main([str(path), "--out", str(tmp_path), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return err.replace(str(path), "bad.yaml")


@pytest.mark.parametrize("value, shown", [("1e400", "'1e400'"), ("1.0e+400", "inf"),
                                          (".inf", "inf"), (".nan", "nan")])
def test_a_number_beyond_a_float_is_refused_with_its_line(tmp_path, capsys, value, shown):
    err = _bad(tmp_path, capsys, SUITE.format(title="t", params=value))
    assert err == (f"error: bad.yaml:11: rows[0].published.params: {shown} is not a finite "
                   "number (a float holds at most about 1.8e308)")


def test_a_tolerance_beyond_a_float_is_refused(tmp_path, capsys):
    text = SUITE.format(title="t", params="1.1").replace("{abs: 0.05}", "{abs: 1e999}")
    err = _bad(tmp_path, capsys, text)
    assert err.startswith("error: bad.yaml:7: columns.params.tolerance.abs: '1e999' is not a "
                          "finite number")


def test_a_suite_that_is_not_utf8_names_line_and_field(tmp_path, capsys):
    text = SUITE.format(title="Caf\xe9 table", params="1.1").encode("latin-1")
    err = _bad(tmp_path, capsys, text)
    assert err == ("error: bad.yaml:4: title: not UTF-8 text: byte 0xe9 at column 11 "
                   "(invalid continuation byte); save the file as UTF-8")


def test_a_protocol_that_is_not_utf8_names_its_file(tmp_path, capsys):
    (tmp_path / "protocols").mkdir()
    (tmp_path / "protocols" / "mine.yaml").write_bytes(
        b"base: coco_256x192_lite_hrnet\n# r\xe9glage\ninput_size: [64, 48]\n")
    text = SUITE.format(title="t", params="1.1").replace("coco_256x192_lite_hrnet", "mine")
    err = _bad(tmp_path, capsys, text)
    assert err.startswith(f"error: {tmp_path / 'protocols' / 'mine.yaml'}:2: not UTF-8 text: "
                          "byte 0xe9 at column 4")


def test_a_control_character_names_line_and_field(tmp_path, capsys):
    err = _bad(tmp_path, capsys, SUITE.format(title="a\x07b", params="1.1"))
    assert err == ("error: bad.yaml:4: title: character #x0007 is not allowed in YAML "
                   "(a control character)")


def test_unknown_suite_and_unimportable_module_exit_2(tmp_path, capsys):
    assert cli.main(["run", "no_such_suite", "--out", str(tmp_path)]) == 2
    assert "no_such_suite: neither a suite file nor a bundled suite" in capsys.readouterr().err
    assert cli.main(["run", "lite_hrnet_table6", "--import", "no_such_module_xyz",
                     "--out", str(tmp_path)]) == 2
    assert ("error: --import: cannot import model module 'no_such_module_xyz': "
            "ModuleNotFoundError: No module named 'no_such_module_xyz' (is its folder on "
            "PYTHONPATH, or its package installed?)") in capsys.readouterr().err


def test_rounding_huge_published_values_does_not_raise():
    from bench.compare import compare_cell, round_half_up
    assert round_half_up(1e300, 1) == 1e300
    assert round_half_up(2.345, 2) == 2.35
    v = compare_cell(1e300, 1e300, None, digits=1)
    assert v.printed_match and v.delta == 0
