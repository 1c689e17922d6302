"""Published folders (study/publish.py, study/report/publish.py, the published reader in study/report/load.py):
self-contained, re-derivable, readable, with accounting that adds up. On the real 5-seed CPU run kept as a fixture."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from study.report.load import load_run

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "cpu_verdicts5"
MAX_MARKDOWN = 20_000   # bytes of REPORT.md (issue 29)
SMALL = (".md", ".csv", ".gz", ".png", ".json", ".yaml")


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """(the fixture's run-directory report, its published folder): built once for the module."""
    from study.report import build_report
    from study.report.publish import export
    tmp = tmp_path_factory.mktemp("pub")
    report = build_report(FIXTURE, tmp / "report")
    prov = {"command": "python -m study.publish sweeps/cpu_verdicts.yaml --out results/x", "commit": "0" * 40,
            "allow_dirty": False, "wall_s": 3600.0, "invocations": [{"wall_s": 3600.0}],
            "hardware": {"cpu": "test CPU", "cores": 2, "memory_gib": 8.0, "gpus": []},
            "versions": {"torch": "x"}, "spec": {"file": "s.yaml", "sha256": "ab" * 32}}
    return report, export(FIXTURE, tmp / "results" / "x", prov)


def test_published_folder_rederives_every_verdict_and_table(published):
    report, pub = published
    # the published report is built from data/ alone: its verdicts and tables equal the run directory's
    assert json.loads((pub / "verdicts.json").read_text()) == json.loads((report / "verdicts.json").read_text())
    for csv in sorted((report / "tables").glob("*.csv")):
        assert (pub / "tables" / csv.name).read_bytes() == csv.read_bytes(), csv.name
    run, again = load_run(FIXTURE), load_run(pub)
    assert list(again.trials["trial_id"]) == list(run.trials["trial_id"])
    assert again.varied == run.varied and again.configs == run.configs
    tid = run.trials["trial_id"].iloc[0]
    m, p = run.metrics[tid], again.metrics[tid]
    evals = m[m["eval/fid@domain"].notna()].reset_index(drop=True)
    assert list(p["step"]) == list(evals["step"])
    assert p["eval/fid@domain"].tolist() == evals["eval/fid@domain"].tolist()  # exactly, not approximately


def test_published_folder_is_small_files_only(published):
    _, pub = published
    files = [f for f in pub.rglob("*") if f.is_file()]
    assert all(f.suffix in SMALL for f in files), [f.name for f in files if f.suffix not in SMALL]
    assert sum(f.stat().st_size for f in files) < 3_000_000
    assert {p.name for p in (pub / "data").iterdir()} >= {"trials.csv.gz", "curves.csv.gz", "sweep.yaml", "run.json"}
    trials = pd.read_csv(pub / "data" / "trials.csv.gz")
    assert len(trials) == 30 and set(trials["status"]) == {"completed"}
    assert trials["result"].map(lambda s: "final" in json.loads(s)).all()


def test_report_is_readable(published):
    _, pub = published
    md = (pub / "REPORT.md").read_text()
    assert len(md.encode()) <= MAX_MARKDOWN
    run = load_run(pub)
    assert not [t for t in run.trials["trial_id"] if t in md]  # trial ids only in the CSVs
    first = md[:md.index("## Setup")]
    for claim in ("Claim 1", "Claim 2", "Claim 3"):
        assert re.search(rf"### {claim} .*: \*\*(supported|not supported|inconclusive)\*\*", first)
    assert first.count("| cell | budget (gen. iters) | metric mean ± sd |") == 3  # one table per claim
    assert "p = 0.0453 ≤ 0.05" in first  # the number that decided the failing GAN cell
    assert "figure left out" not in md
    for link in re.findall(r"\]\(((?:figures|tables|data)/[^)]+)\)", md):
        assert (pub / link).exists(), link
    assert "test CPU, 2 cores" in first and "--allow-dirty" not in first


def inconsistencies(folder: Path, readme: str | None = None) -> list[str]:
    """What disagrees between REPORT.md, verdicts.json and the CSVs of a published folder (and README text,
    where given): trial counts, p-values, trial hours."""
    md = (folder / "REPORT.md").read_text()
    verdicts = json.dumps(json.loads((folder / "verdicts.json").read_text()), ensure_ascii=False)
    trials = pd.read_csv(folder / "data" / "trials.csv.gz")
    if "budget_part" in trials:  # each seed at an earlier declared budget: inside its longer trial's count and hours
        trials = trials[~trials["budget_part"].astype(bool)]
    problems = []
    n = len(trials)
    status = pd.read_csv(folder / "tables" / "status_counts.csv")
    counts = {"trials.csv.gz": n, "tables/trials.csv": len(pd.read_csv(folder / "tables" / "trials.csv")),
              "status_counts total": int(status.loc[status["cell"] == "all cells", "total"].iloc[0])}
    counts.update({f"REPORT.md '{m[0]}'": int(m[1]) for m in re.finditer(r"(?:over|; )(\d+) trials", md)})
    if len(set(counts.values())) > 1:
        problems.append(f"trial counts differ: {counts}")
    hours = trials["wall_s"].sum() / 3600
    for h in re.findall(r"([\d.]+) trial hours over", md):
        if abs(float(h) - hours) > 0.006:
            problems.append(f"REPORT.md says {h} trial hours, trials.csv.gz sums to {hours:.3f}")
    for text, where in ((md, "REPORT.md"), (readme or "", "README")):
        for p in re.findall(r"p = ([0-9.]+)", text):
            if f"p = {p}" not in verdicts:
                problems.append(f"{where}: p = {p} is not in verdicts.json")
    return problems


def test_counts_p_values_and_times_agree(published):
    _, pub = published
    assert inconsistencies(pub) == []
    assert inconsistencies(pub, readme="claim 1 ... (p = 0.0453 ≤ 0.05) ...") == []
    assert inconsistencies(pub, readme="the GAN fails (p = 0.003 ≤ 0.05/3)") == [
        "README: p = 0.003 is not in verdicts.json"]


def _continued_run(tmp_path: Path) -> tuple[Path, str, str]:
    """The fixture with one trial continued by another (as study/trial.extend marks it)."""
    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURE, run_dir)
    short, long = "wgan_mlp_mnist5k_s0_76ef63e4", "wgan_mlp_mnist5k_s1_4792768e"
    (run_dir / short / "extended_to").write_text(long + "\n")
    return run_dir, short, long


def test_a_continued_trial_counts_its_whole_training(tmp_path):
    run_dir, short, long = _continued_run(tmp_path)
    wall = {t: json.loads((FIXTURE / t / "result.json").read_text())["wall_s"] for t in (short, long)}
    run = load_run(run_dir)
    row = run.trials.set_index("trial_id").loc[long]
    assert short not in set(run.trials["trial_id"]) and len(run.trials) == 29
    assert row["wall_s"] == pytest.approx(wall[short] + wall[long]) and row["wall_s_run"] == wall[long]
    assert list(run.continued["trial_id"]) == [short]
    from study.report.compute import compute_table
    comp = compute_table(run).set_index("cell").loc[row["cell"]]
    assert comp["wall_s_total"] == pytest.approx(run.trials.loc[run.trials["cell"] == row["cell"], "wall_s"].sum())
    # rounds: the short run in round 1, the extension in round 2: trial hours never fall
    from study.report.rounds import trial_hours_after
    cfg = json.loads((FIXTURE / long / "result.json").read_text())["config"]
    run.adaptive = {"design": {"max_seeds": 5, "extensions": 1},
                    "rounds": [{"round": 1, "added": []}, {"round": 2, "added": [cfg]}]}
    h1, h2 = trial_hours_after(run)
    everything = sum(json.loads((FIXTURE / t / "result.json").read_text())["wall_s"]
                     for t in (p.name for p in FIXTURE.iterdir() if p.is_dir())) / 3600
    assert h1 == pytest.approx(everything - wall[long] / 3600) and h2 == pytest.approx(everything)


def test_published_reader_keeps_the_continued_accounting(tmp_path):
    from study.report.published import write_published
    run_dir, short, long = _continued_run(tmp_path)
    cfg = json.loads((FIXTURE / long / "result.json").read_text())["config"]
    from study import rundir
    from study.adaptive import _ledger_entry, design
    entries = rundir.append_ledger(run_dir, None, _ledger_entry(design(10, budgets=[1500, 3000]), None))
    lid = rundir.ledger_id(entries)
    adaptive = {"design": {"max_seeds": 10, "budgets": [1500, 3000]}, "ledger": lid, "rounds": [
        {"round": 1, "added": [], "extended": {}, "why": ["the spec's trials"]},
        {"round": 2, "added": [cfg], "extended": {short: long}, "why": ["x"]}]}
    (run_dir / "adaptive.json").write_text(json.dumps(adaptive))
    for d in run_dir.iterdir():
        if d.is_dir():
            rundir.mark_ledger(d, lid)
    run = load_run(run_dir)
    pub = tmp_path / "pub"
    write_published(run, pub / "data", set())
    assert (pub / "data" / "ledger.json").read_bytes() == (run_dir / "ledger.json").read_bytes()
    again = load_run(pub)
    assert again.adaptive == run.adaptive == adaptive and again.design == run.design and run.design.looks == 2
    assert run.design.budgets == (1500, 3000) and len(again.budget_trials) == len(run.budget_trials) == 1
    from study.report.rounds import rounds_table
    pd.testing.assert_frame_equal(rounds_table(again), rounds_table(run))
    cols = ["trial_id", "wall_s", "wall_s_run", "eval_s", "continues", "status", "cell"]
    pd.testing.assert_frame_equal(again.trials[cols], run.trials[cols])
    assert list(again.continued["trial_id"]) == [short]


def test_publish_refuses_a_dirty_tree_and_another_commit(tmp_path, monkeypatch, capsys):
    from study import publish
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\nbase: {data: {name: mnist5k}}\ngrid: {seed: [0]}\n")
    monkeypatch.setattr(publish, "tree_state", lambda: ("a" * 40, ["study/x.py"]))
    assert publish.main([str(spec), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "1 path(s) differ" in err and "--allow-dirty" in err
    monkeypatch.setattr(publish, "tree_state", lambda: ("a" * 40, []))
    runs = tmp_path / "runs"
    shutil.copytree(FIXTURE / "gan_dcgan_mnist5k_s0_04309d6e", runs / "gan_dcgan_mnist5k_s0_04309d6e")
    assert publish.main([str(spec), "--out", str(tmp_path / "r"), "--runs", str(runs)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "made at commit 2c5f0973b8c4" in err


def test_rerun_tolerance_is_named():
    from study.verify import RERUN_RTOL
    assert 1e-8 < RERUN_RTOL < 1e-4  # above what re-runs differ by (0 here, 1e-8 in issue 29), below a real change


TINY = """name: tiny
base:
  data: {name: mnist5k, image_size: 16}
  model: {nz: 32, width: 16, mlp_width: 128}
  train: {gen_iters: 40, batch_size: 32, checkpoint_every: 20}
  eval: {every: 20, num_samples: 200}
  wgan: {warmup_iters: 2}
grid:
  loss: [gan]
  seed: [0]
"""


@pytest.mark.slow
def test_publish_then_verify_rerun(tmp_path):
    """End to end (about 2 minutes on 2 cores): publish a tiny study, re-derive it, re-run its trial."""
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    out, runs = tmp_path / "results" / "tiny", tmp_path / "runs"
    py = [sys.executable, "-m"]
    r = subprocess.run(py + ["study.publish", str(spec), "--out", str(out), "--runs", str(runs), "--allow-dirty"],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["argv"] == [str(spec), "--out", str(out), "--runs", str(runs), "--allow-dirty"]
    assert len(prov["spec"]["sha256"]) == 64 and prov["versions"]["torch"] and prov["hardware"]["cores"]
    assert (out / "data" / "spec.yaml").read_text() == TINY
    first = (out / "REPORT.md").read_text().split("## Verdicts")[0]
    assert "built with --allow-dirty" in first and prov["commit"] in first
    shutil.rmtree(runs)  # the published folder stands alone
    r = subprocess.run(py + ["study.report", str(out), "--out", str(tmp_path / "again")], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "again" / "verdicts.json").read_text() == (out / "verdicts.json").read_text()
    r = subprocess.run(py + ["study.verify", str(out), "--rerun", "1"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    line = r.stdout.strip().splitlines()[-1]
    assert line.startswith("gan_dcgan_mnist5k_s0_") and "eval/fid@domain" in line and " ok " in line


@pytest.mark.parametrize("change, ok", [(0.0, True), (1e-8, True), (1e-4, False)])
def test_verify_rerun_compares_every_final_number(published, monkeypatch, tmp_path, capsys, change, ok):
    """study.verify --rerun's comparison, with the training replaced by the fixture's own results (one number
    moved by `change`, relative): within RERUN_RTOL it passes, beyond it the line says FAIL and the exit is 1."""
    from collections import Counter
    from study import sweep, verify
    _, pub = published

    def rerun_from_fixture(args, name, trials, out):
        for t in trials:
            res = json.loads((FIXTURE / t.id / "result.json").read_text())
            res["final"]["eval/kid@domain"] *= 1 + change
            (out / t.id).mkdir(parents=True)
            (out / t.id / "result.json").write_text(json.dumps(res))
        return Counter(completed=len(trials))
    monkeypatch.setattr(sweep, "execute", rerun_from_fixture)
    assert verify.main([str(pub), "--rerun", "2", "--seed", "1"]) == (0 if ok else 1)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all(" eval/fid@domain " in x for x in lines)
    assert all((" ok " in x) == ok and ("FAIL" in x) == (not ok) for x in lines)
    if not ok:
        assert "worst of" in lines[0] and "eval/kid@domain 1.0e-04" in lines[0]


def test_published_claim2_statistics_equal_the_run_directorys(tmp_path):
    """Claim 2 reads the estimate as a median of raw per-iteration values around each evaluation; a published
    folder keeps only evaluation rows, so it carries that statistic itself: the trend-free r and p come out the same."""
    from study.report.claim2 import claim2
    from study.report.published import write_published
    src = Path(__file__).parent / "fixtures" / "claim2_ring8"
    run = load_run(src)
    write_published(run, tmp_path / "pub" / "data", set())
    a = claim2(run)[0]["claim2_correlation"].set_index("cell")
    b = claim2(load_run(tmp_path / "pub"))[0]["claim2_correlation"].set_index("cell")
    assert a["r_tf"].notna().all()
    pd.testing.assert_series_equal(a["r_tf"], b["r_tf"])
    pd.testing.assert_series_equal(a["p_perm"], b["p_perm"])


PUBLISHED = sorted(p.parent.parent for p in (ROOT / "results").glob("*/data/trials.csv.gz"))


@pytest.mark.parametrize("folder", PUBLISHED, ids=[p.name for p in PUBLISHED])
def test_every_published_result_re_derives_its_verdicts_and_agrees_with_the_readme(folder):
    """What results/ publishes: each folder's own files re-derive every verdict it states (no runs/ needed), and
    its counts, p-values and hours agree with README's Findings."""
    from study.report import claim1, claim2, claim3
    run = load_run(folder)
    derived = {v.key: v.verdict for f in (claim1.claim1, claim2.claim2, claim3.claim3) for v in f(run)[1]}
    stated = {k: v["verdict"] for k, v in json.loads((folder / "verdicts.json").read_text()).items()}
    assert derived == stated
    readme = (ROOT / "README.md").read_text()
    findings = readme[readme.index("## Findings"):readme.index("## Usage")]
    assert folder.name in findings
    assert inconsistencies(folder, findings) == []
    prov = json.loads((folder / "provenance.json").read_text())
    assert prov["argv"][0].startswith("sweeps/") and f"results/{folder.name}" in prov["argv"]  # its own command
    assert prov["dirty_paths"] == [] and not prov["allow_dirty"]  # a clean tree at one commit


@pytest.mark.parametrize("folder", PUBLISHED, ids=[p.name for p in PUBLISHED])
def test_each_published_result_was_made_at_one_commit_and_the_readme_names_it(folder):
    """Every trial of a folder ran at the commit its provenance names, on a clean tree; README's Findings give it."""
    commit = json.loads((folder / "provenance.json").read_text())["commit"]
    trials = pd.read_csv(folder / "data" / "trials.csv.gz")
    harness = [json.loads(r)["provenance"]["harness"] for r in trials["result"]]
    assert {h["commit"] for h in harness} == {commit} and not any(h["dirty"] for h in harness)
    readme = (ROOT / "README.md").read_text()
    assert commit[:7] in readme[readme.index("## Findings"):readme.index("## Usage")]
