"""What a sweep will cost on this machine, known before it runs (issue 31).

One timing function (`time_shapes`) runs a few generator iterations and one evaluation of each distinct trial
shape, exactly as a worker would (study.trial.make_trainer), in a temporary directory; everything else is pure
scaling: a trial's seconds from its critic-update count, evaluation points and checkpoints (`trial_seconds`),
a sweep's wall time from packing those trials on the workers longest first as the sweep does (`makespan`), the
range of an adaptive design (`adaptive_range`) and the time left while a sweep runs (`time_left`). Nothing is
cached outside the run: every estimate is measured anew, under the machine's load at the time.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import accumulate
from pathlib import Path
from typing import Any, Iterable, Optional

# A worker's start before its first trial: spawning the process and importing torch, Lightning and
# torch-fidelity (study/executors.py reports it as the 'ready' event): 4-6 s measured on the 2-core CPU under
# other agents' load, ~3 s on an idle 16-core machine. Not timed by the estimate (it would cost as much).
WORKER_START_S = 5.0
TIMING_BUDGET_S = 0.4  # generator iterations are timed for about this long per shape (at least one): the
                       # mean of tens of updates on small shapes, one iteration of a GPU-sized one on a CPU
MAX_TIMED_ITERS = 8    # and at most this many after the first (which builds optimizer state and is not timed)
FIRST_ALONE_S = 2.0    # ... unless the first alone took this long: a GPU-sized shape on a CPU, whose one-time
                       # costs (~0.1-0.5 s: allocations, thread pools) are small beside its updates
MAX_TIMED_SHAPES = 24  # distinct shapes timed before a run (~0.5-2 s each); a spec with more gets no estimate
LONG_ON_CPU_H = 3.0    # "more than a few hours": a spec expected to run longer on a machine without a GPU is
                       # warned about (not refused) and a spec sized for a CPU named
# Specs sized for a 2-core CPU, by the name of the GPU-scale spec they shrink (the one place this mapping lives).
CPU_SIZED = {
    "arch": "sweeps/cpu_verdicts.yaml",
    "correlation": "sweeps/toys.yaml",
    "modes": "sweeps/toys.yaml",
    "constraint": "sweeps/constraint_quick.yaml",
}
DEFAULT_EXTENSIONS = 1  # study/adaptive.py EXTENSIONS (not imported: it pulls in the report's modules)
DEFAULT_MAX_SEEDS = 10  # study/adaptive.py DESIGN_SEEDS


@dataclass(frozen=True)
class ShapeCost:
    """Seconds of the parts of one trial of a shape, measured (time_shapes) or made up (tests)."""
    critic_s: float       # one critic update
    gen_s: float          # one generator update
    step_s: float         # the rest of a generator iteration: Lightning's loop, hooks, the metrics row
    eval_s: float         # one evaluation (samples, features, metrics, grid)
    final_eval_s: float   # the last one: + the repeat set, the cross-check, samples.npz
    checkpoint_s: float   # one checkpoint written
    setup_s: float        # the trial's own set-up: module, Trainer, the probe of its evaluation time


@dataclass
class Timings:
    """What time_shapes measured: each shape's costs, each worker's set-up per data/eval config, and how."""
    shapes: dict[str, ShapeCost]
    worker_setup: dict[str, float]   # eval_key -> loading the data and building the evaluator once
    seconds: float                   # the timing itself
    device: str
    threads: int
    load: float                      # other processes' busy cores while the timing ran (others_load)
    clock: str = "wall"              # "cpu": seconds of CPU (one thread per worker on a CPU), "wall": elapsed


# ------------------------------------------------------------------------------------------- keys
def shape_key(cfg: Any) -> str:
    """Everything a generator iteration's cost depends on: loss and its settings, backbones, data and its
    size, model widths, batch, class-conditioning. Not the seed, iterations, evaluation or checkpoints (those
    are scaled), nor execution keys."""
    return json.dumps([cfg.loss, cfg.backbone.generator, cfg.backbone.critic, cfg.data.model_dump(mode="json"),
                       cfg.model.model_dump(mode="json"), cfg.train.batch_size, cfg.conditional, cfg.class_weight,
                       cfg.algo.model_dump(mode="json"), cfg.train.compile], sort_keys=True)


def eval_key(cfg: Any) -> str:
    """What a worker builds once per data/eval config (study.trial.WorkerContext): the data and the evaluator."""
    return cfg.data.model_dump_json() + cfg.eval.model_dump_json()


# ------------------------------------------------------------------------------- pure scaling
def critic_updates(cfg: Any, start: int = 0, stop: Optional[int] = None) -> int:
    """Critic updates of generator iterations start..stop-1 under the trial's own schedule (warm-up included)."""
    stop = cfg.train.gen_iters if stop is None else stop
    steps, prefix = _schedule(cfg.loss, cfg.algo.model_dump_json())
    if len(prefix) <= stop:  # prefix[k]: updates before iteration k, grown as far as asked
        prefix += list(accumulate(map(steps, range(len(prefix) - 1, stop)), initial=prefix[-1]))[1:]
    return prefix[stop] - prefix[start]


@lru_cache(maxsize=64)
def _schedule(loss: str, settings_json: str) -> tuple[Any, list[int]]:
    """(critic updates before generator iteration k, as a function of k; its running sums so far) for one
    algorithm's settings, kept for the process: a sweep's trials share a few schedules of up to ~10^5 iterations."""
    from lightning_modules import ALGORITHMS
    spec = ALGORITHMS.get(loss)
    settings = spec.settings.model_validate_json(settings_json)
    return (lambda k: spec.critic_steps(k, settings)), [0]


def eval_points(every: int, gen_iters: int, start: int = 0) -> int:
    """Evaluations after iteration `start` before the last (iteration 0 counts on a fresh start): the final
    one is priced apart. As study.callbacks.is_eval_point."""
    between = (gen_iters - 1) // every - start // every if every > 0 else 0
    return (start == 0) + max(0, between)


def checkpoints(every: int, gen_iters: int, start: int = 0) -> int:
    """Checkpoints written after iteration `start`: every `every` iterations and the final one."""
    return max(0, (gen_iters - 1) // every - start // every) + 1


def trial_seconds(cfg: Any, cost: ShapeCost, start: int = 0, gen_iters: Optional[int] = None) -> float:
    """One trial from generator iteration `start` (a resumed trial) to `gen_iters` (default: its own)."""
    g = cfg.train.gen_iters if gen_iters is None else gen_iters
    if start >= g:
        return 0.0
    return (cost.setup_s + (g - start) * (cost.gen_s + cost.step_s) + critic_updates(cfg, start, g) * cost.critic_s
            + eval_points(cfg.eval.every, g, start) * cost.eval_s + cost.final_eval_s
            + checkpoints(cfg.train.checkpoint_every, g, start) * cost.checkpoint_s)


def makespan(durations: Iterable[float], workers: int, busy: Iterable[float] = ()) -> float:
    """Wall seconds to run `durations` in this order on `workers` workers, each taking the next trial as it
    frees (the local executor's rule); `busy`: seconds the workers already have to go (running trials)."""
    busy = list(busy)[:workers]
    free = sorted(busy + [0.0] * (workers - len(busy)))
    for d in durations:
        free[0] += d
        free.sort()
    return max(free, default=0.0)


def sweep_seconds(durations: list[float], workers: int, worker_setup_s: float) -> float:
    """A sweep's wall time: each worker starts (WORKER_START_S, its data and evaluators), then the trials."""
    used = min(workers, len(durations))
    return makespan(durations, used, [WORKER_START_S + worker_setup_s] * used) if used else 0.0


def _max_iters(design: dict, gen_iters: int) -> int:
    """The most generator iterations an adaptive design may give a trial of `gen_iters`: declared `budgets`
    (the largest), or `extensions` doublings."""
    if design.get("budgets"):
        return max(gen_iters, *design["budgets"])
    ext = design.get("extensions")
    return gen_iters * 2 ** (DEFAULT_EXTENSIONS if ext is None else ext)


def adaptive_range(trials: list, seconds: Any, design: dict, wall: Any) -> tuple[float, float, int, int]:
    """(round 1's wall seconds: the spec's trials, the design's maximum: every cell at max_seeds seeds each
    trained to the largest budget, those seeds, the largest budget of the longest cell). `seconds(cfg,
    gen_iters)` prices one trial, `wall(durations)` packs trials on the workers. The maximum ignores the
    barriers between rounds and a --max-hours limit."""
    low = wall([seconds(t.config, t.config.train.gen_iters) for t in trials])
    cells: dict[str, list] = {}
    for t in trials:
        cells.setdefault(_cell(t.config), []).append(t.config)
    seeds = design.get("max_seeds") or DEFAULT_MAX_SEEDS
    full, top = [], 0
    for cfgs in cells.values():
        budget = _max_iters(design, cfgs[0].train.gen_iters)
        top = max(top, budget)
        full += [seconds(cfgs[0], budget)] * max(seeds, len(cfgs))
    return low, wall(sorted(full, reverse=True)), seeds, top


def _cell(cfg: Any) -> str:
    d = cfg.resolved()
    d.pop("seed")
    return json.dumps(d, sort_keys=True)


def time_left(running: list[tuple[float, float]], pending: list[float], workers: int, ratio: float = 1.0) -> float:
    """Seconds until the sweep ends: running trials as (estimated seconds, seconds run so far), pending ones
    estimated, every estimate scaled by `ratio` (measured / estimated of the trials finished so far)."""
    busy = [max(0.0, est * ratio - ran) for est, ran in running]
    return makespan([d * ratio for d in pending], workers, busy)


def human(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def cpu_alternative(name: str, longest_iters: int, seconds: float) -> str:
    """What to run instead on a CPU: the spec sized for it, or the --set that shrinks this one to fit."""
    if name in CPU_SIZED:
        return f"{CPU_SIZED[name]} is sized for a CPU"
    fit = int(longest_iters * LONG_ON_CPU_H * 3600 / max(seconds, 1e-9)) // 100 * 100
    return (f"--set base.train.gen_iters={fit} fits about {LONG_ON_CPU_H:g} h" if fit >= 100 else
            "shrink it (fewer trials: --set grid.seed=[0]; smaller data, widths or iterations)")


def warning(name: str, seconds: float, gpu: bool, longest_iters: int) -> Optional[str]:
    """One line when a spec expected to take more than LONG_ON_CPU_H hours runs without a GPU; None otherwise."""
    if gpu or seconds <= LONG_ON_CPU_H * 3600:
        return None
    return (f"warning: about {human(seconds)} on this machine without a GPU (more than {LONG_ON_CPU_H:g} h); "
            f"{cpu_alternative(name, longest_iters, seconds)}")


def how_measured(t: Timings) -> str:
    return (f"timed {len(t.shapes)} trial shape(s) on {t.device} with {t.threads} thread(s) (~{TIMING_BUDGET_S:g} "
            f"{t.clock} s of generator iterations each, an evaluation per generator) in {t.seconds:.1f} s, "
            f"{t.load:.2f} core(s) busy with other work")


def _cpu_busy() -> Optional[tuple[float, float]]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat (None where there is none)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    hz = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / hz, sum(fields[:8]) / hz


def others_load(before: Optional[tuple[float, float]], after: Optional[tuple[float, float]], own_cpu_s: float,
                wall_s: float) -> Optional[float]:
    """Cores that other processes kept busy while we timed: the machine's busy CPU seconds over the window less
    our own, per wall second. The 1-minute load average is not used: it still holds the sweep's own start-up
    (importing torch keeps a core busy for seconds), and counting that as others' load made an idle machine's
    estimate 45% too long (README, the quick study)."""
    if before is None or after is None or wall_s <= 0:
        return None
    return max(0.0, (after[0] - before[0] - own_cpu_s) / wall_s)


def contention(load: float, cores: int, workers: int, threads: int, cpu_clock: bool = False) -> float:
    """Wall seconds in the sweep per measured second: each of `workers` workers (`threads` threads each) shares
    `cores` cores with `load` other busy cores (others_load, while the shapes were timed), each runnable thread
    getting at most a core. Measured in CPU seconds (`cpu_clock`): divided by the worker's share; measured in
    wall seconds: the timing process had a share too."""
    def share(mine: int) -> float:
        return min(1.0, cores / max(1e-9, max(0.0, load) + mine))
    return (1.0 if cpu_clock else share(threads)) / share(workers * threads)


def resume_step(trial_dir: Path) -> int:
    """The generator iteration a trial resumes from: its newest iter_NNNNNN.ckpt (by name; 0 when none)."""
    steps = [int(p.stem[5:]) for p in trial_dir.glob("checkpoints/iter_*.ckpt") if p.stem[5:].isdigit()]
    return max(steps, default=0)


class Estimator:
    """The estimates of one sweep process: the shapes timed so far, which an adaptive run's later rounds reuse
    (nothing outlives the process). `timer` is time_shapes (tests give a fake one)."""

    def __init__(self, device: str, threads: int, workers: int, cores: int, cache_dir: Optional[Path],
                 timer: Any = None):
        self.device, self.threads, self.workers, self.cores, self.cache_dir = device, threads, workers, cores, cache_dir
        self.timer = timer or time_shapes
        self.timings: Optional[Timings] = None
        self._last: tuple = (None, {})  # the last durations() asked: (out, trial ids) -> seconds

    @property
    def gpu(self) -> bool:
        return self.device != "cpu"

    def factor(self) -> float:
        """Measured seconds -> seconds in the sweep: CPU workers share the cores with each other and the load."""
        t = self.timings
        return 1.0 if self.gpu or t is None else contention(t.load, self.cores, self.workers, self.threads,
                                                            t.clock == "cpu")

    def time(self, configs: list) -> None:
        """Time the shapes among `configs` not timed yet; ValueError when there are too many to time."""
        known = set(self.timings.shapes) if self.timings else set()
        shapes: set[str] = set()
        for c in configs:  # counted only as far as the limit: a huge grid of many shapes is refused at once
            shapes.add(shape_key(c))
            if len(shapes) > MAX_TIMED_SHAPES:
                raise ValueError(f"more than {MAX_TIMED_SHAPES} distinct trial shapes (the most timed before a run)")
        if shapes - known:
            self.timings = self.timer(configs, self.device, self.threads, self.cache_dir, self.timings)

    def seconds(self, cfg: Any, start: int = 0, gen_iters: Optional[int] = None) -> float:
        return self.factor() * trial_seconds(cfg, self.timings.shapes[shape_key(cfg)], start, gen_iters)

    def worker_setup(self) -> float:
        return self.factor() * sum(self.timings.worker_setup.values())

    def durations(self, trials: list, out: Path) -> dict[str, float]:
        """Each trial's expected seconds from where it stands in `out` (a resumed trial from its checkpoint). The
        sweep asks twice for the same trials (the estimate's line, then the progress line): the checkpoints are
        looked up once."""
        key = (str(out), tuple(t.id for t in trials))
        if self._last[0] != key:
            self.time([t.config for t in trials])
            self._last = (key, {t.id: self.seconds(t.config, resume_step(out / t.id)) for t in trials})
        return dict(self._last[1])

    def wall(self, durations: list[float]) -> float:
        """`durations` in the order the sweep starts them."""
        return sweep_seconds(durations, self.workers, self.worker_setup())

    def adaptive(self, trials: list, design: dict) -> tuple[float, float, int, int]:
        self.time([t.config for t in trials])
        return adaptive_range(trials, lambda cfg, g: self.seconds(cfg, gen_iters=g), design, self.wall)

    def measured(self) -> str:
        f = self.factor()
        return how_measured(self.timings) + (f"; x{f:.2f} for {self.workers} workers sharing {self.cores} cores"
                                             if abs(f - 1) > 0.005 else "")


# ------------------------------------------------------------------------------------ timing
def time_shapes(configs: list, device: str, threads: int, cache_dir: Optional[Path],
                known: Optional[Timings] = None) -> Timings:
    """Time every shape among `configs` not in `known` (earlier rounds of the same run) with one mini-trial
    (_time_one), as a worker runs a trial, with its threads, in a temporary directory. Evaluations do not depend
    on the loss: one is timed per generator and data/eval config, the final one once per data/eval config. The
    global RNG is restored after: nothing a trial computes changes."""
    import torch
    from threadpoolctl import threadpool_limits
    from study.trial import WorkerContext, quiet_lightning, skip_nvml_cuda_check
    import torchmetrics.image.fid  # noqa: F401  (the final evaluation's cross-check: once per worker, not per trial)
    busy0, own0, t0 = _cpu_busy(), time.process_time(), time.perf_counter()
    # one thread on a CPU: CPU seconds, which other processes' load does not inflate (the share the workers
    # will get is Estimator.factor's); otherwise (threads in parallel, a GPU) elapsed seconds
    cpu_clock = device == "cpu" and threads == 1
    clock = time.process_time if cpu_clock else time.perf_counter
    quiet_lightning()
    skip_nvml_cuda_check()
    todo: dict[str, Any] = {}
    for cfg in configs:
        key = shape_key(cfg)
        if known is None or key not in known.shapes:
            todo.setdefault(key, cfg)
    shapes, setup = (dict(known.shapes), dict(known.worker_setup)) if known else ({}, {})
    evals: dict[str, float] = {}   # _eval_key -> one evaluation
    extra: dict[str, float] = {}   # eval_key -> what the final evaluation costs more than another
    old_threads = torch.get_num_threads()
    ctx = WorkerContext(cache_dir)
    try:
        torch.set_num_threads(threads)
        with threadpool_limits(threads), torch.random.fork_rng(devices=[]):
            for key, cfg in todo.items():
                ek, gk = eval_key(cfg), _eval_key(cfg)
                if ek not in setup:
                    setup[ek] = _worker_setup(cfg, ctx, device, clock)
                cost, final = _time_one(cfg, ctx, device, ctx.evaluator(cfg, device) if gk not in evals else None,
                                        ek not in extra, clock)
                evals.setdefault(gk, cost.eval_s)
                if final is not None:
                    extra[ek] = max(0.0, final - cost.eval_s)
                shapes[key] = replace(cost, eval_s=evals[gk], final_eval_s=evals[gk] + extra[ek])
    finally:
        torch.set_num_threads(old_threads)
    wall = time.perf_counter() - t0
    load = others_load(busy0, _cpu_busy(), time.process_time() - own0, wall)
    if load is None:  # no /proc/stat: the load average, less this process's own runnable thread
        load = max(0.0, os.getloadavg()[0] - 1.0)
    return Timings(shapes, setup, wall + (known.seconds if known else 0.0), device, threads,
                   known.load if known else load, "cpu" if cpu_clock else "wall")


def _eval_key(cfg: Any) -> str:
    """What an evaluation's time depends on: the data/eval config and the generator that makes the samples."""
    return json.dumps([eval_key(cfg), cfg.backbone.generator, cfg.model.model_dump(mode="json"), cfg.conditional])


def _worker_setup(cfg: Any, ctx: Any, device: str, clock: Any) -> float:
    """Seconds a worker spends once on this data/eval config. A domain classifier trained here (not cached
    yet) is then cached for the run: the set-up is timed again, as the workers will find it."""
    from study.trial import WorkerContext
    t0 = clock()
    ctx.evaluator(cfg, device)
    took = clock() - t0
    if took > WORKER_START_S:  # e.g. a classifier trained: the workers load it instead
        t0 = clock()
        WorkerContext(ctx.cache_dir).evaluator(cfg, device)
        took = clock() - t0
    return took


def _time_one(cfg: Any, ctx: Any, device: str, evaluator: Any, final: bool,
              clock: Any = time.perf_counter) -> tuple[ShapeCost, Optional[float]]:
    """(the shape's costs, its final evaluation's seconds if `final`) from one mini-trial: the evaluation at
    iteration 0, then generator iterations with a checkpoint after each until TIMING_BUDGET_S or
    MAX_TIMED_ITERS (the first, one critic update, only builds optimizer state, and counts only when it alone
    took FIRST_ALONE_S), then the final evaluation if `final`. Without `evaluator` nothing is scored (eval_s is
    not this shape's then: the caller has it from another shape with the same generator)."""
    import pytorch_lightning as pl
    import torch
    from lightning_modules import updates
    from study.config import TrialConfig
    from study.data import RealSampler
    from study.trial import GenIterations, build_module, make_trainer
    d = cfg.model_dump(mode="json")  # never reaches its last iteration: the final evaluation is called below
    d["train"] = {**d["train"], "gen_iters": MAX_TIMED_ITERS + 2, "checkpoint_every": 1}
    d["eval"] = {**d["eval"], "every": 0}
    short = TrialConfig.model_validate(d)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    t_start = clock()
    data = ctx.dataset(short)
    module = build_module(short, RealSampler(data, short.train.batch_size, short.seed, device), data.shape)
    steady = int(short.spec.critic_updates(short.algo))
    module.critic_steps = lambda k: 1 if k == 0 else steady  # this copy only: the steady count, not the warm-up
    calls: list[float] = []   # seconds of every update, critic and generator, in order
    kinds: list[str] = []
    # each update timed alone where it runs eagerly (a captured graph replays without calling Python)
    eager = updates.resolve(short.train.compile, torch.device(device).type) == "eager"
    for attr in ("critic_update", "generator_update") if eager else ():
        def timed(*a, _fn=getattr(module, attr), _kind=attr):
            sync()
            t = clock()
            r = _fn(*a)
            sync()
            calls.append(clock() - t)
            kinds.append(_kind)
            return r
        setattr(module, attr, timed)
    it: list[dict] = []   # per iteration: start, end of the step, end of its callbacks, the updates' indices

    class First(pl.Callback):  # first in the callback list: before evaluation and checkpoint
        ev: Any = None

        def on_train_start(self, *args: Any) -> None:
            self.began = (clock(), time.perf_counter())

        def on_train_batch_start(self, *args: Any) -> None:
            sync()
            if not it:  # only the evaluation at iteration 0 ran since on_train_start (its wall seconds: ev.seconds)
                c, w = clock() - self.began[0], time.perf_counter() - self.began[1]
                self.eval0 = self.ev.seconds * (c / w if w > 0 else 1.0)
            it.append({"start": clock(), "calls": len(calls)})

        def on_train_batch_end(self, *args: Any) -> None:
            sync()
            it[-1]["step_end"] = clock()

        def on_train_end(self, *args: Any) -> None:
            self.end = clock()

    class Last(pl.Callback):  # last: after the checkpoint
        def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
            it[-1]["cb_end"] = clock()
            spent = it[-1]["cb_end"] - it[min(1, len(it) - 1)]["start"] if len(it) > 1 else 0.0
            first_alone = len(it) == 1 and it[0]["cb_end"] - it[0]["start"] >= FIRST_ALONE_S
            if first_alone or spent >= TIMING_BUDGET_S or len(it) > MAX_TIMED_ITERS:
                trainer.should_stop = True

    first = First()
    with tempfile.TemporaryDirectory(prefix="wgan-estimate-") as tmp:
        trainer, first.ev = make_trainer(short, Path(tmp), data, evaluator, device, [first])
        trainer.callbacks.append(Last())
        trainer.fit(module.to(device), train_dataloaders=GenIterations(short.train.gen_iters))
        last = None
        if final:  # the last evaluation, as its callback makes it at the trial's last iteration
            module.gen_iter = short.train.gen_iters
            before = clock()
            first.ev.on_train_batch_end(trainer, module)
            last = clock() - before
    ends = [i["start"] for i in it[1:]] + [first.end]
    for i, e in zip(it, ends):
        i["next"] = e
    timed_its = it[1:] if len(it) > 1 else it
    n_calls = [(i["calls"], j["calls"]) for i, j in zip(it, it[1:])] + [(it[-1]["calls"], len(calls))]
    span = dict(zip(map(id, it), n_calls))
    update_s = {"critic_update": [], "generator_update": []}
    overhead, ckpt = [], []
    for i in timed_its:
        a, b = span[id(i)]
        for k, c in zip(kinds[a:b], calls[a:b]):
            update_s[k].append(c)
        inside = sum(calls[a:b]) if eager else 0.0
        ckpt.append(i["cb_end"] - i["step_end"])
        overhead.append(i["next"] - i["start"] - inside - ckpt[-1])
    if eager:
        critic_s = sum(update_s["critic_update"]) / len(update_s["critic_update"])
        gen_s = sum(update_s["generator_update"]) / len(update_s["generator_update"])
    else:  # the whole step as updates of equal cost
        n = sum(steady if i is not it[0] else 1 for i in timed_its) + len(timed_its)
        critic_s = gen_s = sum(overhead) / n
        overhead = [0.0]
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    cost = ShapeCost(critic_s=critic_s, gen_s=gen_s, step_s=max(0.0, mean(overhead)), eval_s=first.eval0,
                     final_eval_s=last or 0.0, checkpoint_s=mean(ckpt),
                     setup_s=max(0.0, it[0]["start"] - t_start - first.eval0))
    return cost, last
