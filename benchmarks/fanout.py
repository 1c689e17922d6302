"""Sweep fan-out: trials per hour of a reduced quick sweep (`python -m study.sweep sweeps/quick.yaml`)
with the default worker setting (one worker per core, torch threads divided between them) against
`--workers 1` (one worker with every core's threads), in one run, interleaved when repeated; and the
start-up cost of a trial (worker process + imports, data set, first-trial costs) with evidence that it
is paid once per worker, not once per trial.

Both sweeps share one warmed evaluation cache (--cache-dir), so neither pays for building it.

    python -m benchmarks.fanout                        # 16 trials, gen_iters 50, WGAN warm-up off
    python -m benchmarks.fanout --gen-iters 1000 --warmup --repeats 2   # the real quick sweep
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from study.rundir import load_result, trial_dirs
from benchmarks import common
from benchmarks.common import REPO, emit, machine, median, rnd

SPEC = REPO / "sweeps" / "quick.yaml"


def sweep_cmd(out: Path, sets: list[str], workers, cache: Path) -> list[str]:
    cmd = [sys.executable, "-m", "study.sweep", str(SPEC), "--out", str(out), "--cache-dir", str(cache)]
    for s in sets:
        cmd += ["--set", s]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    return cmd


def quick_sets(gen_iters: int, seeds: str, warmup: bool, full: bool = False) -> list[str]:
    """--set overrides of the quick sweep for a benchmark (none when `full`: the spec as shipped)."""
    if full:
        return []
    return [f"base.train.gen_iters={gen_iters}", f"grid.seed={seeds}"] + ([] if warmup else ["base.wgan.warmup=false"])


def warm_cache(out: Path, cache: Path) -> dict:
    """A 2-iteration sweep that builds the evaluation cache (domain classifier, real statistics), so
    no timed sweep pays for it."""
    return run_sweep(out, ["base.train.gen_iters=2", "grid.seed=[0]", "grid.loss=[gan]"], None, cache)


def run_sweep(out: Path, sets: list[str], workers, cache: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    cmd = sweep_cmd(out, sets, workers, cache)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    results = [r for r in (load_result(d)[0] for d in trial_dirs(out)) if r is not None]
    statuses: dict[str, int] = {}
    for r in results:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    trial_wall = sum(r.get("wall_s", 0.0) for r in results)
    eval_s = sum(r.get("eval_s", 0.0) for r in results)
    errors = sorted({r["error"] for r in results if r.get("error")})[:3]
    return {"workers": workers or "default", "rc": proc.returncode, "wall_s": rnd(wall), "trials": len(results),
            "statuses": statuses, "trials_per_hour": rnd(len(results) / wall * 3600),
            "sum_trial_wall_s": rnd(trial_wall), "sum_eval_s": rnd(eval_s), "errors": errors,
            "stderr_tail": proc.stderr.strip().splitlines()[-2:] if proc.returncode else [],
            "command": " ".join(cmd[1:]).replace(str(REPO) + "/", ""), "load_avg_1m": common.load_average()}


def startup_probe(workers: int, tasks_per_worker: int, gen_iters: int, cache: Path, tmp: Path) -> dict:
    """Runs identical tiny trials on `workers` local worker processes (study.executors.run_local, as the
    sweep does) and records: the 'ready' events (worker start-up, measured inside the worker, and from
    Process.start() in the parent), and each trial's wall_s in the order its worker ran it."""
    from study.config import load_trial_config
    from study.executors import plan_slots, run_local
    # a ring8 GAN trial with a small final evaluation (exact W1 on 1,000 collapsed points can take
    # seconds, which would hide what this probe looks for)
    cfg = load_trial_config({"loss": "gan", "backbone": "mlp", "seed": 0,
                             "data": {"name": "ring8"}, "model": {"nz": 2, "mlp_width": 128},
                             "train": {"gen_iters": gen_iters, "batch_size": 256, "checkpoint_every": 10 ** 6},
                             "eval": {"every": 0, "num_samples": 200, "w1_points": 200, "w1_draws": 1}})
    n = workers * tasks_per_worker
    tasks = [(f"t{i:02d}", cfg.model_dump(mode="json"), str(tmp / f"t{i:02d}")) for i in range(n)]
    slots = plan_slots("cpu", workers, 1, os.cpu_count() or 1, 0)
    t0 = time.perf_counter()
    ready, started, order = [], {}, {}
    for ev in run_local(tasks, slots, str(cache), lambda t, e: None):
        if ev[0] == "ready":
            ready.append({"inside_worker_s": rnd(ev[2]), "since_spawn_s": rnd(time.perf_counter() - t0)})
        elif ev[0] == "start":
            started[ev[1]] = ev[2]
            order.setdefault(ev[2], []).append(ev[1])
    per_worker = []
    for pid, ids in order.items():
        res = [load_result(tmp / t)[0] or {} for t in ids]
        per_worker.append({"trial_wall_s_in_order": [r.get("wall_s") for r in res],
                           "eval_s_in_order": [r.get("eval_s") for r in res]})
    firsts = [w["trial_wall_s_in_order"][0] for w in per_worker]
    laters = [x for w in per_worker for x in w["trial_wall_s_in_order"][1:]]
    later_eval = [x for w in per_worker for x in w["eval_s_in_order"][1:]]
    return {"workers": workers, "trials": n, "gen_iters": gen_iters, "ready_events": len(ready), "ready": ready,
            "per_worker": per_worker, "first_trial_s": rnd(median(firsts)),
            "later_trial_s": rnd(median(laters)) if laters else None,
            "later_trial_fixed_s": rnd(median(laters) - median(later_eval)) if laters else None,
            "first_trial_extra_s": rnd(median(firsts) - median(laters)) if laters else None}


def component_costs(cache: Path) -> dict:
    """What a worker builds once (in a fresh interpreter): imports, data sets, evaluators."""
    code = r"""
import json, time, sys
t = time.perf_counter(); import torch; t_torch = time.perf_counter() - t
t = time.perf_counter(); from study.trial import WorkerContext, run_trial, versions; t_study = time.perf_counter() - t
t = time.perf_counter(); versions(); t_versions = time.perf_counter() - t
from study.config import load_trial_config
ctx = WorkerContext(__import__('pathlib').Path(sys.argv[1]))
out = {"import_torch_s": t_torch, "import_study_trial_s": t_study, "versions_first_call_s": t_versions}
for name in ("mnist5k", "ring8"):
    cfg = load_trial_config({"data": {"name": name}, "backbone": "mlp", "data": {"name": name, "image_size": 16}})
    t = time.perf_counter(); ctx.dataset(cfg); out[f"data_{name}_s"] = time.perf_counter() - t
    try:
        t = time.perf_counter(); ctx.evaluator(cfg, "cpu"); out[f"evaluator_{name}_s"] = time.perf_counter() - t
    except Exception as e:
        out[f"evaluator_{name}_s"] = None; out[f"evaluator_{name}_error"] = f"{type(e).__name__}: {e}"
print(json.dumps(out))
"""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, str(cache)], cwd=REPO, capture_output=True, text=True)
    total = time.perf_counter() - t0
    try:
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": proc.stderr.strip().splitlines()[-1:] or "no output"}
    out = {k: rnd(v) if isinstance(v, float) else v for k, v in out.items()}
    out["process_total_s"] = rnd(total)
    return out


def thread_probe(repeats: int = 3) -> list[dict]:
    """What `--workers 1` changes for one trial: its torch threads (all cores instead of one). Time per
    generator iteration of the quick sweep's steps with 1 thread and with every core, interleaved."""
    import torch

    from benchmarks.common import interleaved, make_cfg, time_plain
    cores = os.cpu_count() or 1
    rows = []
    for case in ("quick_dcgan16", "ring8"):
        cfg = make_cfg(case, "wgan", 40)

        def run(n):
            torch.set_num_threads(n)
            return time_plain(cfg, 5, 20).per_iter()["wall_med"]
        t = interleaved({"1": lambda: run(1), str(cores): lambda: run(cores)}, repeats)
        rows.append({"case": case, "ms_1_thread": rnd(median(t["1"]) * 1e3),
                     f"ms_{cores}_threads": rnd(median(t[str(cores)]) * 1e3),
                     "speedup_from_threads": rnd(median(t["1"]) / median(t[str(cores)]))})
    torch.set_num_threads(1)
    return rows


def parse(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.fanout", description=__doc__.split("\n")[0])
    p.add_argument("--gen-iters", type=int, default=50)
    p.add_argument("--warmup", action="store_true", help="keep the WGAN warm-up (100 critic updates x 25)")
    p.add_argument("--seeds", default="[0,1]", help="grid.seed of the reduced sweep (quick.yaml: [0,1])")
    p.add_argument("--repeats", type=int, default=1, help="interleaved sweep pairs")
    p.add_argument("--set", dest="sets", action="append", default=[], help="more --set for both sweeps")
    p.add_argument("--workdir", type=Path, help="where sweeps write (default: a temporary folder)")
    p.add_argument("--no-startup", dest="startup", action="store_false", help="skip the start-up probes")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse(argv)
    t0 = time.perf_counter()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_fanout_"))
    work.mkdir(parents=True, exist_ok=True)
    cache = work / "cache"
    sets = quick_sets(args.gen_iters, args.seeds, args.warmup) + args.sets
    warm = warm_cache(work / "warm", cache)
    sweeps = {"workers_1": [], "default": []}
    for r in range(args.repeats):
        for key in (("workers_1", "default") if r % 2 == 0 else ("default", "workers_1")):
            sweeps[key].append(run_sweep(work / f"{key}_{r}", sets, 1 if key == "workers_1" else None, cache))
    tph = {k: median([s["trials_per_hour"] for s in v]) for k, v in sweeps.items()}
    out = {"benchmark": "fanout", "machine": machine(), "cores": os.cpu_count(), "sets": sets,
           "warm_cache_sweep": {k: warm[k] for k in ("wall_s", "statuses", "errors")},
           "sweeps": sweeps, "trials_per_hour": {k: rnd(v) for k, v in tph.items()},
           "speedup": rnd(tph["default"] / tph["workers_1"]), "target_speedup": 1.5}
    out["threads_per_trial"] = thread_probe()
    if args.startup:
        out["components"] = component_costs(cache)
        out["startup_probe"] = startup_probe(2, 3, 5, cache, work / "probe")
    out.update(seconds=round(time.perf_counter() - t0, 1), command=common.command())
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    emit(out)
    return out


if __name__ == "__main__":
    main()
