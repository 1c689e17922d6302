"""result.json's reader, and results.csv: one row per trial, from the trial directories (the source of truth).

A sweep builds the table once when it starts and then re-reads only the trial that just finished, so a
sweep of n trials reads O(n) files, not O(n^2) (8 s per rebuild at 2,000 trials was the old cost).
A damaged file never raises here: it shows up in the row (status `incomplete`, the problem in `error`).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional

import yaml

from study.io import atomic_path
from study.spec import varied_value

STATUSES = ("completed", "diverged", "failed")  # what a trial's result.json can say
DONE = ("completed", "diverged")                # terminal states a resumed sweep skips
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 2,000 configs in well under a second


def get_dotted(d: dict, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def load_result(trial_dir: Path) -> tuple[Optional[dict], Optional[str]]:
    """(result.json as a dict, None); (None, None) when there is none; (None, what is wrong) when it is
    damaged: unreadable, not UTF-8, not JSON, or not a trial's result."""
    try:
        text = (Path(trial_dir) / "result.json").read_bytes()
    except FileNotFoundError:
        return None, None
    except OSError as e:
        return None, f"result.json unreadable ({e.strerror})"
    try:
        res = json.loads(text)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
        return None, "result.json is not valid JSON"
    if not isinstance(res, dict) or res.get("status") not in STATUSES:
        return None, "result.json is not a trial result (no status " + "/".join(STATUSES) + ")"
    return res, None


def read_yaml(path: Path) -> tuple[Any, Optional[str]]:
    """(document, None), or (None, what is wrong) for a missing, unreadable or invalid YAML file."""
    try:
        return yaml.load(Path(path).read_bytes(), Loader=_Loader), None
    except OSError as e:
        return None, f"unreadable ({e.strerror})"
    except (yaml.YAMLError, ValueError) as e:
        return None, f"not valid YAML ({type(e).__name__})"


def axes_of(run_dir: Path) -> list[str]:
    spec, _ = read_yaml(run_dir / "sweep.yaml")
    if not isinstance(spec, dict):
        return []
    return [str(k) for block in ("grid", "zip") if isinstance(spec.get(block), dict) for k in spec[block]]


def is_trial_dir(d: Path) -> bool:
    return d.is_dir() and ((d / "config.yaml").exists() or (d / "result.json").exists())


def trial_row(tdir: Path, axes: list[str]) -> dict:
    """One trial's row; status `incomplete` until a readable result.json exists."""
    res, problem = load_result(tdir)
    cfg, cfg_problem = read_yaml(tdir / "config.yaml")
    if not isinstance(cfg, dict):  # e.g. damaged: the result keeps a copy of the config
        cfg = (res or {}).get("config") if isinstance((res or {}).get("config"), dict) else {}
    row: dict[str, Any] = {"trial_id": tdir.name}
    row |= {k: varied_value(get_dotted(cfg, k)) for k in axes}
    res = res or {"status": "incomplete", "error": problem}
    row |= {k: res.get(k) for k in ("status", "gen_iters", "critic_iters", "wall_s", "eval_s", "device", "error")}
    if cfg_problem and (tdir / "config.yaml").exists():
        row["error"] = "; ".join(filter(None, [row["error"], f"config.yaml: {cfg_problem}"]))
    final = res.get("final")
    row |= dict(final) if isinstance(final, dict) else {}
    corr = res.get("correlation")
    row |= {f"correlation.{k}": v for k, v in (corr if isinstance(corr, dict) else {}).items()
            if k in ("n", "spearman", "pearson")}
    return row


class ResultsTable:
    """results.csv of one run directory, kept in memory: built from every trial directory once, then
    `update(trial_id)` re-reads one trial. `write()` writes at most every `min_interval_s` seconds unless
    forced (results.csv can always be rebuilt from the trial directories, so a skipped write loses nothing)."""

    def __init__(self, run_dir: Path, min_interval_s: float = 0.0):
        self.run_dir, self.min_interval_s = Path(run_dir), min_interval_s
        self.axes = axes_of(self.run_dir)
        self.rows = {d.name: trial_row(d, self.axes) for d in sorted(self.run_dir.iterdir()) if is_trial_dir(d)}
        self._written = 0.0

    def update(self, trial_id: str) -> None:
        d = self.run_dir / trial_id
        if is_trial_dir(d):
            self.rows[trial_id] = trial_row(d, self.axes)

    def write(self, force: bool = True) -> Path:
        path = self.run_dir / "results.csv"
        if not force and time.monotonic() - self._written < self.min_interval_s:
            return path
        import pandas as pd
        with atomic_path(path) as tmp:
            pd.DataFrame([self.rows[k] for k in sorted(self.rows)]).to_csv(tmp, index=False)
        self._written = time.monotonic()
        return path


def write_results_csv(run_dir: Path) -> Path:
    return ResultsTable(run_dir).write()
