"""§4.2: Adam vs RMSProp for the WGAN critic. The paper reports (no figure) that momentum optimizers and high
learning rates made WGAN training unstable at times; here: W estimate and sample quality over training, one
column per learning rate, one colour per optimizer, and the final samples of each."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from study.paper.common import (QUALITY_LABEL, PaperError, PathLike, fmt, load_trials, median_filtered,
                                quality_key, save_csv, save_png, show_image, style)

NAME = "sec4_2_adam_vs_rmsprop"
OPT_COLORS = {"rmsprop": "#0072B2", "adam": "#D55E00"}
CSV_COLUMNS = ["trial_id", "optimizer", "lr", "backbone", "data", "seed", "status", "step", "w_estimate",
               "w_estimate_median101", "g_loss", "quality_metric", "quality"]


def optim_table(trials) -> pd.DataFrame:
    parts = []
    for t in trials:
        s = t.column("train/w_estimate")
        if s is None:
            continue
        m = t.metrics
        df = pd.DataFrame({"step": s["step"].astype(int).to_numpy(), "w_estimate": s["train/w_estimate"].to_numpy(float)})
        df["w_estimate_median101"] = median_filtered(df["w_estimate"].to_numpy())
        g = (m.drop_duplicates("step", keep="last").set_index("step")["train/g_loss"] if "train/g_loss" in m
             else pd.Series(dtype=float))
        df["g_loss"] = df["step"].map(g)
        q = quality_key(t)
        qs = t.column(q) if q else None
        df["quality_metric"] = q or ""
        df["quality"] = df["step"].map(dict(zip(qs["step"].astype(int), qs[q]))) if qs is not None else np.nan
        parts.append(df.assign(trial_id=t.id, optimizer=t.get("wgan.optimizer"), lr=float(t.get("wgan.lr")),
                               backbone=t.backbone, data=t.data, seed=t.get("seed"), status=t.status))
    return pd.concat(parts, ignore_index=True)[CSV_COLUMNS] if parts else pd.DataFrame(columns=CSV_COLUMNS)


def paired(trials) -> list:
    """WGAN trials whose settings, but for the optimizer (and seed), are shared by both an Adam and an RMSProp
    trial: only those compare the optimizers."""
    groups: dict[str, list] = {}
    for t in trials:
        rest = {k: v for k, v in t.config.items() if k != "seed"}
        rest["wgan"] = {k: v for k, v in (rest.get("wgan") or {}).items() if k not in ("optimizer", "betas")}
        groups.setdefault(json.dumps(rest, sort_keys=True, default=str), []).append(t)
    return [t for g in groups.values() if {t.get("wgan.optimizer") for t in g} >= {"adam", "rmsprop"} for t in g]


def roughness(c: pd.DataFrame) -> float:
    """Spread of the raw W estimate around its running median over the second half of training, relative to
    the median's level there: how much the estimate jumps from one generator iteration to the next."""
    half = c.iloc[len(c) // 2:]
    level = max(float(np.median(np.abs(half["w_estimate_median101"]))), 1e-12)
    return float(np.std(half["w_estimate"] - half["w_estimate_median101"]) / level)


def build_optim(run_dirs: PathLike | Sequence[PathLike], out_dir: Path) -> tuple[Path, Path]:
    import matplotlib.pyplot as plt
    trials = paired(t for t in load_trials(run_dirs) if t.loss == "wgan" and t.column("train/w_estimate") is not None)
    if not trials:
        raise PaperError(f"§4.2: need WGAN trials that differ only in wgan.optimizer (adam and rmsprop) under "
                         f"{', '.join(map(str, [run_dirs] if isinstance(run_dirs, (str, Path)) else run_dirs))}")
    trials.sort(key=lambda t: (float(t.get("wgan.lr")), t.get("wgan.optimizer") != "rmsprop", t.get("seed", 0)))
    df = optim_table(trials)
    lrs = sorted(df["lr"].unique())
    with style():
        fig = plt.figure(figsize=(max(9.0, 5.2 * len(lrs)), 9.0), layout="constrained")  # room for the title
        cols = np.atleast_1d(fig.subfigures(1, len(lrs), squeeze=False)).ravel()
        for sub, lr in zip(cols, lrs):
            here = [t for t in trials if float(t.get("wgan.lr")) == lr]
            gs = sub.add_gridspec(3, max(2, len(here)), height_ratios=[2.2, 1.6, 1.4])
            ax_w, ax_q = sub.add_subplot(gs[0, :]), sub.add_subplot(gs[1, :])
            for t in here:
                c = df[df["trial_id"] == t.id]
                opt = t.get("wgan.optimizer")
                col = OPT_COLORS.get(opt, "grey")
                tag = "" if t.status == "completed" else f" [{t.status}]"
                ax_w.plot(c["step"], c["w_estimate"], color=col, alpha=0.25, lw=0.6)
                ax_w.plot(c["step"], c["w_estimate_median101"], color=col, lw=1.8,
                          label=f"{opt}{tag}: roughness {fmt(roughness(c), 2)}")
                ev = c.dropna(subset=["quality"])
                if len(ev):
                    ax_q.plot(ev["step"], ev["quality"], "o-", color=col, ms=3, label=opt)
            ax_w.axhline(0, color="black", lw=0.6)
            ax_w.set(xlabel="generator iterations", ylabel="W estimate (thin: raw; thick: median of 101)",
                     title=f"critic lr {lr:g}")
            ax_w.legend(fontsize=7, title="optimizer (roughness: std of raw − median,\nrelative to |median|, 2nd half)",
                        title_fontsize=7)
            qm = [m for m in df["quality_metric"].unique() if m]
            ax_q.set(xlabel="generator iterations",
                     ylabel=f"{QUALITY_LABEL.get(qm[0], qm[0]) if qm else 'quality'}\n(lower is better)")
            if ax_q.get_legend_handles_labels()[0]:
                ax_q.legend(fontsize=7)
            for j, t in enumerate(here):
                step, png = t.grids[-1] if t.grids else (None, None)
                show_image(sub.add_subplot(gs[2, j]), png, f"{t.get('wgan.optimizer')}, iteration {step}")
        d0 = trials[0]
        fig.suptitle(f"§4.2 — WGAN critic optimizer: RMSProp vs Adam (β₁ = 0.5), {d0.backbone} on {d0.data}, "
                     f"clip {d0.get('wgan.clip')}", fontsize=11)
        png = save_png(fig, Path(out_dir) / f"{NAME}.png")
    return png, save_csv(df, Path(out_dir) / f"{NAME}.csv")


def blowup(c: pd.DataFrame) -> float:
    """How far the filtered W estimate climbs back up after its running minimum (past the first 10% of training,
    i.e. after the warm-up), relative to its value there: > 0.25 reads as the loss blowing up."""
    v = c["w_estimate_median101"].to_numpy(float)[len(c) // 10:]
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return math.nan
    return float(np.max(v - np.minimum.accumulate(v)) / max(abs(v[0]), 1e-12))


def describe(csv: Path) -> str:
    """Instability (diverged, negative filtered estimate, loss blowing up, roughness) separately from quality."""
    df = pd.read_csv(csv)
    parts, unstable_adam, unstable_rms = [], [], []
    for lr, d in df.groupby("lr"):
        r = {}
        for opt, c in d.groupby("optimizer"):
            ev = c.dropna(subset=["quality"])
            post = c.iloc[len(c) // 10:]
            r[opt] = {"rough": roughness(c), "q": float(ev["quality"].iloc[-1]) if len(ev) else math.nan,
                      "status": c["status"].iloc[0], "neg": float((post["w_estimate_median101"] < 0).mean()),
                      "blowup": blowup(c)}
            r[opt]["unstable"] = bool(r[opt]["status"] == "diverged" or r[opt]["neg"] > 0.05
                                      or r[opt]["blowup"] > 0.25)
        if {"adam", "rmsprop"} <= set(r):
            a, s = r["adam"], r["rmsprop"]
            unstable_adam.append(a["unstable"] or a["rough"] > 1.5 * s["rough"])
            unstable_rms.append(s["unstable"])
            parts.append(f"lr {lr:g}: Adam {'UNSTABLE' if unstable_adam[-1] else 'stable'} ({a['status']}, "
                         f"roughness {fmt(a['rough'], 2)}, rebound {fmt(a['blowup'], 2)}, filtered estimate < 0 "
                         f"for {100 * a['neg']:.0f}% of iterations, final quality {fmt(a['q'])}) vs RMSProp "
                         f"{'UNSTABLE' if s['unstable'] else 'stable'} ({s['status']}, roughness "
                         f"{fmt(s['rough'], 2)}, rebound {fmt(s['blowup'], 2)}, {100 * s['neg']:.0f}%, final "
                         f"quality {fmt(s['q'])})")
    if not parts:
        return "No learning rate has both an Adam and an RMSProp run: no comparison possible."
    if any(a and not s for a, s in zip(unstable_adam, unstable_rms)):
        verdict = "agrees with the paper: Adam is unstable where RMSProp is not"
    elif any(unstable_rms):
        verdict = "partly agrees: instability shows, but with RMSProp too (high learning rates, as the paper also says)"
    else:
        verdict = ("does not show the reported instability (inconclusive: the paper says 'at times', and these runs "
                   "are short)")
    return ("Claim (§4.2, reported without a figure): a momentum optimizer (Adam) on the critic makes WGAN training "
            f"unstable at times. This run {verdict}. " + "; ".join(parts) + ". Roughness: std of raw − filtered "
            "estimate over the 2nd half, relative to the filtered level; rebound: rise of the filtered estimate "
            "above its running minimum after the first 10% of training, relative to its value there.")
