import math

import torch

from lightning_modules.losses import minimax_loss, non_saturating_loss, wasserstein_loss, js_estimate, w_estimate
from lightning_modules.algos.wgan import critic_schedule

D_REAL = torch.tensor([2.0, -1.0])
D_FAKE = torch.tensor([0.5, -3.0])


def sp(x):  # softplus by hand
    return math.log1p(math.exp(x))


def test_gan_losses_match_hand_computed_values():
    real = (sp(-2.0) + sp(1.0)) / 2          # -log sigmoid(d_real)
    fake = (sp(0.5) + sp(-3.0)) / 2          # -log(1 - sigmoid(d_fake))
    ns = non_saturating_loss(D_REAL, D_FAKE)
    assert math.isclose(ns.d_loss_real.item(), real, rel_tol=1e-6)
    assert math.isclose(ns.d_loss_fake.item(), fake, rel_tol=1e-6)
    assert math.isclose(ns.d_loss.item(), real + fake, rel_tol=1e-6)
    assert math.isclose(ns.g_loss.item(), (sp(-0.5) + sp(3.0)) / 2, rel_tol=1e-6)  # -log D(G(z))
    mm = minimax_loss(D_REAL, D_FAKE)
    assert math.isclose(mm.g_loss.item(), -fake, rel_tol=1e-6)                     # log(1 - D(G(z)))
    assert math.isclose(js_estimate(ns.d_loss).item(), math.log(2) - (real + fake) / 2, rel_tol=1e-6)


def test_gan_loss_is_stable_where_sigmoid_saturates():
    t = non_saturating_loss(torch.tensor([200.0]), torch.tensor([-200.0]))
    assert t.d_loss.item() == 0.0 and math.isclose(t.g_loss.item(), 200.0)


def test_wasserstein_loss_matches_hand_computed_values():
    t = wasserstein_loss(D_REAL, D_FAKE)
    assert math.isclose(t.d_loss.item(), (0.5 - 3.0) / 2 - (2.0 - 1.0) / 2)
    assert math.isclose(t.g_loss.item(), -(0.5 - 3.0) / 2)
    assert math.isclose(w_estimate(t.d_loss).item(), 0.5 - (-1.25))


def test_critic_schedule_is_the_reference_codes():
    assert sum(critic_schedule(i, 5, True) for i in range(30)) == 2525
    assert sum(critic_schedule(i, 5, False) for i in range(30)) == 150
    assert critic_schedule(500, 5, True) == 100 and critic_schedule(501, 5, True) == 5
