"""The run directory (docs/run-layout.md), read and written here and nowhere else: its file names, the
statuses a trial can have, the lock, tolerant readers of each trial file, and results.csv.

A sweep builds results.csv once when it starts and then re-reads only the trial that just finished, so a
sweep of n trials reads O(n) files, not O(n^2) (8 s per rebuild at 2,000 trials was the old cost).
A damaged file never raises here: readers return (None, what is wrong), and rows show the problem.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import time
from pathlib import Path
from typing import Any, Optional

import yaml

from lightning_modules import ALGORITHMS
from study.errors import UserError
from study.io import atomic_path, write_json, write_yaml
from study.spec import varied_value

# The layout (docs/run-layout.md)
SPEC, RESULTS_CSV, LOCK = "sweep.yaml", "results.csv", ".lock"
CONFIG, RESULT, METRICS = "config.yaml", "result.json", "metrics.csv"
SAMPLES, CHECKPOINTS, FINAL_SAMPLES = "samples", "checkpoints", "samples.npz"
EXTENDED = "extended_to"        # in a finished trial continued by a longer one: the longer trial's id
ADAPTIVE = "adaptive.json"      # an --until-decided run: its design and rounds (study/adaptive.py)
LEDGER = "ledger.json"          # an adaptive run's α ledger: every design ever decided on these trials (append-only)
LEDGER_MARK = "ledger_id"       # in each trial an adaptive run ran: the id of the ledger that owns its decisions
TRIAL_FILES = (RESULT, CONFIG, METRICS)
ID_MISMATCH = f"{CONFIG} does not hash to the trial id"  # how every reader names a config edited after the run
# a trial id (study/config.py TrialConfig.trial_id): [ac]<loss>_<backbone>_<data>_s<seed>_<8 hex digits of the hash>
ID_RE = re.compile(rf"^(?:ac)?(?:{'|'.join(map(re.escape, ALGORITHMS.names()))})_[^_]+_.+_s\d+_[0-9a-f]{{8}}$")
DAMAGED = ".damaged"  # suffix of a trial file set aside by the sweep (kept for inspection, never read again)

STATUSES = ("completed", "diverged", "failed")  # what a trial's result.json can say
DONE = ("completed", "diverged")                # terminal states a resumed sweep skips
# and what the report adds for trials without a result: killed mid-run, or listed in results.csv only
REPORT_STATUSES = ("completed", "diverged", "failed", "incomplete", "missing")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 2,000 configs in well under a second


class Lock:
    """One sweep per output directory: a second one refuses instead of interleaving results."""

    def __init__(self, out: Path):
        self.path = Path(out) / LOCK

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(self.fd)
            raise UserError(f"{self.path.parent}: another sweep (pid {holder}) is running on this directory; "
                            "wait for it or choose another --out") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)  # closing releases the lock (so does the process dying)

    @staticmethod
    def held(out: Path) -> bool:
        """Is a sweep running on `out` right now? (The file stays; the lock dies with its holder.)"""
        try:
            fd = os.open(Path(out) / LOCK, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)


def get_dotted(d: dict, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def load_result(trial_dir: Path) -> tuple[Optional[dict], Optional[str]]:
    """(result.json as a dict, None); (None, None) when there is none; (None, what is wrong) when it is
    damaged: unreadable, not UTF-8, not JSON, or not a trial's result."""
    try:
        text = (Path(trial_dir) / RESULT).read_bytes()
    except FileNotFoundError:
        return None, None
    except OSError as e:
        return None, f"result.json unreadable ({e.strerror})"
    try:
        res = json.loads(text)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
        return None, "result.json is not valid JSON"
    if not isinstance(res, dict) or res.get("status") not in STATUSES:
        return None, "result.json is not a trial result (no status " + "/".join(STATUSES) + ")"
    return res, None


def read_yaml(path: Path) -> tuple[Any, Optional[str]]:
    """(document, None), or (None, what is wrong) for a missing, unreadable or invalid YAML file."""
    try:
        return yaml.load(Path(path).read_bytes(), Loader=_Loader), None
    except OSError as e:
        return None, f"unreadable ({e.strerror})"
    except (yaml.YAMLError, ValueError) as e:
        return None, f"not valid YAML ({type(e).__name__})"


def axes_of(run_dir: Path) -> list[str]:
    spec, _ = read_yaml(run_dir / SPEC)
    if not isinstance(spec, dict):
        return []
    return [str(k) for block in ("grid", "zip") if isinstance(spec.get(block), dict) for k in spec[block]]


def is_trial_dir(d: Path, files: tuple[str, ...] = (CONFIG, RESULT)) -> bool:
    return d.is_dir() and not d.name.startswith(".") and any((d / f).exists() for f in files)


def trial_dirs(run_dir: Path, any_file: bool = False) -> list[Path]:
    """The trial directories of a run, in name order (`any_file`: also those with only metrics.csv)."""
    files = TRIAL_FILES if any_file else (CONFIG, RESULT)
    return [d for d in sorted(Path(run_dir).iterdir()) if is_trial_dir(d, files)]


def read_config(trial_dir: Path, result: Optional[dict] = None) -> tuple[Optional[dict], Optional[str]]:
    """config.yaml as a dict (falling back on the copy in result.json), and what was wrong with the file."""
    cfg, problem = read_yaml(Path(trial_dir) / CONFIG)
    if isinstance(cfg, dict):
        return cfg, None
    if not (Path(trial_dir) / CONFIG).exists():
        problem = f"no {CONFIG}"
    elif problem is None:
        problem = f"{CONFIG} is not a mapping"
    copy = (result or {}).get("config")
    return (copy if isinstance(copy, dict) else None), problem


def named_as_trial(trial_dir: Path) -> bool:
    """Is the directory named as a sweep names trials (`..._s<seed>_<8 hex digits>`)? Readers check such a
    name against its config; a directory a user named by hand claims no id (study.verify still flags it)."""
    return ID_RE.search(Path(trial_dir).name) is not None


def id_mismatch(trial_dir: Path, cfg: Optional[dict]) -> Optional[str]:
    """None when `cfg` (a trial's config as any version wrote it) hashes to the trial directory's name the way
    a sweep names trials (TrialConfig.trial_id, the keys it predates filled by with_legacy); else what is
    wrong. A trial whose config was edited after it ran (seed 0 -> 7 under `..._s0_...`) fails here, and every
    reader sets it aside as damaged. No config at all: None (read_config says so)."""
    if not isinstance(cfg, dict):
        return None
    from study.config import ConfigError, load_trial_config, with_legacy
    try:
        tid = load_trial_config(with_legacy(cfg), CONFIG).trial_id()
    except ConfigError as e:
        return f"{ID_MISMATCH} (not a valid trial config: {e.key + ': ' if e.key else ''}{e.message})"
    if tid != Path(trial_dir).name:
        return f"{ID_MISMATCH} (it hashes to {tid}: edited after the trial ran?)"
    return None


def trusted_result(trial_dir: Path) -> tuple[Optional[dict], Optional[str], tuple[str, ...]]:
    """(result.json, None, ()) for a trial a reader may use, or (None, None, ()) when it has none yet; (None,
    what is wrong, the files at fault) when result.json is damaged, or when the config does not hash to the
    trial's id: then the numbers belong to no known config, and result.json and config.yaml are at fault."""
    res, problem = load_result(trial_dir)
    if problem:
        return None, problem, (RESULT,)
    checked = res is not None and named_as_trial(trial_dir)
    mismatch = id_mismatch(trial_dir, read_config(trial_dir, res)[0]) if checked else None
    return (None, mismatch, (RESULT, CONFIG)) if mismatch else (res, None, ())


def set_aside(trial_dir: Path, *names: str) -> None:
    """Rename damaged trial files to <name>.damaged: kept for inspection, and the trial runs again."""
    for name in names:
        try:
            (Path(trial_dir) / name).rename(Path(trial_dir) / f"{name}{DAMAGED}")
        except OSError:
            pass  # absent, or the re-run replaces it anyway


def read_checkpoint(path: Path) -> tuple[Optional[int], Optional[str]]:
    """(the generator iteration a checkpoint was written at, None), or (None, what is wrong): truncated,
    garbage, or not a trial's checkpoint."""
    import torch
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated or garbage file: torch raises many kinds
        return None, f"does not load ({type(e).__name__})"
    if not isinstance(state, dict) or "study" not in state or "state_dict" not in state:
        return None, "is not a trial checkpoint (no study / state_dict)"
    try:
        return int(state["study"]["gen_iter"]), None
    except (KeyError, TypeError, ValueError):
        return None, "has no generator iteration (study.gen_iter)"


def read_metrics(trial_dir: Path):
    """(metrics.csv as a DataFrame, None) or (None, what is wrong). A kill can tear the last line: it is
    skipped rather than losing the trial's curves."""
    import pandas as pd
    path = Path(trial_dir) / METRICS
    if not path.exists():
        return None, f"no {METRICS}"
    try:
        return pd.read_csv(path, on_bad_lines="skip"), None
    except Exception as e:  # empty, binary or otherwise unparsable: reported, never fatal
        return None, f"{METRICS} unreadable ({type(e).__name__})"


def grids(trial_dir: Path) -> list[Path]:
    """samples/grid_*.png in step order."""
    d = Path(trial_dir) / SAMPLES
    return sorted(d.glob("grid_*.png")) if d.is_dir() else []


def extended_to(trial_dir: Path) -> Optional[str]:
    """The id of the longer trial that continues this one (study/trial.extend), or None."""
    try:
        return (Path(trial_dir) / EXTENDED).read_text().strip() or None
    except OSError:
        return None


def mark_extended(trial_dir: Path, long_id: str) -> None:
    with atomic_path(Path(trial_dir) / EXTENDED) as tmp:
        Path(tmp).write_text(long_id + "\n")


def read_adaptive(run_dir: Path) -> tuple[Optional[dict], Optional[str]]:
    """(adaptive.json, None); (None, None) when the run is not adaptive; (None, what is wrong) when damaged."""
    path = Path(run_dir) / ADAPTIVE
    if not path.exists():
        return None, None
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError) as e:
        return None, f"{ADAPTIVE} unreadable ({type(e).__name__})"
    if not isinstance(doc, dict) or not isinstance(doc.get("rounds"), list) or not isinstance(doc.get("design"), dict):
        return None, f"{ADAPTIVE} is not an adaptive run's record (no design and rounds)"
    return doc, None


def write_adaptive(run_dir: Path, doc: dict) -> None:
    write_json(Path(run_dir) / ADAPTIVE, doc)


# ---------------------------------------------------------------- the α ledger (study/adaptive.py, the report)
# Append-only: each entry carries the sha256 of the entry before it, so an edited or truncated ledger reads as
# damaged. Its first entry's hash is the ledger's id, written into every trial an adaptive run ran (LEDGER_MARK):
# a run directory copied without its ledger (or with another one) is recognised by its trials and refused for
# deciding, never decided as if its α were fresh.
def _entry_sha(entry: dict) -> str:
    import hashlib
    body = {k: v for k, v in entry.items() if k != "sha"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def read_ledger(run_dir: Path) -> tuple[Optional[list], Optional[str]]:
    """(entries, None); (None, None) when there is no ledger; (None, what is wrong) when it is damaged."""
    path = Path(run_dir) / LEDGER
    if not path.exists():
        return None, None
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError) as e:
        return None, f"{LEDGER} unreadable ({type(e).__name__})"
    entries = doc.get("entries") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or not entries:
        return None, f"{LEDGER} has no entries"
    prev = ""
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or e.get("prev") != prev or e.get("sha") != _entry_sha(e):
            return None, f"{LEDGER} entry {i + 1} does not chain to the one before it (edited or truncated)"
        prev = e["sha"]
    return entries, None


def ledger_id(entries: list) -> str:
    return entries[0]["sha"][:16]


def ledger_spent(entries: Optional[list]) -> float:
    """The α every design in the ledger was given (and may have spent): a new design gets what is left."""
    return float(sum(float(e["alpha_total"]) for e in entries or []))


def append_ledger(run_dir: Path, entries: Optional[list], entry: dict) -> list:
    entries = list(entries or [])
    entry = {**entry, "prev": entries[-1]["sha"] if entries else ""}
    entry["sha"] = _entry_sha(entry)
    entries.append(entry)
    write_json(Path(run_dir) / LEDGER, {"entries": entries})
    return entries


def ledger_mark(trial_dir: Path) -> Optional[str]:
    try:
        return (Path(trial_dir) / LEDGER_MARK).read_text().strip() or None
    except OSError:
        return None


def mark_ledger(trial_dir: Path, lid: str) -> None:
    if Path(trial_dir).is_dir() and ledger_mark(trial_dir) != lid:
        with atomic_path(Path(trial_dir) / LEDGER_MARK) as tmp:
            Path(tmp).write_text(lid + "\n")


def write_config(trial_dir: Path, cfg: dict) -> None:
    write_yaml(Path(trial_dir) / CONFIG, cfg)


def write_result(trial_dir: Path, result: dict) -> None:
    write_json(Path(trial_dir) / RESULT, result)


def trial_row(tdir: Path, axes: list[str]) -> dict:
    """One trial's row; status `incomplete` until a readable result.json exists."""
    res, problem = load_result(tdir)
    cfg, cfg_problem = read_config(tdir, res)  # e.g. damaged: the result keeps a copy of the config
    mismatch = id_mismatch(tdir, cfg) if res is not None and named_as_trial(tdir) else None
    if mismatch:  # a config edited after the run: neither its values nor the numbers are shown
        res, cfg, problem = None, None, mismatch
    cfg = cfg or {}
    row: dict[str, Any] = {"trial_id": tdir.name}
    row |= {k: varied_value(get_dotted(cfg, k)) for k in axes}
    res = res or {"status": "incomplete", "error": problem}
    if res.get("status") in DONE and extended_to(tdir):  # counted once: as the longer trial that continues it
        res = {**res, "status": "extended", "error": f"continued by {extended_to(tdir)}"}
    row |= {k: res.get(k) for k in ("status", "gen_iters", "critic_iters", "wall_s", "eval_s", "device", "compile",
                                  "error")}
    if cfg_problem and (tdir / CONFIG).exists():
        row["error"] = "; ".join(filter(None, [row["error"], f"config.yaml: {cfg_problem}"]))
    final = res.get("final")
    row |= dict(final) if isinstance(final, dict) else {}
    corr = res.get("correlation")
    row |= {f"correlation.{k}": v for k, v in (corr if isinstance(corr, dict) else {}).items()
            if k in ("n", "spearman", "pearson")}
    return row


class ResultsTable:
    """results.csv of one run directory, kept in memory: built from every trial directory once, then
    `update(trial_id)` re-reads one trial. `write()` writes at most every `min_interval_s` seconds unless
    forced (results.csv can always be rebuilt from the trial directories, so a skipped write loses nothing)."""

    def __init__(self, run_dir: Path, min_interval_s: float = 0.0):
        self.run_dir, self.min_interval_s = Path(run_dir), min_interval_s
        self.axes = axes_of(self.run_dir)
        self.rows = {d.name: trial_row(d, self.axes) for d in trial_dirs(self.run_dir)}
        self._written = 0.0

    def update(self, trial_id: str) -> None:
        d = self.run_dir / trial_id
        if is_trial_dir(d):
            self.rows[trial_id] = trial_row(d, self.axes)

    def write(self, force: bool = True) -> Path:
        path = self.run_dir / RESULTS_CSV
        if not force and time.monotonic() - self._written < self.min_interval_s:
            return path
        import pandas as pd
        with atomic_path(path) as tmp:
            pd.DataFrame([self.rows[k] for k in sorted(self.rows)]).to_csv(tmp, index=False)
        self._written = time.monotonic()
        return path


def write_results_csv(run_dir: Path) -> Path:
    return ResultsTable(run_dir).write()
