"""Cells (loss x backbone x data x other varied keys; seeds are replicates), and the small
statistics every claim section shares."""
from __future__ import annotations

from typing import Optional

import json
import math
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import pandas as pd

from lightning_modules import ALGORITHMS
from study.config import data_defaults
from study.data import DATASETS
from study.metrics import QUALITY, label, quality_metric

from study.eval.stats import t_interval, welch_interval

# Modes of each labelled data set (its registration), for "modes covered" as a fraction.
N_MODES = {n: DATASETS.get(n).modes for n in DATASETS.names() if DATASETS.get(n).modes}
# GAN first, then the Wasserstein variants, in registry order; labels and estimates from each registration
LOSS_ORDER = {n: i for i, n in enumerate(sorted(ALGORITHMS.names(), key=lambda n: (ALGORITHMS.get(n).wasserstein, n)))}
ESTIMATE = {n: a.estimate_key for n, a in ALGORITHMS.items()}
LABEL = {n: a.label for n, a in ALGORITHMS.items()}
VARIANTS = [n for n in LOSS_ORDER if ALGORITHMS.get(n).wasserstein]  # each is judged against the GAN


def variants_in(trials: pd.DataFrame) -> list[str]:
    """The Wasserstein variants a run's verdict cells hold (the WGAN at least, so every claim has a verdict)."""
    have = set(trials.loc[trials["in_verdict"].astype(bool), "loss"]) if len(trials) else set()
    return [v for v in VARIANTS if v in have] or ["wgan"]


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """Nested config -> {'wgan.clip': 0.01, ...}; lists become JSON text so they compare as values."""
    if not isinstance(d, dict):
        return {prefix: json.dumps(d) if isinstance(d, (list, tuple)) else d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


LOSS_SECTIONS = tuple(f"{n}." for n in ALGORITHMS.names())  # config sections of the algorithms


def norm(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


# The paper's settings of each loss (its registration's defaults, restricted to the keys that define it).
# When a sweep varies one of these keys, only cells at the paper's value enter the verdicts.
PAPER_SETTINGS = {n: a.settings().model_dump(mode="json", include=set(a.paper_keys)) for n, a in ALGORITHMS.items()}


def paper_settings(data: Any = None) -> dict[str, str]:
    """{'wgan.clip': '0.01', ...} as normalised values, comparable with flattened configs. With `data`, a data
    set's name: the published values for its kind of data where they differ (WGAN-GP's λ on points), as
    study.config.data_defaults applies them."""
    flat = flatten(PAPER_SETTINGS)
    if data in DATASETS:
        flat.update({k: v for k, v in flatten(data_defaults({"data": {"name": data}})).items() if k in flat})
    return {k: norm(v) for k, v in flat.items()}


def splitting_keys(trials: pd.DataFrame, configs: dict[str, dict], varied: list[str]) -> tuple[list, list]:
    """(keys that split cells, keys tied to loss x data x backbone). A spec that zips e.g. model.nz
    with the data set varies it, but it splits nothing: naming it in every label would only add noise."""
    split, tied = [], []
    for k in varied:
        seen: dict[tuple, set] = {}
        for _, r in trials.iterrows():
            c = configs.get(r["trial_id"], {})
            if k in c:
                seen.setdefault((r["loss"], r["data"], r["backbone"]), set()).add(norm(c[k]))
        (split if any(len(v) > 1 for v in seen.values()) else tied).append(k)
    return split, tied


def assign_cells(trials: pd.DataFrame, configs: dict[str, dict], varied: list[str]) -> pd.DataFrame:
    """Adds `hue` (loss + its own section's varied keys), `group` (data, backbone and shared varied
    keys: what GAN and WGAN are compared within), `cell` (group + hue) and `in_verdict`."""
    t = trials.copy()
    if t.empty:  # no trial at all: the caller reports that; keep the columns' types
        return t.assign(hue=pd.Series(dtype=object), group=pd.Series(dtype=object),
                        in_verdict=pd.Series(dtype=bool), cell=pd.Series(dtype=object))
    loss_keys = [k for k in varied if k.startswith(LOSS_SECTIONS)]
    shared_keys = [k for k in varied if not k.startswith(LOSS_SECTIONS)]
    # A swept loss-section key enters verdicts only at the paper's value (for that data), when that value was
    # swept; the other values are ablations (e.g. WGAN with Adam, which the paper reports as unstable).
    present = {k: {norm(c[k]) for c in configs.values() if k in c} for k in loss_keys}
    restrict = {(d, k): v for d in set(t["data"]) for k, v in paper_settings(d).items()
                if k in loss_keys and v in present[k]}
    hues, groups, verdict = [], [], []
    for _, r in t.iterrows():
        c = configs.get(r["trial_id"], {})
        own = [k for k in loss_keys if k.startswith(f"{r['loss']}.") and k in c]
        # the section prefix is implied by the loss: "WGAN (optimizer=adam)", not "WGAN (wgan.optimizer=adam)"
        own_txt = ", ".join(k.split(".", 1)[1] + f"={c[k]}" for k in own)
        hue = LABEL.get(r["loss"], str(r["loss"]).upper()) + (f" ({own_txt})" if own else "")
        shared = ", ".join(f"{k}={c.get(k, '?')}" for k in shared_keys)
        hues.append(hue)
        groups.append(f"{r['data']} · {r['backbone']}" + (f" · {shared}" if shared else ""))
        verdict.append(all(norm(c[k]) == restrict[(r["data"], k)] for k in own if (r["data"], k) in restrict))
    t["hue"], t["group"], t["in_verdict"] = hues, groups, verdict
    t["cell"] = t["group"] + " · " + t["hue"]
    t["_lo"] = t["loss"].map(LOSS_ORDER).fillna(9)
    t = t.sort_values(["data", "backbone", "group", "_lo", "hue", "seed", "trial_id"], kind="stable")
    return t.drop(columns="_lo").reset_index(drop=True)


def cells(trials: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(cell, its trials) in report order (data, backbone, GAN before WGAN)."""
    return [(c, trials[trials["cell"] == c]) for c in dict.fromkeys(trials["cell"])]


def as_float(x: Any) -> float:
    """A number from a table or JSON value; nan for anything that is not one."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def ids(frame: pd.DataFrame) -> str:
    return " ".join(frame["trial_id"])


def summarize(values: Iterable[float]) -> dict[str, float]:
    """n, mean, std (ddof 1) and the Student-t 95% interval of the mean over the finite values
    (valid at the 3-5 seeds a sweep has, where a percentile bootstrap is just the range)."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    lo, hi = t_interval(v)
    return {"n": len(v), "mean": float(v.mean()) if len(v) else math.nan,
            "std": float(v.std(ddof=1)) if len(v) > 1 else math.nan, "ci_lo": lo, "ci_hi": hi}


diff_ci = welch_interval  # mean(a) - mean(b) over two independent sets of seeds


def quality_metrics(trials: pd.DataFrame, data: str) -> list[str]:
    """Final-quality keys present for a data set (study.metrics: every FID extractor for images, W1 for toys)."""
    sub = trials[trials["data"] == data]
    return [k for k in QUALITY if k in sub.columns and sub[k].notna().any()]


def primary_metric(trials: pd.DataFrame, data: str) -> str | None:
    """The metric a verdict is decided on, by the registry's precedence; Inception FID only where every
    completed trial has it (a verdict must not mix extractors), else the next one."""
    keys = quality_metrics(trials, data)
    done = trials[(trials["data"] == data) & (trials["status"] == "completed")]
    top = quality_metric(keys)
    if top is not None and not done[top].notna().all() and len(keys) > 1:
        return quality_metric(k for k in keys if k != top)
    return top


metric_label = label


def fmt(x: float, digits: int = 3) -> str:
    if x is None or not np.isfinite(x):
        return "–"
    return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:.0f}"  # never "1e+03" for a count


def pm(mean: float, std: float, digits: int = 3) -> str:
    return fmt(mean, digits) + (f" ± {fmt(std, 2)}" if std == std else "")


def ci(lo: float, hi: float, digits: int = 3) -> str:
    return f"[{fmt(lo, digits)}, {fmt(hi, digits)}]" if lo == lo else "–"


VERDICTS = ("supported", "not supported", "inconclusive")


@dataclass
class Verdict:
    claim: str
    verdict: str               # one of VERDICTS
    rule: list[str]            # the rule, in words, one clause per line as printed in the report
    evidence: list[str]        # the numbers that decided it, one line each
    reason: str = ""           # which branch of the rule fired
    variant: str = "wgan"      # the Wasserstein variant judged against the GAN
    budget: Optional[int] = None  # the declared budget (generator iterations) it was decided at; None: the run's own

    @property
    def key(self) -> str:
        """verdicts.json key: claimN for the WGAN (as before the variants), claimN/<variant> for the others, and
        @<budget> where a run declared budgets (claim 1 is decided at each)."""
        return (f"claim{self.claim}" + ("" if self.variant == "wgan" else f"/{self.variant}")
                + ("" if self.budget is None else f"@{self.budget}"))

    @property
    def title_suffix(self) -> str:
        return "" if self.variant == "wgan" else f" ({LABEL.get(self.variant, self.variant)})"


def counts(frame: pd.DataFrame) -> dict[str, int]:
    s = frame["status"]
    return {"n_trials": len(frame), "n_completed": int((s == "completed").sum()),
            "n_diverged": int((s == "diverged").sum()), "n_failed": int((s == "failed").sum()),
            "n_unfinished": int(s.isin(["incomplete", "missing"]).sum())}
