"""Data path: how fast real batches come out of RealSampler (in-memory tensors on the device, indexed
with a seeded generator, no DataLoader) against how fast the training step consumes them.

For each case: samples/s of RealSampler.next() alone; samples/s of real data consumed by the training
step (critic updates x batch / time per generator iteration, plain loop, steady state); the share of a
step spent drawing batches; and, for comparison, a torch DataLoader over the same tensor
(TensorDataset, random sampling with replacement, num_workers=0) to show the per-batch overhead the
harness avoids.

    python -m benchmarks.data_path
    python -m benchmarks.data_path --cases ring8,dcgan32 --seconds 3
"""
from __future__ import annotations

import argparse
import time

import torch

from benchmarks import common
from benchmarks.common import CASES, dataset, emit, machine, make_cfg, median, rnd, time_plain


def rate(fn, batch: int, seconds: float, repeats: int = 3) -> float:
    """Samples per second of fn() (one batch per call); median over repeats of ~seconds/repeats each."""
    fn()
    rates = []
    for _ in range(repeats):
        n, t0 = 0, time.perf_counter()
        while (dt := time.perf_counter() - t0) < seconds / repeats:
            fn()
            n += 1
        rates.append(n * batch / dt)
    return median(rates)


def dataloader_fn(x: torch.Tensor, batch: int, seed: int, workers: int = 0):
    g = torch.Generator().manual_seed(seed)
    ds = torch.utils.data.TensorDataset(x)
    sampler = torch.utils.data.RandomSampler(ds, replacement=True, num_samples=10 ** 9, generator=g)
    it = iter(torch.utils.data.DataLoader(ds, batch_size=batch, sampler=sampler, num_workers=workers))
    return lambda: next(it)[0]


def measure(case: str, loss: str, args) -> dict:
    from study.data import RealSampler
    cfg = make_cfg(case, loss, 100)
    data = dataset(cfg)
    b = cfg.train.batch_size
    sampler = RealSampler(data, b, cfg.seed, "cpu")
    sampler_sps = rate(sampler.next, b, args.seconds)
    loader_sps = rate(dataloader_fn(data.train_x, b, cfg.seed), b, args.seconds)
    skip = 3 if case in ("ring8", "quick_dcgan16", "mlp_mnist5k") else 1
    n = 20 if case in ("ring8", "quick_dcgan16") else 2
    w = time_plain(make_cfg(case, loss, skip + n + 1), skip, n)
    steps = cfg.wgan.n_critic if loss == "wgan" else cfg.gan.d_steps
    per_iter = w.per_iter()["wall"]
    step_sps = steps * b / per_iter  # real samples the step consumes per second
    return {"case": case, "loss": loss, "batch": b, "sample_shape": list(data.shape),
            "sampler_samples_per_s": rnd(sampler_sps), "dataloader_samples_per_s": rnd(loader_sps),
            "sampler_vs_dataloader": rnd(sampler_sps / loader_sps),
            "step_samples_per_s": rnd(step_sps), "sampler_vs_step": rnd(sampler_sps / step_sps),
            "share_of_step": rnd(step_sps / sampler_sps, 3), "ms_per_gen_iter": rnd(per_iter * 1e3)}


def parse(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.data_path", description=__doc__.split("\n")[0])
    p.add_argument("--cases", default="ring8,quick_dcgan16,dcgan32", help=f"comma list of {', '.join(CASES)}")
    p.add_argument("--loss", default="wgan")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seconds", type=float, default=1.5, help="timing per data-path measurement")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    rows = [measure(c, args.loss, args) for c in args.cases.split(",")]
    out = {"benchmark": "data_path", "machine": machine(), "threads": args.threads, "results": rows,
           "seconds": round(time.perf_counter() - t0, 1), "command": common.command()}
    emit(out)
    return out


if __name__ == "__main__":
    main()
