"""results.csv: one row per trial, rebuilt from the trial directories (the source of truth)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from study.io import atomic_path, read_json
from study.spec import varied_value


def get_dotted(d: dict, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def axes_of(run_dir: Path) -> list[str]:
    try:
        spec = yaml.safe_load((run_dir / "sweep.yaml").read_text()) or {}
    except OSError:
        return []
    return [k for block in ("grid", "zip") for k in (spec.get(block) or {})]


def trial_rows(run_dir: Path) -> list[dict]:
    """A row per trial directory (one with a config.yaml); status `incomplete` until result.json exists."""
    axes = axes_of(run_dir)
    rows = []
    for cfg_path in sorted(run_dir.glob("*/config.yaml")):
        tdir = cfg_path.parent
        cfg = yaml.safe_load(cfg_path.read_text()) or {}
        row: dict[str, Any] = {"trial_id": tdir.name}
        row |= {k: varied_value(get_dotted(cfg, k)) for k in axes}
        try:
            res = read_json(tdir / "result.json")
        except (OSError, ValueError):
            res = {"status": "incomplete"}
        row |= {k: res.get(k) for k in ("status", "gen_iters", "critic_iters", "wall_s", "eval_s", "device", "error")}
        row |= dict(res.get("final") or {})
        row |= {f"correlation.{k}": v for k, v in (res.get("correlation") or {}).items()
                if k in ("n", "spearman", "pearson")}
        rows.append(row)
    return rows


def write_results_csv(run_dir: Path) -> Path:
    import pandas as pd
    path = run_dir / "results.csv"
    with atomic_path(path) as tmp:
        pd.DataFrame(trial_rows(run_dir)).to_csv(tmp, index=False)
    return path
