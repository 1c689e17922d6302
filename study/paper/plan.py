"""The one place that says what each figure needs: scale -> sweep -> --set overrides, and figure -> sweeps,
builder, and the sentence that reads its CSV. Sweep files hold the paper's settings (scale `full`); the quick
scale is the same sweeps with the overrides below.

Quick scale, sized on 2 CPU cores (measured: see FIGURES.md, "Invocations"): mnist5k at 16x16, DCGAN width 16,
MLPs of 128 units, batch 32, 700 generator iterations, evaluation (500 samples) every 100; the toy with MLPs of
128 units and batch 128. Two deliberate departures from the paper, both visible in every FIGURES.md entry's
config: the WGAN learning rate is 2e-4 (at the paper's 5e-5 the samples are still blobs after 1,000 iterations),
and the critic warm-up (100 critic steps per generator step) lasts 5 generator iterations instead of 25.
Measured end to end on a 2-core machine shared with other jobs: 1,000 iterations took 27 min (load ~6, 14.4
CPU-minutes); this 700-iteration plan took 17.0 min (load 7-9, 7.3 CPU-minutes, so about 4-5 min when quiet).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from study.paper import analytic, curves, optim, samples

SWEEP_DIR = Path(__file__).resolve().parents[2] / "sweeps" / "paper"
SCALES = ("quick", "full")
QUICK_LR = 2e-4          # WGAN critic and generator learning rate at the quick scale
HIGH_LR = 5e-3           # the failing MLP/MLP run of Fig. 3 (bottom), both scales
QUICK_ITERS = 700        # generator iterations at the quick scale

# scale -> sweep name -> --set overrides (applied in order by study.sweep)
OVERRIDES: dict[str, dict[str, list[str]]] = {
    "quick": {
        "gan_wgan": [
            "base.data={name: mnist5k, image_size: 16}",
            "base.model={nz: 100, width: 16, mlp_width: 128}",
            f"base.train={{gen_iters: {QUICK_ITERS}, batch_size: 32, checkpoint_every: 350}}",
            "base.eval={every: 100, num_samples: 500}",
            "base.wgan={warmup_iters: 5}",
            # the zip rows of sweeps/paper/gan_wgan.yaml without its rows 6-7 (§4.2 at a 10x lr: no time for them)
            "zip.backbone=[{generator: mlp, critic: dcgan}, dcgan, mlp, {generator: dcgan_const, critic: dcgan}, dcgan]",
            f"zip.wgan.lr=[{QUICK_LR}, {QUICK_LR}, {HIGH_LR}, {QUICK_LR}, {QUICK_LR}]",
            "zip.wgan.optimizer=[rmsprop, rmsprop, rmsprop, rmsprop, adam]",
        ],
        "toy": [
            "base.model={nz: 2, mlp_width: 128}",
            f"base.train={{gen_iters: {QUICK_ITERS}, batch_size: 128, checkpoint_every: 350}}",
            "base.eval={every: 100, num_samples: 500}",
            f"base.wgan={{lr: {QUICK_LR}, warmup_iters: 5}}",
        ],
    },
    "full": {"gan_wgan": [], "toy": []},
}
IMAGE_SWEEPS = ("gan_wgan",)  # sweeps whose data.root --data-root sets (full scale: the LSUN folder)


@dataclass(frozen=True)
class Figure:
    id: str
    title: str
    sweeps: tuple[str, ...]            # sweep names (files under sweeps/paper/), in run order
    build: Callable                    # build(run_dirs, out_dir) -> (png, csv); analytic: build(out_dir)
    describe: Callable[[Path], str]    # the FIGURES.md sentence, from the figure's CSV
    params: dict = field(default_factory=dict)  # settings of figures that run no sweep


def _fig2_describe(csv: Path) -> str:
    import pandas as pd
    s = analytic.fig2_summary(pd.read_csv(csv))
    ok = s["gan_grad_at_fake_rel"] < 1e-3 and s["wgan_grad_at_fake_rel"] > 1e-2 and s["critic_linear_r2"] > 0.9
    return (f"Claim: the trained GAN discriminator saturates, so its gradient vanishes where the fake samples are, "
            f"while the clipped WGAN critic stays close to linear with a usable gradient everywhere. This run "
            f"{'agrees' if ok else 'does not agree'} with the paper: at the fake mode D(x) = "
            f"{s['gan_D_at_fake']:.1e} and |dD/dx| is {s['gan_grad_at_fake_rel']:.1e} of its maximum, whereas the "
            f"critic's |df/dx| there is {s['wgan_grad_at_fake_rel']:.2f} of its maximum and a straight line fits "
            f"the critic between the modes with R² = {s['critic_linear_r2']:.3f}. The follow-ups' constraints on the "
            f"same critic (described, not part of the paper's claim): gradient penalty |df/dx| "
            f"{s['wgan_gp_grad_at_fake_rel']:.2f}, R² {s['wgan_gp_linear_r2']:.3f}; spectral normalisation "
            f"{s['wgan_sn_grad_at_fake_rel']:.2f}, R² {s['wgan_sn_linear_r2']:.3f}.")


def _fig1_describe(csv: Path) -> str:
    import pandas as pd
    df = pd.read_csv(csv).dropna(subset=["em_sampled"])
    err = float((df["em_sampled"] - df["em"]).abs().max())
    return ("Claim: the EM distance |θ| is continuous in θ and gives a gradient everywhere, while JS jumps from 0 to "
            "log 2 and is constant for θ ≠ 0. This reproduces the paper's Fig. 1 exactly (closed forms); exact "
            f"optimal transport between 300-point samples matches |θ| to within {err:.3f} (sampling error).")


FIGURES: dict[str, Figure] = {f.id: f for f in [
    Figure("1", "EM vs JS between parallel lines", (), analytic.build_fig1, _fig1_describe),
    Figure("2", "Optimal GAN discriminator vs WGAN critic on two 1-D Gaussians", (), analytic.build_fig2,
           _fig2_describe, params={"real": analytic.REAL, "fake": analytic.FAKE, **analytic.FIG2}),
    Figure("3", "WGAN: W estimate vs generator iterations, with samples", ("gan_wgan", "toy"), curves.build_fig3,
           lambda csv: curves.describe(csv, "3")),
    Figure("4", "GAN: JS estimate (discriminator loss) vs generator iterations", ("gan_wgan", "toy"),
           curves.build_fig4, lambda csv: curves.describe(csv, "4")),
    Figure("5", "Samples, DCGAN generator: WGAN vs GAN", ("gan_wgan",), samples.build_fig5,
           lambda csv: samples.describe(csv, "5")),
    Figure("6", "Samples, constant-filter generator without BN: WGAN vs GAN", ("gan_wgan",), samples.build_fig6,
           lambda csv: samples.describe(csv, "6")),
    Figure("7", "Samples, MLP generator: WGAN vs GAN", ("gan_wgan",), samples.build_fig7,
           lambda csv: samples.describe(csv, "7")),
    Figure("8", "GAN: generator cost vs generator iterations", ("gan_wgan", "toy"), curves.build_fig8,
           lambda csv: curves.describe(csv, "8")),
    Figure("4.2", "§4.2: Adam vs RMSProp for the WGAN critic", ("gan_wgan",), optim.build_optim, optim.describe),
]}
ALIASES = {"s4.2": "4.2", "§4.2": "4.2", "adam": "4.2", "optim": "4.2"}


def sweep_file(name: str) -> Path:
    return SWEEP_DIR / f"{name}.yaml"


def runs_dir(scale: str, runs_root: Optional[Path] = None) -> Path:
    return Path(runs_root) if runs_root else Path("runs") / f"paper-{scale}"


def sweep_sets(scale: str, name: str, data_root: Optional[str] = None) -> list[str]:
    sets = list(OVERRIDES[scale].get(name, []))
    if data_root and name in IMAGE_SWEEPS:
        sets.append(f"base.data.root={data_root}")
    return sets


def plan(scale: str, figures: list[str], data_root: Optional[str] = None) -> dict[str, list[tuple[Path, list[str]]]]:
    """figure -> [(sweep file, --set overrides)] at this scale."""
    return {f: [(sweep_file(s), sweep_sets(scale, s, data_root)) for s in FIGURES[f].sweeps] for f in figures}


def resolve_figures(requested: Optional[list[str]]) -> list[str]:
    """Figure ids in the paper's order; raises ValueError naming an unknown one."""
    if not requested:
        return list(FIGURES)
    out = []
    for r in requested:
        f = ALIASES.get(r.lower(), r.lower().removeprefix("fig").removeprefix("."))
        if f not in FIGURES:
            raise ValueError(f"unknown figure '{r}' (known: {', '.join(FIGURES)})")
        if f not in out:
            out.append(f)
    return [f for f in FIGURES if f in out]
