"""More iterations means continuing, not restarting (study/trial.extend): a trial extended from N to 2N
equals a fresh 2N trial bit for bit, and the report counts it once."""
from __future__ import annotations

import pytest

from study.config import load_trial_config
from study.trial import WorkerContext, extend, run_trial


@pytest.mark.parametrize("over", [
    {"loss": "wgan"},                                                       # toys: W1, modes; the critic warm-up
    {"loss": "gan", "data": {"name": "mnist5k", "image_size": 16, "holdout": 200}, "backbone": "dcgan",
     "model": {"nz": 8, "width": 8}, "eval": {"every": 10, "num_samples": 100, "grid_size": 16}},
])
def test_extending_n_to_2n_equals_a_fresh_2n_trial_bit_for_bit(tiny, tmp_path, over):
    base = tiny(**{k: v for k, v in over.items() if not isinstance(v, dict)})
    for k, v in over.items():
        if isinstance(v, dict):
            base[k] = {**base.get(k, {}), **v}
    ctx = WorkerContext()
    short, long = (load_trial_config({**base, "train": {**base["train"], "gen_iters": n}}) for n in (20, 40))
    run_trial(short, tmp_path / "short", ctx=ctx)
    run_trial(long, tmp_path / "fresh", ctx=ctx)
    assert extend(tmp_path / "short", tmp_path / "extended") == 20
    res = run_trial(long, tmp_path / "extended", ctx=ctx)
    assert res["status"] == "completed" and res["resumed_from"] == 20 and res["gen_iters"] == 40
    fresh, extended = ((tmp_path / d / "metrics.csv").read_bytes() for d in ("fresh", "extended"))
    assert extended == fresh
    assert extend(tmp_path / "short", tmp_path / "extended") == 20  # idempotent: a finished extension is kept
