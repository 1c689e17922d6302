"""Claim 3 (paper §4.3): "In no experiment did we see evidence of mode collapse for the WGAN algorithm.\""""
from __future__ import annotations

import math

import pandas as pd

from study.report.cells import LABEL, Verdict, cells, counts, fmt, ids, summarize, variants_in
from study.report.evidence import COVERAGE, MIN_CONFIDENT_PER_MODE
from study.report import rules as R
from study.report.outcomes import trial_evidence

def rule(design: R.Design) -> list[str]:
    return [
        f"A trial shows mode collapse when it covers fewer than {COVERAGE:.0%} of the data set's modes, counted over "
        "*confident* samples only, as VEEGAN/PacGAN count toy modes over high-quality samples. Toys: modes with a "
        "sample within 3 std of their centre (geometry, no classifier). Images: classes (stacked MNIST: digit "
        "triples) holding ≥ 10% of their uniform share of the confident samples, read by two independent "
        "classifiers, the domain CNN (probability ≥ 0.9) and a pixel kNN (≥ 8 of 10 neighbours agree); a collapse "
        "call needs both to agree, and so does a no-collapse call.",
        f"A count needs ≥ {MIN_CONFIDENT_PER_MODE} confident samples per mode, and a collapse call needs the trial "
        "converged (the interval of its late trend within the tolerance: missing modes may be not yet learned "
        "rather than lost). Other trials are unknown.",
        f"A cell shows **collapse** when its collapsed trials reject a collapse rate of {R.FAIL_RATE:.2g} or less "
        f"(exact binomial tail ≤ α = {design.alpha:.3g} over the cell's design size), **no collapse** when its "
        f"trials without collapse reject a rate of {R.FAIL_RATE:.2g} or more; else **undecided**. "
        "One threshold, tested both ways: the paper's \"in no experiment did we see evidence of mode collapse\" "
        "read as a rate that seeds can measure.",
        "Verdict: *not supported* if any WGAN cell shows collapse (α/m over the m cells); *supported* if every "
        "WGAN cell shows no collapse; else *inconclusive*. GAN cells are reported beside them (the paper shows "
        "GAN collapse with an MLP generator, Fig. 7). Reverse KL over all samples' labels is shown as information."]


RULE = rule(R.Design())


def outcome(collapse: list, converged: list, alpha: float = R.ALPHA, design: int | None = None) -> tuple[str, list[int]]:
    """(outcome, evidence trials' positions) of one cell from per-trial collapse (True/False/None) and
    convergence flags: the collapse rate against one threshold, both ways (rules.binomial_call)."""
    evident = [i for i, (c, v) in enumerate(zip(collapse, converged)) if c is True and v is True]
    clean = sum(c is False for c in collapse)
    n = max(design or 0, len(collapse))
    call = R.binomial_call(len(evident), clean, n, R.FAIL_RATE, alpha)
    return {True: "collapse", False: "no collapse", None: "undecided"}[call], evident


def _need(collapse: list, converged: list, alpha: float, design: int | None) -> str:
    evident = sum(c is True and v is True for c, v in zip(collapse, converged))
    clean = sum(c is False for c in collapse)
    bad = evident > clean
    k = R.seeds_to_decide(evident if bad else clean, len(collapse), R.FAIL_RATE if bad else 1 - R.FAIL_RATE,
                          alpha, design)
    # seeds help only once some trials are decided; collapse-looking trials still improving need training first
    parts = [f"{k} more seed(s), if they are like the majority"] if k and (evident or clean) else []
    if any(c is None for c in collapse):
        parts.append("more confident samples (longer training or larger eval.num_samples) where the classifiers "
                     "could not count or disagreed")
    if any(c is True and v is not True for c, v in zip(collapse, converged)):
        parts.append("longer training where a collapsed-looking trial was still improving")
    return "; ".join(parts)


def modes_table(run) -> pd.DataFrame:
    ev = trial_evidence(run).set_index("trial_id")
    m = max(int((run.trials["in_verdict"] & run.trials["loss"].ne("gan")).groupby(run.trials["cell"]).any().sum()), 1)
    design = run.design
    rows = []
    for cell, t in cells(run.trials):
        first = t.iloc[0]
        done = t[t["status"] == "completed"]
        have = [c for c in ("eval/modes", "eval/mode_kl") if c in done and done[c].notna().any()]
        if not have:
            continue
        k = float(ev["n_modes"].get(first["trial_id"], math.nan))
        col = lambda c: done[c].astype(float) if c in done else pd.Series(math.nan, index=done.index)  # noqa: E731
        flags = [ev["collapse"].get(tid) for tid in done["trial_id"]]
        conv = [ev["converged"].get(tid) for tid in done["trial_id"]]
        size = max(design.seeds or 0, len(t))  # every trial of the cell counts towards its size
        out, evident = outcome(flags, conv, design.alpha, size)
        refutes, _ = outcome(flags, conv, design.alpha / m, size)  # "some WGAN cell collapses": Bonferroni
        cov, knn = summarize(ev["coverage"].reindex(done["trial_id"])), summarize(ev["coverage_knn"].reindex(done["trial_id"]))
        sm, sk, sh = summarize(col("eval/modes")), summarize(col("eval/mode_kl")), summarize(100 * col("eval/hq"))
        rows.append({"data": first["data"], "backbone": first["backbone"], "group": first["group"],
                     "loss": first["loss"], "hue": first["hue"], "cell": cell, "n_modes": k, **counts(t),
                     "n_values": len(done), "modes_mean": sm["mean"], "modes_std": sm["std"],
                     "coverage_mean": cov["mean"], "coverage_std": cov["std"],
                     "coverage_knn_mean": knn["mean"], "coverage_knn_std": knn["std"],
                     "hq_pct_mean": sh["mean"], "hq_pct_std": sh["std"], "kl_mean": sk["mean"], "kl_std": sk["std"],
                     "n_collapsed": sum(f is True for f in flags), "n_no_collapse": sum(f is False for f in flags),
                     "n_undecided": sum(f is None for f in flags), "n_converged": sum(c is True for c in conv),
                     "outcome": out, "outcome_bonferroni": refutes,
                     "need": "" if out != "undecided" else _need(flags + [None] * (size - len(flags)), conv,
                                                                 design.alpha, design.seeds),
                     "in_verdict": bool(first["in_verdict"]),
                     "collapsed_trials": " ".join(done["trial_id"].iloc[i] for i in evident), "trials": ids(done)})
    return pd.DataFrame(rows)


def decide(m: pd.DataFrame, variant: str = "wgan") -> tuple[str, str]:
    name = LABEL.get(variant, variant)
    sub = m[(m["loss"] == variant) & m["in_verdict"]] if not m.empty else m
    if sub.empty:
        return "inconclusive", f"no {name} cell with mode metrics"
    if (sub["outcome_bonferroni"] == "collapse").any():
        return "not supported", f"a {name} cell shows mode collapse"
    if (sub["outcome"] == "no collapse").all():
        return "supported", f"no {name} cell shows mode collapse"
    return "inconclusive", f"{name} cells undecided: " + ", ".join(sub[sub["outcome"] == "undecided"]["cell"])


def claim3(run) -> tuple[dict[str, pd.DataFrame], list[Verdict]]:
    m = modes_table(run)
    verdicts = []
    for variant in variants_in(run.trials):
        verdict, reason = decide(m, variant)
        evidence = [_evidence_line(r) for _, r in m.iterrows() if r["in_verdict"] and r["loss"] in ("gan", variant)] \
            if not m.empty else []
        verdicts.append(Verdict("3", verdict, rule(run.design), evidence, reason, variant))
    return {"claim3_modes": m}, verdicts


def _evidence_line(r: pd.Series) -> str:
    k = f" of {int(r['n_modes'])}" if r["n_modes"] == r["n_modes"] else ""
    knn = f", kNN {fmt(100 * r['coverage_knn_mean'])}%" if r["coverage_knn_mean"] == r["coverage_knn_mean"] else ""
    return (f"`{r['cell']}`: coverage by confident samples {fmt(100 * r['coverage_mean'])}%{knn} "
            f"(modes by argmax {fmt(r['modes_mean'])}{k}, reverse KL {fmt(r['kl_mean'])} nats, high-quality "
            f"{fmt(r['hq_pct_mean'])}%); collapse {r['n_collapsed']}, none {r['n_no_collapse']}, undecided "
            f"{r['n_undecided']} of {r['n_values']} seeds; {r['n_converged']} converged → **{r['outcome']}**"
            + (f"; would decide it: {r['need']}" if r["need"] else ""))
