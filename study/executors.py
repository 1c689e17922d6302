"""Where trials run: long-lived local worker processes (one per GPU, or CPU workers with torch
threads divided between them), or Ray actors on a cluster (study/ray_executor.py). Both report the same
events: ('start', trial_id, ...), ('progress', trial_id, gen_iter), ('done', trial_id, status)."""
from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from study.cli import STOP_SIGNALS
from study.errors import UserError

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


@contextmanager
def _stop_signals_blocked() -> Iterator[None]:
    """While a worker is spawned: it inherits this mask, so a Ctrl-C cannot reach it before it has set
    SIGINT aside (a KeyboardInterrupt traceback from a half-started worker); in the sweep itself the
    signal waits until the worker is registered and can be stopped."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _worker(slot: Slot, cache_dir: Optional[str], conn: Connection) -> None:
    """Asks for one task at a time over its own pipe and reports events on it. Ctrl-C goes to the whole
    process group, but stopping is the sweep's job (it kills workers: trials resume as after kill -9)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    t0 = time.perf_counter()
    _die_with_parent()
    from study.worker import setup_worker
    device = setup_worker(slot.threads, slot.device)  # what a Ray actor does too
    from study.cli import describe_os_error
    from study.config import TrialConfig
    from study.trial import WorkerContext, run_trial
    ctx = WorkerContext(Path(cache_dir) if cache_dir else None)
    try:
        conn.send(("ready", None, time.perf_counter() - t0))
        while (task := conn.recv()) is not None:
            trial_id, cfg, trial_dir = task
            conn.send(("start", trial_id, os.getpid()))
            try:
                res = run_trial(TrialConfig.model_validate(cfg), Path(trial_dir), device, ctx,
                                progress=lambda it, tid=trial_id: conn.send(("progress", tid, it)))
            except OSError as e:  # run_trial records the trial's own errors: this is the disk (e.g. full)
                conn.send(("fatal", trial_id, describe_os_error(e)))
                return
            conn.send(("done", trial_id, res["status"]))
    except (EOFError, BrokenPipeError, ConnectionResetError):  # the sweep is gone: so are we
        return


class WorkerFailure(UserError):
    """A worker cannot go on (e.g. the disk is full): the sweep stops with this one line."""


@dataclass
class _Proc:
    process: Any              # a spawned multiprocessing Process
    conn: Connection          # the sweep's end of the worker's pipe
    slot: Slot
    trial: Optional[str] = None   # the trial it runs now
    ready: bool = False


def run_local(tasks: list[tuple[str, dict, str]], slots: list[Slot], cache_dir: Optional[str],
              on_worker_death: Callable[[str, str], None]) -> Iterator[Event]:
    """Run tasks (trial_id, config dict, trial_dir) on worker processes; yields events ('ready', None,
    seconds), ('start', id, pid), ('progress', id, gen_iter), ('done', id, status).

    Each worker has its own pipe and gets its next task only when it asks for one: nothing waits in a
    pipe, so a sweep of any size stops at once (closing this generator kills the workers; interrupted
    trials resume from their checkpoints). A worker that dies mid-trial (e.g. killed for memory) gets its
    trial recorded as failed through `on_worker_death` and is replaced; one that reports a problem of the
    machine (a full disk) stops the sweep with WorkerFailure."""
    ctx = mp.get_context("spawn")  # CUDA cannot be forked; spawn also gives each worker clean state
    pending = deque(tasks)
    procs: list[_Proc] = []

    def start(slot: Slot) -> None:
        mine, theirs = ctx.Pipe()
        p = ctx.Process(target=_worker, args=(slot, cache_dir, theirs), daemon=True)
        with _stop_signals_blocked():
            p.start()
            procs.append(_Proc(p, mine, slot))
        theirs.close()

    def feed(w: _Proc) -> None:
        task = pending.popleft() if pending else None
        w.trial = task[0] if task else None
        try:
            w.conn.send(task)
        except OSError:  # it died meanwhile: its sentinel says so below
            pass

    finished = False
    try:
        for slot in slots[:len(tasks)]:
            start(slot)
        while pending or any(w.trial for w in procs):
            ready = set(wait([w.conn for w in procs] + [w.process.sentinel for w in procs], timeout=1.0))
            for w in list(procs):
                for ev in _received(w.conn) if w.conn in ready else []:
                    if ev[0] == "fatal":
                        raise WorkerFailure(ev[2])
                    if ev[0] in ("ready", "done"):
                        w.ready = True
                        feed(w)
                    yield ev
                if w.process.sentinel in ready or not w.process.is_alive():
                    yield from _buried(w, procs, on_worker_death)
                    if pending:
                        start(w.slot)
        finished = True
    finally:
        _stop(procs, kill=not finished)


def _received(conn: Connection) -> list[Event]:
    """Every event the worker has sent so far (it may have exited since; what it sent is still there)."""
    out = []
    try:
        while conn.poll():
            out.append(conn.recv())
    except (EOFError, OSError):
        pass
    return out


def _buried(w: _Proc, procs: list[_Proc], on_worker_death: Callable[[str, str], None]) -> Iterator[Event]:
    """A worker that exited: its last events, then its trial recorded as failed if it had one."""
    w.process.join()
    procs.remove(w)
    for ev in _received(w.conn):
        if ev[0] == "fatal":
            raise WorkerFailure(ev[2])
        if ev[0] == "done":
            w.trial = None
        yield ev
    w.conn.close()
    code = w.process.exitcode
    if not w.ready and code != 0:
        raise WorkerFailure(f"a worker process exited while starting (exit code {code}); "
                            "run with --workers 1 --debug to see why")
    if w.trial is not None:
        on_worker_death(w.trial, f"worker process died (exit code {code}"
                                 f"{': killed, e.g. out of memory' if code == -signal.SIGKILL else ''})")
        yield ("done", w.trial, "failed")


def _stop(procs: list[_Proc], kill: bool) -> None:
    """Normal end: workers were told to stop and exit by themselves. Otherwise (an interrupt or an error)
    kill them at once: a killed trial resumes from its last checkpoint, exactly as after kill -9."""
    for w in procs:
        if kill and w.process.is_alive():
            w.process.kill()
    for w in procs:
        w.process.join(timeout=5)
        if w.process.is_alive():
            w.process.kill()
            w.process.join(timeout=5)
        w.conn.close()
