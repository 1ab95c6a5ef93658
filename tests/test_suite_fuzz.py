"""Property-based tests of the suite and protocol loaders (issue 29), with hypothesis.

Inputs: the bundled suites and protocols, mutated on their YAML node trees (1 to 3
mutations an example): a value replaced by one of another type, unicode text, a huge,
negative or non-finite number, an integer YAML cannot convert, or a path-like string
(``..``, ``/etc/passwd``, ``a/b``, ``~``, ``$HOME``...), in any field; a key deleted,
added, renamed or given twice. Property: the loader returns a valid suite (protocol), or
raises SuiteError whose message starts with the file and names a line or field; never any
other exception. Nothing is written while loading, and every path the loaded suite
would write (row and run records, work dirs, report pages and plots) lies in its folder.

``HRBENCH_FUZZ_EXAMPLES`` (default 250 per loader, derandomized so that CI sees the same
examples) sets the number of examples; the number run is printed and recorded as a test
property.
"""
from __future__ import annotations

import copy
import itertools
import os
import tempfile
from pathlib import Path

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from audit_writes import recording  # noqa: E402
from bench import results as res  # noqa: E402
from bench.paths import PROTOCOLS_DIR, SUITES_DIR, report_path, work_path  # noqa: E402
from bench.suite import Suite, SuiteError, load_protocol, load_suite  # noqa: E402

EXAMPLES = int(os.environ.get("HRBENCH_FUZZ_EXAMPLES", "250"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                derandomize="HRBENCH_FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

SUITE_FILES = sorted(SUITES_DIR.glob("*.yaml"))
PROTOCOL_FILES = sorted(PROTOCOLS_DIR.glob("*.yaml"))
TREES = {p: yaml.compose(p.read_text(), Loader=yaml.SafeLoader)
         for p in SUITE_FILES + PROTOCOL_FILES}
RAN = {"suite": 0, "protocol": 0}
OUTCOMES = {"loaded": 0, "refused": 0}

INT, FLOAT, STR = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:str"
PATHLIKE = ["..", ".", "", "/", "../../etc/passwd", "/etc/passwd", "a/b", "a\\b", "~/x",
            "$HOME/x", "${HRBENCH_PRETRAINED}/../../x", "C:\\Windows\\x", "results/../..",
            ".hidden", "./x", "x/..", "-", "*", "?[a]", "a\nb", "\u202e", "ｒｅｓｕｌｔｓ",
            "..\u2215..", "%2e%2e", "nul", "con"]
FIELDS = ["suite", "name", "model", "protocol", "protocols", "columns", "rows", "published",
          "task", "base", "seed", "input_size", "tolerance", "measure", "pretrained", "file",
          "data_dir", "detection_file", "data_files", "released", "overrides", "x-extra"]


def _scalar(tag: str, value: str) -> yaml.ScalarNode:
    return yaml.ScalarNode(tag, value)


def _node(value) -> yaml.Node:
    return yaml.compose(yaml.safe_dump(value), Loader=yaml.SafeLoader)


scalars = st.one_of(
    st.sampled_from(PATHLIKE).map(lambda s: _scalar(STR, s)),
    st.text(max_size=12).map(lambda s: _scalar(STR, s)),
    st.integers().map(lambda i: _scalar(INT, str(i))),
    st.sampled_from([10**30, -10**30, 10**400, 2**63, -1, 0, 1]).map(lambda i: _scalar(INT, str(i))),
    st.just(_scalar(INT, "9" * 5000)),
    st.sampled_from([".inf", "-.inf", ".nan", "1e400", "1.0e400", "-0.0", "1e-400", "0.5"]
                    ).map(lambda s: _scalar(FLOAT, s)),
    st.sampled_from(["1e400", "2026-13-45", "0x1F", "1_000", "~", "yes", "12:30:00"]
                    ).map(lambda s: yaml.ScalarNode("tag:yaml.org,2002:str", s, style="")),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: _node(f)),
    st.booleans().map(_node),
    st.none().map(_node),
)
values = st.one_of(
    scalars, scalars, scalars,
    st.lists(st.sampled_from([0, 1, -5, 256, "a", None, 2.5]), max_size=4).map(_node),
    st.dictionaries(st.sampled_from(FIELDS), st.sampled_from([0, "x", "..", None, [1]]),
                    max_size=3).map(_node),
)
keys = st.one_of(st.sampled_from(FIELDS), st.sampled_from(PATHLIKE), st.text(max_size=8))


def _slots(node: yaml.Node, seen=None):
    """Every (parent, position) whose value a mutation can replace, and every mapping."""
    seen = set() if seen is None else seen
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        yield ("map", node, None)
        for i, (_, v) in enumerate(node.value):
            yield ("value", node, i)
            yield from _slots(v, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            yield ("item", node, i)
            yield from _slots(v, seen)


def _mutate(data, tree: yaml.Node) -> yaml.Node:
    tree = copy.deepcopy(tree)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        slots = list(_slots(tree))
        kind, parent, i = slots[data.draw(st.integers(0, len(slots) - 1), label="where")]
        if kind == "value":
            parent.value[i] = (parent.value[i][0], data.draw(values, label="value"))
        elif kind == "item":
            parent.value[i] = data.draw(values, label="item")
        else:
            op = data.draw(st.sampled_from(["delete", "add", "duplicate", "rename"]), label="op")
            j = data.draw(st.integers(0, max(len(parent.value) - 1, 0)), label="key")
            if op == "add" or not parent.value:
                parent.value.append((_scalar(STR, data.draw(keys, label="new key")),
                                     data.draw(values, label="new value")))
            elif op == "delete":
                del parent.value[j]
            elif op == "duplicate":
                parent.value.append(parent.value[j])
            else:
                parent.value[j] = (_scalar(STR, data.draw(keys, label="renamed")), parent.value[j][1])
    return tree


def _text(tree: yaml.Node) -> str:
    return yaml.serialize(tree, Dumper=yaml.SafeDumper, allow_unicode=True)


def _refused_properly(err: SuiteError, files: list[Path]) -> None:
    assert isinstance(err, SuiteError)
    assert any(err.path == str(f) for f in files) or Path(err.path).parent == PROTOCOLS_DIR, str(err)
    assert str(err).startswith(err.path), str(err)
    assert err.line is not None or err.field, str(err)


def _outputs_stay_inside(suite: Suite, root: Path) -> None:
    """Every path a run and report of the suite would write lies in its folder."""
    from bench.runner.context import RunContext
    from bench.runner.jobs import accuracy_protocols, run_key, work_dir_of
    results, reports, work = root / "results", root / "reports", root / "work_dirs"
    paths = []
    for row in suite.rows:
        for profile in ("complexity", "smoke", "full"):
            paths.append((results, res.row_record_path(suite.suite, row.key, profile, results, "epochs=1")))
        if row.built:
            for protocol in accuracy_protocols(suite, row).values():
                paths.append((results, res.run_record_path(protocol.name, run_key(row, protocol),
                                                           "smoke", results, seed=3)))
                paths.append((work, work_dir_of(RunContext(profile="smoke", work_dir=work),
                                                protocol, run_key(row, protocol), 3)))
    name = res.safe_name(suite.suite)
    paths += [(reports, report_path(reports, f"{name}.html")), (reports, report_path(reports, name))]
    paths += [(reports / name, report_path(reports / name, f"{res.safe_name(c)}.png"))
              for c in list(suite.columns) + list(suite.protocols)]
    for folder, path in paths:
        resolved = Path(os.path.normpath(path.resolve()))
        assert resolved.is_relative_to(folder.resolve()) and resolved != folder.resolve(), path
        assert all(part not in ("", ".", "..") for part in path.relative_to(folder).parts), path


@pytest.fixture(scope="module")
def scratch():
    with tempfile.TemporaryDirectory(prefix="hrbench-fuzz-") as d:
        yield Path(d)


_counter = itertools.count()


@FUZZ
@given(data=st.data())
def test_mutated_suites_load_or_raise_a_suite_error(data, scratch):
    source = data.draw(st.sampled_from(SUITE_FILES), label="suite")
    folder = scratch / f"s{next(_counter)}"
    folder.mkdir()
    path = folder / source.name
    path.write_text(_text(_mutate(data, TREES[source])), encoding="utf-8")
    RAN["suite"] += 1
    with recording() as writes:
        try:
            suite = load_suite(path)
        except SuiteError as err:
            _refused_properly(err, [path])
            OUTCOMES["refused"] += 1
            suite = None
    assert writes == [], writes
    if suite is not None:
        OUTCOMES["loaded"] += 1
        _outputs_stay_inside(suite, scratch / "out")


@FUZZ
@given(data=st.data())
def test_mutated_protocols_load_or_raise_a_suite_error(data, scratch):
    source = data.draw(st.sampled_from(PROTOCOL_FILES), label="protocol")
    folder = scratch / f"p{next(_counter)}"
    (folder / "protocols").mkdir(parents=True)
    path = folder / "protocols" / source.name
    path.write_text(_text(_mutate(data, TREES[source])), encoding="utf-8")
    RAN["protocol"] += 1
    with recording() as writes:
        try:
            protocol = load_protocol(source.stem, (folder / "protocols", PROTOCOLS_DIR))
        except SuiteError as err:
            _refused_properly(err, [path])
            OUTCOMES["refused"] += 1
            protocol = None
    assert writes == [], writes
    if protocol is not None:
        OUTCOMES["loaded"] += 1
        assert res.safe_name(protocol.name) == protocol.name
        work = scratch / "out" / "work_dirs"
        assert work_path(work, "smoke", protocol.name).resolve().parent == (work / "smoke").resolve()


def test_the_fuzz_ran_its_examples(record_property, capsys):
    """Runs after the two properties (file order): how many examples ran, as a line of
    the test report (and properties of the JUnit XML)."""
    record_property("fuzz_suite_examples", RAN["suite"])
    record_property("fuzz_protocol_examples", RAN["protocol"])
    line = (f"fuzz: {RAN['suite']} suite and {RAN['protocol']} protocol examples "
            f"({OUTCOMES['loaded']} loaded, {OUTCOMES['refused']} refused with a SuiteError; "
            f"HRBENCH_FUZZ_EXAMPLES={EXAMPLES})")
    with capsys.disabled():             # shown in every run, not only with -s
        print(f"\n{line}")
    assert RAN["suite"] >= min(EXAMPLES, 1) and RAN["protocol"] >= min(EXAMPLES, 1)
