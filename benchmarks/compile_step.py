"""Eager vs compiled updates (train.compile, lightning_modules/updates.py) per trial, through the harness
(trainer.fit as run_trial sets it up): steady-state milliseconds per generator iteration, the one-off cost of
compiling or capturing (the first `--skip` iterations minus as many steady ones: in the process's first compiled
run with an empty code cache, and the median over runs, which reuse compiled code of the same shapes), and how far the losses
after the window are from eager's. On CPU `on` means torch.compile (inductor); on CUDA, CUDA graphs.

Runs are interleaved (eager, compiled, compiled, eager, ...); the speedup is the median over repeats of
eager / compiled of adjacent runs.

    python -m benchmarks.compile_step                                   # CPU: ring8 and the MLP, gan and wgan
    python -m benchmarks.compile_step --device cuda --cases ring8,quick_dcgan16,dcgan32,dcgan64
"""
from __future__ import annotations

import os
import tempfile

# a fresh code cache, so the first compiled run pays what a sweep worker's first trial pays (set before torch loads)
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="bench_inductor_"))

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from benchmarks import common
from benchmarks.common import emit, interleaved, machine, make_cfg, median, paired_ratios, rnd, time_lightning


def measure(case: str, loss: str, args) -> dict:
    cfgs = {mode: make_cfg(case, loss, args.skip + args.iters + 1, warmup=args.warmup, train={"compile": mode})
            for mode in ("off", "on")}
    runs = interleaved({m: (lambda m=m: time_lightning(cfgs[m], 0, args.skip + args.iters, args.device)) for m in cfgs},
                       args.repeats)
    steady = {m: [median(w.wall[args.skip:]) for w in ws] for m, ws in runs.items()}
    # one-off cost: the first `skip` iterations beyond what as many steady iterations take
    first = {m: [sum(w.wall[:args.skip]) - args.skip * median(w.wall[args.skip:]) for w in ws] for m, ws in runs.items()}
    last = {m: ws[0].last for m, ws in runs.items()}
    rel = max(abs(a - b) / max(abs(a), 1e-6) for a, b in zip(last["off"], last["on"]))
    same_runs = all(w.last == runs["on"][0].last for w in runs["on"])  # the compiled path repeats itself
    eager_ms, on_ms = median(steady["off"]) * 1e3, median(steady["on"]) * 1e3
    return {"case": case, "loss": loss, "batch": cfgs["on"].train.batch_size, "mode": runs["on"][0].mode,
            "iters": args.iters, "skip": args.skip, "repeats": args.repeats,
            "eager_ms": rnd(eager_ms), "compiled_ms": rnd(on_ms),
            "speedup": rnd(median(paired_ratios(steady["off"], steady["on"]))),
            "eager_gen_it_per_s": rnd(1e3 / eager_ms), "compiled_gen_it_per_s": rnd(1e3 / on_ms),
            "one_off_first_s": rnd(first["on"][0]), "one_off_s": rnd(median(first["on"])),
            "eager_one_off_s": rnd(median(first["off"])),
            "loss_rel_diff": rnd(rel), "compiled_repeatable": same_runs, "load_avg_1m": common.load_average()}


def parse(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.compile_step", description=__doc__.split("\n")[0])
    p.add_argument("--cases", default="ring8,mlp_mnist5k")
    p.add_argument("--losses", default="gan,wgan")
    p.add_argument("--device", default="cpu")
    p.add_argument("--iters", type=int, default=20, help="timed steady-state generator iterations per run")
    p.add_argument("--skip", type=int, default=6, help="first iterations (compilation, capture) not in the steady state")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", action="store_true", help="keep the WGAN warm-up schedule (100 critic updates early)")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse(argv)
    base = {"benchmark": "compile_step", "machine": machine(), "command": common.command(), "device": args.device}
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        out = base | {"status": "not measured yet", "reason": "no CUDA device on this machine"}
        emit(out)
        return out
    common.quiet_lightning()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    rows = []
    for c in args.cases.split(","):
        for loss in args.losses.split(","):
            rows.append(measure(c, loss, args))
            print("row " + json.dumps(rows[-1]), flush=True)  # a caller with a time limit keeps finished rows
    out = base | {"status": "measured", "threads": args.threads, "results": rows,
                  "seconds": round(time.perf_counter() - t0, 1)}
    emit(out)
    return out


if __name__ == "__main__":
    main()
