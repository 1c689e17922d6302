"""`python -m study.sweep SPEC --until-decided`: run a sweep in rounds until every claim is decided.

Each round runs its trials like any sweep (resumable, one run directory), decides with the report's own
functions, then gives more seeds or more generator iterations only to the cells that can still change an
undecided claim, as each cell's "would decide it" (study/report/rules.Need) asks. It stops when every claim is
decided, when nothing more may be given (--max-seeds, the iteration budgets), or at --max-hours.

Error control under optional stopping: every cell is tested at its design size (--max-seeds: the seeds it may
reach; missing ones count as unknown), so adding seeds round by round only ever adds to the counts, and the
probability of ever deciding wrongly within the design is that of the full design, at most α. More iterations
re-observe the same seeds under a new hypothesis ("works at 2T"), so α is split over the iteration budgets a run
may visit (Bonferroni). The report reads both from adaptive.json and decides at the same size and level.
"""
from __future__ import annotations

from typing import Optional

import pandas as pd

from study.report.rules import Action, Design, plan

DESIGN_SEEDS = 10     # seeds a cell may reach (the design size every cell is tested at)
EXTENSIONS = 1        # times a group's training may be doubled: budgets T and 2T, α split in two
MAX_ROUNDS = 8        # a guard: seeds and budgets bound the rounds long before this


def design(max_seeds: int = DESIGN_SEEDS, extensions: int = EXTENSIONS) -> Design:
    return Design(seeds=max_seeds, looks=extensions + 1)


# ---------------------------------------------------------------- the driver (rounds of an ordinary sweep)
def _design(args) -> Design:
    return design(args.max_seeds or DESIGN_SEEDS, EXTENSIONS if args.extensions is None else args.extensions)


def describe(args) -> str:
    d = _design(args)
    hours = f", at most {args.max_hours:g} h" if args.max_hours else ""
    return (f"--until-decided: round 1 runs the spec's trials; later rounds give undecided cells up to {d.seeds} seeds "
            f"and {d.looks - 1} doubling(s) of their generator iterations{hours}; every cell is decided at its design "
            f"size of {d.seeds} seeds and α = {d.alpha:.3g}")


def open_cells(run) -> tuple[pd.DataFrame, list]:
    """(claim 1's cell states with the cells an undecided claim 2 or 3 still needs marked open too, every
    verdict). Claim 2/3 cells need seeds up to the design, or iterations where their seeds have not converged."""
    from study.report.claim1 import claim1
    from study.report.claim2 import claim2
    from study.report.claim3 import claim3
    from study.report.rules import Need
    (t1, v1), (t2, v2), (t3, v3) = claim1(run), claim2(run), claim3(run)
    st = t1["claim1_states"].copy()
    st["n"] = st["n_trials"]
    open_claims = {v.key for v in (*v1, *v2, *v3) if v.verdict == "inconclusive"}
    if not any(v.verdict == "inconclusive" for v in v1):  # claim 1 decided: its open cells need nothing for it
        st["state"] = st["state_bonferroni"] = "decided"
    extra = set()
    for claim, table, bad in (("claim2", t2["claim2_correlation"], ("undecided", "unclear")),
                              ("claim3", t3["claim3_modes"], ("undecided",))):
        for _, r in table.iterrows() if not table.empty else []:
            key = claim + ("" if r["loss"] == "wgan" else f"/{r['loss']}")  # Verdict.key of the variant
            if r["outcome"] in bad and r["in_verdict"] and key in open_claims:
                extra.add(r["cell"])
    states, needs = list(st["state"]), list(st["needs"])
    for i, r in enumerate(st.itertuples()):
        if r.cell in extra:
            room = (run.design.seeds or 0) - r.n
            more = [Need("seeds", room, "claims 2/3: seeds up to the design size")] if room > 0 else []
            if r.n_converged < r.n_completed and r.gen_iters == r.gen_iters:
                more.append(Need("iterations", 2 * int(r.gen_iters), "claims 2/3: seeds not converged"))
            needs[i] = (list(r.needs) if r.state == "undecided" else []) + more
            states[i] = "undecided"
    st["state"], st["needs"] = states, needs
    return st, [*v1, *v2, *v3]


def _trial(cfg: dict):
    from study.config import load_trial_config, with_legacy
    from study.spec import Trial
    return Trial(load_trial_config(with_legacy(cfg)), {})


def apply(run, actions: list[Action], out) -> tuple[list[dict], dict[str, str], list[str]]:
    """New trials' configs, extensions {short id: long id}, and one line per action, from this round's plan."""
    from study.rundir import read_config
    t = run.trials[run.trials["trial_id"].map(lambda tid: (out / tid / "config.yaml").exists())]
    added, extended, lines = [], {}, []
    for a in actions:
        # a group trains as a whole (ablation cells too: one budget per backbone keeps its cells comparable)
        rows = t[t["group"] == a.group] if a.kind == "iterations" else t[t["cell"] == a.cell]
        if rows.empty:
            continue
        if a.kind == "iterations":  # unfinished trials too: every seed of the group at the new budget
            from study.callbacks import FINAL_CHECKPOINT
            for tid in rows["trial_id"]:
                cfg, _ = read_config(out / tid)
                new = _trial({**cfg, "train": {**cfg["train"], "gen_iters": a.target}})
                added.append(new.config.resolved())
                extended[tid] = new.id
            cont = sum((out / tid / "checkpoints" / FINAL_CHECKPOINT).exists() for tid in rows["trial_id"])
            lines.append(f"{a.group}: every cell trained to {a.target} generator iterations ({len(rows)} trials, "
                         f"{cont} continued from their final checkpoint, the rest from the start) — {a.why}")
        else:
            cfg, _ = read_config(out / rows["trial_id"].iloc[0])
            seeds = sorted(int(s) for s in run.trials.loc[run.trials["cell"] == a.cell, "seed"].dropna())
            free = [s for s in range(max(seeds, default=-1) + 1 + a.target) if s not in seeds][: a.target - len(seeds)]
            added += [_trial({**cfg, "seed": s}).config.resolved() for s in free]
            lines.append(f"{a.cell}: seeds {', '.join(map(str, free))} ({len(seeds)} → {a.target}) — {a.why}")
    return added, extended, lines


def run_adaptive(args, name: str, trials: list, out, execute) -> Optional[dict]:
    """Rounds until every claim is decided or a limit is hit; adaptive.json records each round before it runs
    (so the same command resumes it) and its verdicts after. `execute(args, name, trials, out)` runs one round's
    trials like any sweep (study/sweep.py). Returns the last round's status counts."""
    import sys
    import time
    from collections import Counter
    from study.errors import UserError
    from study.report.load import load_run
    from study.rundir import mark_extended, read_adaptive, write_adaptive
    from study.trial import extend
    d = _design(args)
    want = {"max_seeds": d.seeds, "extensions": d.looks - 1}
    doc, problem = read_adaptive(out)
    if problem:
        raise UserError(f"{out}: {problem}; move it aside to start the adaptive run anew")
    if doc and doc["design"] != want:
        raise UserError(f"{out}/adaptive.json: this run was started with --max-seeds {doc['design']['max_seeds']} "
                        f"--extensions {doc['design']['extensions']}; resume it with the same values, or choose "
                        "another --out")
    doc = doc or {"design": want, "rounds": []}
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
        run = load_run(out)
        states, verdicts = open_cells(run)
        wall = float(run.trials["wall_s"].astype(float).sum())
        rnd.update(verdicts={v.key: v.verdict for v in verdicts}, trial_wall_s=round(wall, 1), seeds=int(states["n"].sum()))
        stop = None
        if all(v.verdict != "inconclusive" for v in verdicts):
            stop = "every claim is decided"
        elif args.max_hours and time.monotonic() - t0 > args.max_hours * 3600:
            stop = f"--max-hours {args.max_hours:g} reached"
        elif len(doc["rounds"]) >= MAX_ROUNDS:
            stop = f"{MAX_ROUNDS} rounds"
        if stop is None:
            first = states.groupby("group")["gen_iters"].min().dropna()  # a group's budget when first planned
            start = {g: int(doc.get("start_iters", {}).get(g, v)) for g, v in first.items()}
            doc["start_iters"] = start
            actions = plan(states, d, start)
            if not actions:
                left = states[states["in_verdict"] & (states["state"] == "undecided")]
                asks = "; ".join(f"{r.cell} asks for {' and '.join(sorted({n.kind for n in r.needs})) or 'nothing'}"
                                 for r in left.itertuples())
                stop = (f"limits reached (--max-seeds {d.seeds}, {d.looks - 1} doubling(s) of the iterations; more "
                        f"samples per evaluation is not given by a round): {asks or 'no open cell'}")
        if stop:
            rnd["stop"] = stop
            doc["stopped"] = stop
            write_adaptive(out, doc)
            say(f"stopped after round {rnd['round']}: {stop}; " +
                ", ".join(f"{k} {v}" for k, v in rnd["verdicts"].items()))
            return counts
        added, extended, lines = apply(run, actions, out)
        for short in extended:
            active.pop(short, None)
        active.update({(t := _trial(c)).id: t for c in added})
        doc["rounds"].append({"round": rnd["round"] + 1, "added": added, "extended": extended, "why": lines})
