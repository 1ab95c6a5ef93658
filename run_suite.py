#!/usr/bin/env python
"""Run one or more paper-table suites: ``python run_suite.py suites/lite_hrnet_table6.yaml``."""
import sys

from bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
