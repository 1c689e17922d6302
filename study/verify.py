"""python -m study.verify RUN_DIR: check a run directory before publishing from it.

One line per problem on stdout (`<file>: <what is wrong>`), a summary on stderr; exit 0 when clean, 1 when
something is wrong, 2 for bad input (no such directory, or not a run directory). It checks
- ids against configs: every config.yaml (and result.json's copy) hashes to its trial directory's name, the
  way the sweep names trials (old directories through study/config.py's LEGACY);
- result.json against its schema (docs/run-layout.md);
- metrics.csv: a `step` column whose values increase row by row;
- checkpoints: each checkpoints/iter_*.ckpt loads and was written at the iteration its name says;
- the spec: sweep.yaml (or an earlier spec kept beside it, sweep.<date>-<time>.yaml) rebuilds every trial.
It reads through study/rundir.py and changes nothing.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Iterator, Optional

from study.cli import FAILED, OK, ArgumentParser
from study.cli import run as run_cli
from study.errors import UserError
from study.rundir import (CHECKPOINTS, CONFIG, METRICS, RESULT, SPEC, get_dotted, id_mismatch,
                          load_result, read_checkpoint, read_config, read_metrics, trial_dirs)

# result.json (docs/run-layout.md): key -> (allowed types, required). Results written before a key existed
# lack it (tests/fixtures/run_before_registry), so only what every version wrote is required.
_NUM = (int, float)
RESULT_SCHEMA = {
    "trial_id": ((str,), True), "status": ((str,), True), "error": ((str, type(None)), True),
    "gen_iters": ((int,), True), "critic_iters": ((int,), True), "diverged_at": ((int, type(None)), False),
    "wall_s": (_NUM, False), "eval_s": (_NUM, False), "device": ((str,), False),
    "compile": ((str, type(None)), False), "versions": ((dict,), False), "resumed_from": ((int,), False),
    "final": ((dict,), False), "correlation": ((dict,), False), "eval_info": ((dict,), False),
    "crosscheck": ((dict,), False), "noise": ((dict,), False), "provenance": ((dict,), False),
    "config": ((dict,), False), "final_error": ((str,), False), "threads": ((dict,), False),
}


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    p = ArgumentParser(prog="python -m study.verify", description=__doc__.split("\n")[0])
    p.add_argument("run_dir", type=Path, help="a sweep's output directory (runs/<name>)")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error instead of one line")
    return p.parse_args(argv)


def result_problems(res: dict) -> Iterator[str]:
    """What in a readable result.json breaks its schema."""
    for key, (types, required) in RESULT_SCHEMA.items():
        if key not in res:
            if required:
                yield f"no '{key}'"
        elif not isinstance(res[key], types) or (isinstance(res[key], bool) and bool not in types):
            yield f"'{key}' is {type(res[key]).__name__} (allowed: {', '.join(t.__name__ for t in types)})"
    final = res.get("final")
    if isinstance(final, dict):
        bad = [k for k, v in final.items() if v is not None and (isinstance(v, bool) or not isinstance(v, _NUM))]
        if bad:
            yield f"'final.{bad[0]}' is not a number"
    if res.get("status") == "completed" and not isinstance(final, dict):
        yield "completed without 'final' numbers"
    if res.get("status") == "diverged" and not isinstance(res.get("diverged_at"), int):
        yield "diverged without 'diverged_at'"
    iters = get_dotted(res.get("config") or {}, "train.gen_iters")
    done = res.get("gen_iters")
    if res.get("status") == "completed" and isinstance(iters, int) and isinstance(done, int) and done != iters:
        yield f"completed at generator iteration {done} of {iters}"


def metrics_problem(trial_dir: Path) -> Optional[str]:
    import pandas as pd
    df, problem = read_metrics(trial_dir)
    if problem:
        return problem.removeprefix(f"{METRICS} ")
    if "step" not in df.columns:
        return "no 'step' column"
    steps = pd.to_numeric(df["step"], errors="coerce")
    if steps.isna().any():
        return f"row {int(steps.isna().to_numpy().argmax()) + 2}: step is not a number"
    back = (steps.diff() <= 0).to_numpy()
    if back.any():
        i = int(back.argmax())
        return f"row {i + 2}: step {int(steps.iloc[i])} after {int(steps.iloc[i - 1])} (steps must increase)"
    return None


def trial_problems(d: Path) -> Iterator[tuple[Path, str]]:
    """(file, problem) for one trial directory."""
    res, problem = load_result(d)
    if problem:
        yield d / RESULT, problem.removeprefix(f"{RESULT} ")
    cfg, cfg_problem = read_config(d)
    if cfg_problem and ((d / CONFIG).exists() or res is not None):
        yield d / CONFIG, cfg_problem.removeprefix(f"{CONFIG} ")
    mismatch = id_mismatch(d, cfg) if cfg_problem is None else None
    if mismatch:
        yield d / CONFIG, mismatch.removeprefix(f"{CONFIG} ")
    if res is not None:
        yield from ((d / RESULT, p) for p in result_problems(res))
        if isinstance(res.get("trial_id"), str) and res["trial_id"] != d.name:
            yield d / RESULT, f"trial_id is {res['trial_id']}, not its directory's name"
        copy = res.get("config")
        copy_mismatch = id_mismatch(d, copy) if isinstance(copy, dict) else None
        if copy_mismatch:
            yield d / RESULT, "its config" + copy_mismatch.removeprefix(CONFIG)
    if res is not None or (d / METRICS).exists():
        problem = metrics_problem(d)
        if problem:
            yield d / METRICS, problem
    for ckpt in sorted((d / CHECKPOINTS).glob("iter_*.ckpt")):
        step, problem = read_checkpoint(ckpt)
        named = ckpt.stem.removeprefix("iter_")
        if problem:
            yield ckpt, problem
        elif not named.isdigit() or int(named) != step:
            yield ckpt, f"written at generator iteration {step}, not the one its name says"


def rebuilt_ids(spec: Path) -> set[str]:
    """The trial ids a spec rebuilds. A spec that does not set a key added since (study/config.py LEGACY) may
    have run before it existed, with the legacy value: such trials count as rebuilt too."""
    from study.config import LEGACY
    from study.spec import load_spec
    doc, trials = load_spec(spec)
    axes = {str(k) for block in ("grid", "zip") for k in (doc.get(block) or {})}

    def set_by_spec(key: str) -> bool:  # an axis of its own or of its section, or a base setting
        return key in axes or key.split(".")[0] in axes or get_dotted(doc["base"], key) is not None
    ids = set()
    for t in trials:
        ids.add(t.id)
        loss = t.config.loss
        unset = {k: v for k, v in LEGACY.get(loss, {}).items() if not set_by_spec(f"{loss}.{k}")}
        if unset:
            section = getattr(t.config, loss).model_copy(update=unset)
            ids.add(t.config.model_copy(update={loss: section}).trial_id())
    return ids


def spec_problems(run_dir: Path, ids: list[str]) -> Iterator[tuple[Path, str]]:
    """Trials that neither sweep.yaml nor an earlier spec kept beside it rebuilds."""
    from study.config import ConfigError
    if not (run_dir / SPEC).exists():
        yield run_dir / SPEC, "missing: the trials cannot be rebuilt"
    rebuilt: set[str] = set()
    for spec in [run_dir / SPEC, *sorted(run_dir.glob("sweep.*.yaml"))]:
        if spec.exists():
            try:
                rebuilt |= rebuilt_ids(spec)
            except ConfigError as e:
                yield spec, str(e).removeprefix(f"{spec}: ")
    for tid in ids:
        if tid not in rebuilt:
            yield run_dir / tid, f"not a trial of {SPEC} (nor of an earlier spec kept beside it)"


def verify(run_dir: Path) -> list[tuple[Path, str]]:
    """Every (file, problem) of a run directory; [] when it is clean."""
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run directory" if not run_dir.exists() else
                        f"{run_dir}: not a directory; give a sweep's output directory (runs/<name>)")
    dirs = trial_dirs(run_dir, any_file=True)
    if not dirs and not (run_dir / SPEC).exists():
        raise UserError(f"{run_dir}: not a run directory (no {SPEC}, no trial directory)")
    problems = [p for d in dirs for p in trial_problems(d)]
    return problems + list(spec_problems(run_dir, [d.name for d in dirs]))


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)

    def body() -> int:
        problems = verify(args.run_dir)
        for path, problem in problems:
            print(f"{path}: {problem}")
        n = len(trial_dirs(args.run_dir, any_file=True))
        print(f"{args.run_dir}: {n} trial(s), " + (f"{len(problems)} problem(s)" if problems else "no problem"),
              file=sys.stderr)
        return FAILED if problems else OK
    return run_cli("python -m study.verify", body, args.debug)


if __name__ == "__main__":
    sys.exit(main())
