"""Figs. 1 and 2: no sweep. Fig. 1 is analytic (with an exact-transport check on samples); Fig. 2 trains a
GAN discriminator and a WGAN critic on two fixed 1-D Gaussians with the project's MLP and loss functions."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from study.paper.common import COLORS, save_csv, save_png, style

LOG2 = math.log(2.0)

# Fig. 2 setting: two 1-D Gaussians 8 standard deviations apart (the supports barely overlap, as in the paper)
REAL = (2.0, 0.5)    # mean, std
FAKE = (-2.0, 0.5)
FIG2 = {"mlp_width": 64, "batch_size": 256, "steps": 800,
        "gan": {"optimizer": "adam", "lr": 1e-3, "betas": (0.5, 0.999)},
        "wgan": {"optimizer": "rmsprop", "lr": 5e-4, "clip": 0.01},
        # the follow-ups' constraints on the same critic (their own optimizers, at Fig. 2's learning rate)
        "wgan_gp": {"optimizer": "adam", "lr": 1e-3, "betas": (0.0, 0.9), "gp_weight": 10.0},
        "wgan_sn": {"optimizer": "adam", "lr": 1e-3, "betas": (0.5, 0.9)}}
CRITICS = ("wgan", "wgan_gp", "wgan_sn")  # every Wasserstein critic drawn in Fig. 2
LABELS = {"wgan": "WGAN (clipping)", "wgan_gp": "WGAN-GP (penalty)", "wgan_sn": "WGAN-SN (spectral norm)"}


def parallel_lines(theta: np.ndarray) -> pd.DataFrame:
    """P0 = (0, Z), P_theta = (theta, Z), Z ~ U[0, 1] (paper Example 1): closed forms of the distances."""
    theta = np.asarray(theta, float)
    return pd.DataFrame({"theta": theta, "em": np.abs(theta), "js": np.where(theta == 0, 0.0, LOG2),
                         "kl": np.where(theta == 0, 0.0, np.inf), "tv": np.where(theta == 0, 0.0, 1.0)})


def sampled_em(theta: float, n: int, rng: np.random.Generator) -> float:
    """Exact optimal transport (Euclidean cost) between n samples of P0 and n samples of P_theta."""
    from scipy.optimize import linear_sum_assignment
    a = np.stack([np.zeros(n), rng.uniform(size=n)], 1)
    b = np.stack([np.full(n, theta), rng.uniform(size=n)], 1)
    cost = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)
    r, c = linear_sum_assignment(cost)
    return float(cost[r, c].mean())


def build_fig1(out_dir: Path, n_theta: int = 401, n_check: int = 21, n_samples: int = 300) -> tuple[Path, Path]:
    import matplotlib.pyplot as plt
    out_dir = Path(out_dir)
    df = parallel_lines(np.linspace(-1, 1, n_theta))
    rng = np.random.default_rng(0)
    check = np.linspace(-1, 1, n_check)
    df["em_sampled"] = np.nan
    df = pd.concat([df, parallel_lines(check).assign(
        em_sampled=[sampled_em(t, n_samples, rng) for t in check])]).sort_values("theta", kind="stable")
    with style():
        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
        a.plot(df["theta"], df["em"], color=COLORS["wgan"], lw=2, label="EM (Wasserstein-1) = |θ|")
        s = df.dropna(subset=["em_sampled"])
        a.plot(s["theta"], s["em_sampled"], "o", ms=4, color="black",
               label=f"exact OT between {n_samples}-sample draws")
        a.set(xlabel="θ (horizontal offset of the second line)", ylabel=r"$W(P_0, P_\theta)$  (distance units)",
              title="Earth-Mover distance: continuous, gradient everywhere")
        a.legend(fontsize=8, loc="upper center")
        nz = df[df["theta"] != 0]
        for side in (nz["theta"] < 0, nz["theta"] > 0):
            b.plot(nz["theta"][side], nz["js"][side], color=COLORS["gan"], lw=2)
        b.plot([0], [0], "o", color=COLORS["gan"], ms=6)
        b.plot([0, 0], [LOG2, LOG2], "o", mfc="white", color=COLORS["gan"], ms=6)
        b.set(xlabel="θ (horizontal offset of the second line)", ylabel=r"$JS(P_0, P_\theta)$  (nats)", ylim=(-0.05, 0.8),
              title="Jensen-Shannon: log 2 for every θ ≠ 0, 0 at θ = 0")
        b.axhline(LOG2, color="grey", ls=":", lw=0.8)
        b.text(0.55, LOG2 + 0.04, "log 2", color="grey", fontsize=8)
        fig.suptitle(r"Fig. 1 — distances between $P_0$ (points $(0, Z)$) and $P_\theta$ (points $(\theta, Z)$), "
                     r"$Z \sim U[0, 1]$")
        png = save_png(fig, out_dir / "fig1_em_vs_js.png")
    return png, save_csv(df, out_dir / "fig1_em_vs_js.csv")


def _train(loss: str, seed: int = 0, steps: int = FIG2["steps"]):
    """Train a fresh 4-layer MLP (the project's critic) to convergence on REAL vs FAKE with the loss and
    critic constraint of algorithm `loss` (its registration: clipping, gradient penalty, spectral norm)."""
    import torch
    from lightning_modules import ALGORITHMS
    from lightning_modules.backbones import Sizes, build
    from lightning_modules.adversarial import make_optimizer

    torch.manual_seed(seed)
    spec = ALGORITHMS.get(loss)
    settings = spec.settings(**FIG2[loss])
    net = build("mlp", "critic", Sizes(nz=1, mlp_width=FIG2["mlp_width"]), (1,))
    g = torch.Generator().manual_seed(seed)
    constraint = spec.constraint(settings, g)
    constraint.prepare(net)
    opt, fn = make_optimizer(settings, net.parameters()), spec.loss(settings)
    n = FIG2["batch_size"]
    history = []
    for _ in range(steps):
        constraint.before_update(net)
        real = REAL[0] + REAL[1] * torch.randn(n, 1, generator=g)
        fake = FAKE[0] + FAKE[1] * torch.randn(n, 1, generator=g)
        terms = fn(net(real), net(fake))
        extra = constraint.penalty(net, real, fake)
        opt.zero_grad(set_to_none=True)
        (terms.d_loss + (extra["loss"] if extra else 0)).backward()
        opt.step()
        constraint.after_update(net)
        history.append(float(terms.d_loss.detach()))
    constraint.before_update(net)  # the critic as the generator would next meet it (clipped, if clipping)
    net.eval()  # spectral norm: use the estimate as trained, without one more power iteration
    return net, history


def _values_and_grads(net, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import torch
    xt = torch.tensor(x, dtype=torch.float32).view(-1, 1).requires_grad_(True)
    y = net(xt)
    (grad,) = torch.autograd.grad(y.sum(), xt)
    return y.detach().numpy().astype(float), grad.view(-1).numpy().astype(float)


def _normal(x: np.ndarray, mu: float, sd: float) -> np.ndarray:
    return np.exp(-0.5 * ((x - mu) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))


def fig2_data(seed: int = 0, steps: int = FIG2["steps"], n_x: int = 601) -> tuple[pd.DataFrame, dict]:
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny nets: extra threads only cost synchronisation (50x slower on a busy 2-core box)
    try:
        with torch.random.fork_rng():
            gan, gan_hist = _train("gan", seed, steps)
            critics = {loss: _train(loss, seed, steps) for loss in CRITICS}
    finally:
        torch.set_num_threads(threads)
    x = np.linspace(-6, 6, n_x)
    logit, dlogit = _values_and_grads(gan, x)
    d = 1 / (1 + np.exp(-logit))
    pr, pf = _normal(x, *REAL), _normal(x, *FAKE)
    table = pd.DataFrame({"x": x, "p_real": pr, "p_fake": pf, "d_optimal": pr / np.maximum(pr + pf, 1e-300),
                          "gan_logit": logit, "gan_D": d, "gan_dD_dx": d * (1 - d) * dlogit})
    info = {"gan_final_d_loss": float(np.mean(gan_hist[-50:])), "steps": steps}
    for loss, (net, hist) in critics.items():
        table[f"{loss}_critic"], table[f"{loss}_dcritic_dx"] = _values_and_grads(net, x)
        info[f"{loss}_final_w_estimate"] = -float(np.mean(hist[-50:]))
    return table, info


def fig2_summary(df: pd.DataFrame) -> dict:
    """Numbers behind the sentence: gradients at the fake mode relative to each network's largest gradient,
    and how linear each critic is between the two modes (R^2 of a straight-line fit)."""
    at_fake = (df["x"] - FAKE[0]).abs().idxmin()
    rel = lambda col: float(abs(df[col][at_fake]) / max(df[col].abs().max(), 1e-300))  # noqa: E731
    span = df[(df["x"] >= FAKE[0] - 2 * FAKE[1]) & (df["x"] <= REAL[0] + 2 * REAL[1])]
    out = {"gan_grad_at_fake_rel": rel("gan_dD_dx"), "gan_D_at_fake": float(df["gan_D"][at_fake])}
    for loss in CRITICS:
        f = span[f"{loss}_critic"]
        coef = np.polyfit(span["x"], f, 1)
        resid, tot = f - np.polyval(coef, span["x"]), ((f - f.mean()) ** 2).sum()
        out[f"{loss}_grad_at_fake_rel"] = rel(f"{loss}_dcritic_dx")
        out[f"{loss}_linear_r2"] = float(1 - (resid ** 2).sum() / tot) if tot > 0 else math.nan
    out["critic_linear_r2"] = out["wgan_linear_r2"]  # the paper's critic (weight clipping)
    return out


def build_fig2(out_dir: Path, seed: int = 0, steps: int = FIG2["steps"]) -> tuple[Path, Path]:
    import matplotlib.pyplot as plt
    out_dir = Path(out_dir)
    df, info = fig2_data(seed, steps)
    s = fig2_summary(df)
    with style():
        fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.0), layout="constrained")
        peak = max(df["p_real"].max(), df["p_fake"].max())
        a.fill_between(df["x"], df["p_real"] / peak, color="green", alpha=0.2, label=f"real N{REAL}")
        a.fill_between(df["x"], df["p_fake"] / peak, color="grey", alpha=0.3, label=f"fake N{FAKE}")
        a.plot(df["x"], df["gan_D"], color=COLORS["gan"], lw=2, label="GAN discriminator D(x) = σ(logit)")
        a.plot(df["x"], df["d_optimal"], color="black", ls=":", lw=1, label="optimal D* = p_r / (p_r + p_g)")
        for loss in CRITICS:
            f = df[f"{loss}_critic"]
            a.plot(df["x"], (f - f.min()) / max(f.max() - f.min(), 1e-300), color=COLORS[loss], lw=2,
                   ls="-" if loss == "wgan" else "--", label=f"{LABELS[loss]} critic f(x), rescaled to [0, 1]")
        a.set(xlabel="x", ylabel="value (densities scaled to peak 1)", title="Values after training to convergence")
        a.legend(fontsize=7, loc="center left")
        tiny = 1e-12
        a_g = df["gan_dD_dx"].abs() / df["gan_dD_dx"].abs().max()
        b.semilogy(df["x"], a_g.clip(lower=tiny), color=COLORS["gan"], lw=2, label="|dD/dx|, GAN discriminator")
        for loss in CRITICS:
            a_w = df[f"{loss}_dcritic_dx"].abs() / df[f"{loss}_dcritic_dx"].abs().max()
            b.semilogy(df["x"], a_w.clip(lower=tiny), color=COLORS[loss], lw=2, ls="-" if loss == "wgan" else "--",
                       label=f"|df/dx|, {LABELS[loss]} critic")
        b.axvspan(FAKE[0] - 2 * FAKE[1], FAKE[0] + 2 * FAKE[1], color="grey", alpha=0.15, label="fake mass (±2 sd)")
        b.set(xlabel="x", ylabel="|gradient| / its maximum over x (log scale)", ylim=(tiny, 3),
              title="Gradients the generator would get")
        b.legend(fontsize=7, loc="lower right")
        fig.suptitle(f"Fig. 2 — GAN discriminator vs WGAN critic separating two 1-D Gaussians "
                     f"({steps} steps each, 4-layer ReLU MLP of width {FIG2['mlp_width']})\n"
                     f"at the fake mode, relative gradient: GAN {s['gan_grad_at_fake_rel']:.1e}, "
                     + ", ".join(f"{LABELS[c]} {s[c + '_grad_at_fake_rel']:.2f}" for c in CRITICS)
                     + "\ncritics' straight-line fit R² between the modes: "
                     + ", ".join(f"{LABELS[c]} {s[c + '_linear_r2']:.3f}" for c in CRITICS), fontsize=10)
        png = save_png(fig, out_dir / "fig2_discriminator_vs_critic.png")
    return png, save_csv(df, out_dir / "fig2_discriminator_vs_critic.csv")
