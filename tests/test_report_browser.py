"""The HTML reports in a real browser (headless Chromium through chromedriver): no console
errors, every image loads, a suite title holding a <script> element stays text, and the
row names of a wide table stay in view while it scrolls. Skipped, with the reason, where
Chromium, chromedriver or selenium is missing (.ci/run installs Debian's chromium and
chromium-driver where apt-get is available)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench.report import render_index, render_suite_html
from bench.suite import load_suite
from conftest import REPO

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    if not any(shutil.which(b) for b in BROWSERS):
        return "no Chromium on PATH (Debian: apt-get install chromium chromium-driver)"
    if not shutil.which("chromedriver"):
        return "no chromedriver on PATH (Debian: apt-get install chromium-driver)"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))

INJECTED = '<script>window.__hrbench_injected = 1; alert("injected")</script>'
SUITE = f"""
suite: browser_demo
paper: lite_hrnet
table: 99
title: 'Wide table {INJECTED} test'
protocols: {{coco: coco_test}}
columns:
  params: {{label: "#Params", unit: M, measure: params, tolerance: {{abs: 0.05}}}}
  coco.mflops: {{label: FLOPs, unit: M, measure: flops, protocol: coco,
                convention: lite_hrnet_paper, tolerance: {{rel: 0.03}}}}
  coco.AP: {{label: AP, measure: AP, protocol: coco, tolerance: {{abs: 1.0, side: below}},
            tolerance_std: 2}}
{''.join(f'  extra{i}: {{label: "Extra column {i}", unit: M, measure: params, gate: false}}{chr(10)}'
         for i in range(12))}rows:
  - name: Lite-HRNet-18 with a long row name that must stay visible
    model: litehrnet_18
    published: {{params: 1.1, coco.mflops: 205.2, coco.AP: 64.8}}
  - name: Lite-HRNet-30
    model: litehrnet_30
    published: {{params: 1.8, coco.mflops: 319.2, coco.AP: 67.2}}
"""


def _record(row: str, key: str, profile: str, cells: dict) -> dict:
    return {"schema_version": 1, "suite": "browser_demo", "row": row, "row_key": key,
            "profile": profile, "model": {"name": "m", "overrides": {}, "key": "m", "summary": ""},
            "cells": cells, "details": {}, "runs": {}, "status": "ok", "error": None,
            "provenance": {"commit": "abc", "dirty": False}, "finished_at": "2026-12-01T10:00:00+00:00"}


def _measured(value, unit="M", **extra):
    return {"status": "measured", "value": value, "unit": unit, **extra}


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    suites = root / "suites"
    (suites / "protocols").mkdir(parents=True)
    (suites / "protocols" / "coco_test.yaml").write_text(
        "task: pose\ndataset: coco\ninput_size: [256, 192]\nnum_joints: 17\n")
    (suites / "browser_demo.yaml").write_text(SUITE)
    suite = load_suite(suites / "browser_demo.yaml", check_models=False)
    extras = {f"extra{i}": _measured(1.0 + i) for i in range(12)}
    records = [
        _record("Lite-HRNet-18 with a long row name that must stay visible", suite.rows[0].key,
                "complexity", {"params": _measured(1.13), "coco.mflops": _measured(205.23),
                               "coco.AP": _measured(64.1, "", profile="full", n=3, std=0.4,
                                                    seeds=[0, 1, 2]), **extras}),
        _record("Lite-HRNet-30", suite.rows[1].key, "complexity",
                {"params": _measured(1.76), "coco.mflops": _measured(319.2), **extras}),
        _record("Lite-HRNet-30", suite.rows[1].key, "smoke",
                {"coco.AP": _measured(0.0, "", profile="smoke")}),
    ]
    out = root / "reports"
    page = render_suite_html(suite, records, out)
    index = render_index(out, suites)
    return {"suite": page, "index": index}


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = next(shutil.which(b) for b in BROWSERS if shutil.which(b))
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=900,800"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _load(browser, path: Path) -> list[dict]:
    """Open ``path``; the console messages of the load (errors, warnings)."""
    browser.get_log("browser")          # drop what an earlier page left
    browser.get(path.resolve().as_uri())
    assert browser.execute_script("return document.readyState") == "complete"
    return [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]


def _images(browser) -> list[dict]:
    return browser.execute_script(
        "return Array.from(document.images).map(i => ({src: i.src, complete: i.complete, "
        "width: i.naturalWidth}))")


def _no_alert(browser) -> bool:
    from selenium.common.exceptions import NoAlertPresentException
    try:
        browser.switch_to.alert
    except NoAlertPresentException:
        return True
    return False


def test_suite_page_loads_cleanly_and_the_injected_title_stays_text(browser, pages):
    assert _load(browser, pages["suite"]) == []
    images = _images(browser)
    assert len(images) >= 3                         # params, FLOPs, AP vs FLOPs
    assert all(i["complete"] and i["width"] > 0 for i in images), images
    assert browser.execute_script("return window.__hrbench_injected") is None
    assert _no_alert(browser)
    assert browser.execute_script("return document.querySelectorAll('h1 script, title script').length") == 0
    assert INJECTED in browser.find_element("tag name", "h1").text
    assert INJECTED in browser.title
    # the mean over three seeds, and the smoke run only under the pipeline checks
    table = browser.find_element("css selector", "table.results").text
    assert "64.10 ± 0.40 (n=3)" in table and "0.00" not in table.split()
    assert "0.00" in browser.find_element("css selector", "table.checks").text.split()


def test_wide_table_scrolls_in_its_box_with_the_row_names_fixed(browser, pages):
    _load(browser, pages["suite"])
    box = browser.find_element("css selector", "div.scroll")
    assert browser.execute_script("return arguments[0].scrollWidth > arguments[0].clientWidth", box)
    page_wide = browser.execute_script(
        "return document.documentElement.scrollWidth > document.documentElement.clientWidth")
    assert not page_wide                             # the page itself does not scroll sideways
    name = browser.find_element("css selector", "table.results tbody th.sticky")
    left = name.rect["x"]
    browser.execute_script("arguments[0].scrollLeft = 600", box)
    assert browser.execute_script("return arguments[0].scrollLeft", box) > 0
    assert abs(name.rect["x"] - left) < 1
    # what the name covers is not visible through it
    assert browser.execute_script(
        "const e = arguments[0], r = e.getBoundingClientRect();"
        "return document.elementFromPoint(r.left + 5, r.top + 5).closest('th') === e", name)


def test_index_loads_cleanly_and_escapes_titles(browser, pages):
    assert _load(browser, pages["index"]) == []
    assert browser.execute_script("return window.__hrbench_injected") is None
    assert _no_alert(browser)
    text = browser.find_element("tag name", "body").text
    assert INJECTED in text and "lite_hrnet" in text
    link = browser.find_element("link text", "browser_demo")
    link.click()
    assert browser.current_url.endswith("browser_demo.html")


@pytest.mark.parametrize("page", ["index.html", "lite_hrnet_table6.html"])
def test_committed_reports_load_cleanly(browser, page):
    path = REPO / "reports" / page
    assert path.is_file(), f"{path} is committed with the repository (render it with run_suite.py)"
    assert _load(browser, path) == []
    images = _images(browser)
    assert all(i["complete"] and i["width"] > 0 for i in images), images
    if page != "index.html":
        assert images


# --- markup in a suite from someone else's repository stays text (issue 29) ---------------

SCRIPT = '<script>window.__hrbench_script = 1; alert("script")</script>'
IMG = '"><img src=x onerror="window.__hrbench_img = 1; alert(1)">'
HOSTILE = f"""
suite: hostile_demo
paper: lite_hrnet
table: 98
title: {json.dumps(f"Title {SCRIPT} {IMG}")}
protocols: {{coco: coco_test}}
columns:
  params: {{label: {json.dumps(f"#Params {IMG}")}, unit: M, measure: params, tolerance: {{abs: 0.05}}}}
rows:
  - name: {json.dumps(f"Row {SCRIPT}")}
    model: litehrnet_18
    published: {{params: 1.1}}
    note: {json.dumps(f"Note {SCRIPT} {IMG}")}
  - name: {json.dumps(f"Row two {IMG}")}
    model: litehrnet_30
    published: {{params: 1.8}}
    note: {json.dumps(f"Second note {IMG}")}
"""


@pytest.fixture(scope="module")
def hostile_pages(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    suites = root / "suites"
    (suites / "protocols").mkdir(parents=True)
    (suites / "protocols" / "coco_test.yaml").write_text(
        "task: pose\ndataset: coco\ninput_size: [256, 192]\nnum_joints: 17\n")
    (suites / "hostile_demo.yaml").write_text(HOSTILE)
    suite = load_suite(suites / "hostile_demo.yaml", check_models=False)
    records = [_record(row.name, row.key, "complexity", {"params": _measured(v)})
               for row, v in zip(suite.rows, (1.13, 1.76))]
    for rec in records:
        rec["suite"] = "hostile_demo"
    out = root / "reports"
    return {"suite": render_suite_html(suite, records, out), "index": render_index(out, suites)}


@pytest.mark.parametrize("page", ["suite", "index"])
def test_script_and_onerror_markup_in_titles_notes_and_row_names_run_nothing(
        browser, hostile_pages, page):
    assert _load(browser, hostile_pages[page]) == []      # no console error: no img src=x load
    assert browser.execute_script("return [window.__hrbench_script, window.__hrbench_img]") == [None, None]
    assert _no_alert(browser)
    # no element came from the markup: no script holding it, no image with its source
    assert browser.execute_script(
        "return Array.from(document.scripts).filter(s => s.text.includes('__hrbench')).length") == 0
    assert browser.execute_script(
        "return Array.from(document.images).filter(i => i.getAttribute('src') === 'x' "
        "|| i.hasAttribute('onerror')).length") == 0
    text = browser.find_element("tag name", "body").text
    assert f"Title {SCRIPT} {IMG}" in text                 # shown as the text it is
    if page == "suite":
        assert f"Row {SCRIPT}" in text and f"Row two {IMG}" in text
        assert f"Note {SCRIPT} {IMG}" in text and f"Second note {IMG}" in text
        assert f"#Params {IMG}" in text
        assert f"Title {SCRIPT} {IMG}" in browser.title
