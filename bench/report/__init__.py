"""The reporter: published vs reproduced for each suite, as a pandas table, a terminal
table, PNG plots and HTML pages (reports/index.html + one page per suite).

Reads only suites and result records, so it imports without torch.
"""
from .cache import Rendered, render_index_cached, render_suite_report
from .html import render_index, render_suite_html
from .plots import plot_suite
from .tables import cell_verdicts, pipeline_checks, suite_table, verdict_summary
from .terminal import render_terminal

__all__ = ["suite_table", "cell_verdicts", "pipeline_checks", "verdict_summary", "render_terminal", "plot_suite",
           "render_suite_html", "render_index", "render_suite_report", "render_index_cached",
           "Rendered"]
