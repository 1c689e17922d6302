"""python -m study.report.publish RUN_DIR --out results/NAME --command "..." [--wall-s S] [--note TEXT]

A published result (results/<name>/): the report's Markdown, verdicts.json and tables, the few figures that carry
the verdicts (no sample animations, no HTML with embedded images, no checkpoints or samples.npz), under a header
that names the command, the harness commit, the hardware and the wall time that made it.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

# the figures a verdict is read from; every other figure is left out (the report rebuilds them from the run)
KEEP = ("claim1_states.png", "rounds.png", "claim3_modes.png", "claim2_final_estimate_vs_quality.png")
KEEP_GLOBS = ("claim2_curves_*.png",)  # claim 2's loss and quality over training, one figure per backbone
KEEP_SAMPLES = 1  # sample sheets kept: the first (by name) of the per-backbone sheets


def _commit(published: Path) -> str:
    """HEAD, and whether tracked files other than published results (this copy, results/) differ from it."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                f":(exclude){published}", ":(exclude)results"], capture_output=True,
                               text=True).stdout.strip()
        return out + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def header(run, out: Path, command: str, wall_s: float | None, note: str) -> str:
    from study.report import provenance
    hosts = provenance.harness_table(run)
    cpus = ", ".join(sorted({f"{c} ({g} GPU)" if g not in ("none", "–") else str(c)
                             for c, g in zip(hosts["CPU"], hosts["GPU"])})) or "unknown"
    commits = ", ".join(f"`{c}` ({t}, {n} trials)" for c, t, n in
                        hosts.groupby(["harness commit", "tracked files"])["trials"].sum().reset_index().values)
    trial_h = float(run.trials["wall_s"].astype(float).sum()) / 3600
    wall = f"{wall_s / 60:.0f} min wall clock" if wall_s else "not recorded"
    lines = [f"# Published result: {run.name}", "",
             f"- **Command:** `{command}`",
             f"- **Publishing commit:** `{_commit(out)}`; the trials ran at harness commit(s) {commits} "
             "(each trial's result.json, and the harness table below)",
             f"- **Hardware:** {cpus}; devices per trial in the Devices table",
             f"- **Wall time:** {wall}; {trial_h:.2f} trial hours summed over {len(run.trials)} trials",
             f"- **Rebuild:** `python -m study.report.publish {run.root} --out <dir> --command ...` on the run directory",
             ""]
    return "\n".join(lines + ([note, ""] if note else []))


def publish(run_dir: Path, out: Path, command: str, wall_s: float | None = None, note: str = "") -> Path:
    from study.report import build_report
    from study.report.load import load_run
    build_report(run_dir, out)
    (out / "report.html").unlink(missing_ok=True)
    sheets = sorted((out / "figures").glob("samples_*.png"))[:KEEP_SAMPLES] if KEEP_SAMPLES else []
    keep = set(KEEP) | {p.name for p in sheets} | {p.name for g in KEEP_GLOBS for p in (out / "figures").glob(g)}
    for p in (out / "figures").iterdir():
        if p.name not in keep:
            p.unlink()
    md = (out / "REPORT.md").read_text()
    md = re.sub(r"!\[([^\]]*)\]\(figures/([^)]+)\)",
                lambda m: m[0] if m[2] in keep else f"*(figure left out of the published copy: {m[1]})*", md)
    (out / "REPORT.md").write_text(header(load_run(run_dir), out, command, wall_s, note) + "\n" + md)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m study.report.publish", description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--command", required=True, help="the command that made the run, as a reader would type it")
    ap.add_argument("--wall-s", type=float, help="wall-clock seconds the command took")
    ap.add_argument("--note", default="", help="a paragraph under the header (how the run was made)")
    args = ap.parse_args(argv)
    print(publish(args.run_dir, args.out, args.command, args.wall_s, args.note))
    return 0


if __name__ == "__main__":
    sys.exit(main())
