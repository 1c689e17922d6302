"""Claim 3 (paper §4.3): "In no experiment did we see evidence of mode collapse for the WGAN algorithm.\""""
from __future__ import annotations

import math

import pandas as pd

from study.eval.evaluator import CONFIDENT

from study.report.cells import (IMPROVING, N_MODES, Verdict, cells, counts, fmt, ids, last_change,
                                primary_metric, summarize)

COVERAGE = 0.75   # a trial covering fewer than this fraction of the modes has collapsed (partly)...
KL_MAX = 0.5      # ...or one whose generated mode histogram is this far (nats) from the real one
HQ_MIN = 0.5      # below this fraction of high-quality samples, missing modes may be unlearned, not lost
MIN_SEEDS = 2

RULE = [
    f"A trial shows mode collapse if it covers fewer than {COVERAGE:.0%} of the data set's modes (toy modes "
    "captured with high-quality samples as in VEEGAN/PacGAN, digit classes, or stacked-MNIST triples) or the "
    f"reverse KL of its mode histogram to the real one exceeds {KL_MAX:g} nats.",
    f"It is evidence of collapse only if training got far enough to tell: ≥ {HQ_MIN:.0%} high-quality samples "
    f"(toys: within 3 std of a mode centre; images: labelled by the domain classifier with ≥ {CONFIDENT:.0%} "
    "confidence), and"
    f" the cell's quality did not improve by more than {-IMPROVING:.0%} over its last evaluation "
    "interval (otherwise missing modes may be not yet learned rather than lost).",
    f"A cell shows **collapse** if any trial is evidence of collapse; **no collapse** if no trial collapsed (≥ "
    f"{MIN_SEEDS} seeds); else **undecided**.",
    "Verdict: *not supported* if any WGAN cell shows collapse; *supported* if every WGAN cell shows no "
    "collapse; else *inconclusive*. GAN cells are reported beside them (the paper shows GAN collapse with an "
    "MLP generator, Fig. 7)."]


def _collapsed(modes: float, kl: float, k: float) -> bool:
    return bool((k == k and modes == modes and modes / k < COVERAGE) or (kl == kl and kl > KL_MAX))


def modes_table(run) -> pd.DataFrame:
    rows = []
    t_all = run.trials
    for cell, t in cells(t_all):
        first = t.iloc[0]
        done = t[t["status"] == "completed"]
        have = [c for c in ("eval/modes", "eval/mode_kl") if c in done and done[c].notna().any()]
        if not have:
            continue
        k = float(N_MODES.get(first["data"], math.nan))
        col = lambda c: done[c].astype(float) if c in done else pd.Series(math.nan, index=done.index)
        modes, kl, hq = col("eval/modes"), col("eval/mode_kl"), col("eval/hq")
        usable = done[modes.notna() | kl.notna()]
        q = primary_metric(t_all, first["data"])
        change = last_change(run.metrics, done["trial_id"], q) if q else math.nan
        flags = {tid: _collapsed(m, kv, k) for tid, m, kv in zip(done["trial_id"], modes, kl)}
        flagged = [tid for tid, f in flags.items() if f]
        evident = [tid for tid, h in zip(done["trial_id"], hq) if flags[tid] and not (h == h and h < HQ_MIN)
                   and not change < IMPROVING]
        if evident:
            outcome = "collapse"
        elif not flagged and len(usable) >= MIN_SEEDS:
            outcome = "no collapse"
        else:
            outcome = "undecided"
        sm, sk, sh = summarize(modes), summarize(kl), summarize(100 * hq)
        rows.append({"data": first["data"], "backbone": first["backbone"], "group": first["group"],
                     "loss": first["loss"], "hue": first["hue"], "cell": cell, "n_modes": k, **counts(t),
                     "n_values": len(usable), "modes_mean": sm["mean"], "modes_std": sm["std"],
                     "coverage_mean": sm["mean"] / k if k == k else math.nan,
                     "hq_pct_mean": sh["mean"], "hq_pct_std": sh["std"], "kl_mean": sk["mean"], "kl_std": sk["std"],
                     "n_collapsed": len(flagged),
                     "collapse_rate": len(flagged) / len(usable) if len(usable) else math.nan,
                     "last_change": change, "outcome": outcome, "in_verdict": bool(first["in_verdict"]),
                     "collapsed_trials": " ".join(flagged), "trials": ids(done)})
    return pd.DataFrame(rows)


def decide(m: pd.DataFrame) -> tuple[str, str]:
    sub = m[(m["loss"] == "wgan") & m["in_verdict"]] if not m.empty else m
    if sub.empty:
        return "inconclusive", "no WGAN cell with mode metrics"
    if (sub["outcome"] == "collapse").any():
        return "not supported", "a WGAN cell shows mode collapse"
    if (sub["outcome"] == "no collapse").all():
        return "supported", "no WGAN cell shows mode collapse"
    return "inconclusive", "WGAN cells undecided"


def claim3(run) -> tuple[dict[str, pd.DataFrame], Verdict]:
    m = modes_table(run)
    verdict, reason = decide(m)
    evidence = []
    for _, r in m.iterrows():
        if not r["in_verdict"]:
            continue
        k = f" of {int(r['n_modes'])}" if r["n_modes"] == r["n_modes"] else ""
        hq = f", high-quality {fmt(r['hq_pct_mean'])}%" if r["hq_pct_mean"] == r["hq_pct_mean"] else ""
        change = f"{r['last_change']:+.0%}" if r["last_change"] == r["last_change"] else "n/a"
        evidence.append(f"`{r['cell']}`: modes {fmt(r['modes_mean'])}{k}, reverse KL {fmt(r['kl_mean'])} nats{hq}; "
                        f"collapsed {r['n_collapsed']}/{r['n_values']} seeds; last-interval quality change "
                        f"{change} → **{r['outcome']}**")
    return {"claim3_modes": m}, Verdict("3", verdict, RULE, evidence, reason)
