"""A published folder (results/<name>/, docs/run-layout.md): its data/ written by write_published and read back by
read_published into the same rows a run directory gives (study/report/load.py builds the Run from either), so
`python -m study.report results/<name>` re-derives every verdict and table without the run directory."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from study import rundir
from study.config import with_legacy
from study.report.cells import flatten
from study.report.load import CONTINUED_COLUMNS, ReportError, Run, parse_trial_id, trial_row
from study.rundir import read_config

# results/<name>/data/ holds what the report reads, written by write_published and read back by read_published:
# the report re-derives every verdict and table from it without the run directory.
PUBLISHED_DATA = "data"
TRIALS_FILE, CURVES_FILE, CONTINUED_FILE, RUN_FILE = "trials.csv.gz", "curves.csv.gz", "continued.csv", "run.json"
PROVENANCE_FILE = "provenance.json"  # beside data/: how the folder was made (study/publish.py)
FILTERED = "~median101"  # curves.csv.gz: the loss estimate median-filtered over every iteration, read at the row
PUBLISHED_FORMAT = 1
# readable columns of trials.csv.gz (the rest of a row is its result.json and config as JSON, which the reader uses)
READABLE = ["trial_id", "cell", "loss", "backbone", "data", "seed", "status", "gen_iters", "critic_iters", "wall_s",
            "wall_s_run", "eval_s", "continues", "device", "corr_spearman"]


def is_published(root: Path) -> bool:
    return (Path(root) / PUBLISHED_DATA / TRIALS_FILE).is_file()


def _curve(m: Optional[pd.DataFrame], estimate: Optional[str]) -> Optional[pd.DataFrame]:
    """The evaluation rows of one metrics.csv (step, eval/*, train/* at them) and the filtered estimate at them."""
    from study.eval.stats import median_filter
    if m is None or "step" not in m:
        return None
    m = m.sort_values("step", kind="stable").reset_index(drop=True)
    ev = [c for c in m.columns if c.startswith("eval/")]
    at = m[ev].notna().any(axis=1) if ev else pd.Series(False, index=m.index)
    out = m.loc[at, ["step", *ev, *(c for c in m.columns if c.startswith("train/"))]].copy()
    if estimate and estimate in m:  # as claim 2's figure filters: over the rows that have an estimate
        raw = pd.to_numeric(m[estimate], errors="coerce")
        filtered = pd.Series(math.nan, index=m.index)
        filtered[raw.notna()] = median_filter(raw.dropna().to_numpy(float))
        out[estimate + FILTERED] = filtered[at].to_numpy()
        from study.report.trendfree import STEP_MEDIAN, step_median  # claim 2's statistic, as it reads raw rows
        ok = raw.notna()
        sm = step_median(m.loc[ok, "step"].to_numpy(float), raw[ok].to_numpy(float), m.loc[at, "step"].to_numpy(float))
        out[estimate + STEP_MEDIAN] = np.where(raw[at].notna().to_numpy(), sm, np.nan)  # as eval_curve: rows with a raw value
    return out


def write_published(run: Run, data: Path, keep_grids: set[str]) -> None:
    """What the report reads, into `data` (a published folder's data/): small files only. `keep_grids`: the
    trials whose last sample grid is kept (those the report's sample sheets show)."""
    import shutil
    from lightning_modules import ALGORITHMS
    data.mkdir(parents=True, exist_ok=True)
    rows, curves = [], []
    every = run.trials.assign(budget_part=False)
    if run.budget_trials is not None:  # each seed at an earlier declared budget: claim 1 is decided there too
        every = pd.concat([every, run.budget_trials.assign(budget_part=True)], ignore_index=True)
    for _, r in every.iterrows():
        tid = r["trial_id"]
        res = run.results.get(tid)
        cfg = None
        if r["status"] != "missing" and tid in run.configs:
            cfg, _ = read_config(run.root / tid, res)
            cfg = with_legacy(cfg) if cfg else None
        row = {k: r.get(k) for k in READABLE}
        row.update({k: r[k] for k in run.trials.columns if str(k).startswith("eval/")})
        row.update(budget_part=bool(r["budget_part"]), ledger_id=rundir.ledger_mark(run.root / tid) or "")
        row.update(n_grids=int(r.get("n_grids") or 0), issues=r.get("issues") or "",
                   result=json.dumps({k: v for k, v in res.items() if k != "config"}) if res else "",
                   config=json.dumps(cfg) if cfg else "",
                   config_flat=json.dumps(run.configs.get(tid)) if cfg is None and tid in run.configs else "")
        rows.append(row)
        loss = r["loss"]
        est = ALGORITHMS.get(loss).estimate_key if loss in ALGORITHMS.names() else None
        c = _curve(run.metrics.get(tid), est)
        if c is not None:
            curves.append(c.assign(trial_id=tid))
    pd.DataFrame(rows).to_csv(data / TRIALS_FILE, index=False)
    cur = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=["trial_id", "step"])
    cur[["trial_id", *(c for c in cur.columns if c != "trial_id")]].to_csv(data / CURVES_FILE, index=False)
    run.continued.to_csv(data / CONTINUED_FILE, index=False)
    (data / RUN_FILE).write_text(json.dumps({"format": PUBLISHED_FORMAT, "name": run.name, "run_dir": str(run.root),
                                             "results_cols": run.axes, "notes": run.notes}, indent=1) + "\n")
    (data / rundir.SPEC).write_text(run.spec_text)
    for f in [run.root / rundir.ADAPTIVE, *sorted(run.root.glob("ledger*.json"))]:  # verbatim: read back the same way
        if f.is_file():
            shutil.copyfile(f, data / f.name)
    for tid in sorted(keep_grids):
        g = run.grids.get(tid) or []
        if g:
            (data / "samples" / tid).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(g[-1], data / "samples" / tid / g[-1].name)


def _json(text: Any) -> Any:
    return json.loads(text) if isinstance(text, str) and text else None


def read_published(root: Path) -> tuple:
    """A published folder's trials (write_published), as _read_run_dir returns a run directory's."""
    data = root / PUBLISHED_DATA
    try:
        meta = json.loads((data / RUN_FILE).read_text())
        table = pd.read_csv(data / TRIALS_FILE, dtype={"result": str, "config": str, "config_flat": str,
                                                       "issues": str, "ledger_id": str},
                            keep_default_na=False, na_values=[""])
        cur = pd.read_csv(data / CURVES_FILE)
        continued = pd.read_csv(data / CONTINUED_FILE) if (data / CONTINUED_FILE).exists() else \
            pd.DataFrame(columns=CONTINUED_COLUMNS)
        spec_text = (data / rundir.SPEC).read_text()
    except (OSError, ValueError) as e:
        raise ReportError(f"{data}: not a readable published folder ({type(e).__name__}: {e})") from None
    rows, configs, metrics, grids, results, short_rows = [], {}, {}, {}, {}, []
    marks = {m for m in table.get("ledger_id", pd.Series(dtype=str)).dropna() if isinstance(m, str) and m}
    curves = {tid: c.drop(columns="trial_id").dropna(axis=1, how="all").reset_index(drop=True)
              for tid, c in cur.groupby("trial_id", sort=False)}
    for r in table.to_dict("records"):
        tid = str(r["trial_id"])
        res, cfg = _json(r.get("result")), _json(r.get("config"))
        issues = r.get("issues") if isinstance(r.get("issues"), str) else ""
        if r["status"] == "missing":
            row = {"trial_id": tid, "status": "missing", **parse_trial_id(tid), "issues": issues, "n_grids": 0}
        else:
            row = trial_row(tid, res, cfg, issues, int(r.get("n_grids") or 0))
        (short_rows if str(r.get("budget_part")) == "True" else rows).append(row)
        if res:
            results[tid] = res
        flat = flatten(cfg) if cfg else _json(r.get("config_flat"))
        if flat:
            configs[tid] = flat
        if tid in curves:
            metrics[tid] = curves[tid]
        grids[tid] = sorted((data / "samples" / tid).glob("grid_*.png"))
    notes = list(meta.get("notes") or [])
    return (str(meta.get("name") or root.name), spec_text, rows, configs, metrics, grids, results,
            list(meta.get("results_cols") or []), continued, notes, short_rows, marks)


def published_trials(root: Path) -> list[tuple[str, Optional[dict], Optional[dict]]]:
    """(trial id, config, result.json) of every trial of a published folder: what study.verify --rerun re-runs."""
    try:
        table = pd.read_csv(Path(root) / PUBLISHED_DATA / TRIALS_FILE, dtype={"result": str, "config": str},
                            keep_default_na=False, na_values=[""])
    except (OSError, ValueError) as e:
        raise ReportError(f"{root}: not a published folder ({type(e).__name__})") from None
    return [(str(r["trial_id"]), _json(r.get("config")), _json(r.get("result"))) for r in table.to_dict("records")]


def read_provenance(root: Path) -> Optional[dict]:
    try:
        return json.loads((Path(root) / PROVENANCE_FILE).read_text())
    except (OSError, ValueError):
        return None
