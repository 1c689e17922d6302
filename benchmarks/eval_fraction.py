"""Evaluation's share of a quick-sweep trial: eval_s / wall_s from each trial's result.json (eval_s is
everything EvalCallback does: sampling, metrics, the sample grid, samples.npz).

By default runs a reduced quick sweep (seed 0: the 8 configurations of sweeps/quick.yaml, with its
eval.every 100 and num_samples 1000, gen_iters 100, WGAN warm-up off). That keeps one evaluation per
100 generator iterations, as the full trial, with less training per evaluation for WGAN trials (no
warm-up critic updates), so the shares it reports are upper bounds of the full sweep's. `--from DIR`
reads an existing sweep instead (e.g. runs/quick after `make study`).

Also times one evaluation point's parts in-process for each data kind (sample, metrics, grid).

    python -m benchmarks.eval_fraction
    python -m benchmarks.eval_fraction --from runs/quick
    python -m benchmarks.eval_fraction --full --candidates    # the quick sweep itself, as sweeps/quick.yaml says
"""
from __future__ import annotations

import argparse
import inspect
import shutil
import tempfile
import time
from pathlib import Path

from study.rundir import FINAL_SAMPLES, load_result, trial_dirs
from benchmarks import common
from benchmarks.common import emit, machine, median, rnd
from benchmarks.fanout import quick_sets, run_sweep, warm_cache

TARGET = 0.10


def read_trials(run_dir: Path) -> list[dict]:
    rows = []
    for d in trial_dirs(run_dir):
        r, _ = load_result(d)
        if r is None:
            continue
        cfg = r.get("config") or {}
        bb = cfg.get("backbone", {})
        label = bb.get("generator") if bb.get("generator") == bb.get("critic") else f"{bb.get('generator')}/{bb.get('critic')}"
        wall, ev = r.get("wall_s") or 0.0, r.get("eval_s") or 0.0
        rows.append({"trial": f"{cfg.get('loss')} {label} {cfg.get('data', {}).get('name')} s{cfg.get('seed')}",
                     "status": r.get("status"), "gen_iters": r.get("gen_iters"), "wall_s": wall, "eval_s": ev,
                     "eval_share": rnd(ev / wall, 3) if wall else None})
    return rows


def eval_point_parts(cache: Path, repeats: int = 3) -> list[dict]:
    """One evaluation point's parts, as EvalCallback runs them, for an image and a points trial of the
    quick sweep (fresh, untrained generator: the cost does not depend on training)."""
    import torch

    from benchmarks.common import fresh_module, make_cfg
    from study.samples import save_grid
    from study.trial import WorkerContext
    import yaml
    quick_eval = yaml.safe_load((common.REPO / "sweeps" / "quick.yaml").read_text())["base"]["eval"]
    out = []
    ctx = WorkerContext(cache)
    for case in ("quick_dcgan16", "ring8"):
        cfg = make_cfg(case, "gan", 10, eval=quick_eval)  # the quick sweep's evaluation settings
        m = fresh_module(cfg)
        data = ctx.dataset(cfg)
        row = {"case": case, "num_samples": cfg.eval.num_samples}
        try:
            t = time.perf_counter()
            ev = ctx.evaluator(cfg, "cpu")
            row["evaluator_build_s"] = rnd(time.perf_counter() - t)
        except Exception as e:  # study.eval missing or failing: time the rest
            ev, row["evaluator_error"] = None, f"{type(e).__name__}: {e}"
        parts = {"sample": [], "metrics": [], "grid": []}
        takes_final = ev is not None and "final" in inspect.signature(ev.__call__).parameters
        if takes_final:  # the last point's metrics may cost more (e.g. KID only at the end)
            s = m.sample(cfg.eval.num_samples)
            t = time.perf_counter()
            ev(s, final=True)
            row["final_point_metrics_s"] = rnd(time.perf_counter() - t)
        with tempfile.TemporaryDirectory() as d:
            for i in range(repeats + 1):
                t = time.perf_counter()
                s = m.sample(cfg.eval.num_samples)
                t1 = time.perf_counter()
                if ev is not None:
                    ev(s, final=False) if takes_final else ev(s)
                t2 = time.perf_counter()
                with torch.no_grad():
                    grid = m.generator(m.fixed_noise) if data.kind == "image" else s
                save_grid(grid, Path(d) / f"g{i}.png", data.modes, title="x")
                t3 = time.perf_counter()
                if i:  # the first includes one-off imports (matplotlib, torchvision.utils)
                    parts["sample"].append(t1 - t), parts["metrics"].append(t2 - t1), parts["grid"].append(t3 - t2)
                else:
                    row["first_point_s"] = rnd(t3 - t)
        row |= {f"{k}_s": rnd(median(v)) for k, v in parts.items()}
        out.append(row)
    return out


def _emd2_mean_w1(x_pool, y_pool, points: int, draws: int, seed: int) -> float:
    """study.eval.w1.mean_exact_w1 with POT's network simplex (ot.emd2) in place of scipy's
    linear_sum_assignment: the same subsets, the same exact optimum (uniform weights)."""
    import numpy as np
    import ot
    from scipy.spatial.distance import cdist
    from study.eval.w1 import _points
    a, b = _points(x_pool), _points(y_pool)
    m = min(points, len(a), len(b))
    rng = np.random.default_rng(seed)
    w = np.full(m, 1.0 / m)
    vals = []
    for _ in range(draws):
        cost = cdist(a[rng.choice(len(a), m, replace=False)], b[rng.choice(len(b), m, replace=False)])
        vals.append(float(ot.emd2(w, w, cost, numItermax=10 ** 7)))
    return float(np.mean(vals))


def _timed(fn, *a, **k):
    t = time.perf_counter()
    v = fn(*a, **k)
    return v, time.perf_counter() - t


def candidates(run_dir: Path, cache: Path) -> list[dict]:
    """Proposed cheaper evaluation, timed on each completed trial's final samples (samples.npz) against
    the current code, with the values compared: images, KID with 1 subset instead of 10 (with
    N_gen = N_real = subset size every subset is the whole set, permuted, and the unbiased MMD^2 does
    not depend on the order); points, exact W1 by POT's ot.emd2 instead of linear_sum_assignment (only
    where POT is importable). The projection removes the measured saving from every evaluation point."""
    import importlib.util

    import numpy as np
    import torch

    from study.config import load_trial_config
    from study.eval import fid as F
    from study.eval.evaluator import W1_SEED
    from study.eval.w1 import mean_exact_w1
    from study.trial import WorkerContext
    have_pot = importlib.util.find_spec("ot") is not None
    ctx = WorkerContext(cache)
    rows = []
    for d in trial_dirs(run_dir):
        r, _ = load_result(d)
        npz = d / FINAL_SAMPLES
        if r is None or r.get("status") != "completed" or not npz.exists():
            continue
        cfg = load_trial_config(r["config"])
        ev = ctx.evaluator(cfg, "cpu")
        x = torch.from_numpy(np.load(npz)["x"])
        g, e = cfg.train.gen_iters, cfg.eval.every
        points = g // e + (1 if g % e else 0) if e else 1  # callbacks.is_eval_point
        row = {"trial": d.name, "eval_points": points}
        if ev.data.kind == "points":
            c = ev.cfg
            old, t_old = _timed(mean_exact_w1, x, ev.real_pool, c.w1_points, c.w1_draws, W1_SEED)
            row.update(metric="w1", current_s=rnd(t_old))
            if have_pot:
                new, t_new = _timed(_emd2_mean_w1, x, ev.real_pool, c.w1_points, c.w1_draws, W1_SEED)
                row.update(proposed="ot.emd2", proposed_s=rnd(t_new), rel_diff=float(f"{abs(new - old) / abs(old):.1e}"))
        else:
            u8 = F.to_uint8(x.view(len(x), *ev.data.shape))
            f = F.extract(getattr(ev, "domain_extractor", None) or getattr(ev, "_domain"), u8)["features"]
            real = ev.extractors["domain"][-1]["features"]
            old, t_old = _timed(F.kid, real, f)
            new, t_new = _timed(F.kid, real, f, subsets=1)
            row.update(metric="kid", current_s=rnd(t_old), proposed="kid subsets=1", proposed_s=rnd(t_new),
                       rel_diff=float(f"{abs(new - old) / max(abs(old), 1e-12):.1e}"))
            if "final" in inspect.signature(ev.__call__).parameters:
                row["eval_points"] = points = 1  # KID only at the final evaluation
        if "proposed_s" in row:
            saving = points * (row["current_s"] - row["proposed_s"])
            wall, ev_s = r["wall_s"], r["eval_s"]
            row.update(eval_share=rnd(ev_s / wall, 3),
                       projected_eval_share=rnd(max(ev_s - saving, 0.0) / max(wall - saving, 1e-9), 3))
        rows.append(row)
    return rows


def parse(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.eval_fraction", description=__doc__.split("\n")[0])
    p.add_argument("--from", dest="src", type=Path, help="read this sweep directory instead of running one")
    p.add_argument("--gen-iters", type=int, default=100)
    p.add_argument("--full", action="store_true", help="run sweeps/quick.yaml unchanged (no --set)")
    p.add_argument("--warmup", action="store_true", help="keep the WGAN warm-up")
    p.add_argument("--seeds", default="[0]")
    p.add_argument("--workers", type=int, help="sweep workers (default: the sweep's default)")
    p.add_argument("--cache-dir", type=Path, help="evaluation cache (default: a temporary one, warmed first)")
    p.add_argument("--no-parts", dest="parts", action="store_false")
    p.add_argument("--candidates", action="store_true",
                   help="time the proposed cheaper metrics on each trial's final samples (POT needed for W1)")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse(argv)
    import torch
    torch.set_num_threads(1)  # a sweep worker's share on this machine
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="bench_eval_"))
    cache = args.cache_dir or tmp / "cache"
    info: dict = {}
    if args.src:
        run_dir = args.src
    else:
        warm = warm_cache(tmp / "warm", cache)
        run_dir = tmp / "sweep"
        info = run_sweep(run_dir, quick_sets(args.gen_iters, args.seeds, args.warmup, args.full), args.workers, cache)
        info["warm_cache_errors"] = warm["errors"]
    trials = read_trials(run_dir)
    ok = [t for t in trials if t["status"] == "completed"]
    shares = [t["eval_share"] for t in ok if t["eval_share"] is not None]
    source = str(args.src) if args.src else ("the quick sweep (sweeps/quick.yaml)" if args.full else "reduced quick sweep")
    out = {"benchmark": "eval_fraction", "machine": machine(), "source": source,
           "sweep": info, "trials": trials, "completed": len(ok),
           "max_share": rnd(max(shares), 3) if shares else None, "median_share": rnd(median(shares), 3) if shares else None,
           "total_share": rnd(sum(t["eval_s"] for t in ok) / sum(t["wall_s"] for t in ok), 3) if ok else None,
           "target_share": TARGET}
    if args.parts:
        out["eval_point_parts"] = eval_point_parts(cache)
    if args.candidates:
        out["candidates"] = candidates(run_dir, cache)
        proj = [c for c in out["candidates"] if "projected_eval_share" in c]
        if proj:
            out["projected_max_share"] = max(c["projected_eval_share"] for c in proj)
    out.update(seconds=round(time.perf_counter() - t0, 1), command=common.command())
    shutil.rmtree(tmp, ignore_errors=True)
    emit(out)
    return out


if __name__ == "__main__":
    main()
