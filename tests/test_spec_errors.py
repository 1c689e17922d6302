"""Every malformed input: exit code 2, one line on stderr naming file and key, nothing written."""
import subprocess
import sys

import pytest

from study.sweep import main

GOOD = """name: t
base:
  data: {name: ring8}
  model: {nz: 2, mlp_width: 16}
  train: {gen_iters: 5}
grid:
  loss: [gan, wgan]
  backbone: [mlp]
"""

CASES = [  # (spec text or None for GOOD, extra argv, expected fragment of the one line)
    ("name: t\ngrid: {loss: [gan\n", [], "invalid YAML at line"),
    ("- just\n- a list\n", [], "expected a mapping"),
    (GOOD + "extra: 1\n", [], "extra: unknown key (allowed: base, description, grid, name, until_decided, zip)"),
    (GOOD.replace("backbone: [mlp]", "backbone: [mlp, dcgann]"), [], "grid.backbone[1]: unknown backbone 'dcgann' (known: dcgan, dcgan_const, dcgan_nobn, mlp)"),
    (GOOD.replace("gen_iters: 5", "gen_iters: 0"), [], "base.train.gen_iters: Input should be greater than 0"),
    (GOOD.replace("gen_iters: 5", "gen_iters: lots"), [], "base.train.gen_iters: Input should be a valid integer"),
    (GOOD.replace("gen_iters: 5", "gen_iters: 5, epochs: 3"), [], "base.train.epochs: unknown key (allowed: batch_size"),
    (GOOD.replace("loss: [gan, wgan]", "loss: [gan, lsgan]"), [], "grid.loss[1]: unknown loss 'lsgan' (known: gan, wgan, wgan_gp, wgan_sn)"),
    (GOOD.replace("loss: [gan, wgan]", "loss: []"), [], "grid.loss: must be a non-empty list"),
    (GOOD.replace("loss: [gan, wgan]", "loss: gan"), [], "grid.loss: must be a non-empty list"),
    ("name: t\nbase: {}\ngrid: {}\n", [], "grid: empty"),
    (GOOD.replace("  backbone: [mlp]", "  backbone: [mlp]\n  loss: [gan]"), [], "duplicate key 'loss'"),
    (GOOD + "zip:\n  loss: [gan]\n", [], "zip.loss: axis is also in grid"),
    (GOOD + "zip:\n  seed: [0, 1]\n  wgan.clip: [0.01]\n", [], "zip: all zip axes need the same length"),
    (GOOD.replace("backbone: [mlp]", "bakcbone: [mlp]"), [], "grid.bakcbone: unknown key 'bakcbone'"),
    (GOOD.replace("backbone: [mlp]", "wgan.clip: [-0.1]"), [], "grid.wgan.clip[0]: Input should be greater than 0"),
    (GOOD.replace("backbone: [mlp]", "data.name: [ring9]"), [], "grid.data.name[0]: unknown data set 'ring9'"),
    (GOOD.replace("backbone: [mlp]", "backbone: [dcgan]"), [], "backbone 'dcgan' needs image data"),
    (GOOD.replace("name: t", "name: ../escape"), [], "name: must be a plain name"),
    ("name: t\nbase: 3\ngrid: {seed: [0]}\n", [], "base: must be a mapping"),
    (None, ["--set", "base.train.gen_iters"], "expected dotted.key=value"),
    (None, ["--set", "bass.train.gen_iters=5"], "unknown key 'bass'"),
    (None, ["--set", "grid.seed=[0, "], "invalid YAML"),
    (None, ["--set", "base.train.batch_size=-1"], "base.train.batch_size: Input should be greater than 0"),
    (None, ["--workers", "0"], "--workers: must be at least 1"),
    (None, ["--devices", "cuda:7"], "--devices: cuda:7 not available"),
    (None, ["--devices", "tpu"], "--devices: 'tpu' is not a device"),
    (None, ["--executor", "slurm"], "invalid choice: 'slurm'"),
    (None, ["--out", "/proc/forbidden"], "--out /proc/forbidden: not writable"),
]


@pytest.mark.parametrize("text,argv,fragment", CASES, ids=[c[2][:40] for c in CASES])
def test_malformed_input_exits_2_with_one_line(tmp_path, capsys, text, argv, fragment):
    spec = tmp_path / "x.yaml"
    spec.write_text(GOOD if text is None else text)
    out = tmp_path / "out"
    argv = argv if "--out" in argv else argv + ["--out", str(out)]
    with pytest.raises(SystemExit) if "invalid choice" in fragment else _nullcontext() as exc:
        code = main([str(spec), *argv])
    code = exc.value.code if "invalid choice" in fragment else code
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert fragment in err, err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    if "--out" not in argv[:1] and "not writable" not in fragment:
        assert not out.exists() or not any(out.iterdir())
    if text is not None and "YAML" not in fragment and "expected a mapping" not in fragment:
        assert str(spec) in err


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return False


def test_missing_spec_file(tmp_path, capsys):
    assert main([str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml: cannot read" in capsys.readouterr().err


def test_cli_subprocess_has_no_traceback(tmp_path):
    spec = tmp_path / "x.yaml"
    spec.write_text(GOOD.replace("mlp]", "mlpp]"))
    p = subprocess.run([sys.executable, "-m", "study.sweep", str(spec)], capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "unknown backbone 'mlpp'" in p.stderr
