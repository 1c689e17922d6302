"""Training-step overhead: the GAN and WGAN LightningModules (trainer.fit as run_trial sets it up) against
a plain-PyTorch loop doing the same math (benchmarks.common.PlainLoop, structured like the WGAN
reference code), same model, batch, data, seeds and torch threads. Steady state: the first `--skip`
generator iterations are not timed. Runs are interleaved (plain, Lightning, Lightning, plain, ...) and
the ratio is the median over repeats of Lightning / plain of adjacent runs.

Also checks that both paths compute the same numbers (losses after the window, bit for bit), and for
the cases in --lean-cases times `lean`: the module with the changes proposed in benchmarks.variants.

    python -m benchmarks.step_overhead                       # mlp_mnist5k, dcgan32, ring8, quick_dcgan16; gan, wgan
    python -m benchmarks.step_overhead --cases ring8 --repeats 7 --window 5
"""
from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import torch

from benchmarks import common
from benchmarks.common import (CASES, emit, interleaved, machine, make_cfg, median, paired_ratios, rnd,
                               time_lightning, time_plain)
from benchmarks.variants import FLAGS, patched_factory

TARGET = 1.05  # issue target for mlp_mnist5k and dcgan32


def plan_iters(case: str, loss: str, skip: int, window: float, warmup: bool, max_iters: int) -> tuple[int, float]:
    """How many iterations make a window of about `window` seconds (probed with the plain loop)."""
    cfg = make_cfg(case, loss, skip + 2, warmup=warmup)
    w = time_plain(cfg, skip, 1)
    t = w.per_iter()["wall"]
    return max(2, min(max_iters, math.ceil(window / t))), t


def measure(case: str, loss: str, args) -> dict:
    skip = args.skip if args.skip is not None else (10 if case in ("ring8", "quick_dcgan16") else 1)
    n, probe = plan_iters(case, loss, skip, args.window, args.warmup, args.max_iters)
    cfg = make_cfg(case, loss, skip + n + 1, warmup=args.warmup)
    sides = {"plain": lambda: time_plain(cfg, skip, n), "lightning": lambda: time_lightning(cfg, skip, n)}
    lean = case in args.lean_cases
    if lean:
        factory = patched_factory(FLAGS)
        sides["lean"] = lambda: time_lightning(cfg, skip, n, module_factory=factory)
    if args.ablation and lean:  # one proposed change at a time
        for flag in FLAGS:
            sides[flag] = (lambda f: lambda: time_lightning(cfg, skip, n, module_factory=patched_factory({f})))(flag)
    runs = interleaved(sides, args.repeats)
    # per run: the median iteration (robust to another process's burst), then paired ratios across runs
    wall = {k: [w.per_iter()["wall_med"] for w in v] for k, v in runs.items()}
    cpu = {k: [w.per_iter()["cpu_med"] for w in v] for k, v in runs.items()}
    same = all(w.last == runs["plain"][0].last for v in runs.values() for w in v)
    out = {"case": case, "loss": loss, "skip": skip, "iters": n, "repeats": args.repeats,
           "plain_ms": rnd(median(wall["plain"]) * 1e3), "lightning_ms": rnd(median(wall["lightning"]) * 1e3),
           "ratio": rnd(median(paired_ratios(wall["lightning"], wall["plain"]))),
           "ratio_cpu": rnd(median(paired_ratios(cpu["lightning"], cpu["plain"]))),
           "ratios": [rnd(r) for r in paired_ratios(wall["lightning"], wall["plain"])],
           "overhead_ms": rnd((median(wall["lightning"]) - median(wall["plain"])) * 1e3),
           "same_losses": same, "load_avg_1m": common.load_average()}
    if lean:
        out.update(lean_ms=rnd(median(wall["lean"]) * 1e3),
                   lean_ratio=rnd(median(paired_ratios(wall["lean"], wall["plain"]))),
                   lean_ratio_cpu=rnd(median(paired_ratios(cpu["lean"], cpu["plain"]))),
                   lean_vs_lightning=rnd(median(paired_ratios(wall["lean"], wall["lightning"]))))
    if args.ablation and lean:
        out["ablation"] = {f: {"ms": rnd(median(wall[f]) * 1e3),
                               "vs_lightning": rnd(median(paired_ratios(wall[f], wall["lightning"]))),
                               "vs_lightning_cpu": rnd(median(paired_ratios(cpu[f], cpu["lightning"])))}
                           for f in FLAGS}
    return out


def _null_step(self, batch, batch_idx):
    self.gen_iter += 1
    self.row = {"train/d_loss": 0.0, "train/g_loss": 0.0, "train/d_real": 0.0, "train/d_fake": 0.0,
                self.estimate_key: 0.0, "train/critic_iters": 0}
    if self.gen_iter >= self.cfg.train.gen_iters:
        self.trainer.should_stop = True


def loop_overhead(iters: int = 1000, repeats: int = 3) -> dict:
    """Lightning's own cost per generator iteration with a training step that does nothing (fit loop,
    hooks, callbacks, CSV logging of the row), in microseconds; the rest of the overhead is inside the
    step (LightningOptimizer, manual_backward, toggle_optimizer)."""
    import types
    cfg = make_cfg("ring8", "wgan", iters + 51)

    def factory(cfg, device="cpu"):
        m = common.fresh_module(cfg, device)
        m.training_step = types.MethodType(_null_step, m)
        return m
    ws = [time_lightning(cfg, 50, iters, module_factory=factory) for _ in range(repeats)]
    return {"us_per_iter": rnd(median([w.per_iter()["wall"] for w in ws]) * 1e6),
            "cpu_us_per_iter": rnd(median([w.per_iter()["cpu"] for w in ws]) * 1e6)}


def per_call_costs(n: int = 300, rounds: int = 7) -> dict:
    """Microseconds per call of each Lightning indirection inside a running trainer, against its plain
    PyTorch equivalent, on a tiny critic (8 units, batch 8) so the math itself is small; alternating
    rounds, minimum per call over rounds (the usual micro-benchmark estimator)."""
    import pytorch_lightning as pl
    cfg = make_cfg("ring8", "wgan", 3, model={"mlp_width": 8}, train={"batch_size": 8})
    module = common.fresh_module(cfg)
    out: dict = {}

    def per_call(fn) -> float:
        t = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t) / n * 1e6

    class _Micro(pl.Callback):
        def on_train_start(self, trainer, m):
            d_opt, g_opt = m.optimizers()
            raw = d_opt.optimizer
            x = torch.randn(8, 2)
            g_params = list(m.generator.parameters())
            for p in m.critic.parameters():
                p.grad = torch.zeros_like(p)
            pairs = {
                "optimizer_step": (d_opt.step, raw.step),
                "backward": (lambda: m.manual_backward(m.critic(x).mean()), lambda: m.critic(x).mean().backward()),
                "toggle_untoggle": (lambda: (m.toggle_optimizer(d_opt), m.untoggle_optimizer(d_opt)),
                                    lambda: ([p.requires_grad_(False) for p in g_params],
                                             [p.requires_grad_(True) for p in g_params])),
            }
            best = {k: [float("inf"), float("inf")] for k in pairs}
            for r in range(rounds):
                for k, (light, plain) in pairs.items():
                    order = (0, 1) if r % 2 == 0 else (1, 0)
                    for i in order:
                        best[k][i] = min(best[k][i], per_call((light, plain)[i]))
            for k, (a, b) in best.items():
                out[k] = {"lightning_us": rnd(a), "plain_us": rnd(b), "extra_us": rnd(a - b)}
    with tempfile.TemporaryDirectory() as d:
        common.lightning_fit(cfg, module, Path(d), [_Micro()])
    return out


def parse(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.step_overhead", description=__doc__.split("\n")[0])
    p.add_argument("--cases", default="mlp_mnist5k,dcgan32,ring8,quick_dcgan16", help=f"comma list of {', '.join(CASES)}")
    p.add_argument("--losses", default="gan,wgan")
    p.add_argument("--threads", type=int, default=1, help="torch threads, both paths (a sweep worker's share)")
    p.add_argument("--repeats", type=int, default=5, help="interleaved runs per side")
    p.add_argument("--window", type=float, default=1.0, help="seconds of timed iterations per run (about)")
    p.add_argument("--skip", type=int, help="untimed first iterations (default 10 for small cases, else 1)")
    p.add_argument("--max-iters", type=int, default=400)
    p.add_argument("--warmup", action="store_true",
                   help="keep the WGAN critic warm-up schedule (default off: every iteration is a steady n_critic one)")
    p.add_argument("--ablation", action="store_true", help="also time each proposed change alone (--lean-cases)")
    p.add_argument("--lean-cases", default="ring8,quick_dcgan16",
                   help="cases that also time the module with benchmarks.variants' changes")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse(argv)
    args.lean_cases = set(filter(None, args.lean_cases.split(",")))
    common.quiet_lightning()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    rows = [measure(c, l, args) for c in args.cases.split(",") for l in args.losses.split(",")]
    out = {"benchmark": "step_overhead", "machine": machine(), "threads": args.threads, "target_ratio": TARGET,
           "wgan_warmup": args.warmup, "results": rows, "lightning_loop_overhead": loop_overhead(),
           "per_call": per_call_costs(), "seconds": round(time.perf_counter() - t0, 1),
           "command": common.command()}
    emit(out)
    return out


if __name__ == "__main__":
    main()
