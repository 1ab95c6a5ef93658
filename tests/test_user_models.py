"""Models of the user's own: ``package.module:function`` names, ``--import`` modules
registering with ``bench.register_model``, the ``hrbench.models`` entry-point group, and
the measurement cache keyed on their source. The worked example (examples/user_model)
runs through the command line in a fresh folder, as a user would run it."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest

import bench
from bench.registry import BadOverrideError, UnknownModelError, get_entry, resolve_spec
from conftest import REPO

EXAMPLE = REPO / "examples" / "user_model"

MODULE = '''
from torch import nn


def build(width: int = 4, num_joints: int = 17, kernels=[3, 3], extra={"a": 1}):
    """A two-layer net."""
    return nn.Sequential(nn.Conv2d(3, width, kernels[0]), nn.Conv2d(width, num_joints, kernels[1]))


def needs_depth(depth, width: int = 2):
    return nn.Sequential(*[nn.Conv2d(3, 3, 1) for _ in range(depth)])


def not_a_model(width: int = 1):
    return "a string"


NUMBER = 3
'''


@pytest.fixture()
def user_module(tmp_path, monkeypatch):
    """A module ``usermod_<n>`` of the user's own on sys.path (a fresh name per test, so
    that the registry's per-process cache of resolved names never mixes two tests)."""
    name = f"usermod_{os.path.basename(tmp_path).replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_a_callable_is_a_model_with_its_keyword_arguments_as_overrides(user_module):
    name = f"{user_module}:build"
    entry = get_entry(name)
    assert entry.override_names == ("width", "num_joints", "kernels", "extra")
    assert entry.family == user_module and entry.doc == "A two-layer net."
    model = bench.create_model(name, width=8, kernels=[1, 1])
    assert sum(p.numel() for p in model.parameters()) == (3 * 8 + 8) + (8 * 17 + 17)
    assert model.registry_name == name and model.spec.kernels == (1, 1)   # lists frozen
    with pytest.raises(BadOverrideError, match=r"no argument 'depth'; valid: width, num_joints"):
        resolve_spec(name, depth=2)


def test_a_callable_needing_an_argument_says_so(user_module):
    with pytest.raises(BadOverrideError, match=r"'depth' has no default: give it in the suite "
                                               r"row \(model: \{name: \.\.\., depth: \.\.\.\}\)"):
        resolve_spec(f"{user_module}:needs_depth")
    assert len(bench.create_model(f"{user_module}:needs_depth", depth=3)) == 3


def test_bad_callable_names_say_what_is_wrong(user_module):
    with pytest.raises(UnknownModelError, match=r"model 'no_pkg_q\.mod:build': cannot import "
                                                r"'no_pkg_q\.mod': ModuleNotFoundError.*PYTHONPATH"):
        get_entry("no_pkg_q.mod:build")
    with pytest.raises(UnknownModelError, match=rf"'{user_module}' has no attribute 'nope'"):
        get_entry(f"{user_module}:nope")
    with pytest.raises(UnknownModelError, match=r"'NUMBER' is a int, not a function building a model"):
        get_entry(f"{user_module}:NUMBER")
    with pytest.raises(TypeError, match=r"returned a str, not a torch.nn.Module"):
        bench.create_model(f"{user_module}:not_a_model")
    with pytest.raises(UnknownModelError, match=r"a model of your own: 'package\.module:function'"):
        get_entry("not_registered_anywhere")


def test_a_registered_builder_named_by_path_keeps_its_spec(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    entry = get_entry("mypkg.registered:tiny_pose_net")
    assert entry.override_names == ("width", "num_joints", "blocks")
    assert get_entry("tiny_pose_net").spec == entry.spec     # registered on import
    with pytest.raises(BadOverrideError, match="width must be >= 1"):
        resolve_spec("tiny_pose_net", width=0)


def test_the_cache_key_follows_the_users_source(user_module, tmp_path):
    from bench.complexity.cache import MeasurementCache, _family_hash, model_source_hash
    cache = MeasurementCache(tmp_path / "cache")
    name = f"{user_module}:build"
    before = cache.key(model=name, measure="params")
    assert model_source_hash(name) is not None
    assert model_source_hash("litehrnet_18") is None      # HRBench's own: the code hash covers it
    (tmp_path / f"{user_module}.py").write_text(MODULE.replace("width: int = 4", "width: int = 5"))
    _family_hash.cache_clear()     # a new process hashes the file afresh; here, by hand
    assert cache.key(model=name, measure="params") != before


def _cli(args, cwd, pythonpath, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HRBENCH_IMPORT")}
    env.update(PYTHONPATH=os.pathsep.join([str(pythonpath), str(REPO)]), OMP_NUM_THREADS="2",
               MPLBACKEND="Agg", **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "bench", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture()
def example(tmp_path):
    """The worked example copied (it is edited below), and an empty folder to run in."""
    copy = tmp_path / "user_model"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    work = tmp_path / "work"
    work.mkdir()
    return copy, work


def test_the_worked_example_gates_a_users_model_through_the_cli(example, tmp_path):
    copy, work = example
    suite = copy / "suites" / "tiny_pose.yaml"
    cache = ["--cache-dir", tmp_path / "cache"]

    proc = _cli(["run", suite, "--check", "--junit-xml", "gate.xml", "--summary-json", "s.json",
                 "-q", *cache], work, copy)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "check passed: tiny_pose" in proc.stdout
    assert "(cache: 2 hits, 8 misses)" in proc.stdout    # params of a row under both protocols
    assert (work / "results" / "tiny_pose" / "tinyposenet-16.complexity.json").is_file()
    assert (work / "reports" / "tiny_pose.html").is_file()
    cases = ET.parse(work / "gate.xml").getroot().findall("./testsuite/testcase")
    assert len(cases) == 8 and not any(c.find("failure") is not None for c in cases)
    assert cases[0].get("name") == "TinyPoseNet-16 :: params"
    record = json.loads((work / "results" / "tiny_pose" / "tinyposenet-32.complexity.json").read_text())
    assert record["model"]["name"] == "mypkg.mymodule:build"
    assert record["cells"]["params"]["raw"] == 29329
    assert record["cells"]["coco.torchstat"]["convention"] == "lite_hrnet_paper"
    assert record["cells"]["mpii.mflops"]["raw"] == 131334144

    # the published value off: --check fails, and the JUnit failure says why
    suite.write_text(suite.read_text().replace("params: 7.76,", "params: 7.90,"))
    proc = _cli(["run", suite, "--check", "--junit-xml", "gate.xml", "-q", "--no-report", *cache],
                work, copy)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "(cache: 10 hits, 0 misses)" in proc.stdout
    root = ET.parse(work / "gate.xml").getroot()
    assert (root.get("tests"), root.get("failures")) == ("8", "1")
    failure = root.find("./testsuite/testcase[@name='TinyPoseNet-16 :: params']/failure")
    assert failure.get("type") == "outside tolerance"
    assert failure.get("message") == ("published 7.9 K, measured 7.761 K, delta -0.139; "
                                      "tolerance ±0.01 K (allowed ±0.01); row note: the default width")



def test_an_edit_of_a_users_model_is_never_served_from_the_cache(example, tmp_path):
    copy, work = example
    suite = copy / "suites" / "tiny_pose.yaml"
    cache = ["--cache-dir", tmp_path / "cache"]
    proc = _cli(["run", suite, "--check", "-q", "--no-report", "--rows", "TinyPoseNet-16", *cache],
                work, copy)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "(cache: 1 hits, 4 misses)" in proc.stdout
    module = copy / "mypkg" / "mymodule.py"
    module.write_text(module.read_text().replace("nn.Conv2d(width, num_joints, 1)",
                                                 "nn.Conv2d(width, num_joints, 1, bias=False)"))
    proc = _cli(["run", suite, "--check", "-q", "--no-report", "--rows", "TinyPoseNet-16", *cache],
                work, copy)
    assert proc.returncode == 1
    assert "(cache: 1 hits, 4 misses)" in proc.stdout   # as cold as the first run
    assert "row 'TinyPoseNet-16', column 'params': published 7.76, measured 7.744" in proc.stderr


def test_the_example_registered_by_name_needs_its_module_imported(example, tmp_path):
    copy, work = example
    suite = copy / "suites" / "tiny_pose_registered.yaml"
    proc = _cli(["run", suite, "--check", "-q", "--no-report"], work, copy)
    assert proc.returncode == 2
    assert f"{suite}:14: rows[0].model: unknown model 'tiny_pose_net'" in proc.stderr
    proc = _cli(["run", suite, "--import", "mypkg.registered", "--check", "-q", "--no-report",
                 "--cache-dir", tmp_path / "cache"], work, copy)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "models from mypkg.registered: tiny_pose_net" in proc.stdout
    # the variable processes started for training jobs read
    proc = _cli(["list", "models", "tiny*"], work, copy, {"HRBENCH_IMPORT": "mypkg.registered"})
    assert proc.stdout.split()[:2] == ["tiny_pose_net", "mypkg.registered"]


def test_an_installed_package_registers_through_the_entry_point_group(tmp_path):
    """A distribution's ``hrbench.models`` entry points: ``name = module:builder`` makes
    the builder a model of that name; a broken one is reported, the others still load."""
    site = tmp_path / "site"
    (site / "plugpkg").mkdir(parents=True)
    (site / "plugpkg" / "__init__.py").write_text(
        "from torch import nn\n\ndef make(width: int = 2):\n"
        "    '''Plug-in net.'''\n    return nn.Conv2d(3, width, 1)\n")
    dist = site / "plugpkg-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: plugpkg\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[hrbench.models]\nplug_net = plugpkg:make\nbroken = plugpkg_missing:make\n")
    code = textwrap.dedent("""
        import warnings
        import bench
        from bench.registry import get_entry
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            print(bench.list_models("plug*"))
        print(get_entry("plug_net").doc, bench.create_model("plug_net", width=5).out_channels)
        print([str(w.message) for w in caught])
        try:
            get_entry("broken")
        except Exception as err:
            print(err)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    env.pop("HRBENCH_IMPORT", None)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "['plug_net']"
    assert lines[1] == "Plug-in net. 5"
    assert "entry point broken = 'plugpkg_missing:make' (hrbench.models) failed to load: " \
           "ModuleNotFoundError" in lines[2]
    assert lines[3].startswith("unknown model 'broken'") and "failed to load" in lines[3]


def test_an_imported_module_may_not_take_a_built_in_name(tmp_path, monkeypatch):
    from bench.registry import ModelImportError, import_models
    (tmp_path / "clashing_models_mod.py").write_text(
        "from dataclasses import dataclass\nfrom bench import register_model\n\n"
        "@dataclass(frozen=True)\nclass S:\n    w: int = 1\n\n"
        "@register_model(S())\ndef litehrnet_18(spec):\n    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModelImportError, match=r"cannot import model module 'clashing_models_mod': "
                       r"ValueError: model name 'litehrnet_18' is already registered "
                       r"\(by bench\.models\.litehrnet\)"):
        import_models(["clashing_models_mod"])
