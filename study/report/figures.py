"""Figures (seaborn, Agg): every one says what is plotted, in which units, and what is better."""
from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: reports are built on servers and in tests
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from study.data import DATASETS  # noqa: E402
from study.report import claim3  # noqa: E402
from study.report.cells import ESTIMATE, LABEL, LOSS_ORDER, metric_label, primary_metric, summarize  # noqa: E402

from study.eval.stats import median_filter  # noqa: E402
from study.report.published import FILTERED  # noqa: E402
from study.report.trendfree import step_median  # noqa: E402

DPI = 100
MAX_POINTS = 1500  # per curve: enough to see the shape, small enough to draw fast and embed


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:80]


def hue_order(hues) -> list[str]:
    order = {LABEL[n]: i for n, i in LOSS_ORDER.items()}
    return sorted(set(hues), key=lambda h: (order.get(h.split(" ")[0], 9), h))


def palette(trials: pd.DataFrame) -> dict[str, tuple]:
    """GAN in orange, WGAN in blue in every figure (their paper-setting cells); ablations in colours
    far from both, so an ablation is never mistaken for the loss it varies."""
    base = sns.color_palette("colorblind")
    # GAN orange, WGAN blue, then the other Wasserstein variants; ablations from what is left
    order = sorted(LOSS_ORDER, key=LOSS_ORDER.get)
    mains = [base[i] for i in (1, 0, 2, 4, 3)]
    main = dict(zip(order, mains))
    spare = [c for c in base if c not in main.values()]
    first = trials[trials["in_verdict"]].drop_duplicates("loss").set_index("hue")["loss"].to_dict()
    colors: dict[str, tuple] = {}
    for h in hue_order(trials["hue"]):
        colors[h] = main[first[h]] if h in first and first[h] in main else spare[len(colors) % len(spare)]
    return colors


def fig_legend(fig, colors: dict, hues) -> None:
    """One legend for the whole figure, below the panels, where it cannot cover data."""
    shown = [h for h in colors if h in set(hues)]
    handles = [Line2D([], [], marker="D", color=colors[h], ls="none", ms=7) for h in shown]
    fig.legend(handles, shown, loc="outside lower center", ncols=min(4, len(shown)), frameon=False)


def style():
    """seaborn's whitegrid look, scoped: the sweep process that calls us keeps its own rcParams."""
    return plt.rc_context({**sns.axes_style("whitegrid"), **sns.plotting_context("notebook", font_scale=0.85)})


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)  # constrained layout already fits; "tight" would draw twice
    plt.close(fig)
    return path


def _grid(n: int, ncols: int = 3, w: float = 4.6, h: float = 3.6):
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    # at least 7.5 in wide, so that a two-line title fits above a single panel
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(7.5, w * ncols), h * nrows), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat)


def cat_panel(ax, df: pd.DataFrame, y: str, colors: dict, xs: list[str], notes: dict | None = None) -> None:
    """Seeds as dots, mean as a diamond with its Student-t 95% CI, per backbone (x) and loss (colour)."""
    hues = [h for h in colors if h in set(df["hue"])]
    width = 0.8 / max(1, len(hues))
    rng = np.random.default_rng(0)
    for j, h in enumerate(hues):
        for i, x in enumerate(xs):
            v = df[(df["backbone"] == x) & (df["hue"] == h)][y].astype(float).dropna()
            pos = i - 0.4 + width * (j + 0.5)
            if len(v):
                ax.scatter(pos + rng.uniform(-width / 6, width / 6, len(v)), v, color=colors[h], alpha=0.45, s=16)
                s = summarize(v)
                err = [[s["mean"] - s["ci_lo"]], [s["ci_hi"] - s["mean"]]] if s["ci_lo"] == s["ci_lo"] else None
                ax.errorbar(pos, s["mean"], yerr=err, fmt="D", color=colors[h], ms=6, capsize=4)
    # what is not plotted (diverged trials) goes under the backbone's name, where it cannot hide data
    ticks = [x + "".join(f"\n{h}: {(notes or {})[(x, h)]}" for h in hues if (notes or {}).get((x, h))) for x in xs]
    ax.set_xticks(range(len(xs)), ticks)
    ax.set_xlim(-0.6, len(xs) - 0.4)
    ax.set_xlabel("backbone (generator, or generator/critic)")


def claim1_figures(run, q: pd.DataFrame, d: pd.DataFrame, out: Path) -> list[tuple[Path, str]]:
    figs = []
    done = run.trials[run.trials["status"] == "completed"]
    panels = list(q.groupby(["data", "metric"], sort=False).groups) if not q.empty else []
    if panels:
        fig, axes = _grid(len(panels))
        colors = palette(run.trials)
        for ax, (data, key) in zip(axes, panels):
            sub, qs = done[done["data"] == data], q[(q["data"] == data) & (q["metric"] == key)]
            notes = {(r["backbone"], r["hue"]): f"{r['n_diverged']}/{r['n_completed'] + r['n_diverged']} diverged"
                     for _, r in qs.iterrows() if r["n_diverged"]}
            cat_panel(ax, sub, key, colors, list(dict.fromkeys(qs["backbone"])), notes)
            ax.set_title(f"{data}: final {metric_label(key).split(' (')[0]}")
            ax.set_ylabel(f"{metric_label(key, qs['num_samples'].median())}\nlower is better")
        fig_legend(fig, colors, q["hue"])
        fig.suptitle("Claim 1 — final sample quality per backbone\n"
                     "dots: seeds; ◆: mean with Student-t 95% CI; diverged trials are not plotted, counted under x",
                     fontsize=11)
        figs.append((_save(fig, out / "claim1_quality.png"),
                     "Final quality per backbone and loss (completed trials; diverged counts under the backbone)."))
    if not d.empty:
        panels = list(d.groupby(["data", "metric"], sort=False).groups)
        fig, axes = _grid(len(panels))
        for ax, (data, key) in zip(axes, panels):
            sub = d[(d["data"] == data) & (d["metric"] == key)].reset_index(drop=True)
            several = sub["backbone"].duplicated(keep=False)  # one backbone, several WGAN variants
            labels = [r["backbone"] + (f"\n{r['wgan'].removeprefix('WGAN').strip()}" if dup else "")
                      for dup, (_, r) in zip(several, sub.iterrows())]
            lo = (sub["diff"] - sub["diff_ci_lo"]).clip(lower=0).fillna(0)
            hi = (sub["diff_ci_hi"] - sub["diff"]).clip(lower=0).fillna(0)
            for i, r in sub.iterrows():
                ablation = not r["in_verdict"]  # hollow: shown, but not part of the verdict
                ax.errorbar(i, r["diff"], yerr=[[lo[i]], [hi[i]]], fmt="D", color="grey", capsize=5,
                            mfc="white" if ablation else "grey")
                ax.annotate(f"permutation p = {r['perm_p']:.2f}" + ("\n(ablation)" if ablation else ""), (i, r["diff"]),
                            textcoords="offset points", xytext=(8, 0), fontsize=8, va="center")
            ax.axhline(0, color="black", lw=0.8)
            ax.set_xticks(range(len(sub)), labels)
            ax.set_xlim(-0.6, len(sub) - 0.2)
            ax.set_xlabel("backbone")
            ax.set_ylabel(f"GAN − WGAN, {metric_label(key).split(' (')[0]}\n(> 0: WGAN better)")
            ax.set_title(f"{data}: {metric_label(key)}")
        fig.suptitle("Claim 1 — GAN − WGAN, difference of mean final quality\n"
                     "◆: difference with Welch 95% interval; > 0: WGAN better; information, not the verdict",
                     fontsize=11)
        figs.append((_save(fig, out / "claim1_difference.png"),
                     "GAN − WGAN per backbone (information: claim 1 is decided on whether each works, not on which is better)."))
    return figs


def claim1_state_figure(run, ev: pd.DataFrame, out: Path) -> list[tuple[Path, str]]:
    """Normalised final quality per seed, per backbone and loss, against the rule's two thresholds."""
    from study.report.rules import FAIL_Q, WORK_Q
    done = ev[(ev["status"] == "completed") & ev["q"].notna()]
    if done.empty:
        return []
    datas = list(dict.fromkeys(done["data"]))
    fig, axes = _grid(len(datas))
    colors = palette(run.trials)
    for ax, data in zip(axes, datas):
        sub = done[done["data"] == data]
        cat_panel(ax, sub, "q", colors, list(dict.fromkeys(ev[ev["data"] == data]["backbone"])))
        ax.axhline(WORK_Q, color="green", ls=":", lw=0.9, label=f"a seed is good below {WORK_Q}")
        ax.axhline(FAIL_Q, color="firebrick", ls=":", lw=0.9, label=f"plainly failed above {FAIL_Q}")
        ax.axhline(0, color="black", lw=0.6)
        ax.set_title(f"{data}: normalised final quality ({metric_label(sub['metric'].iloc[0]).split(' (')[0]})")
        ax.set_ylabel("0 = real data, 1 = untrained generator\nlower is better")
        ax.legend(fontsize=8, loc="best")
    fig_legend(fig, colors, ev["hue"])
    fig.suptitle("Claim 1 — does each loss work on each backbone?\ndots: seeds; ◆: mean, Student-t 95% CI; "
                 "a cell's state counts good and failed seeds", fontsize=10)
    return [(_save(fig, out / "claim1_states.png"),
             "Normalised final quality per backbone and loss, with the thresholds of the works/fails rule.")]


def time_to_learn_figure(run, ttl: pd.DataFrame, out: Path) -> list[tuple[Path, str]]:
    """Claim 1's main figure: per backbone, the fraction of seeds whose quality is good (solid) and the fraction
    that have left the untrained generator (dashed) at each evaluation, GAN and WGAN side by side, with 95%
    Clopper-Pearson bands; dotted verticals at the declared budgets."""
    if ttl.empty:
        return []
    groups = list(dict.fromkeys(ttl["group"]))
    fig, axes = _grid(len(groups), h=3.3)
    colors = palette(run.trials)
    for ax, g in zip(axes, groups):
        sub = ttl[ttl["group"] == g]
        for hue, c in sub.groupby("hue", sort=False):
            col = colors.get(hue, "grey")
            ax.plot(c["step"], c["good"], color=col, lw=1.6)
            ax.fill_between(c["step"], c["good_lo"], c["good_hi"], color=col, alpha=0.15, lw=0)
            ax.plot(c["step"], c["left"], color=col, lw=1.0, ls="--")
        for b in run.design.budgets:
            ax.axvline(b, color="black", ls=":", lw=0.8)
        ax.set_ylim(-0.03, 1.03)
        ax.set_title(g.split(" · ", 1)[-1], fontsize=9)
        ax.set_xlabel("generator iterations")
        ax.set_ylabel("fraction of seeds")
    fig_legend(fig, colors, ttl["hue"])
    fig.suptitle("Claim 1 — time to learn: solid, seeds with good quality (band: 95% interval); dashed, seeds that "
                 "left the untrained generator" + ("; dotted: declared budgets" if run.design.budgets else ""),
                 fontsize=9)
    return [(_save(fig, out / "claim1_time_to_learn.png"),
             "Per backbone, the fraction of seeds whose quality is good at each evaluation, and the fraction that "
             "have left the untrained generator: a stall that some seeds escape shows as a curve that stops short "
             "of 1; a slow start as a late rise.")]


def _curves(run, t: pd.DataFrame, key: str, filt: bool) -> pd.DataFrame:
    parts = []
    for _, r in t.iterrows():
        m = run.metrics.get(r["trial_id"])
        if m is None or key not in m or "step" not in m:
            continue
        pre = filt and f"{key}{FILTERED}" in m  # a published folder's curves: filtered over every iteration already
        s = m[["step", f"{key}{FILTERED}" if pre else key]].dropna().set_axis(["step", key], axis=1)
        if s.empty:
            continue
        # by step, as the claim-2 test reads it (a metrics.csv trimmed to evaluation rows keeps its raw values)
        v = step_median(s["step"].to_numpy(), s[key].to_numpy(float), s["step"].to_numpy()) if filt \
            else s[key].to_numpy(float)
        df = pd.DataFrame({"step": s["step"].to_numpy(), "value": v, "hue": r["hue"], "seed": r["seed"],
                           "status": r["status"]})
        parts.append(df.iloc[:: max(1, len(df) // MAX_POINTS)])
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _trendfree_panel(ax, run, t: pd.DataFrame, quality, colors: dict) -> None:
    """The claim-2 test's own view: residual ranks (estimate vs quality), one dot per seed and step."""
    from study.report import claim2, trendfree as tf
    rng = np.random.default_rng(0)  # a little jitter: ranks are whole numbers and would hide each other
    drawn = False
    for hue, c in t[t["status"] == "completed"].groupby("hue", sort=False):
        loss = c.iloc[0]["loss"]
        _, curves = claim2._panel(run, c, ESTIMATE.get(loss, "?"), quality)
        E, Q, _ = tf.panel(curves)
        if len(curves) < 2:
            continue
        st = tf.cell_stats(E, Q, claim2._sign(str(quality)))
        x, y = tf.residual(claim2._sign(str(quality)) * E).ravel(), tf.residual(Q).ravel()
        ax.scatter(x + rng.uniform(-0.12, 0.12, len(x)), y + rng.uniform(-0.12, 0.12, len(y)), s=14, alpha=0.6,
                   color=colors.get(hue), label=f"{hue}: r = {st['r']:.2f}, p = {st['p']:.2g}" if st["r"] == st["r"]
                   else f"{hue}: no within-step variation")
        drawn = True
    if not drawn:
        ax.text(0.5, 0.5, "fewer than 2 seeds with curves", ha="center", transform=ax.transAxes)
    ax.axhline(0, color="grey", lw=0.6), ax.axvline(0, color="grey", lw=0.6)
    ax.set_xlabel("estimate: rank among seeds at the step (seed-centred)")
    ax.set_ylabel("quality: rank among seeds (seed-centred)")
    ax.set_title("trend-free: seeds compared at each step")


def claim2_figures(run, a: pd.DataFrame, out: Path) -> list[tuple[Path, str]]:
    figs = []
    colors = palette(run.trials)
    ran = run.trials[run.trials["status"].isin(["completed", "diverged"])]
    for group, t in ran.groupby("group", sort=False):
        q = primary_metric(run.trials, t.iloc[0]["data"])
        specs = [(loss, ESTIMATE[loss], True) for loss in sorted(LOSS_ORDER, key=lambda n: -LOSS_ORDER[n])
                 if (t["loss"] == loss).any()]
        specs += [(None, q, False)] if q else []
        curves = [_curves(run, t if loss is None else t[t["loss"] == loss], key, filt) for loss, key, filt in specs]
        if all(df.empty for df in curves):
            continue  # no metrics.csv in this group: nothing to draw (the trials table says why)
        fig, axes = _grid(len(specs) + 1, ncols=2, w=5.6)
        _trendfree_panel(axes[len(specs)], run, t, q, colors)
        for ax, (loss, key, filt), df in zip(axes, specs, curves):
            if df.empty:
                ax.text(0.5, 0.5, "no data in metrics.csv", ha="center", transform=ax.transAxes)
            else:
                # diverged trials dashed: their curves end early and must not read as finished runs
                sns.lineplot(df, x="step", y="value", hue="hue", units="seed", estimator=None, ax=ax,
                             palette=colors, marker=None if filt else "o", lw=1.2, alpha=0.8,
                             style="status" if df["status"].nunique() > 1 else None,
                             style_order=["completed", "diverged"] if df["status"].nunique() > 1 else None)
            if key == "train/js_estimate":
                ax.axhline(math.log(2), color="grey", ls="--", lw=0.8, label="log 2 (max)")
            ax.set_xlabel("generator iterations")
            n = t["num_samples"].median()
            ax.set_ylabel(metric_label(key, n))
            ax.set_title(f"{LABEL[loss]} loss estimate (median of 101 iterations)" if loss
                         else "sample quality (lower is better)")
        # one legend under the panels: inside, it covered the curves
        entries: dict[str, object] = {}
        for ax in axes[:len(specs) + 1]:
            for h, label in zip(*ax.get_legend_handles_labels()):
                if label not in ("hue", "status"):  # seaborn's section titles
                    entries.setdefault(label, h)
            if ax.get_legend():
                ax.get_legend().remove()
        if entries:
            fig.legend(list(entries.values()), list(entries), loc="outside lower center",
                       ncols=min(6, len(entries)), frameon=False)
        fig.suptitle(f"Claim 2 — {group}: loss estimate and sample quality over training (one line per seed),\n"
                     "and the test: seeds compared with each other at each step")
        figs.append((_save(fig, out / f"claim2_curves_{slug(group)}.png"),
                     f"{group}: loss estimates (WGAN: W, GAN: JS; median-filtered over 101 iterations) and "
                     "quality vs generator iterations, one line per seed; dashed: diverged trials. Last panel: the "
                     "trend-free test, each seed's rank among its cell's seeds at each step (centred per seed), "
                     "estimate against quality; the shared trend is gone, r and its permutation p per cell."))
    if not a.empty:
        done = run.trials[run.trials["status"] == "completed"]
        fig, axes = _grid(len(a), ncols=2)
        for ax, (_, r) in zip(axes, a.iterrows()):
            sub = done[(done["data"] == r["data"]) & (done["loss"] == r["loss"])]
            sub = sub.rename(columns={"hue": "loss (settings)"})
            sns.scatterplot(sub, x=r["estimate"], y=r["quality"], hue="backbone", style="loss (settings)", ax=ax, s=50)
            ax.xaxis.set_major_locator(MaxNLocator(5))  # estimates differ in the 4th digit: few ticks
            sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1), fontsize=8, title_fontsize=8)
            ax.set_xlabel(f"final {metric_label(r['estimate'])}")
            ax.set_ylabel(f"final {metric_label(r['quality'], sub['num_samples'].median())}")
            ax.set_title(f"{r['data']}, {LABEL.get(r['loss'], r['loss'])}: Spearman ρ = "
                         f"{r['spearman']:.2f} (n = {r['n']})" if r["spearman"] == r["spearman"]
                         else f"{r['data']}, {LABEL.get(r['loss'], r['loss'])}: n = {r['n']} (too few for ρ)")
        fig.suptitle("Claim 2 — across trials: final loss estimate vs final quality (one dot per trial)")
        figs.append((_save(fig, out / "claim2_final_estimate_vs_quality.png"),
                     "Final estimate vs final quality, all completed trials of one loss."))
    return figs


def claim3_figures(run, m: pd.DataFrame, out: Path) -> list[tuple[Path, str]]:
    """Per data set: the rule's coverage (vs the real anchor, with the threshold), PacGAN's mode count, reverse KL
    and the high-quality share; seeds as dots, the mean with ± sd clipped to the metric's range (none below 0)."""
    if m.empty:
        return []
    from study.report.outcomes import trial_evidence
    ev = trial_evidence(run).set_index("trial_id")
    done = run.trials[run.trials["status"] == "completed"].copy()
    done["coverage_pct"] = 100 * ev["coverage"].reindex(done["trial_id"]).to_numpy(float)
    if "eval/hq" in done:
        done["hq_pct"] = 100 * done["eval/hq"].astype(float)
    colors = palette(run.trials)
    panels = []
    for data in dict.fromkeys(m["data"]):
        for key, label, top in (("coverage_pct", "coverage vs real anchor (%)", 100.0),
                                ("eval/modes", "modes (≥ 1 high-quality sample)", None),
                                ("eval/mode_kl", "reverse KL (nats)", None), ("hq_pct", "high-quality (%)", 100.0)):
            if key in done and done[done["data"] == data][key].notna().any():
                panels.append((data, key, label, top))
    fig, axes = _grid(len(panels), ncols=4, w=4.2, h=3.4)
    for ax, (data, key, label, top) in zip(axes, panels):
        sub, cm = done[done["data"] == data], m[m["data"] == data]
        hues = [h for h in colors if h in set(cm["hue"])]
        xs = list(dict.fromkeys(cm["backbone"]))
        width = 0.8 / max(1, len(hues))
        rng = np.random.default_rng(0)
        for j, h in enumerate(hues):
            for i, x in enumerate(xs):
                v = sub[(sub["backbone"] == x) & (sub["hue"] == h)][key].astype(float).dropna()
                if not len(v):
                    continue
                pos = i - 0.4 + width * (j + 0.5)
                ax.scatter(pos + rng.uniform(-width / 6, width / 6, len(v)), v, color=colors[h], alpha=0.45, s=16)
                mean, sd = float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0
                lo, hi = max(mean - sd, 0.0), mean + sd if top is None else min(mean + sd, top)
                ax.errorbar(pos, mean, yerr=[[mean - lo], [hi - mean]], fmt="D", color=colors[h], ms=6, capsize=4)
        ax.set_xticks(range(len(xs)), xs)
        k = cm["n_modes"].iloc[0]
        if key == "coverage_pct":
            ax.axhline(100 * claim3.COVERAGE, color="firebrick", ls=":", lw=0.8, label="threshold")
        elif key == "eval/modes" and k == k:
            ax.axhline(k, color="green", ls="--", lw=0.8, label=f"all {int(k)}")
        ax.set_ylim(bottom=0, top=None if top is None else top * 1.05)
        ax.set_title(f"{data}: {label}", fontsize=9)
        ax.set_ylabel("lower is better" if key == "eval/mode_kl" else "higher is better", fontsize=8)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best")
    fig_legend(fig, colors, m["hue"])
    fig.suptitle("Claim 3: mode coverage per cell (dots: seeds; ◆: mean ± sd over seeds, clipped to the range)",
                 fontsize=10)
    return [(_save(fig, out / "claim3_modes.png"), "Coverage (the rule's), PacGAN's modes, reverse KL and the "
                                                   "high-quality share per cell.")]


def compute_figure(trials: pd.DataFrame, comp: pd.DataFrame, out: Path) -> list[tuple[Path, str]]:
    comp = comp[comp["gen_it_per_s"].notna()]
    if comp.empty:
        return []
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(comp) + 1.2), layout="constrained")
    colors = {h: c for h, c in palette(trials).items() if h in set(comp["hue"])}
    sns.barplot(comp, y="cell", x="gen_it_per_s", hue="hue", palette=colors, ax=ax, dodge=False)
    ax.set_xlabel("generator iterations per second (wall clock, incl. evaluation)")
    ax.set_ylabel("")
    ax.legend(title=None, fontsize=8)
    ax.set_title("Compute — training speed per cell (mean over trials)")
    return [(_save(fig, out / "compute.png"), "Generator iterations per second per cell.")]
