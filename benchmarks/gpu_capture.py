"""The device check of graph-captured updates (train.compile: on = CUDA graphs on a GPU), all in one run that
fits a short device lease: it writes one JSON object (after every part, so a run stopped at its limit keeps
what it measured) and prints it last.

Parts, in order (each skipped when too little of --budget is left; every figure is measured, projections are
labelled as such):
  preflight    the harness imports and loads its data there (else nothing else runs)
  cuda_tests   tests/test_compile.py's CUDA tests: captured losses vs eager, exact resume
  steps        benchmarks.compile_step on CUDA: ms per generator iteration eager vs captured, ring8 (mlp, batch
               256), quick_dcgan16, dcgan32, dcgan64; gan and wgan; capture cost; loss difference
  long_ring8   one ring8 WGAN trial at modes.yaml's size (MLP 4 x 512, batch 256, warm-up schedule on), captured,
               trained for up to --long-iters generator iterations or --long-s seconds; rate, and the wall
               time of 100,000 iterations (measured, or projected from the measured rate when cut short)
  quick_sweep  sweeps/quick.yaml end to end at the default packing, eager then captured; GPU utilisation
  packing      k concurrent captured quick_dcgan16 WGAN trials (k = --k): total generator iterations per second
  arch         sweeps/arch.yaml with every trial cut to --arch-iters generator iterations (captured, default
               packing); its wall time and a linear projection to the full 20,000 iterations

On the lent H200 (its image has torch and Lightning but not pydantic, mlxtend or torch-fidelity): download their
wheels here into the ignored folder .whl (pydantic, pydantic_core, annotated-types, typing-inspection,
typing_extensions, mlxtend, torch_fidelity; the versions of .venv, for Python 3.12; the device tool's README
gives the pip download line), then run with carry [".whl"] and timeout_s 480:

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl && export PYTHONPATH=/tmp/site && python3 -m benchmarks.gpu_capture --out $OUT/gpu_capture.json

    python -m benchmarks.gpu_capture --dry-run --out /tmp/gpu_capture.json  # on CPU: every part, tiny, to test the script
    python -m benchmarks.run --merge gpu_capture=FILE                      # back here: into RESULTS.md
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

from benchmarks import common
from benchmarks.common import REPO, machine, rnd
from benchmarks.gpu import UtilSampler, concurrent
from study.rundir import load_result, trial_dirs

FULL_ARCH_ITERS = 20000   # sweeps/arch.yaml's base.train.gen_iters
LONG_TARGET = 100_000     # the paper's scale for the toys

_LONG_CHILD = r"""
import json, sys, time, tempfile, torch
from pathlib import Path
import pytorch_lightning as pl
from benchmarks.common import fresh_module, lightning_fit, make_cfg, quiet_lightning
quiet_lightning()
iters, budget, device, compile_, width = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
cfg = make_cfg("ring8", "wgan", iters, warmup=True, model={"mlp_width": width}, train={"compile": compile_},
               wgan={"clip_order": "before"})
module = fresh_module(cfg, device)
marks = []

class Budget(pl.Callback):
    def on_train_start(self, trainer, m):
        marks.append((0, time.perf_counter()))
    def on_train_batch_end(self, trainer, m, *a):
        if m.gen_iter % 1000 == 0 or time.perf_counter() - marks[0][1] > budget:
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            marks.append((m.gen_iter, time.perf_counter()))
            if marks[-1][1] - marks[0][1] > budget:
                trainer.should_stop = True

with tempfile.TemporaryDirectory() as d:
    lightning_fit(cfg, module, Path(d), [Budget()], device)
(i0, t0), (i1, t1) = marks[0], marks[-1]
late = [m for m in marks if m[0] >= 1000] or marks  # past the 25 warm-up iterations and the capture
print(json.dumps({"gen_iters": i1, "wall_s": t1 - t0, "mode": module.compile_mode,
                  "steady_gen_it_per_s": (marks[-1][0] - late[0][0]) / max(marks[-1][1] - late[0][1], 1e-9),
                  "critic_iters": module.critic_iters, "steady_marks": len([m for m in marks if m[0] >= 1000])}))
"""


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
                PYTHONUNBUFFERED="1")


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def _last_json(text: str) -> dict | None:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def preflight(a) -> dict:
    code = ("import torch, study.config, study.trial, torch_fidelity; from study.data import load_dataset; "
            "from study.config import DataConfig; load_dataset(DataConfig(name='mnist5k')); "
            "print(torch.__version__, torch.cuda.is_available())")
    p = _run([sys.executable, "-c", code], a.limit)
    if p is None or p.returncode != 0:
        return {"error": "the harness does not load here: " + (
            "timed out" if p is None else (p.stderr.strip().splitlines() or ["?"])[-1])}
    return {"ok": True, "torch_cuda": p.stdout.strip()}


def cuda_tests(a) -> dict:
    p = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_compile.py",
              "-k", "cuda" if not a.dry_run else "graph_replay"], a.limit)
    if p is None:
        return {"error": f"timed out after {a.limit:.0f} s"}
    return {"rc": p.returncode, "summary": (p.stdout.strip().splitlines() or [""])[-1]}


def steps(a) -> dict:
    args = ["--device", a.device, "--cases", a.cases, "--losses", "gan,wgan", "--iters", str(a.iters),
            "--skip", "8", "--repeats", str(a.repeats), "--threads", "2"]
    try:
        p = subprocess.run([sys.executable, "-m", "benchmarks.compile_step", *args], cwd=REPO, env=_env(),
                           capture_output=True, text=True, timeout=a.limit)
        done = _last_json(p.stdout)
        if done is not None:
            return done
        stdout, why = p.stdout, (p.stderr.strip().splitlines() or ["no output"])[-1]
    except subprocess.TimeoutExpired as e:  # keep the rows it finished
        out = e.stdout or ""
        stdout, why = out.decode() if isinstance(out, bytes) else out, f"timed out after {a.limit:.0f} s"
    rows = [json.loads(line[4:]) for line in stdout.splitlines() if line.startswith("row {")]
    return {"error": why, "results": rows, "device": a.device, "threads": 2} if rows else {"error": why}


def long_ring8(a) -> dict:
    p = _run([sys.executable, "-c", _LONG_CHILD, str(a.long_iters), str(a.long_s), a.device, "on", str(a.long_width)],
             min(a.long_s + 120, a.limit))
    if p is None:
        return {"error": "timed out"}
    out = _last_json(p.stdout)
    if out is None:
        return {"error": (p.stderr.strip().splitlines() or ["no output"])[-1]}
    out["mlp_width"] = a.long_width
    if out.pop("steady_marks") < 2:  # under 2,000 iterations: no steady rate to project from
        out["wall_100k_s"], out["wall_100k_is"] = None, f"not projected: {out['gen_iters']} iterations only"
    elif out["gen_iters"] >= LONG_TARGET:
        out["wall_100k_s"], out["wall_100k_is"] = rnd(out["wall_s"]), "measured"
    else:  # what was measured, then the remaining iterations at the steady rate
        rest = (LONG_TARGET - out["gen_iters"]) / out["steady_gen_it_per_s"]
        out["wall_100k_s"], out["wall_100k_is"] = rnd(out["wall_s"] + rest), (
            f"projected: {out['gen_iters']} iterations measured in {out['wall_s']:.1f} s, the rest at the steady rate")
    return out


def sweep(spec: str, sets: list[str], timeout: float) -> dict:
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        with UtilSampler() as util:
            try:
                p = subprocess.run([sys.executable, "-m", "study.sweep", spec, "--out", d,
                                    *[x for s in sets for x in ("--set", s)]], cwd=REPO, env=_env(),
                                   capture_output=True, text=True, timeout=timeout)
                rc, last = p.returncode, (p.stderr.strip().splitlines() or [""])[-1]
            except subprocess.TimeoutExpired:
                rc, last = None, f"timed out after {timeout} s"
        wall = time.perf_counter() - t
        modes = {}
        for t in trial_dirs(Path(d)):
            m = (load_result(t)[0] or {}).get("compile", "no result")
            modes[m] = modes.get(m, 0) + 1
    return {"spec": spec, "sets": sets, "wall_s": rnd(wall), "rc": rc, "last_line": last, "compile_modes": modes,
            **util.summary()}


def quick_sweep(a) -> dict:
    sets = ["base.train.gen_iters=20", "grid.seed=[0]", "base.eval.every=10"] if a.dry_run else []
    # eager first: it also builds the cached evaluation statistics, which the captured run then finds ready
    return {mode: sweep("sweeps/quick.yaml", sets + [f"base.train.compile={mode}"], a.limit / 2)
            for mode in ("off", "on")}


def packing(a) -> dict:
    threads = max(1, (os.cpu_count() or 1) // max(a.k))
    rows = [concurrent(k, "quick_dcgan16", "wgan", a.iters * 4, threads, a.device, "on", a.limit / len(a.k))
            for k in a.k]
    ok = [r for r in rows if "iters_per_s_total" in r]
    best = None
    if ok:  # the smallest k within 10% of the best total (benchmarks.gpu's rule)
        top = max(r["iters_per_s_total"] for r in ok)
        best = min(r["k"] for r in ok if r["iters_per_s_total"] >= 0.9 * top)
    return {"case": "quick_dcgan16", "loss": "wgan", "compile": "on", "threads_per_process": threads, "rows": rows,
            "best_trials_per_device": best}


def arch(a) -> dict:
    n = a.arch_iters
    sets = [f"base.train.gen_iters={n}", f"base.train.checkpoint_every={n}", "base.eval.every=0",
            "base.train.compile=on"] + (["grid.seed=[0]", "grid.loss=[gan]", "base.eval.num_samples=200",
                                         "base.model.width=8"] if a.dry_run else [])
    out = sweep("sweeps/arch.yaml", sets, a.limit)
    if out["rc"] == 0:
        out["projected_full_s"] = rnd(out["wall_s"] * FULL_ARCH_ITERS / n)
        out["projection"] = (f"linear in generator iterations from {n} per trial: overstates per-trial fixed costs "
                             f"(start-up, final evaluation) x{FULL_ARCH_ITERS // n}, leaves out 19 of the 21 "
                             f"evaluations at eval.every 1000")
    return out


# name -> (part, the least time it needs to say anything, seconds)
PARTS: dict[str, tuple[Callable, float]] = {
    "preflight": (preflight, 10), "cuda_tests": (cuda_tests, 30), "steps": (steps, 60),
    "long_ring8": (long_ring8, 45), "quick_sweep": (quick_sweep, 60), "packing": (packing, 40), "arch": (arch, 60)}


def parse(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_capture", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, help="write the JSON here after every part")
    p.add_argument("--parts", default=",".join(PARTS))
    p.add_argument("--budget", type=float, default=400, help="seconds for all parts together (a lease is ~15 min, "
                   "the machine's start included: leave room to run again)")
    p.add_argument("--part-s", type=float, default=150, help="limit of one part's subprocess")
    p.add_argument("--cases", default="ring8,quick_dcgan16,dcgan32,dcgan64")
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--long-iters", type=int, default=LONG_TARGET)
    p.add_argument("--long-s", type=float, default=50, help="stop the long ring8 trial after this many seconds")
    p.add_argument("--long-width", type=int, default=512)
    p.add_argument("--k", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 8])
    p.add_argument("--arch-iters", type=int, default=200)
    p.add_argument("--dry-run", action="store_true", help="on CPU, tiny: checks the script, measures nothing")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    a = parse(argv)
    a.device = "cpu" if a.dry_run else "cuda"
    if a.dry_run:
        a.cases, a.iters, a.repeats, a.long_iters, a.long_s, a.long_width = "ring8", 2, 1, 300, 5, 32
        a.k, a.arch_iters = [1], 4
    out = {"benchmark": "gpu_capture", "machine": machine(), "command": common.command(),
           "status": "dry run (CPU): nothing measured" if a.dry_run else "measured", "parts": {}}
    if not a.dry_run and not torch.cuda.is_available():
        out |= {"status": "not measured yet", "reason": "no CUDA device on this machine"}
    else:
        if not a.dry_run:
            out["device"] = torch.cuda.get_device_name(0)
        t0 = time.perf_counter()
        for name in a.parts.split(","):
            fn, least = PARTS[name]
            left = a.budget - (time.perf_counter() - t0)
            if left < least:
                out["parts"][name] = {"skipped": f"{left:.0f} s of the {a.budget} s budget left, needs {least}"}
                continue
            if "error" in out["parts"].get("preflight", {}):
                out["parts"][name] = {"skipped": "preflight failed"}
                continue
            a.limit = min(a.part_s, left)  # no part runs past the budget
            print(f"[gpu_capture] {name} ({left:.0f} s of the budget left)", file=sys.stderr, flush=True)
            t = time.perf_counter()
            try:
                out["parts"][name] = fn(a) | {"part_s": round(time.perf_counter() - t, 1)}
            except Exception as e:  # one part's failure must not lose the others
                out["parts"][name] = {"error": f"{type(e).__name__}: {e}"}
            if a.out:
                a.out.write_text(json.dumps(out, indent=1, default=str) + "\n")
        out["seconds"] = round(time.perf_counter() - t0, 1)
    if a.out:
        a.out.write_text(json.dumps(out, indent=1, default=str) + "\n")
    common.emit(out)
    return out


if __name__ == "__main__":
    main()
