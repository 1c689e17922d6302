"""The story of an --until-decided run (study/adaptive.py): what each round added, to which cells, and why, the
verdicts after it, and a figure of verdict state against compute spent. Read from adaptive.json."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

STATE_Y = {"supported": 1, "inconclusive": 0, "not supported": -1}


def _trial_id(cfg: dict):
    from study.config import ConfigError, load_trial_config, with_legacy
    try:
        return load_trial_config(with_legacy(cfg)).trial_id()
    except ConfigError:
        return None


def trial_hours_after(run) -> list[float]:
    """Trial hours spent by the end of each round: every run of a trial counted once, in the round that added it
    (round 1: the spec's trials). A continued trial's run is its extension; the short run before it counts in its
    own round, so the total never falls. Recomputed from the trials' wall times, not adaptive.json's record."""
    added = {}
    for r in run.adaptive["rounds"]:
        for cfg in r.get("added", []):
            tid = _trial_id(cfg)
            if tid:
                added.setdefault(tid, int(r["round"]))
    runs = [(tid, w) for tid, w in zip(run.trials["trial_id"], run.trials["wall_s_run"].astype(float))]
    runs += [(tid, float(w)) for tid, w in zip(run.continued["trial_id"], run.continued["wall_s"])]
    return [sum(w for tid, w in runs if w == w and added.get(tid, 1) <= int(r["round"])) / 3600
            for r in run.adaptive["rounds"]]


def rounds_table(run) -> pd.DataFrame:
    if not run.adaptive:
        return pd.DataFrame()
    rows = []
    hours = trial_hours_after(run) if "wall_s_run" in run.trials else [math.nan] * len(run.adaptive["rounds"])
    for r, h in zip(run.adaptive["rounds"], hours):
        rows.append({"round": r["round"], "trials added": len(r.get("added", [])),
                     "trials continued": len(r.get("extended", {})), "why": " | ".join(r.get("why", [])),
                     "seeds after": r.get("seeds"), "trial hours after": round(h, 2),
                     **{k: v for k, v in (r.get("verdicts") or {}).items()}, "stopped": r.get("stop", "")})
    return pd.DataFrame(rows)


def rounds_figure(table: pd.DataFrame, out: Path) -> list[tuple[Path, str]]:
    claims = [c for c in table.columns if c.startswith("claim")]
    if table.empty or not claims:
        return []
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.55 * len(claims)))
    for i, c in enumerate(claims):
        x, v = table["trial hours after"], table[c].fillna("inconclusive")
        ax.plot(x, [i] * len(x), color="0.8", lw=1, zorder=1)
        for xx, vv in zip(x, v):
            ax.scatter(xx, i, s=90, zorder=2, color={"supported": "seagreen", "not supported": "firebrick"}.get(vv, "0.6"),
                       marker={"supported": "^", "not supported": "v"}.get(vv, "o"))
    ax.set_yticks(range(len(claims)), claims)
    ax.set_ylim(-0.6, len(claims) - 0.4)  # room for the markers of the first and last claim
    ax.set_xlim(0, 1.08 * max(float(table["trial hours after"].max()), 1e-3))  # compute starts at 0
    ax.set_xlabel("compute spent: trial hours summed (round by round)")
    ax.set_title("Verdicts after each round: ▲ supported, ▼ not supported, ● inconclusive", fontsize=10)
    fig.tight_layout()
    path = out / "rounds.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [(path, "Verdict of each claim after each round of the adaptive run, against the compute spent so far.")]


def rounds_blocks(run, table: pd.DataFrame, figs: list) -> list[tuple]:
    if table.empty:
        return []
    d = run.adaptive["design"]
    stopped = run.adaptive.get("stopped") or "not yet (running, or interrupted: run the same command again)"
    if "): " in stopped:  # the open cells' asks are in the claims' tables ("would decide it"): name the limit only
        stopped = stopped.split("): ", 1)[0] + "); what each open cell asks for: its claim's table"
    return [("h", 2, "Rounds (--until-decided)"),
            ("p", f"Design, declared before the data: every cell may reach {run.design.seeds} seeds, and every seed is "
                  f"trained through the budgets {', '.join(map(str, run.design.budgets))} (generator iterations); each "
                  f"budget is decided at that design size and at α = {run.design.alpha:.3g}. Stopped: {stopped}."),
            ("table", table.drop(columns=["why"]).assign(stopped=table["stopped"].astype(bool).map({True: "yes", False: ""})), "What each round added and the verdicts after it (to which "
                                                   "cells and why: [tables/rounds.csv](tables/rounds.csv))")] + \
        [("img", p, c) for p, c in figs]
