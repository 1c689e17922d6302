"""reports/paper/FIGURES.md: one entry per figure (command, config, what it shows, agreement with the paper).

Entries live in entries.json beside the figures, so building one figure (`--figure 3`) updates its entry and
keeps the others; FIGURES.md is rewritten from all entries, atomically, after every figure.
"""
from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from typing import Any, Optional

import yaml

from study.io import read_json, write_json, write_text

ENTRIES = "entries.json"


def sweep_command(sweep_file: Path, run_dir: Path, sets: list[str]) -> str:
    parts = ["python", "-m", "study.sweep", _rel(sweep_file), "--out", str(run_dir)]
    for s in sets:
        parts += ["--set", s]
    return shlex.join(parts)


def _rel(p: Path) -> str:
    try:
        return str(Path(p).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def sweep_as_run(run_dir: Path) -> Optional[str]:
    """The spec as the sweep ran it (after --set): the run directory's sweep.yaml."""
    try:
        return (Path(run_dir) / "sweep.yaml").read_text()
    except OSError:
        return None


def make_entry(fig, scale: str, png: Path, csv: Path, out_dir: Path, command: str,
               sweeps: list[tuple[Path, Path, list[str]]], sentence: str, build_s: float) -> dict[str, Any]:
    configs = []
    for f, run_dir, sets in sweeps:
        configs.append({"sweep": _rel(f), "run_dir": str(run_dir), "command": sweep_command(f, run_dir, sets),
                        "as_run": sweep_as_run(run_dir)})
    return {"id": fig.id, "title": fig.title, "scale": scale, "png": png.name, "csv": csv.name, "command": command,
            "sweeps": configs, "params": json.loads(json.dumps(fig.params, default=list)) if fig.params else None,
            "sentence": sentence, "build_s": round(build_s, 1), "written": time.strftime("%Y-%m-%d %H:%M:%S")}


def load_entries(out_dir: Path) -> dict[str, dict]:
    try:
        entries = read_json(Path(out_dir) / ENTRIES)
    except (OSError, ValueError):
        return {}
    return entries if isinstance(entries, dict) else {}


def save_entry(out_dir: Path, entry: dict, order: list[str], runs: Optional[dict] = None) -> Path:
    entries = load_entries(out_dir)
    entries[entry["id"]] = entry
    write_json(Path(out_dir) / ENTRIES, entries)
    return write_markdown(out_dir, entries, order, runs)


def write_markdown(out_dir: Path, entries: dict[str, dict], order: list[str], runs: Optional[dict] = None) -> Path:
    ids = [i for i in order if i in entries] + sorted(set(entries) - set(order))
    lines = ["# The WGAN paper's figures, reproduced with this harness", "",
             "Arjovsky, Chintala, Bottou (2017), *Wasserstein GAN*, arXiv 1701.07875. Built by "
             "`python -m study.paper [--figure N ...] [--scale quick|full]`; each figure's PNG and the CSV behind it "
             "are in this folder. Sweeps skip completed trials, so re-running only rebuilds what is missing.", "",
             "Each figure's text *describes* its runs (e.g. whether a curve looks like the paper's); it decides no "
             "claim. Verdicts come only from `python -m study.report RUN_DIR`, by the rules of docs/verdicts.md "
             "(convergence, measured noise, at least 3 seeds, calibrated small-sample tests).", ""]
    history = _history(out_dir, runs)
    if history:
        lines += ["## Invocations (latest first)", "", "| ended | command | figures | wall time | notes |",
                  "|---|---|---|---|---|"]
        lines += [f"| {h.get('ended', '')} | `{h.get('command', '')}` | {h.get('figures built', '')} | "
                  f"{h.get('wall time', '')} | {h.get('not built', '')} {h.get('sweeps', '')} |" for h in history]
        lines.append("")
    lines += ["| figure | what | scale | files |", "|---|---|---|---|"]
    for i in ids:
        e = entries[i]
        lines.append(f"| [{_label(i)}](#{_anchor(i)}) | {e['title']} | {e['scale']} | "
                     f"[png]({e['png']}), [csv]({e['csv']}) |")
    lines.append("")
    for i in ids:
        e = entries[i]
        lines += [f'<a id="{_anchor(i)}"></a>', "", f"## {_label(i)}: {e['title']}", "", f"![{_label(i)}]({e['png']})", "",
                  f"**What it shows.** {e['sentence']}", "",
                  f"- Data: [{e['csv']}]({e['csv']}) (scale `{e['scale']}`, figure built in {e['build_s']} s, "
                  f"{e['written']})", f"- Command: `{e['command']}`"]
        for s in e.get("sweeps") or []:
            lines.append(f"- Sweep `{s['sweep']}` -> `{s['run_dir']}`: `{s['command']}`")
        if e.get("params"):
            lines += ["", "Config (no sweep; the figure trains / computes it directly):", "", "```yaml",
                      yaml.safe_dump(e["params"], sort_keys=False).rstrip(), "```"]
        for s in e.get("sweeps") or []:
            if s.get("as_run"):
                lines += ["", f"<details><summary>Config: {s['sweep']} as run (sweep.yaml after --set)</summary>",
                          "", "```yaml", s["as_run"].rstrip(), "```", "", "</details>"]
        lines.append("")
    path = Path(out_dir) / "FIGURES.md"
    write_text(path, "\n".join(lines) + "\n")
    return path


def _history(out_dir: Path, run: Optional[dict], keep: int = 8) -> list[dict]:
    """Past invocations (invocations.json), the newest first; `run` is appended when given."""
    path = Path(out_dir) / "invocations.json"
    try:
        hist = read_json(path)
        hist = hist if isinstance(hist, list) else []
    except (OSError, ValueError):
        hist = []
    if run:
        hist = ([run] + hist)[:keep]
        write_json(path, hist)
    return hist


def _label(i: str) -> str:
    return "§4.2" if i == "4.2" else f"Fig. {i}"


def _anchor(i: str) -> str:
    return "sec-4-2" if i == "4.2" else f"fig-{i}"
