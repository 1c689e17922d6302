"""Profile a reduced quick sweep with py-spy (every process: the sweep and its workers) and say where the
CPU time goes: by category (model math, Lightning machinery, evaluation, imports, ...), by function
(self time, outside model math), and the largest hotspot that is not model math.

py-spy samples Python stacks (on-CPU threads only); time in C++ ops is charged to the Python frame
that called them, so "model math" is the time under the networks' forward, autograd's backward and the
optimizers' step, and everything else is harness, library or evaluation overhead.

    python -m benchmarks.profile_sweep                          # 8 trials (seed 0), gen_iters 100
    python -m benchmarks.profile_sweep --full --out /tmp/quick --keep /tmp/prof.txt   # sweeps/quick.yaml as is
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchmarks import common
from benchmarks.common import REPO, emit, machine, rnd
from benchmarks.fanout import SPEC, quick_sets, warm_cache

FRAME = re.compile(r"^(?P<fn>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
PROCESS = re.compile(r'process \d+:"[^"]*";?')  # a process's command line may hold ';' itself

LIGHTNING = ("pytorch_lightning/", "lightning_fabric/", "lightning_utilities/")


def parse_frame(s: str) -> tuple[str, str]:
    """'Class.method (pkg/file.py:12)' -> ('method', 'pkg/file.py')."""
    m = FRAME.match(s)
    return (m["fn"].rsplit(".", 1)[-1], m["file"]) if m else (s, "")


def categorize(frames: list[tuple[str, str]], is_worker: bool) -> str:
    """One category per sample, from its stack (root first). py-spy charges a sample to the innermost
    Python frame, so inside the training step the leaf frame decides: Lightning's files are Lightning
    machinery, RealSampler is the data path, the step's own lines are metric/loss glue, and everything
    else (networks, autograd, optimizers, losses, clamping, noise) is the model math the plain loop
    does too."""
    files = [f for _, f in frames]
    fns = [fn for fn, _ in frames]

    def has(*parts, start=0):
        return any(any(p in f for p in parts) for f in files[start:])

    if "_find_and_load" in fns:
        return "imports"
    if not is_worker:
        return "sweep process (spec, progress, results.csv)"
    if "training_step" in fns:
        i = len(fns) - 1 - fns[::-1].index("training_step")
        leaf = files[-1]
        if i == len(frames) - 1:
            return "training step: own lines (metrics, loss glue)"
        if any(p in leaf for p in LIGHTNING):
            return "Lightning machinery in the step"
        if "study/data.py" in leaf:
            return "data path (RealSampler.next)"
        return "model math (forward, backward, optimizer update)"
    if has("study/eval/"):
        if any(fn == "__init__" and "study/eval/evaluator.py" in f for fn, f in frames) or "get_classifier" in fns:
            return "evaluator build (classifier, real statistics: once per worker)"
        return "evaluation: metrics"
    if has("study/callbacks.py"):
        i = max(j for j, f in enumerate(files) if "study/callbacks.py" in f)
        if has("study/samples.py", "matplotlib", "torchvision/utils.py", "PIL/", start=i):
            return "evaluation: sample grids (plotting, png)"
        if has("torch/serialization.py", "checkpoint", start=i) or "save_checkpoint" in fns[i:]:
            return "checkpoints"
        if "savez_compressed" in fns[i:] or has("numpy/lib/_npyio", start=i):
            return "evaluation: samples.npz"
        if "sample" in fns[i:]:
            return "evaluation: sampling"
        return "callbacks (other)"
    if "flush_row" in fns or has("csv_logs.py"):
        return "metrics logging (CSV)"
    if "final_values" in fns or "versions" in fns:
        return "trial results (final_values, versions)"
    if has("study/data.py"):
        return "data set loading (once per worker)"
    if has("pytorch_lightning/loops/"):
        return "Lightning loop (outside the step)"
    if has(*LIGHTNING):
        return "Lightning trainer setup/teardown"
    if has("study/trial.py", "study/executors.py"):
        return "trial setup (config, modules, Trainer)"
    return "other"


def leaf_name(stack: str) -> str:
    """The innermost frame as py-spy wrote it, without the line number."""
    leaf = PROCESS.sub("", stack).split(";")[-1]
    return re.sub(r":\d+\)$", ")", leaf)


def analyse(raw: Path, top: int = 15) -> dict:
    cats: Counter = Counter()
    self_time: Counter = Counter()
    incl: Counter = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        n = int(n)
        procs = PROCESS.findall(stack)
        frames = [parse_frame(p) for p in PROCESS.sub("", stack).split(";") if p]
        is_worker = len(procs) > 1 or any(fn == "spawn_main" for fn, _ in frames)
        cat = categorize(frames, is_worker)
        cats[cat] += n
        total += n
        if frames and not cat.startswith("model math"):
            self_time[leaf_name(stack)] += n
            for fn2, f2 in set(frames):
                if any(k in f2 for k in ("study/", "lightning_modules/")):
                    incl[f"{fn2} ({f2})"] += n
    share = lambda c: rnd(c / total, 3) if total else None  # noqa: E731
    by_cat = [{"category": k, "share": share(v), "samples": v} for k, v in cats.most_common()]
    non_model = [c for c in by_cat if not c["category"].startswith("model math")]
    return {"samples": total, "by_category": by_cat,
            "largest_non_model_category": non_model[0] if non_model else None,
            "top_self_outside_model_math": [{"frame": k, "share": share(v)} for k, v in self_time.most_common(top)],
            "top_inclusive_harness_frames_outside_model_math": [{"frame": k, "share": share(v)}
                                                                for k, v in incl.most_common(top)]}


def parse(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile_sweep", description=__doc__.split("\n")[0])
    p.add_argument("--gen-iters", type=int, default=100)
    p.add_argument("--full", action="store_true", help="profile sweeps/quick.yaml unchanged (no --set)")
    p.add_argument("--seeds", default="[0]")
    p.add_argument("--no-warmup", dest="warmup", action="store_false", help="turn the WGAN warm-up off")
    p.add_argument("--workers", type=int, help="sweep workers (default: the sweep's default)")
    p.add_argument("--rate", type=int, default=50, help="py-spy samples per second")
    p.add_argument("--keep", type=Path, help="keep py-spy's raw (collapsed stacks) output here")
    p.add_argument("--raw", type=Path, help="analyse this raw file instead of running a sweep")
    p.add_argument("--out", type=Path, help="keep the profiled sweep's directory here (e.g. for benchmarks.eval_fraction --from)")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse(argv)
    t0 = time.perf_counter()
    out = {"benchmark": "profile_sweep", "machine": machine()}
    if args.raw:
        out |= analyse(args.raw)
    else:
        pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        tmp = Path(tempfile.mkdtemp(prefix="bench_prof_"))
        cache = tmp / "cache"
        warm_cache(tmp / "warm", cache)
        sets = quick_sets(args.gen_iters, args.seeds, args.warmup, args.full)
        raw = args.keep or tmp / "profile.txt"
        cmd = [pyspy, "record", "--subprocesses", "--nonblocking", "--format", "raw", "--rate", str(args.rate),
               "-o", str(raw), "--", sys.executable, "-m", "study.sweep", str(SPEC), "--out", str(args.out or tmp / "sweep"),
               "--cache-dir", str(cache)] + [x for s in sets for x in ("--set", s)]
        if args.workers:
            cmd += ["--workers", str(args.workers)]
        t = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        out["sweep"] = {"rc": proc.returncode, "wall_s": rnd(time.perf_counter() - t), "sets": sets,
                        "command": " ".join(cmd[cmd.index("--") + 1:]).replace(str(REPO) + "/", "")}
        if raw.exists():
            out |= analyse(raw)
        else:
            out["error"] = (proc.stderr.strip().splitlines() or ["py-spy wrote nothing"])[-1]
        shutil.rmtree(tmp, ignore_errors=True)
    out.update(seconds=round(time.perf_counter() - t0, 1), command=common.command())
    emit(out)
    return out


if __name__ == "__main__":
    main()
