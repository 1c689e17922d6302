"""Run every benchmark (each in its own process, one JSON object each) and write benchmarks/RESULTS.md.

    python -m benchmarks.run                          # all, default settings
    python -m benchmarks.run --only step_overhead,flops
    python -m benchmarks.run --wait-load 1.0          # before each benchmark, wait (up to --wait-max s) for a quiet machine
    python -m benchmarks.run --render                 # rewrite RESULTS.md from benchmarks/results.json

Results of the last run of each benchmark are kept in benchmarks/results.json, so `--only` updates
part of RESULTS.md and keeps the rest (each section says when and under which load it was measured).
Errors are one line on stderr with the exit codes of study/cli.py (2: bad input, 130: interrupted).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import REPO, load_average
from benchmarks.render import render
from study.cli import ArgumentParser
from study.cli import run as run_cli
from study.errors import UserError
from study.io import write_text

HERE = Path(__file__).resolve().parent
RESULTS_JSON = HERE / "results.json"
RESULTS_MD = HERE / "RESULTS.md"

# name -> (module, default arguments); the module's own defaults otherwise
BENCHMARKS: dict[str, tuple[str, list[str]]] = {
    "step_overhead": ("step_overhead", []),
    "data_path": ("data_path", []),
    "flops": ("flops", []),
    "flops_2threads": ("flops", ["--threads", "2"]),
    "fanout": ("fanout", []),
    "fanout_long": ("fanout", ["--gen-iters", "600", "--warmup", "--no-startup"]),
    "eval_fraction": ("eval_fraction", []),
    "profile_sweep": ("profile_sweep", []),
    "gpu": ("gpu", []),
    "compile_cpu": ("compile_step", []),
    "gpu_capture": ("gpu_capture", []),
}


def wait_for_quiet(limit: float, max_wait: float) -> float:
    t0 = time.time()
    while load_average() >= limit and time.time() - t0 < max_wait:
        time.sleep(15)
    return load_average()


def run_one(name: str, extra: list[str]) -> dict:
    module, default = BENCHMARKS[name]
    cmd = [sys.executable, "-m", f"benchmarks.{module}", *default, *extra]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    load0 = load_average()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.startswith("{")]
    try:
        out = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        out = {"benchmark": name, "error": (proc.stderr.strip().splitlines() or ["no output"])[-1], "rc": proc.returncode}
    out["_run"] = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "wall_s": round(time.perf_counter() - t0, 1),
                   "load_avg_1m_before": load0, "load_avg_1m_after": load_average(),
                   "command": " ".join(["python -m", f"benchmarks.{module}", *default, *extra]).strip()}
    return out


def read_json_object(path: Path, prefix: str = "", last_line: bool = False) -> dict:
    """The JSON object in `path` (or its last line starting with '{'); one-line UserError otherwise."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as e:
        raise UserError(f"{prefix}{path}: cannot read ({e.strerror})") from None
    except UnicodeDecodeError:
        raise UserError(f"{prefix}{path}: not UTF-8 text") from None
    lines = [ln for ln in text.splitlines() if ln.startswith("{")] if last_line else [text]
    try:
        obj = json.loads(lines[-1])
    except (IndexError, ValueError):
        obj = None
    if not isinstance(obj, dict):
        raise UserError(f"{prefix}{path}: no JSON object" + (" line (the output of a benchmark, e.g. "
                        "python -m benchmarks.gpu > gpu.json)" if last_line else "; restore it with git checkout"))
    return obj


def parse(argv=None):
    p = ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    p.add_argument("--only", help=f"comma list of {', '.join(BENCHMARKS)}")
    p.add_argument("--wait-load", type=float, help="before each benchmark wait until the 1-minute load is below this")
    p.add_argument("--wait-max", type=float, default=1800, help="longest wait for a quiet machine, seconds")
    p.add_argument("--render", action="store_true", help="only rewrite RESULTS.md from results.json")
    p.add_argument("--merge", action="append", default=[], metavar="NAME=FILE",
                   help="take one benchmark's JSON output from a file (e.g. gpu measured on a lent GPU machine)")
    p.add_argument("--args", action="append", default=[], metavar="NAME=ARGS",
                   help="extra arguments for one benchmark, e.g. --args 'step_overhead=--repeats 5'")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error instead of one line")
    return p.parse_args(argv)


def check_name(name: str, flag: str) -> None:
    if name not in BENCHMARKS:
        raise UserError(f"{flag}: unknown benchmark '{name}' (known: {', '.join(BENCHMARKS)})")


def main(argv=None) -> int:
    args = parse(argv)
    return run_cli("python -m benchmarks.run", lambda: bench(args), args.debug)


def bench(args: argparse.Namespace) -> int:
    results = read_json_object(RESULTS_JSON) if RESULTS_JSON.exists() else {}
    for m in args.merge:
        name, _, path = m.partition("=")
        check_name(name, "--merge")
        results[name] = read_json_object(Path(path), f"--merge {name}: ", last_line=True) | {
            "_run": {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "merged_from": path}}
        write_text(RESULTS_JSON, json.dumps(results, indent=1) + "\n")
        args.render = True
    if not args.render:
        extra = {}
        for a in args.args:
            name, _, rest = a.partition("=")
            check_name(name, "--args")
            extra[name] = rest.split()
        names = args.only.split(",") if args.only else list(BENCHMARKS)
        for name in names:
            check_name(name, "--only")
        for name in names:
            if args.wait_load:
                wait_for_quiet(args.wait_load, args.wait_max)
            print(f"[benchmarks] {name} (load {load_average()}) ...", file=sys.stderr, flush=True)
            new = run_one(name, extra.get(name, []))
            if results.get(name, {}).get("status") == "measured" and new.get("status") == "not measured yet":
                print(f"[benchmarks] {name}: {new.get('reason')}; keeping the figures measured on "
                      f"{results[name]['machine'].get('cuda')}", file=sys.stderr)
                continue
            results[name] = new
            print(json.dumps(results[name]), flush=True)
            write_text(RESULTS_JSON, json.dumps(results, indent=1) + "\n")
    write_text(RESULTS_MD, render(results))
    print(f"[benchmarks] wrote {RESULTS_MD.relative_to(REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
