"""python -m study.publish SPEC --out results/NAME [--runs DIR] [--allow-dirty] [sweep options]: a citable result.

Runs the study (adaptively if the spec says so: study/adaptive.py) through study.sweep in its own run directory
(default runs/publish/NAME; the same command resumes it), at one commit of a clean tree, then exports the published
folder (study/report/publish.py): small files from which `python -m study.report results/NAME` re-derives every
verdict and table, and `python -m study.verify results/NAME --rerun K` re-runs any trial. provenance.json records
argv exactly, the spec file and its sha256, the commit, the versions of every package that touched a number, the
hardware and the wall time of every invocation; REPORT.md's header repeats them.

Exit codes as study.sweep's (study/cli.py); 2 (one line) for a dirty tree without --allow-dirty, or a run
directory whose trials were made at another commit.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import platform
import shlex
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Optional

from study.cli import FAILED, OK, ArgumentParser
from study.cli import run as run_cli
from study.errors import UserError
from study.io import read_json, write_json
from study.provenance import OUTPUT_DIRS

# every package whose code computed a published number (training, metrics, statistics, the data's source)
PACKAGES = ("torch", "torchvision", "lightning", "pytorch-lightning", "torchmetrics", "torch-fidelity", "numpy",
            "scipy", "pandas", "mlxtend")
RUNS = Path("runs") / "publish"      # default parent of the run directories
LOG = "publish.json"                 # in the run directory: every invocation that worked on it (argv, commit, wall)
EXCLUDED = OUTPUT_DIRS                # published folders may differ from the commit: they are its output


def git(*args: str) -> Optional[str]:
    from study.provenance import HARNESS_ROOT
    try:
        out = subprocess.run(["git", "-C", str(HARNESS_ROOT), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def tree_state() -> tuple[Optional[str], list[str]]:
    """(HEAD, the paths that differ from it: tracked changes and untracked files git does not ignore, results/
    excepted). (None, []) outside a git checkout."""
    head = git("rev-parse", "HEAD")
    if head is None:
        return None, []
    status = git("status", "--porcelain", "--untracked-files=all", "--", ".", *(f":(exclude){p}" for p in EXCLUDED))
    return head.strip(), [line[3:] for line in (status or "").splitlines() if line.strip()]


def versions() -> dict[str, Optional[str]]:
    out: dict[str, Optional[str]] = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def memory_gib() -> Optional[float]:
    try:
        with open("/proc/meminfo") as f:
            kib = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
        return round(kib / 2 ** 20, 1)
    except (OSError, StopIteration, ValueError):
        return None


def hardware() -> dict:
    from study.provenance import cpu_model
    import torch
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "memory_gib": memory_gib(), "gpus": gpus,
            "hostname": platform.node()}


def trial_commits(run_dir: Path) -> set[str]:
    """The harness commits the run directory's trials were made at (their result.json's provenance)."""
    from study.rundir import load_result, trial_dirs
    commits = set()
    for d in trial_dirs(run_dir) if run_dir.is_dir() else []:
        res, _ = load_result(d)
        c = ((res or {}).get("provenance") or {}).get("harness", {}).get("commit")
        if c:
            commits.add(c)
    return commits


def parse_args(argv: Optional[list[str]]):
    p = ArgumentParser(prog="python -m study.publish", description=__doc__.split("\n")[0],
                       epilog="Any other option goes to study.sweep (e.g. --set, --max-hours, --workers).")
    p.add_argument("spec", type=Path)
    p.add_argument("--out", type=Path, required=True, help="the published folder, results/NAME")
    p.add_argument("--runs", type=Path, help=f"the run directory (default {RUNS}/NAME)")
    p.add_argument("--allow-dirty", action="store_true",
                   help="run on a tree with uncommitted changes (REPORT.md's first screen says so)")
    p.add_argument("--debug", action="store_true")
    return p.parse_known_args(argv)


def publish(args, sweep_argv: list[str], argv: list[str]) -> int:
    from study import sweep
    from study.report.publish import export
    head, changed = tree_state()
    if changed and not args.allow_dirty:
        raise UserError(f"refusing to publish: {len(changed)} path(s) differ from commit {(head or '?')[:12]} "
                        f"(first: {changed[0]}); commit them, or pass --allow-dirty")
    run_dir = args.runs or RUNS / args.out.name
    other = trial_commits(run_dir) - {head}
    if head and other:
        raise UserError(f"{run_dir}: its trials were made at commit {sorted(other)[0][:12]}, not at HEAD "
                        f"{head[:12]}; check that commit out to resume it, or choose another --runs")
    log_path = run_dir / LOG
    log = read_json(log_path) if log_path.exists() else {"invocations": []}
    entry = {"argv": argv, "commit": head, "dirty": changed, "allow_dirty": bool(args.allow_dirty),
             "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "wall_s": None}
    t0 = time.monotonic()
    code = sweep.main([str(args.spec), "--out", str(run_dir), *sweep_argv, *(["--debug"] if args.debug else [])])
    entry["wall_s"] = round(time.monotonic() - t0, 1)
    entry["exit"] = code
    run_dir.mkdir(parents=True, exist_ok=True)
    log["invocations"].append(entry)
    write_json(log_path, log)
    if code not in (OK, FAILED):  # bad input or interrupted: the same command resumes; nothing to publish yet
        return code
    spec_bytes = args.spec.read_bytes()
    prov = {"command": shlex.join(["python", "-m", "study.publish", *argv[1:]]), "argv": argv[1:],
            "commit": head, "allow_dirty": any(i["allow_dirty"] for i in log["invocations"]),
            "dirty_paths": sorted({p for i in log["invocations"] for p in i["dirty"]}),
            "spec": {"file": str(args.spec), "sha256": hashlib.sha256(spec_bytes).hexdigest()},
            "run_dir": str(run_dir), "invocations": log["invocations"],
            "wall_s": round(sum(i["wall_s"] or 0 for i in log["invocations"]), 1),
            "versions": versions(), "hardware": hardware(),
            "published": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    from study.report import ReportError
    try:
        export(run_dir, args.out, prov)
    except ReportError as e:
        raise UserError(f"publish: {e}") from None
    from study.report.published import PUBLISHED_DATA
    (args.out / PUBLISHED_DATA / "spec.yaml").write_bytes(spec_bytes)  # the spec file as given (sha256 above)
    print(f"published: {args.out}/REPORT.md (run directory {run_dir})", file=sys.stderr)
    return code


def main(argv: Optional[list[str]] = None) -> int:
    # as typed: the module, never this machine's path to its file (sys.argv[0] under -m)
    argv = ["python -m study.publish", *(sys.argv[1:] if argv is None else argv)]
    args, rest = parse_args(argv[1:])
    return run_cli("python -m study.publish", lambda: publish(args, rest, argv), args.debug)


if __name__ == "__main__":
    sys.exit(main())
