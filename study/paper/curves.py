"""Figs. 3, 4 and 8: a loss estimate against generator iterations (median-filtered over 101 iterations, as in
the paper), one panel per setting, with the sample grids written at evaluation points below each curve and the
sample quality (FID, or the exact W1 on the toys) on the same axes (right-hand scale).

    Fig. 3: WGAN, train/w_estimate  -- claim: the estimate falls as the samples improve
    Fig. 4: GAN,  train/js_estimate -- claim: flat or rising near log 2, no correlation with quality
    Fig. 8: GAN,  train/g_loss      -- the same claim with the generator's cost
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from study.paper.common import (COLORS, QUALITY_LABEL, PaperError, PathLike, TrialRun, fmt, load_trials,
                                median_filtered, quality_key, save_csv, save_png, show_image, spearman, stages,
                                style, usual_lr)

N_STAGES = 4           # sample grids under each curve
BACKBONE_ORDER = ["mlp/dcgan", "dcgan", "mlp"]  # the paper's panel order: MLP G, DCGAN G, MLP/MLP
PAPER_LR = {"gan": 2e-4, "wgan": 5e-5}
DEFAULT_OPT = {"gan": "adam", "wgan": "rmsprop"}
BACKBONE_WORDS = {"mlp/dcgan": "MLP generator, DCGAN {d}", "dcgan": "DCGAN generator and {d}",
                  "mlp": "MLP generator and {d}", "dcgan_const/dcgan": "const-filter no-BN generator, DCGAN {d}"}
CSV_COLUMNS = ["panel", "trial_id", "loss", "backbone", "data", "optimizer", "lr", "seed", "status", "step",
               "metric", "value", "value_median101", "quality_metric", "quality"]


def setting_label(t: TrialRun, base_lr: Optional[float] = None) -> str:
    """Words for a panel; the learning rate is named only where it differs from the figure's usual one."""
    d = "critic" if t.loss == "wgan" else "discriminator"
    words = BACKBONE_WORDS.get(t.backbone, t.backbone + " ({d})").format(d=d)
    lr, opt = t.get(f"{t.loss}.lr"), t.get(f"{t.loss}.optimizer")
    extra = []
    base_lr = base_lr if base_lr is not None else PAPER_LR.get(t.loss)
    if lr is not None and base_lr is not None and not math.isclose(float(lr), base_lr):
        extra.append(f"{'high ' if float(lr) > base_lr else 'low '}lr {float(lr):g}")
    if opt is not None and opt != DEFAULT_OPT.get(t.loss):
        extra.append(str(opt))
    return f"{t.data}: {words}" + (f" ({', '.join(extra)})" if extra else "")


def _order(t: TrialRun) -> tuple:
    toy = t.get("data.image_size") is None or t.data in ("ring8", "grid25")
    bb = BACKBONE_ORDER.index(t.backbone) if t.backbone in BACKBONE_ORDER else len(BACKBONE_ORDER)
    return (toy, bb, float(t.get(f"{t.loss}.lr") or 0), t.data, t.backbone)


def paper_setting(t: TrialRun, lr: Optional[float]) -> bool:
    """The paper's panels: MLP G / DCGAN D, DCGAN, MLP/MLP, with the algorithm's own optimizer at the usual
    learning rate, except MLP/MLP, which the paper also shows at a high one (other backbones and the optimizer
    ablations belong to Figs. 5-7 and §4.2)."""
    same_lr = lr is None or math.isclose(float(t.get(f"{t.loss}.lr", lr)), lr)
    return (t.backbone in BACKBONE_ORDER and t.get(f"{t.loss}.optimizer", "") == DEFAULT_OPT.get(t.loss)
            and (same_lr or t.backbone == "mlp"))


def group_settings(trials: Sequence[TrialRun]) -> dict[str, list[TrialRun]]:
    """Trials that differ only in the seed share a panel; panels in the paper's order."""
    groups: dict[str, list[TrialRun]] = {}
    for t in sorted(trials, key=lambda t: (_order(t), t.get("seed", 0))):
        key = json.dumps({k: v for k, v in t.config.items() if k != "seed"}, sort_keys=True, default=str)
        groups.setdefault(key, []).append(t)
    lrs = [float(t.get(f"{t.loss}.lr")) for t in trials if t.get(f"{t.loss}.lr") is not None]
    base_lr = max(set(lrs), key=lrs.count) if lrs else None  # the usual lr of this figure's runs
    out: dict[str, list[TrialRun]] = {}
    for ts in groups.values():
        label = setting_label(ts[0], base_lr)
        while label in out:  # same words, other settings: keep both panels apart
            label += " ·"
        out[label] = ts
    return out


def curve_table(groups: dict[str, list[TrialRun]], key: str) -> pd.DataFrame:
    parts = []
    for panel, ts in groups.items():
        for t in ts:
            s = t.column(key)
            if s is None:
                continue
            df = pd.DataFrame({"step": s["step"].astype(int).to_numpy(), "value": s[key].to_numpy(float)})
            df["value_median101"] = median_filtered(df["value"].to_numpy())
            q = quality_key(t)
            qs = t.column(q) if q else None
            df["quality_metric"] = q or ""
            df["quality"] = df["step"].map(dict(zip(qs["step"].astype(int), qs[q]))) if qs is not None else np.nan
            df = df.assign(panel=panel, trial_id=t.id, loss=t.loss, backbone=t.backbone, data=t.data,
                           optimizer=t.get(f"{t.loss}.optimizer"), lr=t.get(f"{t.loss}.lr"), seed=t.get("seed"),
                           status=t.status, metric=key)
            parts.append(df)
    return pd.concat(parts, ignore_index=True)[CSV_COLUMNS] if parts else pd.DataFrame(columns=CSV_COLUMNS)


def panel_stats(df: pd.DataFrame) -> dict[str, dict]:
    """Per panel: Spearman rho between the filtered estimate and quality at the evaluation points (pooled
    over seeds), the filtered estimate's first and last value, and the quality's first and last value."""
    out = {}
    for panel, p in df.groupby("panel", sort=False):
        ev = p.dropna(subset=["quality"])
        first, last = p.groupby("trial_id")["value_median101"].agg(["first", "last"]).mean()
        qf, ql = (ev.groupby("trial_id")["quality"].agg(["first", "last"]).mean() if len(ev)
                  else (math.nan, math.nan))
        out[panel] = {"rho": spearman(ev["value_median101"], ev["quality"]), "n": len(ev),
                      "start": float(first), "end": float(last), "q_start": float(qf), "q_end": float(ql),
                      "quality_metric": p["quality_metric"].iloc[0], "loss": p["loss"].iloc[0],
                      "status": ",".join(sorted(set(p["status"])))}
    return out


def ylimits(values: pd.Series, include: Sequence[float] = ()) -> tuple[float, float]:
    """Limits that fit the filtered curve (raw values, e.g. the warm-up's first iterations, may be clipped)."""
    v = np.concatenate([np.asarray(values, float), np.asarray(include, float)])
    v = v[np.isfinite(v)]
    if not len(v):
        return (0.0, 1.0)
    lo, hi = float(v.min()), float(v.max())
    pad = 0.12 * (hi - lo) if hi > lo else max(0.1 * abs(hi), 1e-3)
    return lo - pad, hi + pad


def build_curves(run_dirs: PathLike | Sequence[PathLike], out_dir: Path, *, name: str, loss: str, key: str,
                 title: str, ylabel: str, log2_line: bool = False, n_stages: int = N_STAGES) -> tuple[Path, Path]:
    import matplotlib.pyplot as plt
    trials = [t for t in load_trials(run_dirs) if t.loss == loss and t.column(key) is not None]
    lr = usual_lr(trials, loss)
    trials = [t for t in trials if paper_setting(t, lr)]
    if not trials:
        raise PaperError(f"{name}: no {loss.upper()} trials with '{key}' in metrics.csv under "
                         f"{', '.join(map(str, [run_dirs] if isinstance(run_dirs, (str, Path)) else run_dirs))}")
    groups = group_settings(trials)
    df = curve_table(groups, key)
    stats = panel_stats(df)
    n = len(groups)
    ncols = min(n, 4)
    nrows = math.ceil(n / ncols)
    with style():
        fig = plt.figure(figsize=(4.6 * ncols, 4.9 * nrows + 0.6), layout="constrained")
        subs = np.atleast_1d(fig.subfigures(nrows, ncols, squeeze=False)).ravel()
        for sub in subs[n:]:
            sub.set_visible(False)
        color = COLORS[loss]
        for sub, (panel, ts) in zip(subs, groups.items()):
            gs = sub.add_gridspec(2, n_stages, height_ratios=[3.2, 1.0])
            ax = sub.add_subplot(gs[0, :])
            p = df[df["panel"] == panel]
            qax = None
            for i, (tid, c) in enumerate(p.groupby("trial_id", sort=False)):
                ax.plot(c["step"], c["value"], color=color, alpha=0.18, lw=0.6)
                ax.plot(c["step"], c["value_median101"], color=color, lw=1.8,
                        label=f"{loss.upper()} estimate, median of 101" if i == 0 else None)
                ev = c.dropna(subset=["quality"])
                if len(ev):
                    qax = qax or ax.twinx()
                    qax.plot(ev["step"], ev["quality"], "s--", color="dimgrey", ms=4, lw=1,
                             label=QUALITY_LABEL.get(ev["quality_metric"].iloc[0], ev["quality_metric"].iloc[0])
                             if i == 0 else None)
            if log2_line:
                ax.axhline(math.log(2), color="grey", ls=":", lw=1, label="log 2 (JS maximum)")
            ax.set_ylim(*ylimits(p["value_median101"], [math.log(2)] if log2_line else []))
            ax.set_xlabel("generator iterations")
            ax.set_ylabel(ylabel, color=color)
            st = stats[panel]
            tag = "" if st["status"] == "completed" else f" [{st['status']}]"
            ax.set_title(f"{panel}{tag}\nSpearman ρ(filtered estimate, quality) = {fmt(st['rho'], 2)} "
                         f"at n = {st['n']} evaluations", fontsize=8)
            handles, labels = ax.get_legend_handles_labels()
            if qax is not None:
                qm = p["quality_metric"].iloc[0]
                qax.set_ylabel(f"{QUALITY_LABEL.get(qm, qm)} (lower is better)", color="dimgrey")
                qax.grid(False)
                h2, l2 = qax.get_legend_handles_labels()
                handles, labels = handles + h2, labels + l2
            (qax or ax).legend(handles, labels, fontsize=7, loc="best")  # on the top axes: not under a curve
            for j, (step, png) in enumerate(stages(ts[0].grids, n_stages)):
                show_image(sub.add_subplot(gs[1, j]), png, f"iteration {step}")
        fig.suptitle(title, fontsize=11)
        png = save_png(fig, Path(out_dir) / f"{name}.png")
    return png, save_csv(df, Path(out_dir) / f"{name}.csv")


def build_fig3(run_dirs, out_dir: Path) -> tuple[Path, Path]:
    return build_curves(run_dirs, out_dir, name="fig3_w_estimate", loss="wgan", key="train/w_estimate",
                        ylabel="W estimate  −(critic loss)",
                        title="Fig. 3 — WGAN: estimate of the EM distance vs generator iterations, with samples "
                              "at several stages (grey squares: sample quality, right-hand scale)")


def build_fig4(run_dirs, out_dir: Path) -> tuple[Path, Path]:
    return build_curves(run_dirs, out_dir, name="fig4_js_estimate", loss="gan", key="train/js_estimate",
                        ylabel="JS estimate  log 2 − (D loss)/2  (nats)", log2_line=True,
                        title="Fig. 4 — GAN (−log D): JS estimate from the discriminator loss vs generator "
                              "iterations, with samples (grey squares: sample quality, right-hand scale)")


def build_fig8(run_dirs, out_dir: Path) -> tuple[Path, Path]:
    return build_curves(run_dirs, out_dir, name="fig8_generator_loss", loss="gan", key="train/g_loss",
                        ylabel="generator loss  −log D(G(z))  (nats)",
                        title="Fig. 8 — GAN (−log D): generator cost vs generator iterations, with samples "
                              "(grey squares: sample quality, right-hand scale)")


def describe(csv: Path, figure: str) -> str:
    """One sentence per panel from the CSV: what the curve did, how it relates to quality, and the verdict."""
    df = pd.read_csv(csv)
    if df.empty:
        return "No runs to show."
    parts, agree = [], []
    for panel, st in panel_stats(df).items():
        q = QUALITY_LABEL.get(st["quality_metric"], st["quality_metric"])
        trend = f"filtered estimate {fmt(st['start'])} → {fmt(st['end'])}"
        trend += (f", {q} {fmt(st['q_start'])} → {fmt(st['q_end'])}, ρ = {fmt(st['rho'], 2)} over {st['n']} "
                  "evaluations" if isinstance(q, str) and q and st["n"] else ", no quality evaluations")
        if figure == "3":
            if "high lr" in panel:  # the paper's failing run: samples (and loss) do not improve
                ok = (not st["q_end"] < 0.8 * st["q_start"] if np.isfinite(st["q_start"])
                      else abs(st["end"] - st["start"]) <= 0.2 * abs(st["start"]) + 1e-6)
            else:
                ok = st["rho"] > 0.5
        else:
            ok = not (st["rho"] > 0.5)  # the paper: no (positive) correlation between the GAN loss and quality
        agree.append(ok)
        parts.append(f"{panel}: {trend} ({'as in the paper' if ok else 'unlike the paper'})")
    # A description of these runs' curves, not a verdict: the claims are decided only by the report's rules
    # (study/report/claim2.py: convergence, measured noise, >= 3 seeds, Student-t bounds; docs/verdicts.md).
    verdict = ("looks like the paper's figure" if all(agree) else "partly looks like the paper's figure"
               if any(agree) else "does not look like the paper's figure")
    claim = {"3": "the W estimate should fall as quality improves (ρ > 0.5, both lower-is-better), except for the "
                  "high-learning-rate MLP run, which fails with a flat loss",
             "4": "the JS estimate (at most log 2) should stay flat or rise while the samples improve: no positive "
                  "correlation with quality",
             "8": "the generator cost should not track quality (no positive correlation)"}[figure]
    return (f"Paper: {claim}. Described, not decided (ρ > 0.5 pooled over seeds is a description; the verdict "
            f"on the claim is the report's, `python -m study.report`): this run {verdict}. " + "; ".join(parts) + ".")
