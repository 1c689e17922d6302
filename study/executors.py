"""Where trials run: long-lived local worker processes (one per GPU, or CPU workers with torch
threads divided between them), or Ray tasks on a cluster. Both report the same events:
('start', trial_id), ('progress', trial_id, gen_iter), ('done', trial_id, status)."""
from __future__ import annotations

import ctypes
import functools
import multiprocessing as mp
import os
import queue
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

Event = tuple  # (kind, trial_id, *payload)


@dataclass
class Slot:
    """One worker: a device and how many torch threads it may use."""
    device: str      # "cpu" or "cuda:N"
    threads: int


# Measured on one H100 with 16 cores (benchmarks/RESULTS.md, section 5): quick-sweep-sized trials are
# launch-bound, so aggregate throughput grew with every process up to 8 (64 -> 387 gen iters/s), while
# paper-sized dcgan64 trials saturated the GPU at 2 and lost nothing at 8. Each process needs CPU
# cores to launch kernels, so the automatic choice is cores-per-GPU // 2, capped at 8.
MAX_AUTO_TRIALS_PER_GPU = 8
CORES_PER_GPU_TRIAL = 2


def auto_trials_per_device(cores: int, n_gpus: int) -> int:
    return max(1, min(MAX_AUTO_TRIALS_PER_GPU, cores // max(1, n_gpus) // CORES_PER_GPU_TRIAL))


def plan_slots(devices: str, workers: Optional[int], trials_per_device: Optional[int], cores: int,
               n_gpus: int) -> list[Slot]:
    """trials_per_device workers per GPU (None: auto_trials_per_device); on CPU as many workers as
    cores allow, with the cores divided between them so torch threads never oversubscribe the machine."""
    if devices == "auto":
        devices = ",".join(f"cuda:{i}" for i in range(n_gpus)) if n_gpus else "cpu"
    if devices == "cpu":
        n = workers or cores
        return [Slot("cpu", max(1, cores // n))] * n
    gpus = devices.split(",")
    n = workers or len(gpus) * (trials_per_device or auto_trials_per_device(cores, len(gpus)))
    threads = max(1, cores // n)
    return [Slot(gpus[i % len(gpus)], threads) for i in range(n)]


def _die_with_parent() -> None:
    """A worker must not outlive a killed sweep (kill -9 leaves no chance to clean up): ask Linux
    to SIGKILL us when the parent dies."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _worker(slot: Slot, cache_dir: Optional[str], tasks: mp.Queue, events: mp.Queue) -> None:
    t0 = time.perf_counter()
    _die_with_parent()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # numpy/scipy BLAS too,
        os.environ[var] = str(slot.threads)  # not only torch: set before either is imported
    device = slot.device
    if device.startswith("cuda"):  # before torch is imported: the worker sees exactly its GPU
        os.environ["CUDA_VISIBLE_DEVICES"] = device.split(":")[1]
        device = "cuda:0"
    import torch
    torch.set_num_threads(slot.threads)
    from study.config import TrialConfig
    from study.trial import WorkerContext, run_trial
    ctx = WorkerContext(Path(cache_dir) if cache_dir else None)
    events.put(("ready", None, time.perf_counter() - t0))
    while (task := tasks.get()) is not None:
        trial_id, cfg, trial_dir = task
        events.put(("start", trial_id, os.getpid()))
        res = run_trial(TrialConfig.model_validate(cfg), Path(trial_dir), device, ctx,
                        progress=lambda it, tid=trial_id: events.put(("progress", tid, it)))
        events.put(("done", trial_id, res["status"]))


def run_local(tasks: list[tuple[str, dict, str]], slots: list[Slot], cache_dir: Optional[str],
              on_worker_death: Callable[[str, str], None]) -> Iterator[Event]:
    """Run tasks (trial_id, config dict, trial_dir) on worker processes; yields events.
    A worker that dies mid-trial (e.g. killed for memory) gets its trial recorded as failed through
    `on_worker_death` and is replaced."""
    ctx = mp.get_context("spawn")  # CUDA cannot be forked; spawn also gives each worker clean state
    task_q, event_q = ctx.Queue(), ctx.Queue()
    for t in tasks:
        task_q.put(t)
    slots = slots[:max(1, len(tasks))]
    for _ in slots:
        task_q.put(None)
    procs = {i: ctx.Process(target=_worker, args=(s, cache_dir, task_q, event_q), daemon=True)
             for i, s in enumerate(slots)}
    for p in procs.values():
        p.start()
    running: dict[int, str] = {}  # pid -> trial_id
    remaining = len(tasks)
    try:
        while remaining:
            try:
                ev = event_q.get(timeout=0.5)
            except queue.Empty:
                ev = None
            if ev is not None:
                if ev[0] == "start":
                    running[ev[2]] = ev[1]
                elif ev[0] == "done":
                    running = {pid: t for pid, t in running.items() if t != ev[1]}
                    remaining -= 1
                yield ev
                continue
            for i, p in list(procs.items()):
                if p.is_alive() or p.exitcode == 0:
                    continue
                trial = running.pop(p.pid, None)
                if trial is not None:
                    on_worker_death(trial, f"worker process died (exit code {p.exitcode}"
                                           f"{': killed, e.g. out of memory' if p.exitcode == -9 else ''})")
                    remaining -= 1
                    yield ("done", trial, "failed")
                task_q.put(None)  # the replacement needs its own stop marker
                procs[i] = ctx.Process(target=_worker, args=(slots[i], cache_dir, task_q, event_q), daemon=True)
                procs[i].start()
    finally:
        for p in procs.values():
            if p.is_alive():
                p.terminate()
        for p in procs.values():
            p.join(timeout=5)


def run_ray(tasks: list[tuple[str, dict, str]], slots: list[Slot], cache_dir: Optional[str]) -> Iterator[Event]:
    """The same trials as Ray tasks: on a running cluster (address='auto') or a local Ray.
    Trial directories must be on storage every node sees."""
    try:
        import ray
    except ImportError:
        from study.config import UserError
        raise UserError("--executor ray: ray is not installed (pip install 'wgan-study[ray]')") from None
    try:
        ray.init(address="auto", ignore_reinit_error=True, log_to_driver=False)
    except (ConnectionError, RuntimeError):
        ray.init(num_cpus=len(slots) * slots[0].threads, ignore_reinit_error=True, log_to_driver=False,
                 include_dashboard=False)
    gpus = ray.cluster_resources().get("GPU", 0)
    per_gpu = max(1, len(slots) // max(1, int(gpus))) if gpus else 1
    remote = ray.remote(num_cpus=slots[0].threads, num_gpus=(1 / per_gpu) if gpus else 0,
                        max_retries=0)(_ray_trial)
    refs = {}
    for trial_id, cfg, tdir in tasks:
        refs[remote.remote(cfg, tdir, "cuda" if gpus else "cpu", slots[0].threads, cache_dir)] = trial_id
        yield ("start", trial_id, None)
    while refs:
        done, _ = ray.wait(list(refs), num_returns=1)
        trial_id = refs.pop(done[0])
        try:
            status = ray.get(done[0])
        except Exception as e:  # the task's process died: record it like a local worker death
            status = "failed"
            from study.io import write_json
            write_json(Path(dict((t[0], t[2]) for t in tasks)[trial_id]) / "result.json",
                       {"trial_id": trial_id, "status": "failed", "error": f"ray task failed: {type(e).__name__}"})
        yield ("done", trial_id, status)


@functools.lru_cache(maxsize=None)
def _ray_context(cache_dir: Optional[str]):
    """One WorkerContext per Ray worker process (Ray reuses them), so data and evaluators are built
    once per worker, as with the local executor."""
    from study.trial import WorkerContext
    return WorkerContext(Path(cache_dir) if cache_dir else None)


def _ray_trial(cfg: dict, trial_dir: str, device: str, threads: int, cache_dir: Optional[str]) -> str:
    import torch
    torch.set_num_threads(threads)
    from study.config import TrialConfig
    from study.trial import run_trial
    return run_trial(TrialConfig.model_validate(cfg), Path(trial_dir), device, _ray_context(cache_dir))["status"]
