"""CLI: python -m study.report RUN_DIR [--out DIR]. Errors are one line on stderr with the exit codes of
study/cli.py (2: no such run directory, no completed trial, an unwritable --out)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from study.cli import ArgumentParser
from study.cli import run as run_cli
from study.errors import UserError


def report(args: argparse.Namespace) -> int:
    from study.report import ReportError, build_report
    try:
        out = build_report(args.run_dir, args.out)
    except ReportError as e:
        raise UserError(f"report: {e}") from None
    print(f"report: {out / 'REPORT.md'} and {out / 'report.html'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = ArgumentParser(prog="python -m study.report", description="Turn a sweep's run directory into a comparison report.")
    ap.add_argument("run_dir", type=Path, help="the sweep's directory (runs/<sweep name>)")
    ap.add_argument("--out", type=Path, default=None,
                    help="output directory (default: reports/<sweep name>, name from sweep.yaml or RUN_DIR)")
    ap.add_argument("--debug", action="store_true", help="show the traceback of an error instead of one line")
    args = ap.parse_args(argv)
    return run_cli("python -m study.report", lambda: report(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
