"""The verdict rules as one path of small pure functions: per-seed outcome -> cell state -> claim.

    seed_outcome(...)   one seed is good, failed or unknown (RULE_SEED)
    binomial_call(...)  one pre-declared threshold on a rate, tested in both directions (RULE_CELL)
    cell_state(...)     a cell's state from the counts of its seeds' outcomes (and what would decide it)

The report, the paper figures, the calibration (study/report/calibrate.py) and the adaptive driver
(study/adaptive.py) all call these, never a copy. Every threshold is here, named, with the reason.

Why counts, not a t-interval of mean quality: a seed that silently failed (never left the untrained
generator) and four that learned give a mean that a t-interval happily calls "good"; as counts, one
failure in five is one failure in five. Why one threshold (FAIL_RATE) tested both ways: two thresholds
(works below one, fails above another) leave a dead zone between them that no number of seeds decides.
Why the design size: a cell is tested as if all `design` seeds it may have were run, the missing ones
counted as unknown, so removing a seed (or its evidence) can only take a call away, never make one, and
seeds added round by round (study/adaptive.py) cannot inflate the error: the failure and success counts
only grow, so "ever decided within the design" is "decided at the full design", which is an α-level test.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import pandas as pd

from scipy.stats import binom

ALPHA = 0.05       # error of each one-sided call; "some cell" clauses take α/m (Bonferroni), and an adaptive run
                   # splits α over the iteration budgets it may visit (each budget is its own hypothesis)
WORK_Q = 0.5       # a seed is good when its normalised quality is below this (it closed more than half the
                   # distance from the untrained generator to real data) with no failure sign...
FAIL_Q = 0.9       # ...and has plainly failed above this (it closed less than a tenth: never left the anchor)
FAIL_RATE = 1 / 3  # the one threshold of a cell: it *fails* when more than a third of its seeds fail, *works*
                   # when fewer do. Why a third: 4 failed seeds of 5 reject it (p = 0.045), 8 good of 8 reject it
                   # the other way (p = 0.039); a 5% rate could never be shown "not exceeded" with 10 seeds
MAX_SEEDS = 30     # the largest seed count a "what would decide it" estimate proposes

GOOD, FAILED, UNKNOWN = "good", "failed", "unknown"


@dataclass(frozen=True)
class Design:
    """What a run was allowed to become: a plain sweep is what it ran; an adaptive one (study/adaptive.py)
    may add seeds up to `seeds` per cell and visit `looks` iteration budgets. Its verdicts are decided at
    that size and at α / looks, so stopping whenever a claim is decided cannot inflate the error."""
    seeds: Optional[int] = None   # the seeds each cell may have; None: the ones it has
    looks: int = 1                # iteration budgets (each its own hypothesis: Bonferroni over them)

    @property
    def alpha(self) -> float:
        return ALPHA / self.looks

RULE_SEED = [
    f"A seed has **failed** when it diverged, when its normalised quality is at the untrained anchor (≥ {FAIL_Q} "
    "beyond its evaluation noise), when every classifier that can read its samples finds them in at most a "
    "quarter of the modes, or when it converged (the interval of its late trend within the tolerance) short of "
    f"{WORK_Q}.",
    f"It is **good** when its quality is below {WORK_Q} beyond its evaluation noise with no failure sign; else "
    "**unknown** (not finished, within noise of the threshold, or still improving short of it).",
]


def rule_cell(alpha: float = ALPHA) -> str:
    return (f"A cell **fails** when its failed seeds reject a failure rate of {FAIL_RATE:.2g} or less (exact "
            f"binomial tail ≤ α = {alpha:.3g}), and **works** when its good seeds reject a rate of {FAIL_RATE:.2g} "
            "or more; else it is **undecided**. The tail is taken over the cell's design size (every seed it may "
            "have, the missing ones unknown), so removing a seed can only undecide a cell.")


def seed_outcome(status: str, q: float, band: float, converged: Optional[bool],
                 concentrated: Optional[bool]) -> tuple[str, str]:
    """(good | failed | unknown, why) of one seed. q: normalised final quality (0 real, 1 untrained); band: its
    evaluation noise (0 when unmeasured); converged / concentrated: three-valued gates decided with their own
    uncertainty (study/report/evidence.py)."""
    if status == "diverged":
        return FAILED, "diverged"
    if status != "completed":
        return UNKNOWN, "not finished"
    if concentrated is True:
        return FAILED, "samples in at most a quarter of the modes"
    if not math.isfinite(q):
        return UNKNOWN, "no quality anchors"
    band = band if math.isfinite(band) else 0.0
    if q - band >= FAIL_Q:
        return FAILED, "at the untrained anchor"
    if q + band < WORK_Q:
        return GOOD, "good"
    if q - band >= WORK_Q:
        if converged is True:
            return FAILED, f"converged short of {WORK_Q}"
        return UNKNOWN, "still improving" if converged is False else "trend unknown"
    return UNKNOWN, "within noise of the threshold"


def tail(k: int, n: int, p: float) -> float:
    """P(Binomial(n, p) >= k)."""
    return float(binom.sf(k - 1, n, p)) if k > 0 else 1.0


def binomial_call(yes: int, no: int, n: int, p0: float, alpha: float) -> Optional[bool]:
    """True when `yes` outcomes of n reject a rate <= p0, False when `no` outcomes reject a rate >= p0,
    None otherwise. n is the design size (>= yes + no; the rest unknown)."""
    if tail(yes, n, p0) <= alpha:
        return True
    if tail(no, n, 1 - p0) <= alpha:
        return False
    return None


def seeds_to_decide(count: int, n: int, p: float, alpha: float, design: Optional[int]) -> Optional[int]:
    """More seeds, each adding to `count`, until tail(count + k, N, p) <= alpha; N grows with the seeds unless a
    design fixes it. None if more than MAX_SEEDS (or the design's room) would be needed."""
    for k in range(1, MAX_SEEDS + 1):
        total = design if design else n + k
        if n + k > (design or MAX_SEEDS + n):
            return None
        if tail(count + k, total, p) <= alpha:
            return k
    return None


@dataclass(frozen=True)
class Need:
    kind: str    # seeds | iterations | samples | finish: what the adaptive driver can give a cell
    amount: int  # seeds to add; generator iterations to reach; samples per evaluation; trials to finish
    why: str

    def __str__(self) -> str:
        return self.why


@dataclass
class CellState:
    state: str                                   # works | fails | undecided
    why: str
    need: list[Need] = field(default_factory=list)
    good: int = 0
    failed: int = 0
    unknown: int = 0
    design: int = 0

    @property
    def counts(self) -> str:
        return f"{self.good} good, {self.failed} failed, {self.unknown} unknown of {self.design}"


def cell_state(outcomes: list[tuple[str, str]], alpha: float = ALPHA, design: Optional[int] = None,
               gen_iters: int = 0) -> CellState:
    """A cell's state from its seeds' (outcome, why). design: the seeds the cell may have (None: the ones it
    has); gen_iters: its training length, for "train longer" needs."""
    g = sum(o == GOOD for o, _ in outcomes)
    f = sum(o == FAILED for o, _ in outcomes)
    u = len(outcomes) - g - f
    n = max(design or 0, len(outcomes))
    call = binomial_call(f, g, n, FAIL_RATE, alpha)
    base = dict(good=g, failed=f, unknown=u, design=n)
    if call is True:
        return CellState("fails", f"{f} of {n} seeds failed: a failure rate ≤ {FAIL_RATE:.2g} is rejected "
                                  f"(p = {tail(f, n, FAIL_RATE):.3g} ≤ {alpha:.3g})", **base)
    if call is False:
        return CellState("works", f"{g} of {n} seeds good: a failure rate ≥ {FAIL_RATE:.2g} is rejected "
                                  f"(p = {tail(g, n, 1 - FAIL_RATE):.3g} ≤ {alpha:.3g})", **base)
    why = [f"{g} good, {f} failed, {u} unknown of {n}: neither rate test rejects at α = {alpha:.3g}"]
    need: list[Need] = []
    reasons = [r for o, r in outcomes if o == UNKNOWN]
    if any(r in ("still improving", "trend unknown") for r in reasons) and gen_iters:
        need.append(Need("iterations", 2 * gen_iters, f"train longer ({2 * gen_iters} generator iterations): "
                         f"{sum(r in ('still improving', 'trend unknown') for r in reasons)} seed(s) still short of "
                         f"{WORK_Q} without a flat trend"))
    if "within noise of the threshold" in reasons:
        need.append(Need("samples", 0, "more samples per evaluation: a seed's quality is within its noise of "
                                       f"{WORK_Q}"))
    if "not finished" in reasons:
        need.append(Need("finish", reasons.count("not finished"), "finish the unfinished seeds (run the sweep again)"))
    leaning_bad = f > g
    pending = reasons.count("not finished")  # assumed to finish like the majority
    k = seeds_to_decide((f if leaning_bad else g) + pending, len(outcomes), FAIL_RATE if leaning_bad else 1 - FAIL_RATE,
                        alpha, design)
    side = "failing" if leaning_bad else "good"
    if k:
        need.append(Need("seeds", k, f"{k} more seed(s), if they are {side} like the majority"))
    elif not need:
        need.append(Need("seeds", MAX_SEEDS, f"more than {MAX_SEEDS} seeds at these counts, or longer training"))
    return CellState("undecided", why[0], need, **base)


# ---------------------------------------------------------------- what a round gives (study/adaptive.py)
@dataclass(frozen=True)
class Action:
    kind: str                 # seeds | iterations
    group: str                # data · backbone (· shared keys): what GAN and WGAN are compared within
    loss: Optional[str]       # the cell's loss; None: every cell of the group (iterations keep a group level)
    cell: Optional[str]       # the cell that gets seeds (a group can hold ablation cells of the same loss)
    target: int               # seeds the cell will have, or generator iterations the group will train for
    why: str


def plan(states: pd.DataFrame, d: Design, start_iters: Optional[dict] = None) -> list[Action]:
    """The next round from claim 1's cell states (columns group, loss, state, state_bonferroni, in_verdict,
    needs / needs_bonferroni: lists of Need, n: seeds the cell has, gen_iters: its training length). Only
    undecided cells that enter a verdict get anything. A group is trained longer as a whole (GAN and WGAN compared at one budget), at most
    d.looks - 1 times; else a cell gets the seeds its need names, up to the design size."""
    start_iters = start_iters or {}
    out: list[Action] = []
    # a cell decided at α but not at α/m (the level of "some backbone" clauses) is still open, for those clauses
    states = states.assign(need=[n if st == "undecided" else nb for st, n, nb in
                                 zip(states["state"], states["needs"], states["needs_bonferroni"])])
    open_ = states[states["in_verdict"] & ((states["state"] == "undecided") | (states["state_bonferroni"] == "undecided"))]
    extended = set()
    for group, cells in open_.groupby("group", sort=False):
        iters = [n for needs in cells["need"] for n in needs if n.kind == "iterations"]
        if not iters:
            continue
        budgets = states.loc[states["group"] == group, "gen_iters"].dropna()
        if budgets.empty:
            continue
        now = int(budgets.max())
        first = int(start_iters.get(group, now))
        if round(math.log2(max(now, 1) / max(first, 1))) < d.looks - 1:
            out.append(Action("iterations", group, None, None, max(n.amount for n in iters), iters[0].why))
            extended.add(group)
    for _, c in open_.iterrows():
        if c["group"] in extended:
            continue
        seeds = [n for n in c["need"] if n.kind == "seeds"]
        if seeds and c["n"] < (d.seeds or 0):
            target = min(int(c["n"]) + max(n.amount for n in seeds), d.seeds)
            out.append(Action("seeds", c["group"], c["loss"], c["cell"], target, seeds[0].why))
    return out


