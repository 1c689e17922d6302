"""Read a sweep's directory (docs/run-layout.md) into one row per trial.

Trials are read from their own directories (result.json, config.yaml, metrics.csv), because
results.csv can be regenerated and may be stale; results.csv only tells us about trials that
have no directory yet ("missing"). Nothing is dropped: a trial whose files are absent or
unreadable gets a status and an `issues` note, and still appears in every count.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pandas as pd
import yaml

from lightning_modules import ALGORITHMS
from study.data import DATASETS
from study import rundir
from study.report.cells import as_float, assign_cells, flatten, splitting_keys
from study.report.rules import Design
from study.config import with_legacy
from study.rundir import (ID_MISMATCH, REPORT_STATUSES, RESULT, Lock, id_mismatch, load_result, named_as_trial,
                          read_config, read_metrics, trial_dirs)

# Order used in every count table: terminal states first, then what never finished.
STATUSES = REPORT_STATUSES
# Keys that define a cell on their own (loss, backbone label, data) or are replicates (seed).
CELL_KEYS = {"loss", "seed", "data.name", "backbone", "backbone.generator", "backbone.critic"}
# trial-id prefixes, longest first (wgan_gp before wgan)
_LOSS_RE = "|".join(sorted(ALGORITHMS.names(), key=len, reverse=True))
# data names likewise: backbone names hold underscores (dcgan_const), so the data part is matched by name
_DATA_RE = "|".join(sorted(map(re.escape, DATASETS.names()), key=len, reverse=True))
# a trial continued by a longer one (study/trial.extend): its own run, counted in the longer trial's training
CONTINUED_COLUMNS = ["trial_id", "continued_by", "status", "gen_iters", "wall_s", "eval_s"]
COLUMNS = ("seed", "error", "diverged_at", "device", "compile", "gen_iters", "critic_iters", "wall_s", "eval_s", "versions",
           "num_samples", "corr_estimate", "corr_quality", "corr_n", "corr_spearman", "corr_pearson", "issues")


class ReportError(Exception):
    """A user-facing problem with RUN_DIR: the CLI prints str() as one line and exits 2."""


@dataclass
class Run:
    root: Path
    name: str
    spec_text: str
    trials: pd.DataFrame                      # one row per trial, every status
    metrics: dict[str, pd.DataFrame]          # trial_id -> metrics.csv
    grids: dict[str, list[Path]]              # trial_id -> samples/grid_*.png, in step order
    varied: list[str]                         # config keys (dotted) that split cells beyond loss x backbone x data
    configs: dict[str, dict] = field(default_factory=dict)  # trial_id -> flattened config
    tied: list[str] = field(default_factory=list)  # varied, but fixed within each loss x data x backbone
    notes: list[str] = field(default_factory=list)
    results: dict[str, dict] = field(default_factory=dict)  # trial_id -> result.json, as read once here
    evidence: Optional[pd.DataFrame] = None  # per-trial evidence, computed once (study/report/outcomes.py)
    design: Design = field(default_factory=Design)  # an adaptive run's design size and looks (rules.Design)
    adaptive: Optional[dict] = None  # adaptive.json: the rounds of an --until-decided run
    ledger: Optional[list] = None    # ledger.json: the α ledger of an adaptive run (study/rundir.py)
    budget_trials: Optional[pd.DataFrame] = None  # trials continued by longer ones: each seed at an earlier budget
    # trials continued by longer ones (not in `trials`; their time is in the longer trial's wall_s): CONTINUED_COLUMNS
    continued: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CONTINUED_COLUMNS))
    provenance: Optional[dict] = None  # a published folder's provenance.json (study/publish.py)
    axes: list[str] = field(default_factory=list)  # results.csv's varied columns (the spec's axes)


def backbone_label(bb: Any) -> str:
    if isinstance(bb, dict):
        g, c = bb.get("generator"), bb.get("critic")
        return str(g) if g == c else f"{g}/{c}"
    return str(bb)


def parse_trial_id(tid: str) -> dict[str, Any]:
    """`wgan_dcgan-mlp_stacked_mnist5k_s0_1a2b3c4d` -> loss, backbone, data, seed (for trials with no config)."""
    m = re.match(rf"^(?:ac)?({_LOSS_RE})_(.+?)_({_DATA_RE})_s(\d+)_[0-9a-f]+$", tid)  # ac: conditional
    if not m:
        return {"loss": "?", "backbone": "?", "data": "?", "seed": math.nan}
    return {"loss": m[1], "backbone": m[2].replace("-", "/"), "data": m[3], "seed": int(m[4])}


def read_trial(d: Path) -> tuple[dict, Optional[dict], Optional[pd.DataFrame], list[Path], Optional[dict]]:
    """(row, flattened config or None, metrics or None, grid PNGs, result.json or None) for one trial directory."""
    res, res_problem = load_result(d)
    cfg, cfg_problem = read_config(d, res)
    met, met_problem = read_metrics(d)
    mismatch = id_mismatch(d, cfg) if res is not None and named_as_trial(d) else None
    if mismatch:  # set aside as a damaged result.json is: counted, but its config, numbers and curves unused
        res, cfg, met, res_problem = None, None, None, mismatch
    cfg = with_legacy(cfg) if cfg else cfg
    issues = [p for p in (res_problem or (None if res else f"no {RESULT}"), cfg_problem, met_problem) if p]
    grids = [] if mismatch else rundir.grids(d)
    row = trial_row(d.name, res, cfg, "; ".join(issues), len(grids))
    return row, (flatten(cfg) if cfg else None), met, grids, res


def trial_row(tid: str, res: Optional[dict], cfg: Optional[dict], issues: str, n_grids: int) -> dict:
    """One trial's row from its result.json and (legacy-filled) config: the same for every on-disk format."""
    issues_list = [issues] if issues else []
    row: dict[str, Any] = {"trial_id": tid, "status": (res or {}).get("status") or "incomplete"}
    row.update(parse_trial_id(tid))
    if cfg:
        row.update(loss=cfg.get("loss", row["loss"]), backbone=backbone_label(cfg.get("backbone", row["backbone"])),
                   data=(cfg.get("data") or {}).get("name", row["data"]), seed=cfg.get("seed", row["seed"]))
    if res:
        for k in ("error", "diverged_at", "device"):
            row[k] = res.get(k)
        row["compile"] = res.get("compile", "eager")  # results written before train.compile ran eager
        for k in ("gen_iters", "critic_iters", "wall_s", "eval_s"):
            row[k] = as_float(res.get(k))
        row["versions"] = json.dumps(res.get("versions") or {}, sort_keys=True)
        info = res.get("eval_info") or {}
        row["num_samples"] = as_float(info.get("num_samples"))
        row["domain_classifier_acc"] = as_float(info.get("domain_classifier_acc"))
        row["eval_notes"] = "; ".join(map(str, info.get("notes") or []))
        floor = info.get("real_floor") or {}
        row["real_class_fid"] = as_float(floor.get("eval/class_fid@domain"))
        row["knn_acc"] = as_float(info.get("knn_acc"))
        for k, v in floor.items():  # the real-data anchor of every metric (report: normalised quality)
            row[f"floor/{k}"] = as_float(v)
        for k, v in ((res.get("noise") or {}).get("abs_diff") or {}).items():  # two evaluations of one generator
            row[f"noise/{k}"] = as_float(v)
        for k, v in (res.get("final") or {}).items():
            row[k] = as_float(v)
        corr = res.get("correlation") or {}
        row.update({"corr_estimate": corr.get("estimate"), "corr_quality": corr.get("quality"),
                    "corr_n": as_float(corr.get("n")), "corr_spearman": as_float(corr.get("spearman")),
                    "corr_pearson": as_float(corr.get("pearson"))})
        if res.get("final_error") and f"final numbers: {res['final_error']}" not in issues:
            issues_list.append(f"final numbers: {res['final_error']}")
    if pd.isna(row.get("num_samples", math.nan)) and cfg:
        row["num_samples"] = as_float((cfg.get("eval") or {}).get("num_samples"))
    row["n_grids"] = n_grids
    row["issues"] = "; ".join(issues_list)
    return row


def varied_keys(configs: list[dict], results_cols: list[str]) -> list[str]:
    """Config keys with more than one value among the trials that have them (a loss section's keys
    exist only in that loss's trials), plus results.csv's varied columns; cell keys excluded."""
    values: dict[str, set] = {}
    for c in configs:
        for k, v in c.items():
            values.setdefault(k, set()).add(json.dumps(v, sort_keys=True, default=str))
    keys = {k for k, vs in values.items() if len(vs) > 1} | {k for k in results_cols if k in values}
    return sorted(keys - CELL_KEYS)


def _results_csv(root: Path, notes: list[str]) -> pd.DataFrame:
    path = root / rundir.RESULTS_CSV
    if not path.exists():
        return pd.DataFrame()
    try:
        return pd.read_csv(path)
    except Exception as e:
        notes.append(f"results.csv unreadable ({type(e).__name__}); trials were read from their directories")
        return pd.DataFrame()


def decision_record(root: Path, marks: set, notes: list) -> tuple[Optional[dict], Optional[list], Design]:
    """(adaptive.json, the α ledger, the Design to decide at). A run that was adaptive (adaptive.json, or trials
    marked with a ledger's id) decides only with its own intact ledger: without it, with a damaged one, or with
    another run's, it is refused (ReportError), never decided as a fresh plain sweep. Shared by every reader of a
    decision record (a run directory, a published folder)."""
    from study.adaptive import design_of
    adaptive, a_problem = rundir.read_adaptive(root)
    ledger, l_problem = rundir.read_ledger(root)
    fix = ("decide it from the run directory it was copied from (with its ledger.json), or run the study anew in "
           "an empty --out")
    if l_problem:
        raise ReportError(f"{root / rundir.LEDGER}: {l_problem}; {fix}")
    if a_problem and (ledger or marks):
        raise ReportError(f"{root / rundir.ADAPTIVE}: {a_problem}; {fix}")
    if ledger is None and (adaptive or marks):
        raise ReportError(f"{root}: adaptive run without its α ledger ({rundir.LEDGER} missing); {fix}")
    if ledger is not None:
        lid = rundir.ledger_id(ledger)
        if marks - {lid} or adaptive is None or adaptive.get("ledger") != lid:
            raise ReportError(f"{root}: its trials, adaptive.json and {rundir.LEDGER} belong to different runs; {fix}")
        return adaptive, ledger, design_of(ledger[-1])
    if a_problem:
        notes.append(a_problem + ": decided as a plain sweep")
    return None, None, Design()


def _read_run_dir(root: Path) -> tuple:
    """A run directory's trials (docs/run-layout.md), before cells are assigned."""
    notes: list[str] = []
    spec_path = root / rundir.SPEC
    spec_text, spec = "", None
    try:
        spec_text = spec_path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        notes.append("no sweep.yaml in the run directory")
    except (OSError, UnicodeDecodeError) as e:  # a damaged spec costs its section, not the report
        notes.append(f"sweep.yaml unreadable ({type(e).__name__})")
    if spec_text:
        try:
            spec = yaml.safe_load(spec_text)
        except yaml.YAMLError:
            notes.append("sweep.yaml is not valid YAML")
    name = str(spec.get("name")) if isinstance(spec, dict) and spec.get("name") else root.resolve().name
    if Lock.held(root):
        notes.append("a sweep is running on this directory right now: counts can change")

    rows, configs, metrics, grids, results = [], {}, {}, {}, {}
    dirs = trial_dirs(root, any_file=True)
    names = {d.name for d in dirs}
    # a finished trial continued by a longer one (study/trial.extend) is counted once, as the longer trial
    extended = {d.name for d in dirs if rundir.extended_to(d) in names}
    if extended:
        notes.append(f"{len(extended)} trial(s) were continued by longer ones and are counted once, as the longer "
                     "trial, whose wall time is the whole training (which: the trials table's `continues`)")
    short_rows = []
    for d in dirs:
        row, flat, met, g, res = read_trial(d)
        if res:
            results[d.name] = res
        if flat:
            configs[d.name] = flat
        if met is not None:
            metrics[d.name] = met
        if d.name in extended:  # kept aside: claim 1 reads each declared budget from the trial that ended there
            short_rows.append({**row, "status": res.get("status", row["status"]) if res else row["status"]})
            continue
        rows.append(row)
        grids[d.name] = g
    marks = {m for d in dirs if (m := rundir.ledger_mark(d))}
    continued = pd.DataFrame([_continued_row(root / tid) for tid in sorted(extended)], columns=CONTINUED_COLUMNS)

    set_aside = [r["trial_id"] for r in rows if ID_MISMATCH in r["issues"]]
    if set_aside:
        notes.append(f"{len(set_aside)} trial(s) left out, their config.yaml does not hash to their id (edited after "
                     f"the trial ran?): {', '.join(set_aside)}; the same sweep runs them again")
    rcsv = _results_csv(root, notes)
    results_cols: list[str] = []
    if "trial_id" in rcsv.columns:
        cols = list(rcsv.columns)
        end = cols.index("status") if "status" in cols else len(cols)
        results_cols = cols[1:end]
        seen = {r["trial_id"] for r in rows} | extended
        for _, r in rcsv[~rcsv["trial_id"].astype(str).isin(seen)].iterrows():
            row = {"trial_id": str(r["trial_id"]), "status": "missing", **parse_trial_id(str(r["trial_id"])),
                   "issues": "listed in results.csv, no trial directory", "n_grids": 0}
            rows.append(row)
            configs[row["trial_id"]] = {k: (r[k].item() if hasattr(r[k], "item") else r[k])
                                        for k in results_cols if k in r and pd.notna(r[k])}

    return name, spec_text, rows, configs, metrics, grids, results, results_cols, continued, notes, short_rows, marks


def load_run(run_dir: Path) -> Run:
    """The trials of a run directory or of a published folder (each read by its own reader), as one `Run`."""
    root = Path(run_dir)
    if not root.is_dir():
        raise ReportError(f"{root}: no such run directory")
    from study.report.published import PUBLISHED_DATA, is_published, read_provenance, read_published
    published = is_published(root)
    records = root / PUBLISHED_DATA if published else root  # where adaptive.json (and its ledgers) lie
    (name, spec_text, rows, configs, metrics, grids, results, results_cols, continued,
     notes, short_rows, marks) = (read_published if published else _read_run_dir)(root)
    whole_training(rows, continued)
    trials = pd.DataFrame(rows) if rows else pd.DataFrame(columns=["trial_id", "status", "loss", "backbone", "data"])
    for col in COLUMNS:  # columns every section reads, present even when no trial wrote them
        if col not in trials:
            trials[col] = math.nan
    adaptive, ledger, design = decision_record(records, marks, notes)
    varied, tied = splitting_keys(trials, configs, varied_keys(list(configs.values()), results_cols))
    if design.budgets:  # a seed's budget is where it stands in the declared design, never a cell of its own
        varied = [k for k in varied if k != "train.gen_iters"]
    trials = assign_cells(trials, configs, varied)
    budget_trials = None
    if short_rows:
        budget_trials = assign_cells(pd.DataFrame(short_rows).reindex(columns=trials.columns), configs, varied)
    return Run(root, name, spec_text, trials, metrics, grids, varied, configs=configs, tied=tied, notes=notes,
               results=results, design=design, adaptive=adaptive, ledger=ledger, budget_trials=budget_trials,
               continued=continued, axes=results_cols, provenance=read_provenance(root) if published else None)


def _continued_row(d: Path) -> dict:
    res, _ = load_result(d)
    res = res or {}
    return {"trial_id": d.name, "continued_by": rundir.extended_to(d), "status": res.get("status"),
            **{k: as_float(res.get(k)) for k in ("gen_iters", "wall_s", "eval_s")}}


def whole_training(rows: list[dict], continued: pd.DataFrame) -> None:
    """A continued trial trained twice: as the short trial(s) it continues, then as its extension. Its wall_s and
    eval_s become the whole training's (so hours and speeds count every iteration once); `wall_s_run` keeps its
    own run's, and `continues` names the trials before it."""
    by_long = {r["continued_by"]: r for r in continued.to_dict("records")}
    for row in rows:
        row["wall_s_run"] = as_float(row.get("wall_s"))
        chain, tid = [], row["trial_id"]
        while tid in by_long and len(chain) < len(by_long):  # short -> long -> longer ...
            chain.append(by_long[tid])
            tid = by_long[tid]["trial_id"]
        row["continues"] = " ".join(c["trial_id"] for c in chain)
        for k in ("wall_s", "eval_s"):
            if chain and row.get(k) == row.get(k) and row.get(k) is not None:
                row[k] = as_float(row[k]) + sum(as_float(c[k]) for c in chain)
