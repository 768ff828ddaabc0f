"""One test per attack trap of shared/PITFALLS.md (1-8); each fails if the attacks fell into it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import toyrobust as tr
from toyrobust.attacks import (
    carlini_wagner_l2,
    exact_attack,
    fgsm,
    on_manifold_attack,
    pgd,
    projection_attack,
)

NORMS = {"linf": (tr.Linf, 1.0), "l2": (tr.L2, 2.0), "l1": (tr.L1, math.inf)}



def _linear_module(w, b, scale=1.0, dtype=torch.float32, two_logits=False) -> torch.nn.Module:
    """``scale * (w.x + b)`` as one logit, or as the two logits ``(0, scale (w.x + b))``."""
    lin = torch.nn.Linear(len(w), 1).to(dtype)
    with torch.no_grad():
        lin.weight.copy_(scale * torch.tensor([w], dtype=dtype))
        lin.bias.fill_(scale * b)
    if not two_logits:
        return lin

    class Two(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lin

        def forward(self, x):
            z = self.lin(x)
            return torch.cat([torch.zeros_like(z), z], dim=1)

    return Two()


def _closed_form(mu, w, b, eps, q):
    wq, s, wm = np.linalg.norm(w, ord=q), np.linalg.norm(w), float(np.dot(w, mu))
    return 0.5 * stats.norm.sf((wm + b - eps * wq) / s) + 0.5 * stats.norm.sf((wm - b - eps * wq) / s)


def _ci(k, n):
    ci = stats.binomtest(int(k), int(n)).proportion_ci(0.999, method="exact")
    return ci.low, ci.high


# 1. saturated loss --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_1_saturated_logits_margin_loss_reaches_closed_form_while_ce_stalls(norm):
    mu, w, b = [1.0, 0.5, 0.2], [1.0, 0.8, 0.4], 0.1
    cls, q = NORMS[norm]
    eps = {"linf": 0.3, "l2": 0.6, "l1": 0.8}[norm]
    dist = tr.GaussianMixture(mu)
    x, y = dist.sample(8000, generator=21)  # float32
    net = _linear_module(w, b, scale=1e3)  # logits x 1e3: sigmoid(-y logit) underflows to exactly 0
    # the cross-entropy gradient is exactly zero for the confident points
    xg = x.clone().requires_grad_(True)
    ce = torch.nn.functional.softplus(-y * net(xg)[:, 0])
    (g,) = torch.autograd.grad(ce.sum(), xg)
    confident = (y * net(x)[:, 0]).detach() > 200
    assert confident.float().mean() > 0.5 and torch.all(g[confident] == 0)

    expected = _closed_form(mu, np.array(w), b, eps, q)
    default = pgd(net, x, y, cls(eps), steps=20, generator=0)  # margin loss by default
    lo, hi = _ci(default.success.sum(), len(y))
    assert lo <= expected <= hi
    stalled = pgd(net, x, y, cls(eps), steps=20, generator=0, loss="ce")
    assert stalled.success.float().mean() < expected - 0.05  # the trap, reproduced on purpose
    assert not stalled.success[confident & (stalled.norms > 0)].all()
    lo, hi = _ci(fgsm(net, x, y, cls(eps)).success.sum(), len(y))
    assert lo <= expected <= hi


# 2. L1 geometry: one step removes exactly eps * ||w||_q of a linear margin -----------------------------------


@settings(max_examples=30)
@given(norm=st.sampled_from(["linf", "l2", "l1"]), d=st.sampled_from([1, 2, 50]), seed=st.integers(0, 10_000),
       eps=st.floats(0.01, 1.0))
def test_2_one_step_margin_drop_is_eps_times_dual_norm(norm, d, seed, eps):
    cls, q = NORMS[norm]
    rng = np.random.default_rng(seed)
    w = rng.normal(size=d)
    clf = tr.Linear(w.tolist(), 0.3)
    x = torch.tensor(rng.normal(size=(16, d)))
    y = torch.tensor(rng.choice([-1, 1], size=16))
    res = fgsm(clf, x, y, cls(eps))
    drop = (y * (clf.margin(x) - clf.margin(res.x_adv))).numpy()
    np.testing.assert_allclose(drop, eps * np.linalg.norm(w, ord=q), rtol=1e-10)
    # the L1 step moves the single largest-|w| coordinate (not g / ||g||_1 rescaled)
    if norm == "l1" and d > 1:
        moved = (res.x_adv != x).sum(1)
        assert torch.all(moved == 1)
        assert torch.all((res.x_adv - x).abs().argmax(1) == int(np.argmax(np.abs(w))))


def test_2_l1_pgd_uses_exact_projection_and_reaches_the_vertex():
    w = np.array([0.2, -1.5, 0.7, 0.1])
    clf = tr.Linear(w.tolist(), 0.0)
    x = torch.tensor(np.random.default_rng(0).normal(size=(200, 4)))
    y = torch.where(clf.margin(x) >= 0, 1, -1)
    res = pgd(clf, x, y, tr.L1(0.5), steps=60, early_stop=False, generator=1)
    drop = (y * (clf.margin(x) - clf.margin(res.x_adv))).numpy()
    np.testing.assert_allclose(drop, 0.5 * 1.5, rtol=1e-3)  # eps ||w||_inf, not eps ||w||_2^2 / ||w||_1
    assert tr.L1(0.5).contains(res.x_adv, x).all()


# 3. L2 random start uniform in the ball: radius / eps ~ Beta(d, 1) -----------------------------------------


@pytest.mark.parametrize("d", [1, 2, 50])
@pytest.mark.parametrize("norm", ["l2", "l1", "linf"])
def test_3_random_start_is_uniform_in_the_ball(norm, d):
    cls, _ = NORMS[norm]
    eps = 0.7
    x = torch.zeros(4000, d, dtype=torch.float64)
    y = torch.ones(4000, dtype=torch.int64)
    clf = tr.Linear([1.0] * d, 100.0)  # never fooled: the only iterate, the start, is returned
    res = pgd(clf, x, y, cls(eps), steps=0, generator=3)
    assert not res.success.any()
    if norm == "linf":  # every coordinate uniform on [-eps, eps]
        assert stats.kstest(res.x_adv[:, 0].numpy(), stats.uniform(-eps, 2 * eps).cdf).pvalue > 1e-3
        return
    radius = (res.norms / eps).numpy()
    assert stats.kstest(radius, stats.beta(d, 1).cdf).pvalue > 1e-3
    if d > 1:  # the U(0, 1) radius law is rejected
        assert stats.kstest(radius, stats.uniform.cdf).pvalue < 1e-6


# 4. (N, d) shapes with d = 1, 2, 50: a batch attack equals attacking each row alone ------------------------


ATTACKS = {
    "fgsm": lambda c, x, y, t: fgsm(c, x, y, t),
    "pgd": lambda c, x, y, t: pgd(c, x, y, t, steps=5, random_start=False),
    "exact": lambda c, x, y, t: exact_attack(c, x, y, t),
    "cw": lambda c, x, y, t: carlini_wagner_l2(c, x, y, threat=t, steps=20, search_steps=3),
    "manifold": lambda c, x, y, t: on_manifold_attack(c, x, y, t, steps=5, random_start=False),
}


@pytest.mark.parametrize("d", [1, 2, 50])
@pytest.mark.parametrize("attack", sorted(ATTACKS))
@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_4_shapes_and_row_independence(attack, d, norm):
    cls, _ = NORMS[norm]
    rng = np.random.default_rng(d)
    clf = tr.Linear(rng.normal(size=d).tolist(), 0.1)
    x = torch.tensor(rng.normal(size=(7, d)))
    y = torch.tensor(rng.choice([-1, 1], size=7))
    threat = cls(0.8)
    res = ATTACKS[attack](clf, x, y, threat)
    assert res.x_adv.shape == (7, d) and res.success.shape == (7,) and res.norms.shape == (7,)
    assert res.success.dtype == torch.bool and res.x_adv.dtype == torch.float64
    for i in (0, 3, 6):
        one = ATTACKS[attack](clf, x[i : i + 1], y[i : i + 1], threat)
        assert torch.allclose(one.x_adv[0], res.x_adv[i], rtol=1e-9, atol=1e-12), (attack, i)
        assert bool(one.success[0]) == bool(res.success[i])


# 5. one logit vs its two-logit twin ------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["margin", "ce"])
@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_5_one_logit_and_two_logit_twins_have_the_same_robust_accuracy(loss, norm):
    cls, _ = NORMS[norm]
    with torch.random.fork_rng():  # test-local weights; the global RNG is left as it was
        torch.manual_seed(0)
        mlp = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1)).double()

    class Twin(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mlp = mlp

        def forward(self, x):
            z = self.mlp(x)
            return torch.cat([-z / 2, z / 2], dim=1)  # logit_+1 - logit_-1 = z

    x, y = tr.GaussianMixture([0.5] * 6).sample(1000, generator=2, dtype=torch.float64)
    one = pgd(mlp, x, y, cls(0.3), steps=10, loss=loss, generator=7)
    two = pgd(Twin(), x, y, cls(0.3), steps=10, loss=loss, generator=7)
    assert torch.equal(one.success, two.success)
    assert torch.allclose(one.x_adv, two.x_adv, atol=1e-12)
    assert 0.05 < one.success.double().mean() < 0.95


# 6. failed attacks return a point of the ball, judged on that point ------------------------------------------


@pytest.mark.parametrize("attack", ["fgsm", "pgd", "exact", "cw", "projection", "manifold"])
def test_6_failed_attacks_return_points_in_the_ball_marked_failed(attack):
    dist = tr.GaussianMixture([3.0, 2.0, 0.0])
    clf = tr.Linear([1.0, 1.0, 0.5], 0.0)
    x, y = dist.sample(300, generator=8, dtype=torch.float64)
    threat = tr.L2(0.05)
    run = {
        "fgsm": lambda: fgsm(clf, x, y, threat),
        "pgd": lambda: pgd(clf, x, y, threat, generator=0),
        "exact": lambda: exact_attack(clf, x, y, threat),
        "cw": lambda: carlini_wagner_l2(clf, x, y, threat=threat, steps=30, search_steps=4),
        "projection": lambda: projection_attack(clf, x, y, threat, dist=dist, generator=0, steps=20),
        "manifold": lambda: on_manifold_attack(clf, x, y, threat, generator=0, steps=20),
    }[attack]
    res = run()
    robust = clf.margin(x) * y > 0.2 * math.sqrt(2.25)  # farther than 4 eps from the boundary
    assert robust.sum() > 200
    assert not res.success[robust].any()
    assert threat.contains(res.x_adv, x).all()
    assert not torch.all(res.x_adv == 0)
    definition = "projection" if attack == "projection" else "ball"
    assert torch.equal(res.success, tr.is_adversarial(definition, clf, res.x_adv, y, dist=dist))
    if attack in ("pgd", "fgsm", "exact"):  # it really moved: the failed point is the ball's worst case
        assert torch.all(res.norms[robust] > 0.99 * 0.05)


# 7. side effects ----------------------------------------------------------------------------------------------


class _Net(torch.nn.Module):
    def __init__(self, dtype):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Dropout(0.5))
        self.head = torch.nn.Linear(16, 1)
        self.to(dtype)

    def forward(self, x):
        return self.head(self.body(x))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("attack", ["fgsm", "pgd", "cw", "projection", "manifold", "pgd-no-generator"])
def test_7_no_side_effects(attack, dtype):
    gen = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = _Net(dtype)
    net.train()
    net.body[2].eval()  # a submodule in its own mode: restored individually
    net.head.weight.requires_grad_(False)
    net.body[0].weight.grad = torch.full_like(net.body[0].weight, 7.0)
    dist = tr.GaussianMixture([1.0, 0.0, -1.0, 0.5])
    x, y = dist.sample(64, generator=gen, dtype=dtype)
    state = torch.get_rng_state()
    run = {
        "fgsm": lambda: fgsm(net, x, y, tr.Linf(0.3)),
        "pgd": lambda: pgd(net, x, y, tr.L2(0.5), generator=1, steps=5),
        "pgd-no-generator": lambda: pgd(net, x, y, tr.L1(0.5), steps=5),
        "cw": lambda: carlini_wagner_l2(net, x, y, steps=5, search_steps=2),
        "projection": lambda: projection_attack(net, x, y, tr.L2(0.5), dist=dist, generator=1, steps=5),
        "manifold": lambda: on_manifold_attack(net, x, y, tr.L2(0.5), generator=1, steps=5),
    }[attack]
    a = run()
    assert torch.equal(torch.get_rng_state(), state)
    assert net.training and net.body.training and net.body[0].training and not net.body[2].training
    assert net.body[0].weight.grad is not None and torch.all(net.body[0].weight.grad == 7.0)
    assert net.body[0].bias.grad is None and net.head.bias.grad is None and net.head.weight.grad is None
    assert not net.head.weight.requires_grad and net.body[0].weight.requires_grad
    assert a.x_adv.dtype == dtype and a.norms.dtype == dtype and x.dtype == dtype
    if attack != "pgd-no-generator":  # dropout is off during the attack: same inputs, same result
        b = run()
        assert torch.equal(a.x_adv, b.x_adv)


# 8. label-changing "adversarial examples" on the spheres ---------------------------------------------------


def test_8_unit_sphere_projection_changes_labels_and_is_rejected_while_on_manifold_keeps_radius():
    dist = tr.ConcentricSpheres(20, 1.0, 1.3)
    x, y = dist.sample(400, generator=4, dtype=torch.float64)
    bayes = dist.bayes_classifier()
    threat = tr.L2(0.35)

    # the trap, written out: PGD whose iterates are projected onto the *unit* sphere
    def naive(clf, x, y, steps=10, alpha=0.1):
        z = x.clone()
        for _ in range(steps):
            zg = z.requires_grad_(True)
            (g,) = torch.autograd.grad((-y * clf.margin(zg)).sum(), zg)
            z = threat.project(z.detach() + alpha * g / g.norm(dim=1, keepdim=True), x)
            z = z / z.norm(dim=1, keepdim=True)
        return threat.project(z, x)

    z = naive(bayes, x, y)
    outer = y == 1
    assert torch.allclose(z[outer].norm(dim=1), torch.ones(int(outer.sum()), dtype=torch.float64))
    assert tr.is_adversarial("ball", bayes, z, y)[outer].all()  # "fools" the perfect classifier...
    assert not tr.is_adversarial("projection", bayes, z, y, dist=dist).any()  # ...by changing the true label

    on = on_manifold_attack(bayes, x, y, threat, generator=0, steps=20)
    assert torch.allclose(on.x_adv.norm(dim=1), x.norm(dim=1), rtol=1e-12, atol=0)
    assert not on.success.any()
    proj = projection_attack(bayes, x, y, threat, dist=dist, generator=0, steps=20)
    assert not proj.success.any()
    # against an imperfect classifier both still find label-preserving adversarial examples
    bad = tr.Radial(1.25)
    on_bad = on_manifold_attack(bad, x, y, tr.L2(0.35), generator=0, steps=20)
    proj_bad = projection_attack(bad, x, y, threat, dist=dist, generator=0, steps=20)
    assert not on_bad.success.any()  # radius kept: Radial(1.25) stays right on both spheres
    assert proj_bad.success[outer].all() and not proj_bad.success[~outer].any()
    assert torch.all(proj_bad.x_adv[outer].norm(dim=1) >= dist.r_mid)
