"""CLI: python -m study.report RUN_DIR [--out DIR]. User errors are one line on stderr, exit 2."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m study.report",
                                 description="Turn a sweep's run directory into a comparison report.")
    ap.add_argument("run_dir", type=Path, help="the sweep's directory (runs/<sweep name>)")
    ap.add_argument("--out", type=Path, default=None,
                    help="output directory (default: reports/<sweep name>, name from sweep.yaml or RUN_DIR)")
    args = ap.parse_args(argv)
    from study.report import ReportError, build_report
    try:
        out = build_report(args.run_dir, args.out)
    except ReportError as e:
        print(f"report: {e}", file=sys.stderr)
        return 2
    print(f"report: {out / 'REPORT.md'} and {out / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
