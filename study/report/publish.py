"""The export step of `python -m study.publish` (study/publish.py): a run directory -> a published folder.

results/<name>/ holds small files only: REPORT.md, verdicts.json, provenance.json, tables/*.csv, figures/*.png and
data/ (the published format, study/report/load.py: every trial's finals and evaluation curves, the spec, the
adaptive record, the last sample grids the sample sheets show). The report is built FROM data/, so what is
published is exactly what `python -m study.report results/<name>` re-derives.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

# not published: report.html inlines every figure (the PNGs are beside it), GIFs animate every evaluation's grid
NOT_PUBLISHED = ("report.html",)


def export(run_dir: Path, out: Path, provenance: dict) -> Path:
    """Write the published folder `out` from `run_dir`; returns `out`."""
    from study.io import ensure_dir
    from study.report import build_report
    from study.report.load import load_run
    from study.report.published import PROVENANCE_FILE, PUBLISHED_DATA, write_published
    from study.report.samples import sheet_trials
    run = load_run(Path(run_dir))
    ensure_dir(out, "--out")
    shutil.rmtree(out / PUBLISHED_DATA, ignore_errors=True)  # an earlier export's grids must not linger
    write_published(run, out / PUBLISHED_DATA, set(sheet_trials(run)))
    (out / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=1, ensure_ascii=False) + "\n")
    build_report(out, out)
    for name in NOT_PUBLISHED:
        (out / name).unlink(missing_ok=True)
    return out
