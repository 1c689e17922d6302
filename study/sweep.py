"""python -m study.sweep SPEC: expand a sweep into trials, run them on every device, keep every result.

Completed (and diverged) trials are skipped on a re-run, interrupted ones resume from their last
checkpoint, failed ones re-run only with --retry-failed. Exit code: 0 when no trial failed, 1 when
some did, 2 for bad input (one line on stderr, nothing run).
"""
from __future__ import annotations

import argparse
import fcntl
import os
import sys
import time
from pathlib import Path
from typing import Optional

import yaml

from study.config import UserError
from study.io import write_json, write_yaml
from study.spec import Trial, load_spec, varied_value

DISPLAY_INTERVAL_S = 10.0  # progress lines when stderr is not a terminal


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse prints the whole usage)
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    p = _Parser(prog="python -m study.sweep", description=__doc__.split("\n")[0])
    p.add_argument("spec", type=Path, help="sweep YAML (see sweeps/)")
    p.add_argument("--out", type=Path, help="output directory (default runs/<name>)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="dotted.key=yaml_value",
                   help="edit the spec before expansion, e.g. --set base.train.gen_iters=50 --set grid.seed=[0]")
    p.add_argument("--dry-run", action="store_true", help="print the trials and exit")
    p.add_argument("--executor", choices=("local", "ray"), default="local")
    p.add_argument("--devices", default="auto", help="auto | cpu | cuda:0,cuda:1")
    p.add_argument("--workers", type=int, help="worker processes (default: one per GPU, or one per CPU core)")
    p.add_argument("--trials-per-device", type=int,
                   help="trials sharing one GPU (default: CPU cores per GPU // 2, at most 8; see benchmarks/RESULTS.md)")
    p.add_argument("--retry-failed", action="store_true", help="re-run trials whose status is failed")
    p.add_argument("--report", action="store_true", help="write the report (python -m study.report) afterwards")
    p.add_argument("--cache-dir", help="feature/classifier cache (default $WGAN_STUDY_CACHE or ~/.cache/wgan-study)")
    return p.parse_args(argv)


def check_devices(devices: str, n_gpus: int) -> None:
    if devices in ("auto", "cpu"):
        return
    for d in devices.split(","):
        if not (d.startswith("cuda:") and d[5:].isdigit()):
            raise UserError(f"--devices: '{d}' is not a device (allowed: auto, cpu, cuda:N[,cuda:M...])")
        if int(d[5:]) >= n_gpus:
            raise UserError(f"--devices: {d} not available (this machine has {n_gpus} GPU(s))")


class Lock:
    """One sweep per output directory: a second one refuses instead of interleaving results."""

    def __init__(self, out: Path):
        self.path = out / ".lock"

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(self.fd)
            raise UserError(f"{self.path.parent}: another sweep (pid {holder}) is running on this directory; "
                            "wait for it or choose another --out") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)  # closing releases the lock (so does the process dying)

    @staticmethod
    def held(out: Path) -> bool:
        """Is a sweep running on `out` right now? (The file stays; the lock dies with its holder.)"""
        try:
            fd = os.open(out / ".lock", os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)


def prepare_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UserError(f"--out {out}: not writable ({e.strerror})") from None


def trial_table(trials: list[Trial]) -> str:
    keys = list(trials[0].varied) if trials else []
    rows = [["trial_id", *keys]] + [[t.id, *(str(varied_value(t.varied[k])) for k in keys)] for t in trials]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


class Progress:
    """trials done / running / failed and each running trial's generator iteration, on stderr."""

    def __init__(self, name: str, total: int, skipped: int, gen_iters: dict[str, int]):
        self.name, self.total, self.gen_iters = name, total, gen_iters
        self.done, self.failed, self.running = skipped, 0, {}
        self.tty = sys.stderr.isatty()
        self._last = 0.0

    def update(self, ev: tuple) -> None:
        kind, trial = ev[0], ev[1]
        if kind == "start":
            self.running[trial] = 0
        elif kind == "progress":
            self.running[trial] = ev[2]
        elif kind == "done":
            self.running.pop(trial, None)
            self.done += 1
            self.failed += ev[2] == "failed"
        self.show(force=kind == "done")

    def show(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.tty and not force and now - self._last < DISPLAY_INTERVAL_S:
            return
        self._last = now
        runs = " | ".join(f"{t[:40]} {it}/{self.gen_iters[t]}" for t, it in sorted(self.running.items()))
        line = (f"[{self.name}] {self.done}/{self.total} done, {len(self.running)} running, "
                f"{self.failed} failed" + (f" | {runs}" if runs else ""))
        if self.tty:
            cols = os.get_terminal_size(sys.stderr.fileno()).columns
            sys.stderr.write("\r\033[K" + line[:cols - 1])
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def todo(trials: list[Trial], out: Path, retry_failed: bool) -> tuple[list[Trial], int]:
    from study.trial import DONE, read_result
    run, skipped = [], 0
    for t in trials:
        res = read_result(out / t.id)
        status = res.get("status") if res else None
        if status in DONE or (status == "failed" and not retry_failed):
            skipped += 1
        else:
            run.append(t)
    return run, skipped


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    try:
        return sweep(args)
    except UserError as e:
        print(str(e), file=sys.stderr)
        return 2


def sweep(args: argparse.Namespace) -> int:
    for flag in ("workers", "trials_per_device"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise UserError(f"--{flag.replace('_', '-')}: must be at least 1 (got {getattr(args, flag)})")
    doc, trials = load_spec(args.spec, args.sets)
    out = args.out or Path("runs") / doc["name"]
    if args.dry_run:
        print(f"{len(trials)} trials -> {out}/\n{trial_table(trials)}")
        return 0
    from study.data import check_available
    for data_json in sorted({t.config.data.model_dump_json() for t in trials}):
        check_available(trials[0].config.data.model_validate_json(data_json))
    import torch
    n_gpus = torch.cuda.device_count()
    check_devices(args.devices, n_gpus)
    prepare_out(out)
    from study.executors import plan_slots, run_local, run_ray
    from study.results import write_results_csv
    with Lock(out):
        spec_path = out / "sweep.yaml"
        if spec_path.exists() and yaml.safe_load(spec_path.read_text()) != doc:  # keep the old spec too
            spec_path.rename(out / f"sweep.{time.strftime('%Y%m%d-%H%M%S')}.yaml")
        write_yaml(spec_path, doc)
        run, skipped = todo(trials, out, args.retry_failed)
        slots = plan_slots(args.devices, args.workers, args.trials_per_device, os.cpu_count() or 1, n_gpus)
        print(f"[{doc['name']}] {len(trials)} trials, {skipped} already done, {len(run)} to run on "
              f"{len(slots)} worker(s) ({slots[0].device}, {slots[0].threads} thread(s) each) -> {out}/",
              file=sys.stderr)
        progress = Progress(doc["name"], len(trials), skipped, {t.id: t.config.train.gen_iters for t in trials})
        # longest first, so the last trial to finish is a short one (better packing on few workers)
        run.sort(key=lambda t: t.config.train.gen_iters * (1 + (t.config.wgan.n_critic if t.config.loss == "wgan"
                                                                else t.config.gan.d_steps)), reverse=True)
        tasks = [(t.id, t.config.model_dump(mode="json"), str(out / t.id)) for t in run]

        def worker_died(trial_id: str, error: str) -> None:
            write_json(out / trial_id / "result.json", {"trial_id": trial_id, "status": "failed", "error": error})

        events = (run_ray(tasks, slots, args.cache_dir) if args.executor == "ray"
                  else run_local(tasks, slots, args.cache_dir, worker_died))
        t0 = time.perf_counter()
        for ev in events:
            if ev[0] == "ready":
                continue
            progress.update(ev)
            if ev[0] == "done":
                write_results_csv(out)
        if progress.tty:
            sys.stderr.write("\n")
        write_results_csv(out)
        import pandas as pd
        df = pd.read_csv(out / "results.csv")
        mine = df[df["trial_id"].isin([t.id for t in trials])]
        counts = mine["status"].value_counts().to_dict()
        print(f"[{doc['name']}] {len(mine)} trials: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
              + f" in {time.perf_counter() - t0:.0f} s -> {out}/results.csv", file=sys.stderr)
    if args.report:
        from study.report import build_report
        print(f"report: {build_report(out, None)}", file=sys.stderr)
    return 1 if counts.get("failed", 0) else 0


if __name__ == "__main__":
    sys.exit(main())
