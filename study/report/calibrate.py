"""Calibrate the verdict rules by simulation: synthetic studies drawn from known truths, decided by the report's
own functions (study/report/rules.py, claim1/2/3.decide) and, for adaptive runs, by the adaptive driver's own
planner (study/adaptive.py), rounds included. Counts wrong decided verdicts (error) and right ones (power).

python -m study.report.calibrate [--reps 400] [--run RUN_DIR] [--markdown]  -> JSON (or the docs table) on stdout

Model (per seed): with probability p the seed silently fails (normalised quality at the untrained anchor); else
its quality is mu + seed spread + evaluation noise (normal, or Student-t with 3 df: real spreads have
outliers); with probability `slow` it is still improving at the first budget and only resolves at twice the
iterations (adaptive runs). Claim 2: per-seed rho = mu_rho + noise. Claim 3: each trial collapses with
probability p_c, each classifier misreads with probability e; a trial is flagged only when both read collapse.

Truths: "true" / "false" (the claim holds / a cell contradicts it, with a margin), "borderline" (a cell exactly
on a threshold: every decided verdict counts as wrong), "silent minority" (30% or 50% of a WGAN cell's seeds at
the untrained anchor). Spreads default to those measured in this harness's runs (MEASURED).
"""
from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np
import pandas as pd

from study.report import claim1, claim2, claim3
from study.report import rules as R
from study.report.evidence import COVERAGE

# Measured on sweeps/cpu_verdicts.yaml (mnist5k 16 px, 3,000 generator iterations, 2-core CPU): normalised
# quality seed-to-seed sd per cell (median and max over the cells), evaluation noise (|difference| of two
# evaluation sets of one generator, normalised), sd of per-seed rho, classifiers disagreeing on collapse.
# `python -m study.report.calibrate --run RUN_DIR` measures them. PESSIMISTIC: ~5x the largest seed spread.
MEASURED = {"seed_sd": 0.013, "seed_sd_max": 0.033, "eval_noise": 0.003, "rho_sd": 0.16, "disagree": 0.06}
PESSIMISTIC = 0.15
SPREADS = (("measured", "seed_sd", False), ("measured_max", "seed_sd_max", False), ("pessimistic", None, True))
SEEDS = (5, 8, 10)        # fixed designs tabulated
CHEAP_REPS = 5            # claims 2 and 3 simulate in microseconds: 5x the repetitions
ADAPTIVE = {"start": 3, "max_seeds": 10, "looks": 2}  # the adaptive design simulated (study/adaptive.py defaults)

# (backbone, loss) -> (mean normalised quality of a healthy seed, silent failure probability, slow probability)
TRUE = {("dcgan", "gan"): (0.10, 0.0, 0.0), ("dcgan", "wgan"): (0.12, 0.0, 0.0),
        ("const", "gan"): (1.00, 0.95, 0.0), ("const", "wgan"): (0.35, 0.0, 0.0),
        ("mlp", "gan"): (0.55, 0.7, 0.0), ("mlp", "wgan"): (0.30, 0.0, 0.0)}
CLAIM1 = {
    "true": TRUE,
    "false": {**TRUE, ("const", "gan"): (0.20, 0.0, 0.0), ("const", "wgan"): (1.00, 0.95, 0.0),
              ("mlp", "gan"): (0.25, 0.0, 0.0)},
    "borderline rate": {**TRUE, ("mlp", "wgan"): (0.30, R.FAIL_RATE, 0.0)},
    "borderline quality": {**TRUE, ("mlp", "wgan"): (R.WORK_Q, 0.0, 0.0)},
    "silent minority 30%": {**TRUE, ("mlp", "wgan"): (0.30, 0.3, 0.0)},
    "silent minority 50%": {**TRUE, ("mlp", "wgan"): (0.30, 0.5, 0.0)},
    "rare gan failures": {**TRUE, ("const", "gan"): (0.20, 0.05, 0.0), ("mlp", "gan"): (0.25, 0.05, 0.0)},
    "slow wgan": {**TRUE, ("const", "wgan"): (0.35, 0.0, 0.6)},
}
# What a decided verdict must be to be right; None: any decided verdict is wrong. A 30% failure rate is below the
# pre-declared threshold of a third, so "supported" is right there; what must never happen is "supported" when
# more than a third fail (50%), or any call on the threshold itself.
CLAIM1_TRUTH = {"true": "supported", "false": "not supported", "borderline rate": None, "borderline quality": None,
                "silent minority 30%": "supported", "silent minority 50%": None, "rare gan failures": None,
                "slow wgan": "supported"}


def _seed(rng, mu: float, p: float, slow: float, sd: float, noise: float, heavy: bool, budget: int) -> tuple:
    if rng.random() < p:
        return R.seed_outcome("completed", 1.0 + noise * rng.standard_normal(), 3 * noise, True, None)
    if budget == 1 and rng.random() < slow:
        return R.UNKNOWN, "still improving"
    e = rng.standard_t(3) / math.sqrt(3) if heavy else rng.standard_normal()
    return R.seed_outcome("completed", mu + sd * e + noise * rng.standard_normal(), 3 * noise, True, None)


def _states(outcomes: dict, design: R.Design, gen_iters: int) -> pd.DataFrame:
    m = len({b for b, _ in outcomes})
    rows = []
    for (b, loss), seeds in outcomes.items():
        s = R.cell_state(seeds, design.alpha, design.seeds, gen_iters)
        sb = R.cell_state(seeds, design.alpha / m, design.seeds, gen_iters)
        rows.append({"group": b, "loss": loss, "cell": f"{b} {loss}", "state": s.state, "state_bonferroni": sb.state,
                     "in_verdict": True, "needs": s.need, "needs_bonferroni": sb.need, "n": len(seeds)})
    return pd.DataFrame(rows)


def claim1_run(truth: str, rng, n: int | None, sd: float, noise: float, heavy: bool) -> tuple[str, int, int]:
    """(verdict, seeds spent, iteration budgets spent) of one synthetic study: fixed n seeds, or (n None) the
    adaptive driver's rounds (rules.plan) from ADAPTIVE["start"] seeds."""
    cells = CLAIM1[truth]
    draw = lambda c, k, b: [_seed(rng, *cells[c], sd, noise, heavy, b) for _ in range(k)]  # noqa: E731
    if n is not None:
        outs = {c: draw(c, n, 1) for c in cells}
        return claim1.decide(_states(outs, R.Design(), 1))[0], n * len(cells), len(cells)
    design = R.Design(ADAPTIVE["max_seeds"], ADAPTIVE["looks"])
    budget = {c: 1 for c in cells}
    outs = {c: draw(c, ADAPTIVE["start"], 1) for c in cells}
    while True:
        st = _states(outs, design, 1)
        verdict = claim1.decide(st)[0]
        if verdict != "inconclusive":
            break
        actions = R.plan(st.assign(gen_iters=[budget[c] for c in outs]), design)
        if not actions:
            break
        for a in actions:
            for c in [c for c in outs if (a.group, a.loss) in ((c[0], c[1]), (c[0], None))]:
                if a.kind == "iterations":  # every seed of the cell re-observed at the longer budget
                    budget[c] = a.target
                    outs[c] = [_seed(rng, *cells[c], sd, noise, heavy, a.target) for _ in outs[c]]
                elif a.kind == "seeds":
                    outs[c] += draw(c, a.target - len(outs[c]), budget[c])
    return verdict, sum(map(len, outs.values())), sum(budget.values())


def claim1_rates(truth: str, n: int | None, reps: int, sd: float, noise: float, heavy: bool, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    decided = wrong = seeds = budgets = 0
    for _ in range(reps):
        v, k, b = claim1_run(truth, rng, n, sd, noise, heavy)
        seeds, budgets = seeds + k, budgets + b
        if v != "inconclusive":
            decided += 1
            wrong += v != CLAIM1_TRUTH[truth]
    cells = len(CLAIM1[truth])
    return {"decided": decided / reps, "wrong": wrong / reps, "right": (decided - wrong) / reps,
            "seeds_per_cell": seeds / reps / cells, "budget_per_cell": budgets / reps / cells}


CLAIM2 = {"true": (0.85, 0.85), "false": (0.85, 0.10), "borderline": (0.85, 0.5)}  # (WGAN cells' mu_rho, last cell's)
CLAIM2_TRUTH = {"true": "supported", "false": "not supported", "borderline": None}


def claim2_rates(truth: str, n: int, reps: int, rho_sd: float, seed: int = 0, cells: int = 3) -> dict:
    rng = np.random.default_rng(seed)
    good, last = CLAIM2[truth]
    decided = wrong = 0
    for _ in range(reps):
        outs = [claim2.outcome(np.clip((last if i == cells - 1 else good) + rho_sd * rng.standard_normal(n), -1, 1),
                               [True] * n, cells)[0] for i in range(cells)]
        v, _ = claim2.decide(pd.DataFrame({"loss": "wgan", "in_verdict": True, "outcome": outs}), "wgan")
        if v != "inconclusive":
            decided += 1
            wrong += v != CLAIM2_TRUTH[truth]
    return {"decided": decided / reps, "wrong": wrong / reps, "right": (decided - wrong) / reps}


# Claim 3: per seed a coverage (modes covered / the real anchor's), quantised to the cell's K modes, read twice (the
# final evaluation and its repeat: the band), with a per-cell systematic reader shift (images: the deciding CNN's
# own bias, shared by every seed of a cell; toys: 0, geometry has none), and a trend that is flat unless the seed
# is still rising ("slow": resolves at twice the iterations). The cells are the toy study's: grid25 and ring8 per
# variant, the last (ring8) the one a truth changes. (mu, sd, concentrated share, slow share) per cell.
CLEAR = (0.97, 0.05, 0.0, 0.0)
CLAIM3 = {
    "true": {},
    "false": {-1: (0.40, 0.10, 0.0, 0.0)},
    "false, concentrated": {-1: (1.0, 0.0, 0.6, 0.0)},
    "borderline mean": {-1: (COVERAGE, 0.10, 0.0, 0.0)},                 # mean coverage exactly 0.75
    "borderline rate": {-1: (1.0, 0.0, R.FAIL_RATE, 0.0)},              # 1/3 at 0.25, 2/3 at 1.0: mean 0.75
    "minority 20%": {-1: (1.0, 0.0, 0.2, 0.0)},                         # mean 0.85: "no collapse" is right
    "stalled": {-1: (0.50, 0.10, 0.0, 0.6)},                            # 60% still rising at the first budget
}
CLAIM3_TRUTH = {"true": "supported", "false": "not supported", "false, concentrated": "not supported",
                "borderline mean": None, "borderline rate": None, "minority 20%": "supported",
                "stalled": "not supported"}
CLAIM3_K = (25, 8)  # modes of the cells (grid25, ring8)
# A sensitivity, not a truth: the per-cell shift between the deciding CNN and the pixel kNN seen on images
# (results/cpu_verdicts_6k, MLP WGAN: CNN 0.6-0.7, kNN 0.9-1.0). If the kNN were right, a clear "true" cell would
# read 0.3 low under the CNN: the row shows what that does. Seeds cannot calibrate a shared shift away; the toys
# (no reader) decide claim 3.
READER_SHIFT = -0.3


def _claim3_seed(rng, k: int, mu: float, sd: float, conc: float, slow: float, shift: float, noise: float,
                 budget: int) -> tuple[float, object]:
    """(coverage, evidence.SeedModes) of one synthetic seed, through the report's own evidence.seed_modes."""
    from study.report.evidence import CONCENTRATED, COV_TOL, Trend, seed_modes
    true = CONCENTRATED if rng.random() < conc else mu + sd * rng.standard_normal()  # concentrated: 2 of ring8's 8
    reads = [int(np.clip(round(k * (true + shift + noise * rng.standard_normal())), 0, k)) for _ in range(2)]
    rising = budget == 1 and rng.random() < slow
    gain = 0.3 if rising else 0.0
    trend = Trend(gain, gain - 0.02, gain + 0.02 if rising else COV_TOL / 2, 8, -gain)
    s = seed_modes(reads[0], k, 10 * 10 * k, k, abs(reads[0] - reads[1]), trend)
    return s.coverage, s


def claim3_study(truth: str, rng, n: int | None, shift: float = 0.0, noise: float = 0.02) -> tuple[str, int, int]:
    """(verdict, seeds spent) of one synthetic claim-3 study: fixed n seeds, or (n None) the adaptive driver's
    claim-3 step (study/adaptive.open_cells: an undecided cell gets seeds up to the design; low seeds still
    rising get one doubling of the iterations)."""
    spec = [CLAIM3[truth].get(i - len(CLAIM3_K), CLEAR) for i in range(len(CLAIM3_K))]
    design = R.Design(n) if n is not None else R.Design(ADAPTIVE["max_seeds"], ADAPTIVE["looks"])
    size, budget = (n, 1) if n is not None else (ADAPTIVE["start"], 1)
    m = len(CLAIM3_K)
    while True:
        rows = []
        for k, p in zip(CLAIM3_K, spec):
            seeds = [_claim3_seed(rng, k, *p, shift, noise, budget) for _ in range(size)]
            cov, cov_ok, bad = [c for c, _ in seeds], [s.covers for _, s in seeds], [s.collapsed for _, s in seeds]
            rows.append({"outcome": claim3.outcome(cov, cov_ok, bad, design.alpha, design.seeds)[0],
                         "outcome_bonferroni": claim3.outcome(cov, cov_ok, bad, design.alpha / m, design.seeds)[0]})
        table = pd.DataFrame(rows).assign(loss="wgan", in_verdict=True, cell=[f"cell {i}" for i in range(m)])
        verdict = claim3.decide(table)[0]
        if n is not None or verdict != "inconclusive":
            return verdict, size, budget
        if size < design.seeds:
            size = design.seeds          # open_cells: "seeds up to the design size"
        elif budget < design.looks:
            budget += 1                  # open_cells: "iterations" where seeds have not converged
        else:
            return verdict, size, budget


def claim3_rates(truth: str, n: int | None, reps: int, shift: float = 0.0, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    decided = wrong = seeds = budgets = 0
    for _ in range(reps):
        v, k, b = claim3_study(truth, rng, n, shift)
        seeds, budgets = seeds + k, budgets + b
        if v != "inconclusive":
            decided += 1
            wrong += v != (CLAIM3_TRUTH[truth] if not shift else "supported")
    return {"decided": decided / reps, "wrong": wrong / reps, "right": (decided - wrong) / reps,
            "seeds_per_cell": seeds / reps, "budget_per_cell": budgets / reps}


def calibrate(reps: int = 400, spread: dict | None = None, ns: tuple = SEEDS) -> dict:
    s = {**MEASURED, **(spread or {})}
    out: dict = {"spread": s, "alpha": R.ALPHA, "fail_rate": R.FAIL_RATE, "adaptive": ADAPTIVE, "reps": reps,
                 "claim1": {}, "claim2": {}, "claim3": {}}
    for n in (*ns, None):
        for truth in CLAIM1:
            if n is not None and truth == "slow wgan":
                continue  # "still improving" only resolves in an adaptive run
            for label, key, heavy in SPREADS:
                sd = s[key] if key else PESSIMISTIC
                out["claim1"][f"{n or 'adaptive'}/{truth}/{label}"] = claim1_rates(truth, n, reps, sd, s["eval_noise"], heavy)
        for truth in CLAIM2 if n else ():  # cheap: CHEAP_REPS x the reps, so the rates' Monte Carlo noise is small
            out["claim2"][f"{n}/{truth}"] = claim2_rates(truth, n, CHEAP_REPS * reps, s["rho_sd"])
        for truth in CLAIM3:
            out["claim3"][f"{n or 'adaptive'}/{truth}"] = claim3_rates(truth, n, CHEAP_REPS * reps)
        out["claim3"][f"{n or 'adaptive'}/true, CNN reads {READER_SHIFT:+g} (sensitivity, not a truth)"] = \
            claim3_rates("true", n, CHEAP_REPS * reps, READER_SHIFT)
    out["max_wrong"] = max(r["wrong"] for c in ("claim1", "claim2", "claim3") for r in out[c].values())
    return out


def markdown(res: dict) -> str:
    """The table of docs/verdicts.md."""
    lines = ["| claim | seeds | truth | spread | decided | wrong decided | decided correctly | seeds per cell |",
             "|---|---|---|---|---|---|---|---|"]
    for claim in ("claim1", "claim2", "claim3"):
        for key, r in res[claim].items():
            n, truth, *label = key.split("/")
            spent = f"{r['seeds_per_cell']:.1f}" + (f" (budget x{r['budget_per_cell']:.2f})" if n == "adaptive" else "") \
                if "seeds_per_cell" in r else n
            lines.append(f"| {claim[-1]} | {n} | {truth} | {(label or ['measured'])[0]} | {r['decided']:.1%} | "
                         f"{r['wrong']:.1%} | {r['right']:.1%} | {spent} |")
    return "\n".join(lines)


def measure(run_dir: str) -> dict:
    """The spreads of MEASURED, from a run directory."""
    from study.report.load import load_run
    from study.report.outcomes import trial_evidence
    run = load_run(run_dir)
    ev = trial_evidence(run)
    done = ev[(ev["status"] == "completed") & (ev["outcome"] == R.GOOD)]  # the spread of healthy seeds
    sds = done.groupby("cell")["q"].std().dropna()
    rho = run.trials[run.trials["status"] == "completed"].groupby("cell")["corr_spearman"].std().dropna()
    both = ev[ev["coverage_knn"].notna()]
    dis = ((both["coverage"] < COVERAGE) != (both["coverage_knn"] < COVERAGE)).mean() if len(both) else math.nan
    return {"seed_sd": float(sds.median()), "seed_sd_max": float(sds.max()), "eval_noise": float(done["noise"].mean()),
            "rho_sd": float(rho.median()), "disagree": float(dis)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m study.report.calibrate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--run", help="measure the spreads from this run directory instead of MEASURED")
    ap.add_argument("--markdown", action="store_true", help="print the table of docs/verdicts.md instead of JSON")
    args = ap.parse_args(argv)
    res = calibrate(args.reps, measure(args.run) if args.run else None)
    print(markdown(res) if args.markdown else json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
