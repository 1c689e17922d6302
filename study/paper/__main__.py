"""python -m study.paper [--figure N ...] [--scale quick|full] [--out reports/paper]

Reproduce the WGAN paper's figures: run (or reuse) the sweeps each figure needs, then build every figure's PNG
and CSV and its FIGURES.md entry. Exit code: 0 when every figure was built from completed runs, 1 when some
trial failed or a figure could not be built, 2 for bad input (one line on stderr; e.g. the LSUN folder of the
full scale is missing).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional

from study.paper.plan import FIGURES, SCALES


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    p = _Parser(prog="python -m study.paper", description=" ".join(__doc__.split("\n\n")[1].split()))
    p.add_argument("--figure", nargs="+", metavar="N",
                   help=f"figures to build (default: all): {', '.join(FIGURES)} (4.2: Adam vs RMSProp)")
    p.add_argument("--scale", choices=SCALES, default="quick",
                   help="quick: mnist5k + toys on CPU, minutes; full: the paper's settings (LSUN 64x64), GPUs")
    p.add_argument("--out", type=Path, default=Path("reports/paper"), help="figures, CSVs and FIGURES.md")
    p.add_argument("--runs", type=Path, help="where the sweeps write (default runs/paper-<scale>)")
    p.add_argument("--data-root", help="folder of LSUN bedroom images for the image sweeps (sets base.data.root)")
    p.add_argument("--no-run", action="store_true", help="build figures from existing runs only; run no sweep")
    p.add_argument("--workers", type=int, help="worker processes per sweep (default: study.sweep's)")
    p.add_argument("--devices", default="auto", help="passed to study.sweep: auto | cpu | cuda:0,cuda:1")
    return p.parse_args(argv)


def run_sweeps(names: list[str], args: argparse.Namespace, runs_root: Path) -> tuple[int, dict[str, float]]:
    """Run each sweep (completed trials are skipped by the runner). Returns (worst exit code, wall per sweep)."""
    from study import sweep
    from study.paper.plan import sweep_file, sweep_sets
    worst, walls = 0, {}
    for name in names:
        argv = [str(sweep_file(name)), "--out", str(runs_root / name), "--devices", args.devices]
        for s in sweep_sets(args.scale, name, args.data_root):
            argv += ["--set", s]
        if args.workers:
            argv += ["--workers", str(args.workers)]
        t0 = time.perf_counter()
        rc = sweep.main(argv)
        walls[name] = time.perf_counter() - t0
        if rc == 2:
            return 2, walls
        worst = max(worst, rc)
    return worst, walls


def build(fig_id: str, args: argparse.Namespace, runs_root: Path) -> tuple[Path, Path, str, float]:
    fig = FIGURES[fig_id]
    t0 = time.perf_counter()
    if fig.sweeps:
        png, csv = fig.build([runs_root / s for s in fig.sweeps], args.out)
    else:
        png, csv = fig.build(args.out)
    return png, csv, fig.describe(csv), time.perf_counter() - t0


def command_line(fig_id: str, args: argparse.Namespace) -> str:
    parts = ["python -m study.paper", f"--figure {fig_id}", f"--scale {args.scale}", f"--out {args.out}"]
    if args.runs:
        parts.append(f"--runs {args.runs}")
    if args.data_root:
        parts.append(f"--data-root {args.data_root}")
    return " ".join(parts)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    from study.paper.common import PaperError
    from study.paper.figures_md import load_entries, make_entry, save_entry, write_markdown
    from study.paper.plan import resolve_figures, runs_dir, sweep_file, sweep_sets
    try:
        figures = resolve_figures(args.figure)
    except ValueError as e:
        print(f"python -m study.paper: error: --figure: {e}", file=sys.stderr)
        return 2
    t_start = time.perf_counter()
    runs_root = runs_dir(args.scale, args.runs)
    names = list(dict.fromkeys(s for f in figures for s in FIGURES[f].sweeps))
    rc, walls = (0, {}) if args.no_run else run_sweeps(names, args, runs_root)
    if rc == 2:
        return 2  # the sweep printed its one-line reason (bad spec, missing data folder, ...)
    order = list(FIGURES)
    built, problems = [], []
    for f in figures:
        label = "§4.2" if f == "4.2" else f"Fig. {f}"
        try:
            png, csv, sentence, secs = build(f, args, runs_root)
        except PaperError as e:
            problems.append(f"{label}: {e}")
            print(f"paper: {label}: not built: {e}", file=sys.stderr)
            continue
        sweeps = [(sweep_file(s), runs_root / s, sweep_sets(args.scale, s, args.data_root))
                  for s in FIGURES[f].sweeps]
        save_entry(args.out, make_entry(FIGURES[f], args.scale, png, csv, args.out, command_line(f, args), sweeps,
                                        sentence, secs), order)
        built.append(f)
        print(f"paper: {label}: {png} ({secs:.1f} s)", file=sys.stderr)
    wall = time.perf_counter() - t_start
    summary = {"command": "python -m study.paper " + " ".join(argv if argv is not None else sys.argv[1:]),
               "scale": args.scale, "figures built": ", ".join(built) or "none",
               "wall time": f"{wall:.0f} s ({wall / 60:.1f} min), sweeps: "
                            + (", ".join(f"{k} {v:.0f} s" for k, v in walls.items()) or "none run"),
               "ended": time.strftime("%Y-%m-%d %H:%M:%S")}
    if problems:
        summary["not built"] = "; ".join(problems)
    if rc:
        summary["sweeps"] = "some trials failed (see the sweeps' results.csv)"
    md = write_markdown(args.out, load_entries(args.out), order, summary)
    print(f"paper: {len(built)}/{len(figures)} figures in {wall:.0f} s -> {md}", file=sys.stderr)
    return 1 if (problems or rc) else 0


if __name__ == "__main__":
    sys.exit(main())
