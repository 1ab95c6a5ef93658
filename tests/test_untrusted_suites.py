"""Suite and protocol files from other people's repositories are untrusted input (issue 29):
names that become paths are identifiers, every write stays in its folder, and resource
bombs are refused before anything is expanded. The two cases of the issue run through
the real command line: each ends in one clear error, exit 2, nothing written, nothing
lost."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import cli
from bench.names import NAME_PATTERN, name_problem
from bench.paths import (OutsideRootError, cache_path, report_path, results_path, work_path)
from bench.suite import SuiteError, load_protocol, load_suite
from bench.yaml_limits import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES
from conftest import REPO

TABLE6 = (REPO / "suites" / "lite_hrnet_table6.yaml").read_text()


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    """The issue's file shape: nine levels of nine references to the level below."""
    lines = ["lol:", f"  a: &a [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        prev, name = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"  {name}: &{name} [{', '.join([f'*{prev}'] * width)}]")
    return "\n".join(lines) + "\n"


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file under ``root`` with its size, modification time and content."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def repo_copy(tmp_path, monkeypatch):
    """A user's checkout: their own files at its root (which the issue's ".." suite
    overwrote), results/ and reports/ with a record each, the working directory."""
    root = tmp_path / "checkout"
    (root / "suites").mkdir(parents=True)
    (root / "results" / "lite_hrnet_table6").mkdir(parents=True)
    (root / "reports").mkdir()
    for name in ("summary.json", ".fingerprint", "naive-lite-hrnet-18.complexity.json",
                 "params.published_vs_measured.png"):
        (root / name).write_text(f"the user's own {name}\n")
    (root / "results" / "lite_hrnet_table6" / "naive-lite-hrnet-18.complexity.json").write_text("{}\n")
    (root / "reports" / "index.html").write_text("<html></html>\n")
    monkeypatch.chdir(root)
    return root


def _cli(args, capsys) -> tuple[int, str]:
    code = cli.main([*map(str, args)])
    return code, capsys.readouterr().err


# --- the two cases of the issue, through the real command line ---------------------------

def test_suite_named_dotdot_is_refused_with_exit_2_and_nothing_written(repo_copy, capsys):
    suite = repo_copy / "suites" / "evil.yaml"
    suite.write_text(TABLE6.replace("suite: lite_hrnet_table6", 'suite: ".."', 1))
    before = snapshot(repo_copy)
    code, err = _cli([suite, "--cache-dir", repo_copy / "cache"], capsys)
    assert code == 2
    assert err.startswith(f"error: {suite}:1: suite: '..' is not a name: "), err
    assert NAME_PATTERN.split("]")[0] in err or "starts with a letter" in err
    assert snapshot(repo_copy) == before                 # nothing written, nothing lost
    assert not (repo_copy / "cache").exists()


def test_billion_laughs_suite_fails_fast_with_exit_2_and_nothing_written(repo_copy, capsys):
    suite = repo_copy / "suites" / "laughs.yaml"
    suite.write_text(TABLE6 + billion_laughs())
    assert len(billion_laughs()) < 1100                  # about 1 KB, 9^9 nodes expanded
    before = snapshot(repo_copy)
    t0 = time.perf_counter()
    code, err = _cli([suite, "--cache-dir", repo_copy / "cache"], capsys)
    assert time.perf_counter() - t0 < 5
    assert code == 2
    line = TABLE6.count("\n") + 1 + next(i for i, l in enumerate(billion_laughs().splitlines())
                                         if l.startswith("  f:"))
    assert err.startswith(f"error: {suite}:{line}: lol.f[0]: alias *e expands to 66,430 nodes"), err
    assert f"more than {MAX_NODES:,} YAML nodes" in err
    assert snapshot(repo_copy) == before
    assert not (repo_copy / "cache").exists()


def test_billion_laughs_through_run_suite_py_in_a_memory_bounded_process(repo_copy):
    """The real entry point in its own process: under a 3 GB address-space limit (the
    bomb exhausted 4 GB before) it ends in one line, exit 2, in seconds."""
    resource = pytest.importorskip("resource")
    suite = repo_copy / "suites" / "laughs.yaml"
    suite.write_text(TABLE6 + billion_laughs())
    before = snapshot(repo_copy)

    def bound():
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    proc = subprocess.run([sys.executable, str(REPO / "run_suite.py"), str(suite), "--cache-dir",
                           str(repo_copy / "cache")], capture_output=True, text=True,
                          timeout=120, preexec_fn=bound, cwd=repo_copy,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "YAML nodes" in proc.stderr and str(suite) in proc.stderr
    assert snapshot(repo_copy) == before


# --- names --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["", ".", "..", ".hidden", "a/b", "a\\b", "../x", "/etc",
                                  "x" * 101, "naïve", "a b", "a\n", "a:b"])
def test_names_that_could_leave_a_folder_are_not_names(name):
    assert name_problem(name) is not None


@pytest.mark.parametrize("name", ["lite_hrnet_table6", "coco_256x192_hrnet", "litehrnet_18",
                                  "epochs=1,batch=8", "seed3", "a.b-c", "_x", "9"])
def test_identifiers_are_names(name):
    assert name_problem(name) is None


def _suite(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("old,new,where", [
    ("suite: lite_hrnet_table6", "suite: a/b", ":1: suite: 'a/b' is not a name"),
    ("suite: lite_hrnet_table6", "suite: ''", ":1: suite: an empty name"),
    ("  - name: Naive Lite-HRNet-18", '  - name: "!!"', ": rows[1].name: the row's key"),
    ("    model: naive_litehrnet_18", "    model: ../../x", ": rows[1].model.name: '../../x'"),
    ("    model: naive_litehrnet_18", "    model: 'pkg/mod:build'", ": rows[1].model.name: model"),
    ("  params:", "  .hidden:", ": columns..hidden.id: '.hidden' is not a name"),
    ("protocols: {coco:", "protocols: {'..':", ": protocols...: '..' is not a name"),
])
def test_bad_names_are_refused_where_the_suite_is_loaded(tmp_path, old, new, where):
    assert TABLE6.count(old) >= 1
    path = _suite(tmp_path, TABLE6.replace(old, new, 1))
    with pytest.raises(SuiteError) as err:
        load_suite(path, check_models=False)
    assert str(err.value).startswith(str(path)) and where in str(err.value), str(err.value)


def test_a_protocol_naming_itself_dotdot_is_refused(tmp_path):
    (tmp_path / "protocols").mkdir()
    own = (REPO / "suites" / "protocols" / "coco_256x192_lite_hrnet.yaml").read_text()
    (tmp_path / "protocols" / "coco_256x192_lite_hrnet.yaml").write_text('name: ".."\n' + own)
    path = _suite(tmp_path, TABLE6)
    with pytest.raises(SuiteError, match=r"coco_256x192_lite_hrnet\.yaml:1: name: '\.\.' is not a name"):
        load_suite(path, check_models=False)


# --- writes stay in their folders ---------------------------------------------------------

@pytest.mark.parametrize("build", [results_path, report_path, work_path, cache_path])
def test_each_output_folder_refuses_paths_outside_it(tmp_path, build):
    root = tmp_path / "root"
    assert build(root, "a", "b.json") == root / "a" / "b.json"
    assert build(root, "a..b") == root / "a..b"
    for parts in (("..", "x"), ("a", "..", "..", "x"), ("/etc/passwd",), ("a/../../x",), ("..",)):
        with pytest.raises(OutsideRootError, match="refusing to write .* outside the"):
            build(root, *parts)


def test_record_paths_are_built_inside_the_results_folder(tmp_path):
    from bench import results as res
    root = tmp_path / "results"
    assert res.row_record_path("s", "r", "smoke", root, "epochs=1") == root / "s" / "r.smoke.epochs=1.json"
    with pytest.raises(OutsideRootError):
        res.row_record_path("..", "r", "complexity", root)      # what suite: ".." wrote
    # runs/<protocol>/: a protocol named ".." would stay inside the folder (runs/..)
    assert res.run_record_path("..", "m", "smoke", root) == root / "runs" / ".." / "m.smoke.json"


# --- resource limits ----------------------------------------------------------------------

def test_a_file_over_the_size_limit_is_refused_unread(tmp_path):
    path = _suite(tmp_path, TABLE6 + "notes: '" + "x" * MAX_FILE_BYTES + "'\n")
    with pytest.raises(SuiteError, match=rf"^{path}: the file is larger than 1,048,576 bytes"):
        load_suite(path, check_models=False)


def test_deep_nesting_and_recursive_aliases_are_refused(tmp_path):
    deep = _suite(tmp_path, TABLE6 + "deep: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "\n")
    with pytest.raises(SuiteError, match=rf"nested more than {MAX_DEPTH} levels deep"):
        load_suite(deep, check_models=False)
    recursive = _suite(tmp_path, TABLE6 + "loop: &n [1, *n]\n")
    with pytest.raises(SuiteError, match=r": loop\[1\]: alias \*n refers to a node that contains it"):
        load_suite(recursive, check_models=False)


def test_duplicate_keys_are_refused_not_silently_overwritten(tmp_path):
    text = TABLE6.replace("    published: {params: 0.7,", "    published: {params: 0.7, params: 9.9,", 1)
    assert text != TABLE6
    path = _suite(tmp_path, text)
    with pytest.raises(SuiteError, match=r":\d+: rows\[1\]\.published\.params: duplicate key \(first given on line 33\)"):
        load_suite(path, check_models=False)


def test_small_aliases_still_load_as_the_bundled_suites_use_them():
    suite = load_suite(REPO / "suites" / "hrnet_table1.yaml", check_models=False)
    links = {w.published_at for r in suite.rows for w in r.released.values()}
    assert len(links) == 1 and next(iter(links)).startswith("https://")


@pytest.mark.parametrize("value,what", [("9" * 5000, "Exceeds the limit (4300 digits)"),
                                        ("2026-13-45", "month must be in 1..12")])
def test_values_yaml_cannot_construct_are_suite_errors_with_their_line(tmp_path, value, what):
    path = _suite(tmp_path, TABLE6.replace("table: 6", f"table: {value}", 1))
    with pytest.raises(SuiteError) as err:
        load_suite(path, check_models=False)
    assert str(err.value).startswith(f"{path}:3: table: YAML cannot read this value: ")
    assert what in str(err.value)


def test_protocol_files_have_the_same_limits(tmp_path):
    own = (REPO / "suites" / "protocols" / "coco_256x192_lite_hrnet.yaml").read_text()
    (tmp_path / "p.yaml").write_text(own + billion_laughs())
    with pytest.raises(SuiteError, match=r"p\.yaml:\d+: lol\.f\[0\]: alias \*e expands"):
        load_protocol("p", tmp_path)


def test_a_name_past_the_loader_is_still_refused_by_the_writers(repo_copy, capsys, monkeypatch):
    """Defence in depth: a suite whose name skipped validation (as a future field might)
    is stopped by the results folder's path function, exit 2, nothing written."""
    good = load_suite(REPO / "suites" / "lite_hrnet_table6.yaml", check_models=False)
    evil = good.model_copy(update={"suite": ".."})              # model_copy does not validate
    monkeypatch.setattr(cli, "load_suite", lambda path, **kw: evil)
    before = snapshot(repo_copy)
    code, err = _cli([REPO / "suites" / "lite_hrnet_table6.yaml", "--rows", "Small*",
                      "--cache-dir", repo_copy / "cache", "-q"], capsys)
    assert code == 2
    assert err.startswith("error: refusing to write ") and "outside the results folder" in err, err
    after = snapshot(repo_copy)
    assert {k: v for k, v in after.items() if not k.startswith("cache/")} == before
