"""On a GPU: time per generator iteration of dcgan 64x64, batch 64 (the paper's setting), through the
harness (trainer.fit, steady state) and the plain loop, and the trials-per-device choice: aggregate
generator iterations per second with k concurrent trial processes on one GPU (k = 1, 2, 4), which is
what `python -m study.sweep --trials-per-device k` does.

Without CUDA it prints status 'not measured yet' and exits 0.

    python -m benchmarks.gpu
    python -m benchmarks.gpu --losses wgan --iters 50 --k 1,2,3,4
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch

from benchmarks import common
from benchmarks.common import REPO, emit, machine, make_cfg, median, paired_ratios, rnd

_CHILD = r"""
import json, sys, time, torch
from benchmarks.common import dataset, make_cfg, time_lightning, quiet_lightning
quiet_lightning()
torch.set_num_threads(int(sys.argv[4]))
case, loss, iters, device = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[5]
cfg = make_cfg(case, loss, 5 + iters + 1)
torch.zeros(1, device=device); dataset(cfg)  # CUDA context and data before the start line
print("ready", flush=True)
sys.stdin.readline()  # all k start together
w = time_lightning(cfg, 5, iters, device=device)
print(json.dumps({"s_per_iter": w.per_iter()["wall"]}), flush=True)
"""


def concurrent(k: int, case: str, loss: str, iters: int, threads: int, device: str = "cuda:0") -> dict:
    """k processes, each training the same trial on the one GPU, started together once every one has
    its CUDA context and data; aggregate generator iterations per second = sum over processes of
    1 / (its steady-state seconds per iteration)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = [subprocess.Popen([sys.executable, "-c", _CHILD, case, loss, str(iters), str(threads), device], cwd=REPO,
                              env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(k)]
    for p in procs:  # wait until every process has its CUDA context and data
        while (line := p.stdout.readline()) and line.strip() != "ready":
            pass
    for p in procs:
        try:
            p.stdin.write("go\n")
            p.stdin.flush()
        except BrokenPipeError:  # it died before 'ready': its output says why
            pass
    outs = []
    for p in procs:
        so, _ = p.communicate()
        try:
            outs.append(json.loads(so.strip().splitlines()[-1]))
        except (IndexError, json.JSONDecodeError):
            return {"k": k, "error": (so.strip().splitlines() or ["no output"])[-1]}
    per = [o["s_per_iter"] for o in outs]
    return {"k": k, "s_per_iter_each": [rnd(x) for x in per], "iters_per_s_total": rnd(sum(1 / x for x in per))}


def parse(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.split("\n")[0])
    p.add_argument("--case", default="dcgan64")
    p.add_argument("--losses", default="wgan,gan")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--k", default="1,2,4", help="trials per device to compare")
    p.add_argument("--threads", type=int, help="torch CPU threads per process (default cores // max k)")
    p.add_argument("--device", default="cuda:0", help=argparse.SUPPRESS)  # cpu: a dry run of the code path
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse(argv)
    base = {"benchmark": "gpu", "machine": machine(), "command": common.command()}
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        out = base | {"status": "not measured yet", "reason": "no CUDA device on this machine"}
        emit(out)
        return out
    from benchmarks.common import interleaved, time_lightning, time_plain
    common.quiet_lightning()
    ks = [int(k) for k in args.k.split(",")]
    threads = args.threads or max(1, (os.cpu_count() or 1) // max(ks))
    torch.set_num_threads(threads)
    torch.backends.cudnn.benchmark = False  # as run_trial leaves it
    t0 = time.perf_counter()
    rows = []
    for loss in args.losses.split(","):
        cfg = make_cfg(args.case, loss, 5 + args.iters + 1)
        runs = interleaved({"plain": lambda: time_plain(cfg, 5, args.iters, args.device),
                            "lightning": lambda: time_lightning(cfg, 5, args.iters, args.device)}, args.repeats)
        wl = [w.per_iter()["wall"] for w in runs["lightning"]]
        wp = [w.per_iter()["wall"] for w in runs["plain"]]
        rows.append({"case": args.case, "loss": loss, "batch": cfg.train.batch_size,
                     "lightning_ms_per_gen_iter": rnd(median(wl) * 1e3), "plain_ms_per_gen_iter": rnd(median(wp) * 1e3),
                     "ratio": rnd(median(paired_ratios(wl, wp)))})
    per_device = [concurrent(k, args.case, "wgan", args.iters, threads, args.device) for k in ks]
    ok = [r for r in per_device if "iters_per_s_total" in r]
    best = max(ok, key=lambda r: r["iters_per_s_total"]) if ok else None
    out = base | {"status": "measured", "device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else args.device, "threads": threads,
                  "results": rows, "trials_per_device": per_device,
                  "best_trials_per_device": best["k"] if best else None,
                  "seconds": round(time.perf_counter() - t0, 1)}
    emit(out)
    return out


if __name__ == "__main__":
    main()
