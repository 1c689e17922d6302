"""build_report(run_dir, out_dir) -> out_dir: tables/*.csv, figures/*, REPORT.md, report.html, verdicts.json."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Optional

import pandas as pd

from study.io import ensure_dir
from study.report import compute, doc, provenance, sections
from study.report.cells import PAPER_SETTINGS, flatten
from study.report.rules import held_out_line, rules_id
from study.report.load import STATUSES, ReportError, Run, load_run
from study.report.published import is_published


def _clean(out: Path) -> None:
    """Remove what an earlier build wrote, so a figure of a cell that is gone cannot linger."""
    for sub, patterns in (("tables", ("*.csv",)), ("figures", ("*.png", "*.gif"))):
        for pat in patterns:
            for p in (out / sub).glob(pat):
                p.unlink()
    for sub in ("tables", "figures"):
        (out / sub).mkdir(parents=True, exist_ok=True)


def _check(run: Run) -> None:
    t = run.trials
    if not (t["status"] == "completed").any():
        vc = t["status"].value_counts()
        what = ", ".join(f"{n} {s}" for s, n in vc.items()) or "no trial directories"
        raise ReportError(f"{run.root}: no completed trial to report on ({what})")


def setup_blocks(run: Run, tabs: dict) -> list[tuple]:
    t = run.trials
    vc = t["status"].value_counts()
    counts = ", ".join(f"{int(vc.get(s, 0))} {s}" for s in STATUSES if vc.get(s, 0)) or "none"
    blocks = [("h", 2, "Setup"),
              ("p", f"Run directory `{run.root}`; {len(t)} trials: {counts}. Cells are loss × backbone × data"
                    + (f" × {', '.join(f'`{k}`' for k in run.varied)}" if run.varied else "")
                    + "; seeds are replicates. Where a sweep varies a loss's own settings, only cells at the "
                      "paper's values enter the verdicts (" + ", ".join(f"`{k}={v}`" for k, v in
                                                                        flatten({n: v for n, v in PAPER_SETTINGS.items()  # the losses run
                                                                                if n in set(t["loss"])}).items())
                    + "); the other values are shown as ablations."
                    + (f" Also varied, but fixed within each loss × data × backbone (so splitting nothing): "
                       f"{', '.join(f'`{k}`' for k in run.tied)}." if run.tied else ""))]
    blocks.append(("ul", compute.defaults_lines(run)))
    notes = run.notes + compute.paper_deviations(run)
    if notes:
        blocks.append(("ul", [f"**Note:** {n}" for n in notes]))
    unfinished = t[t["status"] != "completed"]
    if len(unfinished):
        blocks.append(("p", f"**Partial sweep:** {len(unfinished)} of {len(t)} trials did not complete; they are "
                            "counted in every table (failure rates, 'unfinished' columns) and listed in the appendix."))
    blocks.append(("table", tabs["status_counts"], "Trials by status per cell"))
    blocks.append(("ul", [compute.wall_summary(run)] + compute.eval_summary(run) + provenance.inception_lines(run)))
    blocks.append(("table", tabs["devices"], "Devices"))
    blocks.append(("table", tabs["harness"], "Harness commit (tracked files changed or not) and hosts, per trial's "
                                             "result.json"))
    if len(tabs["metric_crosscheck"]):
        blocks.append(("table", tabs["metric_crosscheck"],
                       "Metric provenance: final FID/KID by torch-fidelity (the reported numbers) and again by "
                       "torchmetrics on the same features and images"))
    blocks.append(("table", tabs["versions"], "Package versions (from each trial's result.json)", "versions.csv"))
    if is_published(run.root):  # the spec is a file beside the report
        blocks.append(("p", "**Spec** as run: [data/sweep.yaml](data/sweep.yaml)."))
    else:
        blocks.append(("p", "**Spec** (`sweep.yaml`, as run):"))
        blocks.append(("code", run.spec_text or "(no sweep.yaml)"))
    return blocks


def default_out_dir(run: Run) -> Path:
    """reports/<sweep name>, relative to the working directory (the repository root in normal use)."""
    return Path("reports") / run.name


def build_report(run_dir: Path, out_dir: Optional[Path] = None) -> Path:
    """Build the report of one sweep directory; returns the output directory. Raises ReportError
    (a one-line message) when RUN_DIR is missing or has no completed trial."""
    run = load_run(Path(run_dir))
    _check(run)
    from study.report import claim1, claim2, claim3, conditional, figures, rounds, samples  # heavy imports after the cheap checks
    out = Path(out_dir) if out_dir else default_out_dir(run)
    ensure_dir(out, "report directory")  # one line (exit 2) for a file or a read-only directory
    _clean(out)
    figdir = out / "figures"
    tabs: dict[str, pd.DataFrame] = {
        "trials": compute.trials_table(run), "status_counts": compute.status_table(run),
        "versions": compute.versions_table(run), "devices": compute.devices_table(run),
        "compute": compute.compute_table(run), "harness": provenance.harness_table(run),
        "metric_crosscheck": provenance.crosscheck_table(run), "other_metrics": provenance.other_metrics_table(run)}
    t1, v1 = claim1.claim1(run)
    t2, v2 = claim2.claim2(run)
    t3, v3 = claim3.claim3(run)
    tabs.update(t1), tabs.update(t2), tabs.update(t3), tabs.update(conditional.conditional_tables(run))
    tabs["rounds"] = rounds.rounds_table(run)
    design = pd.to_numeric(t3["claim3_modes"].get("design", pd.Series(dtype=float)), errors="coerce").max()
    if design == design:  # countable modes: the rule's calibration at this study's design, beside its decision
        from study.report.calibrate import claim3_at_design
        tabs["claim3_calibration"] = claim3_at_design(int(design))
    for name, df in tabs.items():
        df.to_csv(out / "tables" / f"{name}.csv", index=False)

    with figures.style():
        f1 = (figures.time_to_learn_figure(run, t1["claim1_time_to_learn"], figdir)
              + figures.claim1_state_figure(run, t1["trial_evidence"], figdir)
              + figures.claim1_figures(run, t1["claim1_quality"], t1["claim1_difference"], figdir))
        f2 = figures.claim2_figures(run, t2["claim2_across_trials"], figdir)
        f3 = figures.claim3_figures(run, t3["claim3_modes"], figdir)
        fc = figures.compute_figure(run.trials, tabs["compute"], figdir)
        fr = rounds.rounds_figure(tabs["rounds"], figdir)
        sheets = samples.sample_sheets(run, figdir)
        gifs = [] if is_published(run.root) else samples.animations(run, figdir)  # a published folder keeps last grids only

    verdicts = v1 + v2 + v3
    blocks = [("h", 1, f"Comparison report: {run.name}")]
    blocks += sections.provenance_blocks(run.provenance, run) if run.provenance else []
    blocks += [("p", f"GAN vs WGAN (Arjovsky, Chintala & Bottou 2017, arXiv:1701.07875) on shared backbones, "
                     f"built {dt.datetime.now().isoformat(timespec='seconds')} from `{run.root}`. Tables as CSV in "
                     "`tables/` (they list the trials behind every row), figures in `figures/`.")]
    blocks += sections.first_screen_blocks(verdicts, tabs)
    blocks += rounds.rounds_blocks(run, tabs["rounds"], fr) + setup_blocks(run, tabs)
    blocks += sections.claim1_blocks(tabs, v1, f1) + sections.claim2_blocks(tabs, v2, f2)
    blocks += sections.claim3_blocks(tabs, v3, f3) + conditional.conditional_blocks(tabs)
    if len(tabs["other_metrics"]):
        blocks += [("h", 2, "Other quality metrics"), ("p", provenance.OTHER_METRICS_TEXT if not is_published(run.root) else
                                               "Inception Score, precision and recall: see the CSV."),
                   ("table", tabs["other_metrics"], "Inception Score and precision/recall per cell (final values)",
                    "other_metrics.csv")]
    blocks += sections.compute_blocks(tabs["compute"], fc)
    blocks += [("h", 2, "Samples"),
               ("p", "Fixed-noise samples at the last evaluation, GAN | WGAN side by side (toys: scatter plots), "
                     "and per cell an animation of the same noise over training.")]
    blocks += [("img", p, c) for p, c in sheets] + ([("gallery", gifs)] if gifs else [])
    if not sheets and not gifs:
        blocks.append(("p", "No sample grids were found (samples/grid_*.png)."))
    blocks += sections.trials_blocks(tabs["trials"])

    (out / "REPORT.md").write_text(doc.to_markdown(blocks, out))
    (out / "report.html").write_text(doc.to_html(blocks, f"Comparison report: {run.name}"))
    (out / "verdicts.json").write_text(json.dumps(
        {v.key: {"verdict": v.verdict, "variant": v.variant, "budget": v.budget, "reason": v.reason, "rule": v.rule,
                 "evidence": v.evidence, "rules": rules_id(), "held_out": held_out_line(run)}
         for v in verdicts}, indent=2, ensure_ascii=False) + "\n")
    return out
