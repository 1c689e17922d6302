"""`--executor ray`: trials on a Ray cluster (`ray start --head` and `ray start --address=...` on the nodes, then
the sweep on any of them), or on a local Ray when none is running. It reports the local executor's events.

- One actor per slot: a worker process that builds data sets and evaluators once (its WorkerContext) and runs
  trials one after another. (Ray tasks were tried first: a GPU task's worker process exits after each task,
  Ray's max_calls=1, so every trial rebuilt its context.)
- ('start', id, where) when an idle, ready actor is handed the trial, so it starts then; ('progress', id, it)
  from polling the actors every second.
- A lost worker or node is not the trial's fault: the trial goes back to the queue, the next free actor
  resumes it from its last checkpoint (resumes are exact), and a new actor replaces the lost one wherever Ray
  finds room. A trial that loses its worker RAY_ATTEMPTS times (say it kills its node every time) is recorded
  as failed, as is one that fails by itself (run_trial records it).
- Trial directories must be on storage every node sees, at the same path: each actor checks, before its first
  trial, a marker file the sweep writes into the run directory, and the sweep stops with one line if it cannot
  see it.
"""
from __future__ import annotations

import math
import os
import socket
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from study.errors import UserError
from study.executors import Event, WorkerFailure, auto_trials_per_device

RAY_ATTEMPTS = 3        # runs of one trial that may lose their worker before it is recorded as failed
POLL_S = 1.0            # progress polls of the running actors
WAIT_NOTE_S = 60.0      # no actor running for this long: say that the sweep waits for cluster resources
MARKER = ".ray-shared-storage"


@dataclass
class RayPlan:
    actors: int
    cpus: int           # per actor: its torch threads, reserved from Ray
    gpus: float         # per actor: a share of one GPU (1 / trials per GPU)


def plan_ray(resources: dict, workers: Optional[int], trials_per_device: Optional[int]) -> RayPlan:
    """Actors from the cluster's resources: trials_per_device per GPU (default as on one machine: CPU cores per
    GPU // 2, at most 8), or one per CPU core; `workers` overrides the count. CPUs are divided between actors."""
    cpus, gpus = int(resources.get("CPU", 0)), int(resources.get("GPU", 0))
    if gpus:
        per = trials_per_device or (math.ceil(workers / gpus) if workers else auto_trials_per_device(cpus, gpus))
        n = workers or gpus * per
        return RayPlan(n, max(1, cpus // n), 1 / per)
    n = workers or max(1, cpus)
    return RayPlan(n, max(1, cpus // n), 0.0)


def shared_storage_problem(marker: str, token: str) -> Optional[str]:
    """None when `marker` holds `token` here (this node sees the sweep's run directory), else what is wrong."""
    try:
        if Path(marker).read_text() == token:
            return None
    except OSError:
        pass
    return (f"{Path(marker).parent}: the run directory is not visible from Ray node {socket.gethostname()} "
            "(trial directories must be on storage every node sees, at the same path, e.g. NFS); "
            "choose --out on shared storage")


class TrialActor:
    """A Ray actor running trials one after another (wrapped by ray.remote in run_ray)."""

    def __init__(self, threads: int, cache_dir: Optional[str]):
        from study.worker import setup_worker
        setup_worker(threads)  # what a local worker does too (Ray itself gives a GPU actor its GPU)
        from study.trial import WorkerContext
        self.ctx = WorkerContext(Path(cache_dir) if cache_dir else None)
        self.current: tuple[Optional[str], int] = (None, 0)

    def ready(self, marker: str, token: str) -> tuple[Optional[str], str]:
        """(problem or None, where this actor runs: host and pid)."""
        return shared_storage_problem(marker, token), f"{socket.gethostname()}:{os.getpid()}"

    def run(self, trial_id: str, cfg: dict, trial_dir: str, device: str) -> str:
        from study.config import TrialConfig
        from study.trial import run_trial

        def report(it: int) -> None:
            self.current = (trial_id, it)
        self.current = (trial_id, 0)
        try:
            return run_trial(TrialConfig.model_validate(cfg), Path(trial_dir), device, self.ctx, progress=report)["status"]
        finally:
            self.current = (None, 0)

    def progress(self) -> tuple[Optional[str], int]:
        return self.current


def _connect(ray: Any, cpus: int) -> bool:
    """Join the running cluster (address='auto') or start a local Ray; True when we started it."""
    if ray.is_initialized():
        return False
    try:
        ray.init(address="auto", log_to_driver=False)
        return False
    except (ConnectionError, RuntimeError):
        ray.init(num_cpus=cpus, log_to_driver=False, include_dashboard=False)
        return True


@dataclass
class _Actor:
    handle: Any
    where: str = "?"
    task: Optional[tuple] = None             # (trial_id, cfg, trial_dir) it runs now
    ref: Any = None                          # the ObjectRef of that run
    polled: Any = None                       # the ObjectRef of a progress poll in flight


@dataclass
class _State:
    pending: deque
    starting: dict = field(default_factory=dict)   # ready() ref -> _Actor
    idle: list = field(default_factory=list)
    running: dict = field(default_factory=dict)    # run() ref -> _Actor
    polls: dict = field(default_factory=dict)      # progress() ref -> _Actor
    lost: Counter = field(default_factory=Counter)  # trial_id -> runs that lost their worker
    failed_starts: int = 0

    def all(self) -> list[_Actor]:
        return [*self.starting.values(), *self.idle, *self.running.values()]


def run_ray(tasks: list[tuple[str, dict, str]], out: Path, cache_dir: Optional[str], workers: Optional[int],
            trials_per_device: Optional[int], local_cpus: int,
            on_worker_death: Callable[[str, str], None]) -> Iterator[Event]:
    """Run tasks (trial_id, config dict, trial_dir) on Ray actors; yields ('info', None, text), ('ready', None,
    where), ('start', id, where), ('progress', id, gen_iter), ('requeued', id, why) and ('done', id, status).
    Closing the generator kills the actors: their trials resume from their checkpoints next time."""
    try:
        import ray
        from ray.exceptions import RayActorError, RayError, RayTaskError
    except ImportError:
        raise UserError("--executor ray: ray is not installed (pip install 'wgan-study[ray]')") from None
    started = _connect(ray, local_cpus)
    plan = plan_ray(ray.cluster_resources(), workers, trials_per_device)
    device = "cuda" if plan.gpus else "cpu"
    tasks = [(tid, cfg, str(Path(d).resolve())) for tid, cfg, d in tasks]  # other nodes: absolute paths
    marker, token = Path(out).resolve() / MARKER, uuid.uuid4().hex
    marker.write_text(token)
    actor_cls = ray.remote(num_cpus=plan.cpus, num_gpus=plan.gpus, max_restarts=0,
                           max_concurrency=2)(TrialActor)  # 2: progress() answers while run() works
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    yield ("info", None, f"Ray: {min(plan.actors, len(tasks))} actor(s) of {plan.cpus} CPU"
                         + (f" and {plan.gpus:.2g} GPU" if plan.gpus else "") + f" each, {nodes} node(s)")
    s = _State(deque(tasks))

    def spawn() -> None:
        a = _Actor(actor_cls.remote(plan.cpus, cache_dir))
        s.starting[a.handle.ready.remote(str(marker), token)] = a

    def lose(a: _Actor, why: str) -> Iterator[Event]:
        """A dead actor: kill what is left of it, requeue (or fail) its trial, start a replacement."""
        try:
            ray.kill(a.handle, no_restart=True)
        except Exception:
            pass
        if a.task is not None:
            tid = a.task[0]
            s.lost[tid] += 1
            if s.lost[tid] < RAY_ATTEMPTS:
                s.pending.appendleft(a.task)
                yield ("requeued", tid, f"worker lost ({why}); it runs again, from its last checkpoint "
                                        f"(attempt {s.lost[tid] + 1} of {RAY_ATTEMPTS})")
            else:
                on_worker_death(tid, f"worker lost {RAY_ATTEMPTS} times, last: {why}")
                yield ("done", tid, "failed")
        if s.pending:
            spawn()

    try:
        for _ in range(min(plan.actors, len(tasks))):
            spawn()
        last_poll = waiting_since = time.monotonic()
        while s.pending or s.running:
            if s.running or s.idle:
                waiting_since = time.monotonic()
            elif time.monotonic() - waiting_since > WAIT_NOTE_S:  # said once: the clock restarts only with work
                waiting_since = math.inf
                yield ("info", None, "no Ray actor has been placed for a minute: does the cluster have a free "
                                     f"{'GPU' if plan.gpus else 'CPU'}? (`ray status` shows its resources)")
            while s.idle and s.pending:
                a = s.idle.pop()
                a.task = s.pending.popleft()
                a.ref = a.handle.run.remote(*a.task, device)
                s.running[a.ref] = a
                yield ("start", a.task[0], a.where)
            refs = [*s.starting, *s.running, *s.polls]
            done, _ = ray.wait(refs, num_returns=1, timeout=POLL_S, fetch_local=False) if refs else ([], [])
            for ref in done:
                if ref in s.starting:
                    a = s.starting.pop(ref)
                    try:
                        problem, a.where = ray.get(ref)
                    except RayError as e:  # e.g. its node died while it started
                        s.failed_starts += 1
                        if s.failed_starts > 3 * plan.actors:
                            raise WorkerFailure(f"Ray actors keep failing to start ({type(e).__name__}: "
                                                f"{str(e).splitlines()[0]})") from None
                        spawn()
                        continue
                    if problem:
                        raise WorkerFailure(problem)
                    s.idle.append(a)
                    yield ("ready", None, a.where)
                elif ref in s.running:
                    a = s.running.pop(ref)
                    try:
                        status = ray.get(ref)
                    except RayTaskError as e:  # run_trial raised: records of its own failed (e.g. a full disk)
                        cause = e.cause if isinstance(e.cause, BaseException) else e
                        if isinstance(cause, OSError):
                            from study.cli import describe_os_error
                            raise WorkerFailure(describe_os_error(cause)) from None
                        on_worker_death(a.task[0], f"{type(cause).__name__}: {str(cause).splitlines()[0]}")
                        status = "failed"
                    except RayActorError as e:  # its process or node died, or cannot be reached
                        yield from lose(a, f"{type(e).__name__} on {a.where}")
                        continue
                    tid, a.task, a.ref = a.task[0], None, None
                    s.idle.append(a)
                    yield ("done", tid, status)
                elif ref in s.polls:
                    a = s.polls.pop(ref)
                    a.polled = None
                    try:
                        tid, it = ray.get(ref)
                    except RayError:
                        continue  # a dead actor: its run() ref says so
                    if tid is not None and a.task is not None and tid == a.task[0]:
                        yield ("progress", tid, it)
            if time.monotonic() - last_poll >= POLL_S:
                last_poll = time.monotonic()
                for a in s.running.values():
                    if a.polled is None:
                        a.polled = a.handle.progress.remote()
                        s.polls[a.polled] = a
    finally:  # done, interrupted or failed: no actor outlives the sweep (a killed trial resumes next time)
        for a in s.all():
            try:
                ray.kill(a.handle, no_restart=True)
            except Exception:
                pass
        marker.unlink(missing_ok=True)
        if started:
            ray.shutdown()
