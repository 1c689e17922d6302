"""Figs. 5-7: sample grids, WGAN (left, as in the paper) vs GAN (right), for one generator architecture each,
with the sample quality of both over training beside them.

    Fig. 5: DCGAN generator                       -- claim: both good
    Fig. 6: constant-filter generator without BN  -- claim: the GAN fails, the WGAN works
    Fig. 7: MLP generator (4 x 512, ReLU)         -- claim: the WGAN works (worse than DCGAN); the GAN collapses
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from study.paper.common import (COLORS, QUALITY_LABEL, PaperError, PathLike, TrialRun, fmt, load_trials,
                                quality_key, save_csv, save_png, show_image, style, usual_lr)

FIGS = {
    "5": ("dcgan", "fig5_samples_dcgan", "DCGAN generator and critic"),
    "6": ("dcgan_const/dcgan", "fig6_samples_const_nobn", "generator without BN, constant filter count; DCGAN critic"),
    "7": ("mlp/dcgan", "fig7_samples_mlp", "MLP generator (4 ReLU layers), DCGAN critic"),
}
CSV_COLUMNS = ["figure", "loss", "backbone", "data", "seed", "trial_id", "status", "step", "quality_metric",
               "quality", "modes", "mode_kl", "grid"]


def _default_algo(t: TrialRun) -> bool:
    """Each algorithm with its own optimizer (the Adam ablation of §4.2 must not stand in for the WGAN)."""
    return t.get(f"{t.loss}.optimizer") == {"gan": "adam", "wgan": "rmsprop"}.get(t.loss)


def sample_table(trials: Sequence[TrialRun], figure: str) -> pd.DataFrame:
    rows = []
    for t in trials:
        q = quality_key(t)
        grids = dict(t.grids)
        m = t.metrics if t.metrics is not None else pd.DataFrame(columns=["step"])
        steps = sorted(set(grids) | set(m.dropna(subset=[q])["step"].astype(int) if q else []))
        for step in steps:
            r = m[m["step"] == step] if "step" in m else m.iloc[:0]

            def val(col):
                return float(r[col].iloc[0]) if col in r and len(r) and pd.notna(r[col].iloc[0]) else math.nan
            rows.append({"figure": figure, "loss": t.loss, "backbone": t.backbone, "data": t.data,
                         "seed": t.get("seed"), "trial_id": t.id, "status": t.status, "step": step,
                         "quality_metric": q or "", "quality": val(q) if q else math.nan,
                         "modes": val("eval/modes"), "mode_kl": val("eval/mode_kl"),
                         "grid": str(grids[step]) if step in grids else ""})
    return pd.DataFrame(rows, columns=CSV_COLUMNS)


def build_samples(run_dirs: PathLike | Sequence[PathLike], out_dir: Path, figure: str) -> tuple[Path, Path]:
    import matplotlib.pyplot as plt
    backbone, name, words = FIGS[figure]
    trials = [t for t in load_trials(run_dirs) if t.backbone == backbone and _default_algo(t)]
    lrs = {loss: usual_lr(trials, loss) for loss in ("gan", "wgan")}
    trials = [t for t in trials if math.isclose(float(t.get(f"{t.loss}.lr", lrs[t.loss] or 0)), lrs[t.loss] or 0)]
    if not trials:
        raise PaperError(f"fig. {figure}: no trials with backbone {backbone} (and the paper's optimizers) under "
                         f"{', '.join(map(str, [run_dirs] if isinstance(run_dirs, (str, Path)) else run_dirs))}")
    trials.sort(key=lambda t: (t.loss != "wgan", t.get("seed", 0)))
    df = sample_table(trials, figure)
    shown = {loss: next((t for t in trials if t.loss == loss), None) for loss in ("wgan", "gan")}
    with style():
        fig, axes = plt.subplots(1, 3, figsize=(13, 4.6), layout="constrained",
                                 gridspec_kw={"width_ratios": [1, 1, 1.15]})
        for ax, (loss, t) in zip(axes, shown.items()):
            if t is None:
                show_image(ax, None, f"{loss.upper()}: no trial", fontsize=9)
                continue
            last = df[(df["trial_id"] == t.id) & (df["grid"] != "")].tail(1)
            step = int(last["step"].iloc[0]) if len(last) else None
            r = df[df["trial_id"] == t.id].dropna(subset=["quality"]).tail(1)
            qm = QUALITY_LABEL.get(r["quality_metric"].iloc[0], "quality") if len(r) else "quality"
            stats = (f"{qm} {fmt(r['quality'].iloc[0])}" + (f", classes covered {fmt(r['modes'].iloc[0])}"
                     if len(r) and np.isfinite(r["modes"].iloc[0]) else "")) if len(r) else "no evaluation"
            tag = "" if t.status == "completed" else f" [{t.status}]"
            show_image(ax, Path(last["grid"].iloc[0]) if len(last) else None,
                       f"{loss.upper()}{tag}, seed {t.get('seed')}, iteration {step}\n{stats}", fontsize=9)
        ax = axes[2]
        for loss in ("wgan", "gan"):
            for i, (tid, c) in enumerate(df[df["loss"] == loss].dropna(subset=["quality"]).groupby("trial_id")):
                ax.plot(c["step"], c["quality"], "o-", color=COLORS[loss], ms=3, lw=1.3,
                        label=loss.upper() if i == 0 else None)
        qms = [m for m in df["quality_metric"].unique() if m]
        ax.set(xlabel="generator iterations",
               ylabel=f"{QUALITY_LABEL.get(qms[0], qms[0]) if qms else 'quality'} (lower is better)",
               title="sample quality over training")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        fig.suptitle(f"Fig. {figure} — {words} ({trials[0].data}): WGAN (left) vs GAN (right), "
                     "final fixed-noise samples", fontsize=11)
        png = save_png(fig, Path(out_dir) / f"{name}.png")
    return png, save_csv(df, Path(out_dir) / f"{name}.csv")


def build_fig5(run_dirs, out_dir: Path) -> tuple[Path, Path]:
    return build_samples(run_dirs, out_dir, "5")


def build_fig6(run_dirs, out_dir: Path) -> tuple[Path, Path]:
    return build_samples(run_dirs, out_dir, "6")


def build_fig7(run_dirs, out_dir: Path) -> tuple[Path, Path]:
    return build_samples(run_dirs, out_dir, "7")


def describe(csv: Path, figure: str) -> str:
    """Final quality and class coverage of each loss, and whether that ordering is the paper's."""
    df = pd.read_csv(csv)
    final = {}
    for loss in ("wgan", "gan"):
        ev = df[df["loss"] == loss].dropna(subset=["quality"])
        if len(ev):
            last = ev.groupby("trial_id").tail(1)
            final[loss] = {"q": last["quality"].mean(), "modes": last["modes"].mean(), "kl": last["mode_kl"].mean(),
                           "status": ",".join(sorted(set(df[df["loss"] == loss]["status"])))}
    if len(final) < 2:
        which = f"only the {' and '.join(l.upper() for l in final)} run was" if final else "no run was"
        return f"Not comparable: {which} evaluated."
    w, g = final["wgan"], final["gan"]
    qm = QUALITY_LABEL.get(df["quality_metric"].dropna().iloc[0], "quality")
    facts = (f"final {qm}: WGAN {fmt(w['q'])} vs GAN {fmt(g['q'])}; classes covered WGAN {fmt(w['modes'])} vs GAN "
             f"{fmt(g['modes'])}; mode KL WGAN {fmt(w['kl'])} vs GAN {fmt(g['kl'])}")
    close = abs(w["q"] - g["q"]) <= 0.25 * max(min(w["q"], g["q"]), 1e-12)
    wgan_better = w["q"] < g["q"] and not close
    if figure == "5":
        claim, ok = "both algorithms produce good samples with a DCGAN generator", close or w["q"] < 2 * g["q"]
    elif figure == "6":
        claim, ok = "the GAN fails and the WGAN works with this generator", wgan_better
    else:
        collapse = g["modes"] < w["modes"] or g["kl"] > w["kl"]
        claim, ok = ("the WGAN works (worse than with DCGAN) while the GAN shows mode collapse",
                     (wgan_better or close) and collapse)
    return (f"Claim: {claim}. This run {'agrees' if ok else 'does not agree'} with the paper: {facts}"
            + (f" (status GAN: {g['status']}, WGAN: {w['status']})" if {g['status'], w['status']} != {"completed"}
               else "") + ".")
