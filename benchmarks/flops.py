"""Distance to the physical limit: model FLOPs of one generator iteration (forward and backward of every
critic and generator update, counted with torch.utils.flop_counter.FlopCounterMode) divided by its time
through the harness (trainer.fit, steady state), as a fraction of the FLOP/s torch reaches on a large
fp32 GEMM with the same thread count, measured in the same run (before and after the model timings).
For reference, also a DCGAN critic forward+backward alone at the same batch.

A per-operator time profile of one iteration (torch.profiler) says where the rest goes.

    python -m benchmarks.flops                    # dcgan32 (wgan) and dcgan64 (gan)
    python -m benchmarks.flops --runs dcgan32:wgan,dcgan32:gan,dcgan64:wgan,dcgan64:gan --threads 2
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks import common
from benchmarks.common import PlainLoop, emit, fresh_module, machine, make_cfg, median, rnd, time_lightning


def gemm_flops_per_s(n: int, repeats: int) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        rates.append(2 * n ** 3 / (time.perf_counter() - t0))
    return median(rates)


def iteration_flops(cfg) -> tuple[int, dict[str, int]]:
    """FLOPs of one steady-state generator iteration (the plain loop does the module's math exactly;
    benchmarks.step_overhead checks the losses agree bit for bit)."""
    loop = PlainLoop(fresh_module(cfg))
    loop.gen_iter = 10 ** 6 + 1  # steady state: n_critic updates, not a warm-up iteration
    counter = FlopCounterMode(display=False)
    with counter:
        loop.iteration()
    by_op = {str(k): int(v) for k, v in counter.get_flop_counts().get("Global", {}).items()}
    return counter.get_total_flops(), by_op


def critic_alone(cfg, repeats: int) -> dict:
    """DCGAN critic forward + backward (parameter gradients) on one real batch."""
    m = fresh_module(cfg)
    x = m.real.next()

    def fb():
        m.critic.zero_grad(set_to_none=True)
        m.critic(x).mean().backward()
    counter = FlopCounterMode(display=False)
    with counter:
        fb()
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        fb()
        times.append(time.perf_counter() - t0)
    t = median(times[1:])
    return {"flops": counter.get_total_flops(), "ms": rnd(t * 1e3), "flops_per_s": counter.get_total_flops() / t}


def op_profile(cfg, top: int = 12) -> list[dict]:
    """Self CPU time by operator over one steady-state iteration of the plain loop."""
    from torch.profiler import ProfilerActivity, profile
    loop = PlainLoop(fresh_module(cfg))
    loop.gen_iter = 10 ** 6 + 1
    loop.iteration()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        loop.iteration()
    rows = [(e.key, e.self_cpu_time_total, e.count) for e in prof.key_averages()]
    total = sum(r[1] for r in rows) or 1
    rows.sort(key=lambda r: -r[1])
    return [{"op": k, "share": rnd(t / total, 3), "ms": rnd(t / 1e3), "calls": c} for k, t, c in rows[:top]]


def measure(case: str, loss: str, args, gemm: list[float]) -> dict:
    cfg = make_cfg(case, loss, args.skip + args.iters + 1)
    flops, by_op = iteration_flops(cfg)
    gemm.append(gemm_flops_per_s(args.gemm_n, 3))
    w = time_lightning(cfg, args.skip, args.iters)
    gemm.append(gemm_flops_per_s(args.gemm_n, 3))
    t = w.per_iter()["wall"]
    crit = critic_alone(cfg, 3)
    out = {"case": case, "loss": loss, "batch": cfg.train.batch_size, "image_size": cfg.data.image_size,
           "width": cfg.model.width, "gflop_per_gen_iter": rnd(flops / 1e9),
           "gflop_by_op": {k: rnd(v / 1e9) for k, v in sorted(by_op.items(), key=lambda kv: -kv[1])},
           "s_per_gen_iter": rnd(t), "cpu_s_per_gen_iter": rnd(w.per_iter()["cpu"]),
           "gflop_per_s": rnd(flops / t / 1e9), "critic_alone_gflop_per_s": rnd(crit["flops_per_s"] / 1e9),
           "critic_alone_ms": crit["ms"], "load_avg_1m": common.load_average()}
    if args.profile:
        out["op_profile"] = op_profile(cfg)
    return out


def parse(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.flops", description=__doc__.split("\n")[0])
    p.add_argument("--runs", default="dcgan32:wgan,dcgan64:gan", help="comma list of case:loss")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--gemm-n", type=int, default=2048, help="square fp32 GEMM size of the reference")
    p.add_argument("--skip", type=int, default=1)
    p.add_argument("--iters", type=int, default=2, help="timed generator iterations")
    p.add_argument("--no-profile", dest="profile", action="store_false")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse(argv)
    common.quiet_lightning()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    gemm: list[float] = []
    rows = [measure(*run.split(":"), args, gemm) for run in args.runs.split(",")]
    peak = median(gemm)
    for r in rows:
        r["fraction_of_gemm"] = rnd(r["gflop_per_s"] * 1e9 / peak, 3)
        r["critic_alone_fraction_of_gemm"] = rnd(r["critic_alone_gflop_per_s"] * 1e9 / peak, 3)
    out = {"benchmark": "flops", "machine": machine(), "threads": args.threads,
           "gemm": {"n": args.gemm_n, "gflop_per_s": rnd(peak / 1e9), "all": [rnd(g / 1e9) for g in gemm]},
           "results": rows, "seconds": round(time.perf_counter() - t0, 1), "command": common.command()}
    emit(out)
    return out


if __name__ == "__main__":
    main()
