"""Comparison report of a sweep: `python -m study.report RUN_DIR [--out reports/<name>]`.

`build_report(run_dir, out_dir=None) -> Path` writes REPORT.md, a self-contained report.html,
verdicts.json, tables/*.csv and figures/* (see docs/run-layout.md for what it reads).
"""
from study.report.build import build_report
from study.report.load import ReportError

__all__ = ["build_report", "ReportError"]
