"""python -m study.sweep SPEC: expand a sweep into trials, run them on every device, keep every result.

Completed (and diverged) trials are skipped on a re-run, interrupted ones resume from their last
checkpoint, failed ones re-run only with --retry-failed. Exit code: 0 when no trial failed, 1 when
some did, 2 for bad input or an unusable environment (one line on stderr), 130 when interrupted
(Ctrl-C or SIGTERM: run the same command again to resume); see study/cli.py.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from contextlib import closing
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from study.cli import FAILED, INTERRUPTED, OK, Interrupted
from study.cli import ArgumentParser
from study.cli import run as run_cli
from study.errors import UserError
from study.io import ensure_dir, write_yaml
from study.estimate import human
from study.spec import Trial, load_spec, varied_value

if TYPE_CHECKING:
    from study.estimate import Estimator

DISPLAY_INTERVAL_S = 10.0  # progress lines when stderr is not a terminal
RESULTS_INTERVAL_S = 2.0   # results.csv is rewritten at most this often while trials finish (and at the end)


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    p = ArgumentParser(prog="python -m study.sweep", description=__doc__.split("\n")[0])
    p.add_argument("spec", type=Path, help="sweep YAML (see sweeps/)")
    p.add_argument("--out", type=Path, help="output directory (default runs/<name>)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="dotted.key=yaml_value",
                   help="edit the spec before expansion, e.g. --set base.train.gen_iters=50 --set grid.seed=[0]")
    p.add_argument("--dry-run", action="store_true", help="print the trials (and their expected time) and exit")
    p.add_argument("--no-estimate", action="store_true", default=bool(os.environ.get("WGAN_STUDY_NO_ESTIMATE")),
                   help="skip timing the trial shapes before the run (no estimate, no time left; "
                        "default: set by $WGAN_STUDY_NO_ESTIMATE, which the test suite sets)")
    p.add_argument("--executor", choices=("local", "ray"), default="local")
    p.add_argument("--devices", default="auto", help="auto | cpu | cuda:0,cuda:1")
    p.add_argument("--workers", type=int, help="worker processes (default: one per GPU, or one per CPU core)")
    p.add_argument("--trials-per-device", type=int,
                   help="trials sharing one GPU (default: CPU cores per GPU // 2, at most 8; see benchmarks/RESULTS.md)")
    p.add_argument("--retry-failed", action="store_true", help="re-run trials whose status is failed")
    p.add_argument("--report", action="store_true",
                   help="write the report (python -m study.report) afterwards: to OUT/report with --out, "
                        "else reports/<name>")
    p.add_argument("--until-decided", action="store_true",
                   help="run in rounds, giving more seeds or iterations to the cells an undecided claim still "
                        "needs, until every claim is decided or a limit is hit (study/adaptive.py)")
    p.add_argument("--no-adaptive", action="store_true",
                   help="run a spec that has an until_decided block as a plain sweep (its grid only)")
    p.add_argument("--max-seeds", type=int, default=None,
                   help="with --until-decided: seeds a cell may reach, the design size every cell is tested at "
                        "(default 10)")
    p.add_argument("--max-hours", type=float, default=None, help="with --until-decided: stop starting rounds after this")
    p.add_argument("--budgets", type=lambda v: [int(x) for x in v.split(",")], default=None, metavar="T1,T2,...",
                   help="with --until-decided: the generator-iteration budgets claim 1 is decided at, declared before "
                        "the run (α split over them); the first is the spec's gen_iters")
    p.add_argument("--extensions", type=int, default=None,
                   help="with --until-decided: times a backbone's training may be doubled (default 1; 0: seeds only, "
                        "and the whole α for one budget)")
    p.add_argument("--cache-dir", help="feature/classifier cache (default $WGAN_STUDY_CACHE or ~/.cache/wgan-study)")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error instead of one line")
    return p.parse_args(argv)


def check_devices(devices: str, n_gpus: int) -> None:
    if devices in ("auto", "cpu"):
        return
    for d in devices.split(","):
        if not (d.startswith("cuda:") and d[5:].isdigit()):
            raise UserError(f"--devices: '{d}' is not a device (allowed: auto, cpu, cuda:N[,cuda:M...])")
        if int(d[5:]) >= n_gpus:
            raise UserError(f"--devices: {d} not available (this machine has {n_gpus} GPU(s))")


def trial_table(trials: list[Trial]) -> str:
    keys = list(trials[0].varied) if trials else []
    rows = [["trial_id", *keys]] + [[t.id, *(str(varied_value(t.varied[k])) for k in keys)] for t in trials]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


class Progress:
    """trials done / running / failed, the time left and each running trial's generator iteration, on stderr.

    Time left: the estimated seconds of the trials still to run and of the running ones (less the time they
    have run), each scaled by measured / estimated seconds of the trials finished so far, packed on the
    workers as the sweep starts them (study/estimate.time_left)."""

    def __init__(self, name: str, total: int, skipped: int, gen_iters: dict[str, int],
                 estimates: Optional[dict[str, float]] = None, workers: int = 1):
        self.name, self.total, self.gen_iters = name, total, gen_iters
        self.done, self.failed, self.running = skipped, 0, {}
        self.estimates, self.workers = estimates, workers
        self.pending = list(estimates or ())   # in the order the trials start
        self.started: dict[str, float] = {}
        self.measured = self.estimated = 0.0   # seconds of the finished trials: as run, as estimated
        self.tty = sys.stderr.isatty()
        self._last = 0.0

    def update(self, ev: tuple) -> None:
        kind, trial = ev[0], ev[1]
        if kind == "start":
            self.running[trial] = 0
            self.started[trial] = time.monotonic()
            if trial in self.pending:
                self.pending.remove(trial)
        elif kind == "progress":
            self.running[trial] = ev[2]
        elif kind == "requeued":  # its worker was lost: back in the queue, not done
            self.running.pop(trial, None)
            if self.started.pop(trial, None) is not None and self.estimates and trial in self.estimates:
                self.pending.insert(0, trial)
        elif kind == "done":
            self.running.pop(trial, None)
            self.done += 1
            self.failed += ev[2] == "failed"
            began = self.started.pop(trial, None)
            if began is not None and self.estimates and trial in self.estimates and ev[2] != "failed":
                self.measured += time.monotonic() - began
                self.estimated += self.estimates[trial]
        self.show(force=kind == "done")

    def left(self) -> Optional[float]:
        """Seconds until the last trial ends, or None without an estimate."""
        if not self.estimates:
            return None
        from study.estimate import time_left
        ratio = self.measured / self.estimated if self.estimated > 0 else 1.0
        now = time.monotonic()
        running = [(self.estimates.get(t, 0.0), now - t0) for t, t0 in self.started.items()]
        return time_left(running, [self.estimates[t] for t in self.pending], self.workers, ratio)

    def say(self, text: str) -> None:
        """A line of its own, above the progress line."""
        sys.stderr.write(("\r\033[K" if self.tty else "") + f"[{self.name}] {text}\n")
        sys.stderr.flush()

    def show(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.tty and not force and now - self._last < DISPLAY_INTERVAL_S:
            return
        self._last = now
        runs = " | ".join(f"{t[:40]} {it}/{self.gen_iters[t]}" for t, it in sorted(self.running.items()))
        left = self.left()
        line = (f"[{self.name}] {self.done}/{self.total} done, {len(self.running)} running, "
                f"{self.failed} failed" + (f", ~{human(left)} left" if left is not None else "")
                + (f" | {runs}" if runs else ""))
        if self.tty:
            cols = os.get_terminal_size(sys.stderr.fileno()).columns
            sys.stderr.write("\r\033[K" + line[:cols - 1])
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def todo(trials: list[Trial], out: Path, retry_failed: bool) -> tuple[list[Trial], int, list[str], list[str]]:
    """(trials to run, trials skipped, trials whose result.json was damaged, trials whose config.yaml does not
    hash to their id). A damaged result.json is set aside (renamed result.json.damaged; with a config that is
    not the trial's, config.yaml.damaged too) and its trial runs again: it resumes from its last checkpoint,
    so a finished trial comes back with the same numbers."""
    from study.rundir import CONFIG, DONE, set_aside, trusted_result
    run, skipped, damaged, mismatched = [], 0, [], []
    for t in trials:
        res, _, at_fault = trusted_result(out / t.id)
        if at_fault:
            (mismatched if CONFIG in at_fault else damaged).append(t.id)
            set_aside(out / t.id, *at_fault)
        status = res.get("status") if res else None
        if status in DONE or (status == "failed" and not retry_failed):
            skipped += 1
        else:
            run.append(t)
    return run, skipped, damaged, mismatched


def keep_spec(out: Path, doc: dict) -> None:
    """sweep.yaml is the spec as run; a different (or unreadable) earlier one is kept under a dated name."""
    from study.rundir import SPEC, read_yaml
    path = out / SPEC
    if path.exists():
        old, problem = read_yaml(path)
        if old != doc:
            kept = path.rename(out / f"sweep.{time.strftime('%Y%m%d-%H%M%S')}.yaml")
            if problem:
                print(f"{path}: {problem}; kept as {kept.name}, the spec as run is written anew", file=sys.stderr)
    write_yaml(path, doc)


def preflight(args: argparse.Namespace, trials: list[Trial], out: Path) -> None:
    """Everything that can be checked before any trial runs; UserError (one line) otherwise."""
    from study.data import DataError, check_available
    for data_json in sorted({t.config.data.model_dump_json() for t in trials}):
        try:
            check_available(trials[0].config.data.model_validate_json(data_json))
        except DataError as e:
            raise UserError(f"{args.spec}: {e}") from None
    if any(t.config.log.tensorboard for t in trials):
        import importlib.util
        if importlib.util.find_spec("tensorboard") is None:
            raise UserError(f"{args.spec}: log.tensorboard: true needs the tensorboard package "
                            "(pip install 'wgan-study[tensorboard]')")
    from study.eval.budget import check_eval_memory
    check_eval_memory((t.config for t in trials), str(args.spec))  # what one evaluation holds: refused if too big
    import torch
    check_devices(args.devices, torch.cuda.device_count())
    from study.eval.evaluator import default_cache_dir
    if args.cache_dir:
        ensure_dir(Path(args.cache_dir), "--cache-dir")
    else:
        ensure_dir(default_cache_dir(), "cache directory ($WGAN_STUDY_CACHE or ~/.cache/wgan-study)",
                   "choose one with --cache-dir")
    if args.out:
        ensure_dir(out, "--out")
    else:
        ensure_dir(out, f"output directory (from the name in {args.spec})", "choose one with --out")


def listed(ids: list[str], n: int = 3) -> str:
    return ", ".join(ids[:n]) + (f" and {len(ids) - n} more" if len(ids) > n else "")


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    return run_cli("python -m study.sweep", lambda: sweep(args), args.debug)


def sweep(args: argparse.Namespace) -> int:
    for flag in ("workers", "trials_per_device", "max_seeds"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise UserError(f"--{flag.replace('_', '-')}: must be at least 1 (got {getattr(args, flag)})")
    if (args.extensions or 0) < 0 or (args.max_hours is not None and args.max_hours <= 0):
        raise UserError("--extensions must be 0 or more and --max-hours more than 0")
    if args.cache_dir:  # one path for the checks, the local workers and Ray's (which may run elsewhere)
        args.cache_dir = str(Path(args.cache_dir).expanduser().resolve())
    doc, trials = load_spec(args.spec, args.sets)
    name = doc["name"]
    if args.no_adaptive and args.until_decided:
        raise UserError("--until-decided and --no-adaptive contradict each other")
    if doc.get("until_decided") is not None and not args.no_adaptive:  # the spec's design; the command line wins
        args.until_decided = True
        cli_budget = args.budgets is not None or args.extensions is not None  # either one replaces the spec's
        for key, value in doc["until_decided"].items():
            if getattr(args, key) is None and not (cli_budget and key in ("budgets", "extensions")):
                setattr(args, key, value)
    if not args.until_decided and any(getattr(args, k) is not None for k in ("max_seeds", "max_hours", "extensions",
                                                                               "budgets")):
        raise UserError("--max-seeds, --max-hours, --budgets and --extensions go with --until-decided")
    if args.budgets is not None and args.extensions is not None:
        raise UserError("--budgets and --extensions: give one (extensions k means the budgets T, 2T, ... 2^k T)")
    out = args.out or Path("runs") / name
    if args.dry_run:
        if args.until_decided:
            from study.adaptive import describe
            print(describe(args, min((int(t.config.train.gen_iters) for t in trials), default=1)))
        print(f"{len(trials)} trials -> {out}/\n{trial_table(trials)}")
        sys.stdout.flush()  # the table first, then the estimate's lines (stderr) while it times
        estimate(args, name, run_order([t for t in trials if not finished(out / t.id)]), out)
        return OK
    preflight(args, trials, out)
    from study.rundir import Lock
    with Lock(out):
        keep_spec(out, doc)
        if args.until_decided:
            from study.adaptive import run_adaptive
            est = estimate(args, name, trials, out, adaptive=True)
            counts = run_adaptive(args, name, trials, out, partial(execute, est=est))
        else:
            counts = execute(args, name, trials, out)
        if counts is None:
            return INTERRUPTED
    if args.report:
        from study.report import ReportError, build_report
        try:  # beside the run directory it belongs to; runs/<name> keeps the default reports/<name>
            print(f"report: {build_report(out, out / 'report' if args.out else None)}", file=sys.stderr)
        except ReportError as e:
            raise UserError(f"report: {e}") from None
    return FAILED if counts.get("failed", 0) else OK


def run_order(trials: list[Trial]) -> list[Trial]:
    """Longest first, so the last trial to finish is a short one (better packing on few workers)."""
    return sorted(trials, key=lambda t: t.config.train.gen_iters * (1 + t.config.spec.critic_updates(t.config.algo)),
                  reverse=True)


def finished(trial_dir: Path) -> bool:
    from study.rundir import DONE, load_result
    res, _ = load_result(trial_dir)
    return bool(res) and res.get("status") in DONE


def estimate(args: argparse.Namespace, name: str, trials: list[Trial], out: Path, adaptive: bool = False,
             est: Optional[Estimator] = None) -> Optional[Estimator]:
    """Say on stderr what the trials (in the order they run) will take here, how that was measured, and warn
    when it is long for a machine without a GPU; the Estimator for the time left, None where there is no
    estimate (Ray's machines are not this one; a shape that cannot be timed is said in one line)."""
    from study import estimate as E
    say = lambda text: print(f"[{name}] {text}", file=sys.stderr, flush=True)  # noqa: E731
    if args.executor == "ray" or not trials or getattr(args, "no_estimate", False):
        return None
    try:
        est = est or new_estimator(args)
        if adaptive or (args.until_decided and args.dry_run):
            design = {k: getattr(args, k, None) for k in ("max_seeds", "extensions", "budgets")}
            low, high, seeds, top = est.adaptive(trials, design)
            hours = f"; --max-hours {args.max_hours:g} stops starting rounds" if args.max_hours else ""
            say(f"estimate: about {E.human(low)} for round 1 ({len(trials)} trials), up to {E.human(high)} if every "
                f"cell needs {seeds} seeds at {top:,} generator iterations, on {est.workers} worker(s){hours}")
        else:
            durations = est.durations(trials, out)
            high = est.wall([durations[t.id] for t in trials])
            say(f"estimate: about {E.human(high)} for {len(trials)} trials on {est.workers} worker(s)")
    except Exception as e:  # an estimate never stops a sweep (e.g. a dry run without the data)
        say(f"no estimate: {type(e).__name__}: {e}".splitlines()[0])
        return None
    say(f"estimate measured: {est.measured()}")
    warn = E.warning(name, high, est.gpu, max(t.config.train.gen_iters for t in trials))
    if warn:
        say(warn)
    return est


def new_estimator(args: argparse.Namespace) -> Estimator:
    from study.estimate import Estimator
    slots = plan(args)
    return Estimator(slots[0].device, slots[0].threads, len(slots), os.cpu_count() or 1,
                     Path(args.cache_dir) if args.cache_dir else None)


def plan(args: argparse.Namespace) -> list:
    """The local workers (study.executors.Slot): their device and threads."""
    import torch
    from study.executors import plan_slots
    return plan_slots(args.devices, args.workers, args.trials_per_device, os.cpu_count() or 1,
                      torch.cuda.device_count())


def execute(args: argparse.Namespace, name: str, trials: list[Trial], out: Path,
            est: Optional[Estimator] = None) -> Optional[Counter]:
    """Run the trials not yet done (the caller holds the lock); their status counts, or None if interrupted.
    `est`: the run's Estimator (an adaptive run's, whose shapes are timed already)."""
    from study.executors import WorkerFailure, run_local
    from study.rundir import ResultsTable, write_result
    run, skipped, damaged, mismatched = todo(trials, out, args.retry_failed)
    table = ResultsTable(out, min_interval_s=RESULTS_INTERVAL_S)
    table.write()
    slots = plan(args)
    where = ("Ray" if args.executor == "ray" else
             f"{len(slots)} worker(s) ({slots[0].device}, {slots[0].threads} thread(s) each)")
    print(f"[{name}] {len(trials)} trials, {skipped} already done, {len(run)} to run on {where} -> {out}/",
          file=sys.stderr)
    if damaged:
        print(f"[{name}] {len(damaged)} damaged result.json set aside as result.json.damaged, run again: "
              f"{listed(damaged)}", file=sys.stderr)
    if mismatched:
        print(f"[{name}] {len(mismatched)} trial(s) whose config.yaml does not hash to their id set aside as "
              f"config.yaml.damaged and result.json.damaged, run again: {listed(mismatched)}", file=sys.stderr)
    run = run_order(run)
    est = estimate(args, name, run, out, est=est)
    durations = est.durations(run, out) if est else None
    expected = f" (estimated {est.wall([durations[t.id] for t in run]):.0f} s at the start)" if est else ""
    progress = Progress(name, len(trials), skipped, {t.id: t.config.train.gen_iters for t in trials},
                        durations, len(slots))
    tasks = [(t.id, t.config.model_dump(mode="json"), str(out / t.id)) for t in run]

    def worker_died(trial_id: str, error: str) -> None:
        write_result(out / trial_id, {"trial_id": trial_id, "status": "failed", "error": error})

    if args.executor == "ray":
        from study.ray_executor import run_ray
        events = run_ray(tasks, out, args.cache_dir, args.workers, args.trials_per_device,
                         len(slots) * slots[0].threads, worker_died)
    else:
        events = run_local(tasks, slots, args.cache_dir, worker_died)
    t0 = time.perf_counter()
    try:
        with closing(events):  # on any exception the executor stops its workers before we go on
            for ev in events:
                if ev[0] == "ready":
                    continue
                if ev[0] in ("info", "requeued"):  # the Ray executor's lines
                    progress.say(f"{ev[1] + ': ' if ev[1] else ''}{ev[2]}")
                progress.update(ev)
                if ev[0] == "done":
                    table.update(ev[1])
                    table.write(force=False)
    except WorkerFailure as e:  # e.g. the disk is full: what is finished is kept, the rest resumes later
        raise UserError(f"[{name}] stopped: {e}") from None
    except Interrupted as e:
        if progress.tty:
            sys.stderr.write("\n")
        try:  # the workers are stopped now: a trial may have finished before its event was read
            for t in run:
                table.update(t.id)
            table.write()
        except OSError:
            pass  # results.csv is rebuilt from the trial directories on the next run
        print(f"[{name}] interrupted ({e}): {progress.done} of {len(trials)} trials done, the running ones "
              "resume from their last checkpoint; run the same command again to resume", file=sys.stderr)
        return None
    if progress.tty:
        sys.stderr.write("\n")
    table.write()
    counts = Counter(table.rows[t.id]["status"] for t in trials if t.id in table.rows)
    print(f"[{name}] {sum(counts.values())} trials: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
          + f" in {time.perf_counter() - t0:.0f} s{expected} -> {out}/results.csv", file=sys.stderr)
    return counts


if __name__ == "__main__":
    sys.exit(main())
