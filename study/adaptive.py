"""`python -m study.sweep SPEC --until-decided`: run a sweep in rounds until every claim is decided.

A design is declared before any data: the seeds a cell may reach (`max_seeds`) and the iteration `budgets` claim
1 is decided at (`until_decided: {max_seeds: 10, budgets: [3000, 6000]}`; the legacy `extensions: k` means the
budgets T, 2T, ... 2^k T). Every seed is trained through every declared budget (each trial continued exactly
from its final checkpoint, study/trial.extend), and claim 1 is decided and reported at each one; a budget that
was not declared is never decided on. Rounds give more seeds only to the cells an undecided claim still needs.

Error control. Every cell is tested at its design size (missing seeds count as unknown) and each seed is read on
its own numbers, so adding seeds only ever adds to the counts: "ever decided within the design" is "decided at the
full design", an α-level test. Each budget is its own hypothesis: α is split over the declared budgets up front.
The α ledger (ledger.json, study/rundir.py) records each design with the α it was given; a new design over the
same trials gets only what is left, and a run directory without its ledger is refused for deciding.
"""
from __future__ import annotations

from typing import Optional

import pandas as pd

from study.report.rules import ALPHA, Action, Design, declared, plan, rules_id

DESIGN_SEEDS = 10     # seeds a cell may reach (the design size every cell is tested at)
EXTENSIONS = 1        # legacy `extensions`: budgets T and 2T, α split in two
MAX_ROUNDS = 12       # a guard: seeds and budgets bound the rounds long before this


def budgets_of(base_iters: int, budgets: Optional[list] = None, extensions: Optional[int] = None) -> list[int]:
    """The declared budgets: `budgets` as given, else T·2^i for i ≤ extensions (T: the spec's gen_iters)."""
    if budgets:
        return [int(b) for b in budgets]
    k = EXTENSIONS if extensions is None else extensions
    return [int(base_iters) * 2 ** i for i in range(k + 1)]


def design(max_seeds: int = DESIGN_SEEDS, extensions: int = EXTENSIONS, budgets: Optional[list] = None,
           base_iters: int = 1) -> Design:
    return declared(max_seeds, budgets_of(base_iters, budgets, extensions))


def design_of(entry: dict) -> Design:
    """The Design a ledger entry declared (the report decides at exactly this)."""
    return declared(int(entry["max_seeds"]), entry["budgets"], float(entry["alpha_total"]), entry.get("metrics") or {})


# ---------------------------------------------------------------- the driver (rounds of an ordinary sweep)
def _design(args, base_iters: int) -> Design:
    return design(args.max_seeds or DESIGN_SEEDS, args.extensions, getattr(args, "budgets", None), base_iters)


def describe(args, base_iters: int) -> str:
    d = _design(args, base_iters)
    hours = f", at most {args.max_hours:g} h" if args.max_hours else ""
    return (f"--until-decided: round 1 runs the spec's trials; later rounds give undecided cells up to {d.seeds} seeds"
            f"{hours}; every seed is trained through the declared budgets {', '.join(map(str, d.budgets))} and claim 1 "
            f"is decided at each, at the design size of {d.seeds} seeds and α = {ALPHA}/{len(d.budgets)} = {d.alpha:.3g} "
            "per budget (less what the run's ledger.json has already spent)")


def open_cells(run) -> tuple[pd.DataFrame, list]:
    """(claim 1's cell states at every declared budget, with the cells an undecided claim 2 or 3 still needs marked
    open at the last budget, every verdict). Rows of a budget whose claim-1 verdicts are all decided need nothing."""
    from study.report.claim1 import claim1
    from study.report.claim2 import claim2
    from study.report.claim3 import claim3
    from study.report.rules import Need
    (t1, v1), (t2, v2), (t3, v3) = claim1(run), claim2(run), claim3(run)
    st = t1["claim1_states"].copy()
    if st.empty:
        return st, [*v1, *v2, *v3]
    st["n"] = st["n_trials"]
    for b in st["budget"].unique():
        if all(v.verdict != "inconclusive" for v in v1 if v.budget in (b, None)):
            st.loc[st["budget"] == b, ["state", "state_bonferroni"]] = "decided"
    open_claims = {v.key for v in (*v2, *v3) if v.verdict == "inconclusive"}
    extra = set()
    for claim, table, bad in (("claim2", t2["claim2_correlation"], ("undecided", "unclear")),
                              ("claim3", t3["claim3_modes"], ("undecided",))):
        for _, r in table.iterrows() if not table.empty else []:
            key = claim + ("" if r["loss"] == "wgan" else f"/{r['loss']}")  # Verdict.key of the variant
            if r["outcome"] in bad and r["in_verdict"] and key in open_claims:
                extra.add(r["cell"])
    last = st["budget"].max()
    states, needs = list(st["state"]), list(st["needs"])
    for i, r in enumerate(st.itertuples()):
        if r.cell in extra and r.budget == last:
            room = (run.design.seeds or 0) - r.n
            more = [Need("seeds", room, "claims 2/3: seeds up to the design size")] if room > 0 else []
            needs[i] = (list(r.needs) if r.state == "undecided" else []) + more
            states[i] = "undecided"
    st["state"], st["needs"] = states, needs
    return st, [*v1, *v2, *v3]


def _trial(cfg: dict):
    from study.config import load_trial_config, with_legacy
    from study.spec import Trial
    return Trial(load_trial_config(with_legacy(cfg)), {})


def new_seeds(have: list[int], target: int) -> list[int]:
    """Seeds to add to a cell that has `have`, up to `target` seeds: always after the largest it has, so a study
    whose spec starts at held-out seeds (100, 101, ...) never reaches back into the seeds the rules were set on."""
    top = max(have, default=-1)
    return list(range(top + 1, top + 1 + max(target - len(have), 0)))


def apply(run, actions: list[Action], out, first_budget: int) -> tuple[list[dict], list[str]]:
    """New trials' configs (at the first declared budget) and one line per action, from this round's plan."""
    from study.rundir import read_config
    t = run.trials[run.trials["trial_id"].map(lambda tid: (out / tid / "config.yaml").exists())]
    added, lines = [], []
    for a in actions:
        rows = t[t["cell"] == a.cell]
        if rows.empty:
            continue
        cfg, _ = read_config(out / rows["trial_id"].iloc[0])
        seeds = sorted(int(s) for s in run.trials.loc[run.trials["cell"] == a.cell, "seed"].dropna())
        free = new_seeds(seeds, a.target)
        added += [_trial({**cfg, "seed": s, "train": {**cfg["train"], "gen_iters": first_budget}}).config.resolved()
                  for s in free]
        lines.append(f"{a.cell}: seeds {', '.join(map(str, free))} ({len(seeds)} → {a.target}) — {a.why}")
    return added, lines


def continuations(run, out, budgets: list[int]) -> dict[str, dict]:
    """{short id: long config} for every completed trial that ends before the last declared budget: each is
    continued to the next declared budget (every seed is trained through every budget)."""
    from study.rundir import read_config
    nxt = {b: budgets[i + 1] for i, b in enumerate(budgets[:-1])}
    want = {}
    for _, r in run.trials[run.trials["status"] == "completed"].iterrows():
        cfg, _ = read_config(out / r["trial_id"])
        if cfg is None:
            continue
        iters = int(cfg["train"]["gen_iters"])
        if iters in nxt:
            want[r["trial_id"]] = _trial({**cfg, "train": {**cfg["train"], "gen_iters": nxt[iters]}}).config.resolved()
    return want


def _ledger_entry(d: Design, spec_doc: Optional[dict]) -> dict:
    import datetime
    from study.provenance import git_state
    return {"at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "max_seeds": d.seeds, "budgets": list(d.budgets), "alpha_total": d.alpha_total,
            "alpha_per_budget": d.alpha, "rules": rules_id(), "harness": git_state()}


def open_ledger(out, d: Design, doc: Optional[dict]) -> tuple[list, Design]:
    """The run's ledger with this design in it: resumed when its last entry declared the same design, else a new
    entry that gets the α the ledger has left. Refuses (UserError) a directory whose trials belong to a ledger
    that is missing or damaged, or whose α is spent."""
    from study.errors import UserError
    from study.rundir import append_ledger, ledger_id, ledger_mark, ledger_spent, read_ledger, trial_dirs
    entries, problem = read_ledger(out)
    fix = "run the study anew in an empty --out (or restore the ledger.json this directory was copied without)"
    if problem:
        raise UserError(f"{out}/ledger.json: {problem}; {fix}")
    marks = {m for t in trial_dirs(out, any_file=True) if (m := ledger_mark(t))}
    if entries is None and (marks or doc):
        raise UserError(f"{out}: its trials were decided by an adaptive run whose α ledger (ledger.json) is missing; {fix}")
    if entries and (marks - {ledger_id(entries)}):
        raise UserError(f"{out}: its trials belong to another ledger than {out}/ledger.json; {fix}")
    if entries:
        last = entries[-1]
        if last["max_seeds"] == d.seeds and list(last["budgets"]) == list(d.budgets):
            return entries, design_of(last)
    left = ALPHA - ledger_spent(entries)
    if left <= 1e-12:
        raise UserError(f"{out}/ledger.json: the run's α ({ALPHA}) is spent by the designs already decided on these "
                        f"trials; {fix}")
    d = declared(d.seeds, list(d.budgets), left)
    return append_ledger(out, entries, _ledger_entry(d, None)), d


def run_adaptive(args, name: str, trials: list, out, execute) -> Optional[dict]:
    """Rounds until every claim is decided or a limit is hit; adaptive.json records each round before it runs
    (so the same command resumes it) and its verdicts after; ledger.json records the design and its α.
    `execute(args, name, trials, out)` runs one round's trials like any sweep (study/sweep.py)."""
    import sys
    import time
    from collections import Counter
    from study.errors import UserError
    from study.report.cells import primary_metric
    from study.report.load import load_run
    from study.rundir import ledger_id, mark_extended, mark_ledger, read_adaptive, write_adaptive
    from study.trial import extend
    base = {int(t.config.train.gen_iters) for t in trials}
    d = _design(args, min(base) if base else 1)
    if base - {d.budgets[0]}:
        raise UserError(f"{args.spec}: until_decided.budgets starts at {d.budgets[0]} but the spec's trials train for "
                        f"{', '.join(map(str, sorted(base)))} generator iterations; make base.train.gen_iters the first budget")
    doc, problem = read_adaptive(out)
    if problem:
        raise UserError(f"{out}: {problem}; move it aside to start the adaptive run anew")
    entries, d = open_ledger(out, d, doc)
    lid = ledger_id(entries)
    if doc and doc.get("ledger") not in (None, lid):
        raise UserError(f"{out}/adaptive.json belongs to another ledger; run the study anew in an empty --out")
    doc = doc or {"rounds": []}
    doc.update(design={"max_seeds": d.seeds, "budgets": list(d.budgets)}, ledger=lid, rules=rules_id())
    say = lambda text: print(f"[{name}] {text}", file=sys.stderr)  # noqa: E731
    active = {t.id: t for t in trials}
    for r in doc["rounds"][1:]:  # replay the recorded rounds: the same trials, whatever was decided since
        for short in r["extended"]:
            active.pop(short, None)
        active.update({(t := _trial(c)).id: t for c in r["added"]})
    if not doc["rounds"]:
        doc["rounds"].append({"round": 1, "added": [], "extended": {}, "why": ["the spec's trials"]})
    t0, counts = time.monotonic(), Counter()
    while True:
        rnd = doc["rounds"][-1]
        write_adaptive(out, doc)
        for short, long in rnd["extended"].items():  # continue each short trial, exactly (study/trial.extend)
            (out / long).mkdir(parents=True, exist_ok=True)
            extend(out / short, out / long)
            mark_extended(out / short, long)
        say(f"round {rnd['round']}: {len(active)} trials; " + "; ".join(rnd["why"]))
        counts = execute(args, f"{name} round {rnd['round']}", list(active.values()), out)
        if counts is None:
            return None
        for tid in active:
            mark_ledger(out / tid, lid)
        if "metrics" not in doc:  # the deciding metric of each data set, frozen at round 1
            trials_now = load_run(out).trials
            doc["metrics"] = {str(dn): primary_metric(trials_now, dn) for dn in trials_now["data"].dropna().unique()}
        write_adaptive(out, doc)
        run = load_run(out)
        states, verdicts = open_cells(run)
        rnd.update(verdicts={v.key: v.verdict for v in verdicts},
                   trial_wall_s=round(_chain_wall(run), 1), seeds=int(states.groupby("cell")["n"].max().sum())
                   if not states.empty else 0)
        cont = continuations(run, out, list(d.budgets))
        actions = plan(states, d) if not states.empty else []
        stop = None
        if not cont and all(v.verdict != "inconclusive" for v in verdicts):
            stop = "every claim is decided at every declared budget"
        elif args.max_hours and time.monotonic() - t0 > args.max_hours * 3600:
            stop = f"--max-hours {args.max_hours:g} reached"
        elif len(doc["rounds"]) >= MAX_ROUNDS:
            stop = f"{MAX_ROUNDS} rounds"
        elif not cont and not actions:
            left = states[states["in_verdict"] & (states["state"] == "undecided")] if not states.empty else states
            asks = "; ".join(f"{r.cell} at {r.budget} asks for {' and '.join(sorted({n.kind for n in r.needs})) or 'nothing'}"
                             for r in left.itertuples())
            stop = (f"limits reached (--max-seeds {d.seeds}, budgets {', '.join(map(str, d.budgets))}; more samples "
                    f"per evaluation is not given by a round): {asks or 'no open cell'}")
        if stop:
            rnd["stop"] = stop
            doc["stopped"] = stop
            write_adaptive(out, doc)
            say(f"stopped after round {rnd['round']}: {stop}; " +
                ", ".join(f"{k} {v}" for k, v in rnd["verdicts"].items()))
            return counts
        added, lines = apply(run, actions, out, d.budgets[0])
        extended = {short: _trial(cfg).id for short, cfg in cont.items()}
        if cont:
            lines.append(f"{len(cont)} trial(s) continued to their next declared budget")
        for short in extended:
            active.pop(short, None)
        active.update({(t := _trial(c)).id: t for c in [*cont.values(), *added]})
        doc["rounds"].append({"round": rnd["round"] + 1, "added": [*cont.values(), *added], "extended": extended,
                              "why": lines})


def _chain_wall(run) -> float:
    """Trial seconds: a continued trial's wall_s already counts its whole training (load.whole_training)."""
    return float(run.trials["wall_s"].astype(float).sum())
