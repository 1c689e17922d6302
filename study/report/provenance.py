"""Where the numbers come from: the harness's commit and the hosts (setup), the torchmetrics cross-check of
FID/KID (metric provenance), Inception weights, and the quality metrics beyond the claims' (IS, precision/recall).

Everything here comes from each trial's result.json as the report read it (study.rundir.load_result, the one reader
of that file); the extra metrics are final values, so they are columns of `run.trials` already."""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

from study.report.cells import cells, fmt, ids, metric_label, pm, summarize

EXTRA = (("isc", "Inception Score"), ("precision", "precision"), ("recall", "recall"))


def _results(run) -> list[dict]:
    """The trials' result.json, as load_run read them (study.rundir.load_result)."""
    return [run.results[tid] for tid in run.trials["trial_id"] if tid in run.results]


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d


def harness_table(run) -> pd.DataFrame:
    """Trials per (harness commit, tree state, host, CPU, GPU); '–' where a result predates the record."""
    rows: dict[tuple, int] = {}
    for res in _results(run):
        prov = res.get("provenance") or {}
        commit, dirty = _get(prov, "harness", "commit"), _get(prov, "harness", "dirty")
        key = (commit[:12] if commit else "–", {True: "changed", False: "clean"}.get(dirty, "–"),
               _get(prov, "host", "hostname") or "–", _get(prov, "host", "cpu") or "–",
               _get(prov, "host", "gpu") or ("–" if not prov else "none"))
        rows[key] = rows.get(key, 0) + 1
    cols = ["harness commit", "tracked files", "host", "CPU", "GPU", "trials"]
    return pd.DataFrame([[*k, n] for k, n in sorted(rows.items())], columns=cols)


def inception_lines(run) -> list[str]:
    """One line per Inception weights file the trials used (sha256, standard or not)."""
    seen: dict[str, dict] = {}
    for res in _results(run):
        w = _get(res, "eval_info", "inception_weights")
        if isinstance(w, dict) and w.get("sha256"):
            seen.setdefault(w["sha256"], w)
    return [f"Inception weights `{w.get('file')}`: sha256 `{sha[:16]}…`, "
            + ("the standard pt_inception-2015-12-05 file" if w.get("standard") else
               "**not** the standard pt_inception-2015-12-05 file: FID@inception is not comparable with "
               "published numbers") for sha, w in sorted(seen.items())]


def crosscheck_table(run) -> pd.DataFrame:
    """Per metric: the reported torch-fidelity value against torchmetrics' on the same features and images."""
    from study.eval.crosscheck import RTOL
    per: dict[str, list[dict]] = {}
    for res in _results(run):
        for metric, v in (res.get("crosscheck") or {}).items():
            if isinstance(v, dict) and v.get("torch_fidelity") is not None and v.get("torchmetrics") is not None:
                per.setdefault(metric, []).append({**v, "trial_id": res.get("trial_id", "")})
    rows = []
    for metric, vs in sorted(per.items()):
        name = metric.partition("@")[0]
        tol = RTOL.get(name, math.nan)
        worst = max(float(v.get("rel_diff") or 0.0) for v in vs)
        median = lambda key: fmt(float(pd.Series([v[key] for v in vs]).median()), 6)  # noqa: E731
        rows.append({"metric": metric_label(f"eval/{metric}"), "n trials": len(vs),
                     "torch-fidelity, reported (median)": median("torch_fidelity"),
                     "torchmetrics (median)": median("torchmetrics"),
                     "largest relative difference": f"{worst:.1e}", "tolerance": f"{tol:.0e}",
                     "agree": "yes" if worst <= tol else "NO", "compared on": _sizes(vs[0], name),
                     "trials": " ".join(v["trial_id"] for v in vs)})
    return pd.DataFrame(rows)


def _sizes(v: dict, name: str) -> str:
    what = "one subset of" if name == "kid" else "all of"
    return f"{what} {v.get('n_real')} real / {v.get('n_gen')} generated"


def other_metrics_table(run) -> pd.DataFrame:
    """Per cell and feature extractor: Inception Score, precision and recall (completed trials, final values),
    beside the same metrics of real data (the floor the evaluator scores once)."""
    t = run.trials
    rows = []
    for label in ("domain", "inception"):
        keys = [f"eval/{m}@{label}" for m, _ in EXTRA]
        if not any(k in t and t[k].notna().any() for k in keys):
            continue
        for cell, c in cells(t):
            done = c[(c["status"] == "completed") & c[keys[0]].notna()] if keys[0] in c else c.iloc[:0]
            if done.empty:
                continue
            row: dict[str, Any] = {"cell": cell, "features": label, "seeds": len(done)}
            for (m, name), k in zip(EXTRA, keys):
                s = summarize(done[k].astype(float)) if k in done else summarize([])
                floor = done[f"floor/{k}"].astype(float).mean() if f"floor/{k}" in done else math.nan
                row[name] = pm(s["mean"], s["std"])
                row[f"{name}, real data"] = fmt(floor)
            rows.append({**row, "trials": ids(done)})
    return pd.DataFrame(rows)


OTHER_METRICS_TEXT = (
    "Final values of completed trials, mean ± std over seeds, beside the same metric of N real training images "
    "against the held-out ones. On *domain* features (the small classifier of the data, not Inception) they "
    "read as follows. **Inception Score** = exp(E KL(p(y|x) ‖ p(y))) with the domain classifier's classes: "
    "high when each sample is confidently one class and the classes are used evenly; at most the number of "
    "classes (10 digits, 1,000 stacked-MNIST triples), a count of *recognisable, diverse classes*, blind to "
    "quality within a class. **Precision** (Kynkäänniemi et al. 2019): the share of generated samples inside "
    "the real samples' 3-nearest-neighbour balls in feature space — fidelity; **recall**: the share of real "
    "samples inside the generated samples' balls — coverage, so mode dropping lowers recall, not precision. "
    "Both depend on N and on the feature space: compare them within one sweep, not with published Inception "
    "numbers.")
