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

SATURATED = 0.9  # a k whose total throughput is within 10% of the best counts as saturating the GPU

_CHILD = r"""
import json, sys, time, torch
from benchmarks.common import dataset, make_cfg, time_lightning, quiet_lightning
quiet_lightning()
torch.set_num_threads(int(sys.argv[4]))
case, loss, iters, device, compile_ = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[5], sys.argv[6]
cfg = make_cfg(case, loss, 5 + iters + 1, train={"compile": compile_})
torch.zeros(1, device=device); dataset(cfg)  # CUDA context and data before the start line
print("ready", flush=True)
sys.stdin.readline()  # all k start together
w = time_lightning(cfg, 5, iters, device=device)
print(json.dumps({"s_per_iter": w.per_iter()["wall"]}), flush=True)
"""


class UtilSampler:
    """GPU utilisation (percent of time a kernel ran, as nvidia-smi reports it) sampled every 100 ms
    while a block runs; mean and max of the samples. Empty where nvidia-smi is absent."""

    def __enter__(self):
        try:
            self.proc = subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits",
                                          "-lms", "100"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        except OSError:
            self.proc = None
        return self

    def __exit__(self, *exc):
        self.util, self.mem = [], []
        if self.proc is not None:
            self.proc.terminate()
            for line in self.proc.communicate()[0].splitlines():
                try:
                    u, m = (float(v) for v in line.split(","))
                except ValueError:
                    continue
                self.util.append(u)
                self.mem.append(m)

    def summary(self) -> dict:
        if not self.util:
            return {}
        return {"gpu_util_mean_pct": rnd(sum(self.util) / len(self.util)), "gpu_util_max_pct": max(self.util),
                "gpu_mem_max_mib": max(self.mem), "util_samples": len(self.util)}


def concurrent(k: int, case: str, loss: str, iters: int, threads: int, device: str = "cuda:0",
               compile_: str = "off", timeout: float | None = None) -> dict:
    """k processes, each training the same trial on the one GPU, started together once every one has
    its CUDA context and data; aggregate generator iterations per second = sum over processes of
    1 / (its steady-state seconds per iteration)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    procs = [subprocess.Popen([sys.executable, "-c", _CHILD, case, loss, str(iters), str(threads), device, compile_],
                              cwd=REPO,
                              env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(k)]
    for p in procs:  # wait until every process has its CUDA context and data
        while (line := p.stdout.readline()) and line.strip() != "ready":
            pass
    outs = []
    with UtilSampler() as util:
        for p in procs:
            try:
                p.stdin.write("go\n")
                p.stdin.flush()
            except BrokenPipeError:  # it died before 'ready': its output says why
                pass
        for p in procs:
            try:
                so, _ = p.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                so = p.communicate()[0] + f"\ntimed out after {timeout} s"
            try:
                outs.append(json.loads(so.strip().splitlines()[-1]))
            except (IndexError, json.JSONDecodeError):
                outs.append({"error": (so.strip().splitlines() or ["no output"])[-1]})
    if any("error" in o for o in outs):
        return {"k": k, "case": case, "error": next(o["error"] for o in outs if "error" in o)}
    per = [o["s_per_iter"] for o in outs]
    return {"k": k, "case": case, "s_per_iter_each": [rnd(x) for x in per],
            "iters_per_s_total": rnd(sum(1 / x for x in per))} | util.summary()


def sweep_wall(k: int, spec: str = "sweeps/quick.yaml") -> dict:
    """Wall time of a whole sweep (fresh output directory, real-statistics cache kept warm by the
    first call) with k trials per GPU: the end-to-end figure the per-iteration numbers predict."""
    import tempfile
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "study.sweep", spec, "--out", d, "--trials-per-device", str(k)],
                              cwd=REPO, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t
    return {"spec": spec, "trials_per_device": k, "wall_s": rnd(wall), "rc": proc.returncode,
            "last_line": (proc.stderr.strip().splitlines() or [""])[-1]}


def parse(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.split("\n")[0])
    p.add_argument("--case", default="dcgan64")
    p.add_argument("--losses", default="wgan,gan")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--k", default="1,2,4,8", help="trials per device to compare")
    p.add_argument("--share-cases", default="quick_dcgan16,dcgan64",
                   help="cases whose concurrent trials share the GPU (small quick-sweep trials, and the paper's size)")
    p.add_argument("--sweep-k", default="", help="also time the quick sweep end to end with these trials per device")
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
    for loss in filter(None, args.losses.split(",")):
        cfg = make_cfg(args.case, loss, 5 + args.iters + 1)
        runs = interleaved({"plain": lambda: time_plain(cfg, 5, args.iters, args.device),
                            "lightning": lambda: time_lightning(cfg, 5, args.iters, args.device)}, args.repeats)
        wl = [w.per_iter()["wall"] for w in runs["lightning"]]
        wp = [w.per_iter()["wall"] for w in runs["plain"]]
        rows.append({"case": args.case, "loss": loss, "batch": cfg.train.batch_size,
                     "lightning_ms_per_gen_iter": rnd(median(wl) * 1e3), "plain_ms_per_gen_iter": rnd(median(wp) * 1e3),
                     "ratio": rnd(median(paired_ratios(wl, wp)))})
    per_device = [concurrent(k, case, "wgan", args.iters, threads, args.device)
                  for case in args.share_cases.split(",") for k in ks]
    best = {}
    for case in args.share_cases.split(","):
        ok = [r for r in per_device if r["case"] == case and "iters_per_s_total" in r]
        if ok:  # the smallest k within 10% of the best total: more processes cost memory for nothing
            top = max(r["iters_per_s_total"] for r in ok)
            best[case] = min(r["k"] for r in ok if r["iters_per_s_total"] >= SATURATED * top)
    sweeps = [sweep_wall(int(k)) for k in filter(None, args.sweep_k.split(","))]
    out = base | {"status": "measured", "quick_sweep": sweeps, "device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else args.device, "threads": threads,
                  "results": rows, "trials_per_device": per_device,
                  "best_trials_per_device": best,
                  "seconds": round(time.perf_counter() - t0, 1)}
    emit(out)
    return out


if __name__ == "__main__":
    main()
