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
    """What a run was allowed to become, declared before its data: a plain sweep is what it ran; an adaptive one
    (study/adaptive.py) may add seeds up to `seeds` per cell and is decided at each of its declared iteration
    `budgets` (every budget is its own hypothesis: α_total / looks each). `alpha_total` is what the run's α
    ledger (study/rundir.py, ledger.json) left this design; `metrics` freezes each data set's deciding quality
    metric at round 1, so a later seed can never switch the metric another seed was read on."""
    seeds: Optional[int] = None   # the seeds each cell may have; None: the ones it has
    looks: int = 1                # iteration budgets (each its own hypothesis: Bonferroni over them)
    budgets: tuple = ()           # the declared budgets (generator iterations), in order; () for a plain sweep
    alpha_total: float = ALPHA    # the claim's α this design may spend (ALPHA less what earlier designs spent)
    metrics: tuple = ()           # ((data, metric key), ...) frozen at round 1; () to choose per run

    @property
    def alpha(self) -> float:
        return self.alpha_total / max(self.looks, len(self.budgets), 1)

    def metric(self, data: str) -> Optional[str]:
        return dict(self.metrics).get(data)


def declared(seeds: Optional[int], budgets: list[int], alpha_total: float = ALPHA, metrics: dict | None = None) -> Design:
    """The design of a run with declared budgets (study/adaptive.py, the report, the calibration)."""
    budgets = tuple(int(b) for b in budgets)
    return Design(seeds, max(len(budgets), 1), budgets, alpha_total, tuple(sorted((metrics or {}).items())))


# Rules version: every constant a verdict rule reads, hashed (rules_hash below). Bump RULES_VERSION when a
# rule's logic changes; the hash changes by itself when a constant does. Both go into the α ledger, adaptive.json
# and every published result, so a verdict names the exact rules that made it.
RULES_VERSION = "2026-12-06"
# The seeds the rules were set on: every threshold here was chosen, and its reason written, while seeds 0-9 of
# the mnist16 studies were in view. A published study runs on seeds outside this range (its spec's grid starts
# at 100) and says so; the report flags any study that uses these seeds.
RULES_SEEN_SEEDS = range(0, 10)
NOISE_FLOOR = 0.01  # the least evaluation noise (normalised quality) a seed is credited with. A seed is read against
                    # its OWN repeat difference (never its cell's: adding a seed must not move another seed's band),
                    # and one difference of two evaluations can come out near 0 by chance; the floor is the
                    # evaluator's noise at the smallest N a shipped spec uses (domain FID at N = 1,000: repeat
                    # differences of 0.0002-0.009 of the untrained-to-real gap, RMS 0.005), doubled


# Failure kinds, named for what the samples show: a stall is not a collapse.
DIVERGED, STALLED, COLLAPSED, SHORT = "diverged", "stalled", "collapsed", "converged short"
FAILURE_KINDS = (DIVERGED, STALLED, COLLAPSED, SHORT)

RULE_SEED = [
    f"A seed has **failed**, by kind: *diverged* (non-finite losses, or back at the untrained anchor after leaving it); *stalled* (its quality never left the untrained "
    f"anchor: ≥ {FAIL_Q} beyond its noise at every evaluation, whatever its samples' classes); *collapsed* (it left "
    "the anchor, but its samples cover decidedly too few modes and that coverage has stopped changing, or nearly every "
    f"confident sample falls in at most a quarter of the modes); *converged short* (its quality trend is flat short of {WORK_Q}).",
    f"It is **good** when its quality is below {WORK_Q} beyond its own evaluation noise AND its samples cover the "
    "modes (decided as claim 3 decides coverage), with no failure sign; else **unknown** (not finished, within noise "
    "of the threshold, still improving, or its coverage undecided). Each seed is read on its own numbers only (its "
    f"repeat difference, at least {NOISE_FLOOR} of the quality scale): adding seeds never changes another seed's outcome.",
]


def rule_cell(alpha: float = ALPHA) -> str:
    return (f"A cell **fails** when its failed seeds reject a failure rate of {FAIL_RATE:.2g} or less (exact "
            f"binomial tail ≤ α = {alpha:.3g}), and **works** when its good seeds reject a rate of {FAIL_RATE:.2g} "
            "or more; else it is **undecided**. The tail is taken over the cell's design size (every seed it may "
            "have, the missing ones unknown), so removing a seed can only undecide a cell.")


def seed_outcome(status: str, q: float, band: float, converged: Optional[bool],
                 concentrated: Optional[bool], stalled: Optional[bool] = None, covers: Optional[bool] = None,
                 collapsed: Optional[bool] = None) -> tuple[str, str]:
    """(good | failed | unknown, why) of one seed; a failure's `why` is its kind (FAILURE_KINDS). q: normalised final
    quality (0 real, 1 untrained); band: its own evaluation noise band (0 when unmeasured); stalled: never left the
    anchor over training; converged / concentrated / covers / collapsed: three-valued gates decided with their own
    uncertainty (study/report/evidence.py). A stall is checked before any mode count: samples that never left the
    untrained generator fall in "one class" without having collapsed onto it."""
    if status == "diverged":
        return FAILED, DIVERGED
    if status != "completed":
        return UNKNOWN, "not finished"
    if not math.isfinite(q):
        return UNKNOWN, "no quality anchors"
    band = band if math.isfinite(band) else 0.0
    if q - band >= FAIL_Q:
        # never left: a stall; left and came back to the untrained generator's quality: training diverged
        return (FAILED, STALLED) if stalled is not False else (FAILED, DIVERGED)
    if concentrated is True or collapsed is True:
        return FAILED, COLLAPSED
    if q + band < WORK_Q:
        if covers is False:
            return UNKNOWN, "good quality, too few modes (coverage still changing)"
        if covers is None:
            return UNKNOWN, "good quality, coverage undecided"
        return GOOD, "good"
    if q - band >= WORK_Q:
        if converged is True:
            return FAILED, SHORT
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


def plan(states: pd.DataFrame, d: Design) -> list[Action]:
    """The next round's seeds, from claim 1's cell states at every declared budget (columns budget, group, loss,
    cell, state, state_bonferroni, in_verdict, needs / needs_bonferroni: lists of Need, n: seeds the cell has).
    Only undecided cells that enter a verdict get anything: the seeds their most demanding open budget names, up to
    the design size. Budgets are never given here: every declared budget is run for every seed (study/adaptive.py
    continues each trial through them), and an undeclared one is never decided on."""
    # a cell decided at α but not at α/m (the level of "some backbone" clauses) is still open, for those clauses
    states = states.assign(need=[n if st == "undecided" else nb for st, n, nb in
                                 zip(states["state"], states["needs"], states["needs_bonferroni"])])
    open_ = states[states["in_verdict"] & ((states["state"] == "undecided") | (states["state_bonferroni"] == "undecided"))]
    out: list[Action] = []
    for cell, rows in open_.groupby("cell", sort=False):
        seeds = [n for needs in rows["need"] for n in needs if n.kind == "seeds"]
        have = int(rows["n"].max())
        if seeds and have < (d.seeds or 0):
            first = rows.iloc[0]
            target = min(have + max(n.amount for n in seeds), d.seeds)
            out.append(Action("seeds", first["group"], first["loss"], cell, target, seeds[0].why))
    return out


# ---------------------------------------------------------------- the rules' identity (ledger, published results)
RULE_MODULES = ("study.report.rules", "study.report.evidence", "study.report.claim1", "study.report.claim2",
                "study.report.claim3")


def rules_constants() -> dict:
    """Every module-level UPPER_CASE number or string of the rule modules: the thresholds a verdict reads."""
    import importlib
    out = {}
    for name in RULE_MODULES:
        mod = importlib.import_module(name)
        for key, value in vars(mod).items():
            if key.isupper() and isinstance(value, (int, float, str, range)) and not isinstance(value, bool):
                out[f"{name.rsplit('.', 1)[-1]}.{key}"] = str(value) if isinstance(value, range) else value
    return dict(sorted(out.items()))


def rules_id() -> dict:
    """{"version", "sha256"}: RULES_VERSION and the hash of rules_constants(), recorded with every decision."""
    import hashlib
    import json
    blob = json.dumps(rules_constants(), sort_keys=True, default=str).encode()
    return {"version": RULES_VERSION, "sha256": hashlib.sha256(blob).hexdigest()[:16]}


def seen_by_rules(seeds) -> list[int]:
    """The seeds among these that the rules were set on (RULES_SEEN_SEEDS): a published study should have none."""
    return sorted({int(s) for s in seeds if s == s and int(s) in RULES_SEEN_SEEDS})


def held_out_line(run) -> str:
    """One sentence on whether this study's seeds were held out from the rules (RULES_SEEN_SEEDS)."""
    seeds = [s for s in run.trials["seed"].dropna()] if "seed" in run.trials else []
    seen = seen_by_rules(seeds)
    span = f"seeds {int(min(seeds))}–{int(max(seeds))}" if seeds else "no seeds"
    if seen:
        return (f"{span}: seeds {', '.join(map(str, seen[:10]))} were in view while the rules were set "
                f"({RULES_VERSION}); this study is not held out from them")
    return f"{span}: held out (the rules, {RULES_VERSION}, were set on seeds {RULES_SEEN_SEEDS.start}–{RULES_SEEN_SEEDS.stop - 1})"
