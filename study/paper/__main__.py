"""python -m study.paper [--figure N ...] [--scale quick|full] [--out reports/paper] [--runs runs/paper-<scale>]

Reproduce the WGAN paper's figures: run (or reuse) the sweeps each figure needs, then build every figure's PNG
and CSV and its FIGURES.md entry. Exit code: 0 when every figure was built from completed runs, 1 when some
trial failed or a figure could not be built, 2 for bad input (one line on stderr; e.g. the LSUN folder of the
full scale is missing), 130 when interrupted (run the same command again: finished trials are reused).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional

from study.cli import ArgumentParser
from study.cli import run as run_cli
from study.errors import UserError
from study.paper.plan import FIGURES, IMAGE_SWEEPS, SCALES


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    p = ArgumentParser(prog="python -m study.paper", description=" ".join(__doc__.split("\n\n")[1].split()))
    p.add_argument("--figure", nargs="+", metavar="N",
                   help=f"figures to build (default: all): {', '.join(FIGURES)} (4.2: Adam vs RMSProp)")
    p.add_argument("--scale", choices=SCALES, default="quick",
                   help="quick: mnist5k + toys on CPU, minutes; full: the paper's settings (LSUN 64x64), GPUs")
    p.add_argument("--out", type=Path, default=Path("reports/paper"),
                   help="figures, CSVs and FIGURES.md (not the runs: see --runs)")
    p.add_argument("--runs", type=Path, help="where the sweeps write, whatever --out is (default runs/paper-<scale> "
                                             "under the current directory)")
    p.add_argument("--data-root", help="folder of LSUN bedroom images for the image sweeps (sets base.data.root)")
    p.add_argument("--no-run", action="store_true", help="build figures from existing runs only; run no sweep")
    p.add_argument("--workers", type=int, help="worker processes per sweep (default: study.sweep's)")
    p.add_argument("--devices", default="auto", help="passed to study.sweep: auto | cpu | cuda:0,cuda:1")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error instead of one line")
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
        rc = sweep.main(argv + (["--debug"] if args.debug else []))
        walls[name] = time.perf_counter() - t0
        if rc not in (0, 1):  # bad input, an interrupt: the sweep printed its one line
            return rc, walls
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


def check_data(names: list[str], args: argparse.Namespace) -> None:
    """The sweeps' data, before any runs: a missing folder names the spec and says how to point at it."""
    from study.data import DataError, check_available
    from study.paper.plan import sweep_file, sweep_sets
    from study.spec import load_spec
    for name in names:
        spec = sweep_file(name)
        trials = load_spec(spec, sweep_sets(args.scale, name, args.data_root))[1]
        for data in {t.config.data.model_dump_json(): t.config.data for t in trials}.values():
            try:
                check_available(data)
            except DataError as e:
                hint = (f"; pass --data-root DIR (a folder of LSUN bedroom images) for --scale {args.scale}"
                        if name in IMAGE_SWEEPS and not args.data_root else "")
                raise UserError(f"python -m study.paper: {spec}: {e}{hint}") from None


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    return run_cli("python -m study.paper", lambda: paper(args, argv), args.debug)


def paper(args: argparse.Namespace, argv: Optional[list[str]]) -> int:
    from study.io import ensure_dir
    from study.paper.common import PaperError
    from study.paper.figures_md import load_entries, make_entry, save_entry, write_markdown
    from study.paper.plan import resolve_figures, runs_dir, sweep_file, sweep_sets
    try:
        figures = resolve_figures(args.figure)
    except ValueError as e:
        raise UserError(f"python -m study.paper: error: --figure: {e}") from None
    if args.workers is not None and args.workers < 1:
        raise UserError(f"python -m study.paper: error: --workers: must be at least 1 (got {args.workers})")
    t_start = time.perf_counter()
    runs_root = runs_dir(args.scale, args.runs)
    names = list(dict.fromkeys(s for f in figures for s in FIGURES[f].sweeps))
    if not args.no_run:
        check_data(names, args)
        ensure_dir(runs_root, "--runs" if args.runs else "runs directory", "choose one with --runs")
    ensure_dir(args.out, "--out")
    rc, walls = (0, {}) if args.no_run else run_sweeps(names, args, runs_root)
    if rc not in (0, 1):
        return rc  # the sweep printed its one-line reason (bad spec, interrupted, ...)
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
