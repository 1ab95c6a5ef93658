"""Re-render a report only when its inputs changed.

A suite page (``<out>/<suite>.html`` with ``<out>/<suite>/*.png`` and ``summary.json``)
depends on three things: the suite (its file, with the content of the protocols it
uses), the records it shows (every profile's), and the reporter's own code and
templates. Their hash is stored in ``<out>/<suite>/.fingerprint`` after a render; the next
render is skipped when the hash matches and every output it wrote is still there.
The index (``<out>/index.html``) likewise carries ``<out>/.index.fingerprint``: the hash
of every page's summary.json and of the suite files it lists, so it is drawn again only
when some suite's summary (or the set of suites) changed.
"""
from __future__ import annotations

import hashlib
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, NamedTuple

import jinja2
import matplotlib

from ..paths import report_path
from ..results import atomic_write_json, safe_name
from ..suite import Suite

FINGERPRINT_FILE = ".fingerprint"
INDEX_FINGERPRINT_FILE = ".index.fingerprint"
# bump to invalidate every stored fingerprint when the scheme itself changes
FORMAT = 1

_BENCH = Path(__file__).resolve().parent.parent
# the code a page is drawn from: the reporter and templates, plus the verdict rules and
# counting conventions its tables read
CODE_FILES = ("report/*.py", "report/templates/*", "compare.py", "complexity/conventions.py")

# Fields of a result record that a warm run rewrites although nothing measured changed
# (found by running `run_suite.py suites/dpn_table1.yaml` twice on a warm measurement
# cache and diffing results/dpn_table1/*.json): when the record was written and how long
# it took. They are left out of the fingerprint, so a rewritten record with the same
# content does not draw the page again; the page then shows the time and wall time of
# the run that last changed something. Running all suites twice shows one more: a
# latency cell that a run without --latency keeps from the row's previous record cites
# that record's finished_at in its "source" ("kept from the record of <time> (commit
# c)", bench/runner/cells.py), so that time moves on every rewrite; it is blanked (the
# page does not show a cell's source). Everything else (cell values and status, model,
# protocols, commit, dirty flag, device, cpu, host, packages, status, error) counts.
VOLATILE_RECORD_FIELDS = ("started_at", "finished_at", "wall_time_s")
VOLATILE_PROVENANCE_FIELDS = ("time",)
_KEPT_SOURCE = re.compile(r"^kept from the record of .*? \(commit ")


class Rendered(NamedTuple):
    """What a cached render did: the file it is about, and whether it was (re)written."""
    path: Path
    rendered: bool

    @property
    def skipped(self) -> bool:
        return not self.rendered


def _sha(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@lru_cache(maxsize=None)
def code_fingerprint() -> str:
    """Hash of the reporter's code and templates (and the library versions drawing it)."""
    h = hashlib.sha256(f"format {FORMAT}; matplotlib {matplotlib.__version__}; "
                       f"jinja2 {jinja2.__version__}".encode())
    for pattern in CODE_FILES:
        for path in sorted(_BENCH.glob(pattern)):
            if path.is_file():
                h.update(str(path.relative_to(_BENCH)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def record_content(rec: dict) -> dict:
    """A record without the fields a rewrite changes by itself (see VOLATILE_*); the
    record's file name stays (the page shows it)."""
    out = {k: v for k, v in rec.items() if k not in VOLATILE_RECORD_FIELDS}
    if out.get("_path"):
        out["_path"] = Path(out["_path"]).name
    if isinstance(out.get("provenance"), dict):
        out["provenance"] = {k: v for k, v in out["provenance"].items()
                             if k not in VOLATILE_PROVENANCE_FIELDS}
    if isinstance(out.get("cells"), dict):
        out["cells"] = {cid: ({**c, "source": _KEPT_SOURCE.sub("kept from the record of (commit ",
                                                                c["source"])}
                              if isinstance(c, dict) and isinstance(c.get("source"), str) else c)
                        for cid, c in out["cells"].items()}
    return out


def suite_fingerprint(suite: Suite, records: Iterable[dict]) -> str:
    """Hash of everything a suite's page is drawn from. The suite enters as its loaded
    model, which holds the published values, printed digits and the content of its
    protocols (inheritance resolved), so editing a protocol file changes it too."""
    recs = sorted((record_content(r) for r in records), key=lambda r: _sha(r))
    return _sha({"code": code_fingerprint(), "suite": suite.model_dump(mode="json"),
                 "records": recs})


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def suite_report_current(suite: Suite, fingerprint: str, out_dir: Path) -> bool:
    """Whether the stored page of the suite was drawn from these inputs and is complete."""
    from .html import SUMMARY_FILE
    name = safe_name(suite.suite)
    assets = Path(out_dir) / name
    stored = _read_json(assets / FINGERPRINT_FILE)
    if stored.get("fingerprint") != fingerprint:
        return False
    outputs = [Path(out_dir) / f"{name}.html", assets / SUMMARY_FILE]
    outputs += [assets / p for p in stored.get("plots", [])]
    return all(p.is_file() for p in outputs)


def render_suite_report(suite: Suite, records: Iterable[dict], out_dir="reports",
                        force: bool = False) -> Rendered:
    """``render_suite_html`` unless the page on disk was drawn from the same inputs
    (``force`` draws it anyway)."""
    from .html import render_suite_html
    records = list(records)
    out_dir = Path(out_dir)
    name = safe_name(suite.suite)
    fp = suite_fingerprint(suite, records)
    if not force and suite_report_current(suite, fp, out_dir):
        return Rendered(out_dir / f"{name}.html", False)
    stamp = report_path(out_dir, name, FINGERPRINT_FILE)
    stamp.unlink(missing_ok=True)     # a render that fails half-way leaves no stamp
    page = render_suite_html(suite, records, out_dir)
    plots = sorted(p.name for p in (out_dir / name).glob("*.png"))
    atomic_write_json(stamp, {"fingerprint": fp, "plots": plots})
    return Rendered(page, True)


def index_fingerprint(out_dir="reports", suites_dir="suites") -> str:
    """Hash of what the index shows: every page with its summary.json, and the suite
    files (with protocols) of ``suites_dir``."""
    from .html import SUMMARY_FILE
    out_dir, suites_dir = Path(out_dir), Path(suites_dir)
    pages = {p.stem: (out_dir / p.stem / SUMMARY_FILE).read_bytes().decode(errors="replace")
             if (out_dir / p.stem / SUMMARY_FILE).is_file() else None
             for p in sorted(out_dir.glob("*.html")) if p.name != "index.html"}
    suites = {str(p.relative_to(suites_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
              for p in sorted(suites_dir.rglob("*.yaml"))} if suites_dir.is_dir() else {}
    return _sha({"code": code_fingerprint(), "pages": pages, "suites": suites})


def render_index_cached(out_dir="reports", suites_dir="suites", force: bool = False) -> Rendered:
    """``render_index`` unless no page summary (nor suite file) changed since the last."""
    from .html import render_index
    out_dir = Path(out_dir)
    path = out_dir / "index.html"
    stamp = report_path(out_dir, INDEX_FINGERPRINT_FILE)
    fp = index_fingerprint(out_dir, suites_dir)
    if not force and path.is_file() and _read_json(stamp).get("fingerprint") == fp:
        return Rendered(path, False)
    stamp.unlink(missing_ok=True)
    path = render_index(out_dir, suites_dir)
    atomic_write_json(stamp, {"fingerprint": fp})
    return Rendered(path, True)
