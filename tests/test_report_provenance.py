"""The report's provenance (harness commit, hosts, Inception weights), the torchmetrics cross-check table, the
other quality metrics section, and the devices table's rounding, on the hand-made sweep."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from study.report import build_report
from test_report_fixture import make_run

SHA = "ab" * 32


def _edit(root, fn) -> None:
    for path in sorted(root.glob("*/result.json")):
        res = json.loads(path.read_text())
        fn(res)
        path.write_text(json.dumps(res))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs") / "prov"
    make_run(root)
    counter = iter(range(100))

    def add(res):
        i = next(counter)
        res["wall_s"] = 0.1 + 0.2 * (i + 1)  # sums that print as 0.30000000000000004 unless rounded
        res["provenance"] = {"harness": {"root": "/h", "commit": "0123456789abcdef" * 2 + "01234567",
                                         "dirty": i % 2 == 0},
                             "host": {"hostname": "node-a", "cpu": "Test CPU 9000", "gpu": None}}
        res["eval_info"]["inception_weights"] = {"file": "/w/other.pth", "sha256": SHA, "standard": False}
        res["crosscheck"] = {"fid@domain": {"torch_fidelity": 20.0 + i, "torchmetrics": 20.0 + i + 1e-6,
                                            "rel_diff": 1e-6 / (20 + i), "n_real": 1000, "n_gen": 500},
                             "kid@domain": {"torch_fidelity": 0.5, "torchmetrics": 0.5, "rel_diff": 0.0,
                                            "n_real": 500, "n_gen": 500}}
        if res["status"] == "completed":
            # by seed, not by directory order (trial ids are hashes): seeds 0, 1, 2 score 8, 8, 10
            res["final"].update({"eval/isc@domain": 8.0 + 2 * (res["config"]["seed"] == 2),
                                 "eval/precision@domain": 0.7, "eval/recall@domain": 0.5})
            res["eval_info"]["real_floor"].update({"eval/isc@domain": 9.5, "eval/precision@domain": 0.9,
                                                   "eval/recall@domain": 0.9})
    _edit(root, add)
    return root, build_report(root, root.parent / "report")


def test_harness_and_inception_provenance(built):
    _, out = built
    h = pd.read_csv(out / "tables" / "harness.csv")
    assert set(h["harness commit"]) == {"0123456789ab"} and set(h["tracked files"]) == {"clean", "changed"}
    assert set(h["CPU"]) == {"Test CPU 9000"} and set(h["GPU"]) == {"none"} and set(h["host"]) == {"node-a"}
    assert h["trials"].sum() == 16  # every trial with a readable result.json
    md = (out / "REPORT.md").read_text()
    assert f"sha256 `{SHA[:16]}…`, **not** the standard pt_inception-2015-12-05 file" in md


def test_crosscheck_table(built):
    _, out = built
    c = pd.read_csv(out / "tables" / "metric_crosscheck.csv").set_index("metric")
    assert c.loc["FID (domain features)", "n trials"] == 16 and c.loc["FID (domain features)", "agree"] == "yes"
    assert c.loc["KID (domain features)", "largest relative difference"] == 0
    assert c.loc["KID (domain features)", "compared on"] == "one subset of 500 real / 500 generated"
    assert "Metric provenance" in (out / "REPORT.md").read_text()


def test_other_quality_metrics_section(built):
    _, out = built
    o = pd.read_csv(out / "tables" / "other_metrics.csv")
    assert set(o["features"]) == {"domain"} and o["seeds"].min() >= 2
    wgan_mlp = o.set_index("cell").loc["mnist5k · mlp · WGAN (optimizer=rmsprop)"]
    assert wgan_mlp["Inception Score"] == "8.67 ± 1.2" and wgan_mlp["seeds"] == 3  # 8, 8, 10 (seeds 0, 1, 2)
    assert wgan_mlp["precision"].startswith("0.7 ±") and wgan_mlp["Inception Score, real data"] == 9.5
    md = (out / "REPORT.md").read_text()
    assert "## Other quality metrics" in md and "3-nearest-neighbour balls" in md
    # not inside claim 1's tables: those list quality metrics (FID/W1) only
    assert not pd.read_csv(out / "tables" / "claim1_quality.csv")["metric"].str.contains("isc|precision").any()


def test_devices_wall_time_is_rounded(built):
    _, out = built
    d = pd.read_csv(out / "tables" / "devices.csv", dtype=str)
    assert all(len(v.partition(".")[2]) <= 1 for v in d["wall_s"])
    assert "0000000" not in (out / "REPORT.md").read_text().split("**Devices**")[1].split("**")[0]
