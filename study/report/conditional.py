"""Class-conditional trials (AC-GAN / AC-WGAN, `conditional: true`): does the generator give the class
it was asked for, and how good is each class? One table per run that has conditional trials."""
from __future__ import annotations

import re

import pandas as pd

from study.report.cells import cells, counts, fmt, ids, pm, summarize

CLASS_FID = re.compile(r"^eval/class_fid@domain/c(\d+)$")


def has_conditional(run) -> bool:
    t = run.trials
    return "eval/class_acc" in t and t["eval/class_acc"].notna().any()


def conditional_tables(run) -> dict[str, pd.DataFrame]:
    """{'conditional': per cell, generated-class accuracy and mean per-class FID (mean, std over seeds)
    beside the real-data floor; 'conditional_per_class': per cell and class, FID on domain features}.
    Empty dict when no trial was conditional."""
    if not has_conditional(run):
        return {}
    rows, per_class = [], []
    class_cols = sorted((c for c in run.trials.columns if CLASS_FID.match(c)), key=lambda c: int(CLASS_FID.match(c)[1]))
    for cell, t in cells(run.trials):
        done = t[(t["status"] == "completed") & t["eval/class_acc"].notna()]
        if done.empty:
            continue
        acc, cfid = summarize(done["eval/class_acc"].astype(float)), summarize(done["eval/class_fid@domain"].astype(float))
        fid = summarize(done["eval/fid@domain"].astype(float)) if "eval/fid@domain" in done else summarize([])
        rows.append({"cell": cell, **counts(t), "n_values": acc["n"],
                     "class_acc_mean": acc["mean"], "class_acc_std": acc["std"],
                     "class_fid_mean": cfid["mean"], "class_fid_std": cfid["std"],
                     "fid_mean": fid["mean"], "fid_std": fid["std"],
                     "classifier_acc": done["domain_classifier_acc"].astype(float).mean(),
                     "real_class_fid": done["real_class_fid"].astype(float).mean() if "real_class_fid" in done else None,
                     "trials": ids(done)})
        per_class.append({"cell": cell, **{f"c{CLASS_FID.match(c)[1]}": done[c].astype(float).mean()
                                          for c in class_cols if c in done}, "trials": ids(done)})
    return {"conditional": pd.DataFrame(rows), "conditional_per_class": pd.DataFrame(per_class)}


def conditional_blocks(tabs: dict) -> list[tuple]:
    c = tabs.get("conditional")
    if c is None or c.empty:
        return []
    table = pd.DataFrame({
        "cell": c["cell"], "seeds": c["n_values"],
        "generated-class accuracy": [pm(m, s) for m, s in zip(c["class_acc_mean"], c["class_acc_std"])],
        "classifier's held-out accuracy (ceiling)": [fmt(x) for x in c["classifier_acc"]],
        "per-class FID (mean over classes)": [pm(m, s) for m, s in zip(c["class_fid_mean"], c["class_fid_std"])],
        "real per-class FID (floor)": [fmt(x) for x in c["real_class_fid"]],
        "FID (all classes)": [pm(m, s) for m, s in zip(c["fid_mean"], c["fid_std"])], "trials": c["trials"]})
    pc = tabs["conditional_per_class"]
    per = pc.assign(**{k: [fmt(x) for x in pc[k]] for k in pc.columns if k not in ("cell", "trials")})
    return [("h", 2, "Class-conditional trials (AC-GAN / AC-WGAN)"),
            ("p", "Generated-class accuracy: how often the domain classifier recognises the class the generator "
                  "was asked for (N samples, classes balanced; chance is 1 / K, 0.1 for ten classes); its ceiling "
                  "is the classifier's accuracy on held-out real images. Per-class FID: domain features of the "
                  "samples asked for one class against the held-out images of that class (N / K samples each, so "
                  "biased upwards; compare at equal N); its floor is the same for real training images with their "
                  "true labels. Means over seeds ± std. Conditional trials also enter the claims above as GAN vs "
                  "WGAN (AC-GAN vs AC-WGAN)."),
            ("table", table, "Conditional generation per cell (completed trials; accuracy higher is better, "
                             "FID lower)"),
            ("table", per, "Per-class FID on domain features, mean over seeds")]
