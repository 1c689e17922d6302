"""What each shipped sweep would take on this machine's CPU, from study/estimate.py (the numbers of README's sweep
table marked "estimated"). Prints one JSON object: per spec, the wall seconds on `--workers` one-thread CPU workers
of an idle machine (CPU seconds, no other load), round 1 and the design's maximum for an adaptive spec.

    python -m benchmarks.estimate_specs [--workers 2] [spec ...]
"""
from __future__ import annotations

import argparse
import time

from benchmarks.common import REPO, emit, machine

SPECS = ("quick", "cpu_verdicts", "constraint_quick", "conditional", "correlation", "modes", "arch", "constraint")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("specs", nargs="*", default=SPECS)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    from study import estimate as E
    from study.spec import load_spec
    out, t0 = {}, time.perf_counter()
    timings = None
    for name in args.specs:
        doc, trials = load_spec(REPO / "sweeps" / f"{name}.yaml")
        est = E.Estimator("cpu", 1, args.workers, args.workers, None)
        est.timings = timings
        est.time([t.config for t in trials])
        timings = est.timings
        est.timings = E.Timings(**{**vars(timings), "load": 0.0})  # an idle machine: the workers' share is a core
        plain = est.wall([est.seconds(t.config) for t in trials])
        row = {"trials": len(trials), "plain_s": round(plain)}
        if doc.get("until_decided"):
            low, high, seeds, top = est.adaptive(trials, dict(doc["until_decided"]))
            row.update(round1_s=round(low), max_s=round(high), max_seeds=seeds, max_iters=top)
        out[name] = row
        print(name, row, flush=True)
    emit({"benchmark": "estimate_specs", "workers": args.workers, "machine": machine(), "specs": out,
          "timing_s": round(time.perf_counter() - t0, 1), "load_avg_1m_at_timing": timings.load if timings else None})


if __name__ == "__main__":
    main()
