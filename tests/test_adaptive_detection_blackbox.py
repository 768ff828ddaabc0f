"""Odds-are-odd detection, black-box attacks and the adaptive-evaluation table, checked against exact laws
(beta-binomial false-positive counts, closed-form curvature statistics, the covariance of the Gaussian
finite-difference estimator, autograd gradients, counted queries)."""

import argparse
import json
import math

import pytest
import scipy.stats
import torch
from torch import nn

import toyrobust as tr
from toyrobust.attacks.blackbox import blackbox_pgd, finite_difference_gradient
from toyrobust.defenses import (
    DEFENSES,
    IMPOSSIBLE,
    SETTINGS,
    AttackSpec,
    Defense,
    OddsAreOdd,
    Setting,
    detector_aware_pgd,
    evaluate_defenses,
    format_table,
    register_defense,
    register_setting,
    to_json,
)
from toyrobust.defenses import evaluate as ev
from toyrobust.montecarlo import clopper_pearson
from toyrobust.rng import make_generator
from toyrobust.transfer import transfer_attack

D20 = tr.GaussianMixture.robust_nonrobust(20)


def _mlp():
    return tr.MLP(20, (32,), seed=0, dtype=torch.float64)  # untrained: a generic nonlinear margin


# ------------------------------------------------------------------------------------------------ odds-are-odd

def test_odds_are_odd_false_positive_rate_on_fresh_clean_points():
    """The conformal threshold flags a fresh clean point with probability Beta(n + 1 - r, r) (r the rank), so
    the fresh count is beta-binomial (scipy): the count lies in its central 0.999 interval; and with n = 10^5
    fitting points the level 0.05 lies in the count's exact 0.999 Clopper-Pearson interval."""
    fpr, m = 0.05, 20_000
    for n_fit in (2_000, 100_000):
        det = OddsAreOdd(_mlp(), sigma=0.5, n_noise=8, fpr=fpr, generator=0)
        x_fit, _ = D20.sample(n_fit, generator=make_generator(1), dtype=torch.float64)
        det.fit(x_fit)
        x_new, _ = D20.sample(m, generator=make_generator(2), dtype=torch.float64)
        k = int(det.detect(x_new).sum())
        r = math.ceil((n_fit + 1) * (1 - fpr))
        law = scipy.stats.betabinom(m, n_fit + 1 - r, r)
        assert law.ppf(0.0005) <= k <= law.ppf(0.9995)
        if n_fit == 100_000:
            lo, hi = clopper_pearson(k, m, 0.999)
            assert lo <= fpr <= hi


def test_odds_are_odd_statistic_is_the_curvature_for_a_quadratic():
    """For m(x) = ||x||^2 - c, E m(x + s u) - m(x) = d s^2 exactly, so E g(x) = -t d s^2 (t the prediction)."""
    def quad(z):
        return (z * z).sum(dim=1) - 4.0

    d, s, k = 3, 0.4, 50_000
    det = OddsAreOdd(quad, sigma=s, n_noise=k, fpr=0.1, generator=0)
    x = torch.tensor([[3.0, 0.0, 0.0], [0.5, 0.5, 0.0]], dtype=torch.float64)  # outside (+1), inside (-1)
    g = det.statistic(x)
    sq = (x * x).sum(dim=1)
    sd = torch.sqrt(4 * s * s * sq + 2 * d * s**4) / math.sqrt(k)
    assert ((g - torch.tensor([-d * s * s, d * s * s])).abs() <= 4.5 * sd).all()


def test_detector_plus_classifier_errors_and_detector_aware_attack():
    # quadratic classifier: points predicted -1 are flagged (g = +d s^2 > tau), +1 never; an attack pushing
    # inside-class points outward is caught only when it lands inside, the aware attack avoids that
    def quad(z):
        return (z * z).sum(dim=1) - 1.0

    det = OddsAreOdd(quad, sigma=0.3, n_noise=16, fpr=0.1, generator=0)
    x_fit = torch.randn(500, 2, generator=make_generator(1), dtype=torch.float64) * 2
    det.fit(x_fit)
    x = torch.tensor([[0.2, 0.0], [2.0, 0.0], [0.0, 1.1]], dtype=torch.float64)
    y = torch.tensor([1, 1, 1])
    flags = det.detect(x, generator=3)
    errors = det.errors(x, y, generator=3)
    assert torch.equal(errors, (det.predict(x) != y) & ~flags)
    threat = tr.L2(0.5)
    res = detector_aware_pgd(det, x, y, threat, lam=10.0, steps=20, generator=0)
    assert bool(threat.contains(res.x_adv, x).all())
    assert bool((res.success <= (det.predict(res.x_adv) != y)).all())


@pytest.mark.parametrize("kw, name", [({"sigma": 0.0}, "sigma"), ({"sigma": -1.0}, "sigma"),
                                      ({"fpr": 0.0}, "fpr"), ({"fpr": 1.0}, "fpr"), ({"fpr": 1.5}, "fpr"),
                                      ({"n_noise": 0}, "n_noise")])
def test_odds_are_odd_bad_input(kw, name):
    with pytest.raises(ValueError, match=name):
        OddsAreOdd(_mlp(), **kw)


def test_odds_are_odd_bad_use():
    det = OddsAreOdd(_mlp(), fpr=0.05)
    with pytest.raises(RuntimeError, match="fit"):
        det.detect(torch.zeros(3, 20, dtype=torch.float64))
    with pytest.raises(ValueError, match="x_clean"):
        det.fit(torch.zeros(10, 20, dtype=torch.float64))  # 19 points are needed for fpr = 0.05
    with pytest.raises(ValueError, match="shape"):
        det.statistic(torch.zeros(20, dtype=torch.float64))


# ------------------------------------------------------------------------------------------------ finite differences

def test_finite_differences_on_a_linear_model():
    """Coordinates: exact for any step. Gaussian directions: E||g_hat - w||^2 = ||w||^2 (d + 1) / n, checked on
    500 independent estimates for n = 10, 100, 1000 (the error falls as 1/n)."""
    d = 20
    model = tr.LinearModel.from_weights(torch.linspace(-1, 2, d), 0.3, dtype=torch.float64)
    w = model.weight.detach()
    x = torch.randn(500, d, generator=make_generator(0), dtype=torch.float64)
    for h in (1.0, 1e-3):
        g, q = finite_difference_gradient(model, x[:5], n_directions=d, step=h, directions="coordinate")
        assert q == 2 * d
        torch.testing.assert_close(g, w.expand(5, d), rtol=1e-7, atol=1e-7)
    errs = []
    for n in (10, 100, 1000):
        g, q = finite_difference_gradient(model, x, n_directions=n, step=1e-2, generator=n)
        assert q == 2 * n
        mse = float(((g - w) ** 2).sum(dim=1).mean())
        assert mse == pytest.approx(float(w @ w) * (d + 1) / n, rel=0.1)
        errs.append(mse)
    assert errs[0] > errs[1] > errs[2]


def test_finite_differences_converge_as_the_step_shrinks():
    """On a smooth nonlinear network the central difference error falls like h^2 (autograd as reference)."""
    net = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 1)).to(torch.float64)
    gen = make_generator(0)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64))

    def score(z):
        return net(z)[:, 0]

    x = torch.randn(8, 5, generator=make_generator(1), dtype=torch.float64)
    xg = x.clone().requires_grad_(True)
    true = torch.autograd.grad(score(xg).sum(), xg)[0]
    errs = [float((finite_difference_gradient(score, x, n_directions=5, step=h, directions="coordinate")[0]
                   - true).abs().max()) for h in (1e-1, 1e-2, 1e-3)]
    assert 30 < errs[0] / errs[1] < 300 and 30 < errs[1] / errs[2] < 300


class _Counting(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.rows = 0

    def forward(self, x):
        self.rows += x.shape[0]
        return self.inner(x)


def test_blackbox_pgd_counts_every_query_and_respects_the_budget():
    dist = tr.GaussianMixture([1.0, 0.5, -0.5])
    model = tr.LinearModel.from_weights([1.0, 0.5, -0.5], 0.0)
    counting = _Counting(model)
    x, y = dist.sample(300, generator=make_generator(0))
    threat = tr.Linf(0.6)
    budget, n_dir = 100, 3
    res, used = blackbox_pgd(counting, x, y, threat, queries=budget, n_directions=n_dir, generator=0)
    assert int(used.sum()) == counting.rows - x.shape[0]  # the final check (x.shape[0] rows) is not the attacker's
    assert int(used.max()) <= budget
    steps = (budget - 1) // (2 * n_dir + 1)
    assert bool((used[~res.success] == 1 + steps * (2 * n_dir + 1)).all())
    assert bool(threat.contains(res.x_adv, x).all())
    assert torch.equal(res.success, model.classifier().predict(res.x_adv) != y)
    # a linear model in Linf: the exact attack lowers the margin by eps ||w||_1; black-box PGD gets close
    exact = tr.risk(dist, model.twin(), threat)
    assert float(res.success.float().mean()) >= float(exact) - 0.1
    res0, used0 = blackbox_pgd(model, x, y, threat, queries=0)
    assert int(used0.sum()) == 0 and torch.equal(res0.x_adv, x)


@pytest.mark.parametrize("kw, name", [({"queries": -1}, "queries"), ({"fd_step": 0.0}, "fd_step"),
                                      ({"n_directions": 0}, "n_directions"), ({"directions": "sobol"}, "directions")])
def test_blackbox_bad_input(kw, name):
    model = tr.LinearModel.from_weights([1.0, 0.5], 0.0)
    x, y = torch.zeros(4, 2), torch.ones(4, dtype=torch.int64)
    with pytest.raises((ValueError, TypeError), match=name):
        blackbox_pgd(model, x, y, tr.Linf(0.1), **kw)
    with pytest.raises(ValueError, match="shape"):
        blackbox_pgd(model, x[0], y, tr.Linf(0.1))
    with pytest.raises(ValueError, match="step"):
        finite_difference_gradient(model, x, step=-1.0)


def test_transfer_attack_reports_its_interval():
    dist = tr.GaussianMixture.robust_nonrobust(20)
    victim = tr.LinearModel.from_weights(dist.mean.to_tensor(), 0.0)
    x, y = dist.sample(500, generator=make_generator(0))
    out = transfer_attack(victim, dist, x, y, tr.Linf(0.3), label_queries=1000, train_steps=200, seed=0)
    k, n = int(((out.result.success) & out.clean_correct).sum()), int(out.clean_correct.sum())
    ci = scipy.stats.binomtest(k, n).proportion_ci(0.95, method="exact")
    assert out.transfer_rate == k / n
    assert out.ci_low == pytest.approx(ci.low, abs=1e-9) and out.ci_high == pytest.approx(ci.high, abs=1e-9)
    assert torch.equal(out.result.success, victim.classifier().predict(out.result.x_adv) != y)
    assert out.agreement > 0.9 and out.label_queries == 1000
    # the substitute learned the victim well: the transfer achieves most of the exact white-box risk
    assert out.adversarial_risk > 0.5 * float(tr.risk(dist, victim.twin(), tr.Linf(0.3)))


# ------------------------------------------------------------------------------------------------ evaluation table

def _no_errors(defended, x, y, threat, config):
    return torch.zeros(x.shape[0], dtype=torch.bool)


def _exact_errors(defended, x, y, threat, config):
    res = tr.attacks.exact_attack(defended.twin(), x, y, threat)
    return res.success | (defended.twin().predict(x) != y)


def test_table_flags_an_impossible_risk_and_takes_registered_rows():
    dist = tr.GaussianMixture([1.0, 1.0])
    threat = tr.L2(0.5)

    def build(d, t, config):
        return tr.LinearModel.from_weights([1.0, 1.0], 0.0)

    register_setting(Setting("test-2d", lambda quick: (dist, threat)))
    register_defense(Defense("test-linear", build, naive=AttackSpec("nothing", _no_errors),
                             adaptive=AttackSpec("exact", _exact_errors),
                             extras=lambda *a: {"certified": 0.5}))
    try:
        with pytest.raises(ValueError, match="already"):
            register_defense(DEFENSES["test-linear"])
        rows = evaluate_defenses(defenses=["test-linear"], settings=["test-2d"],
                                 config=ev.EvalConfig(n=2000, seed=0))
    finally:
        DEFENSES.pop("test-linear")
        SETTINGS.pop("test-2d")
    (row,) = rows
    opt = float(tr.optimal_risk(dist, threat))  # Q(sqrt(2) - 0.5), reached by this very classifier
    assert row.optimal == pytest.approx(scipy.stats.norm.sf(math.sqrt(2) - 0.5))
    assert row.naive_risk == 0 and row.naive_verdict == IMPOSSIBLE
    assert row.adaptive_verdict == "ok" and row.adaptive_low <= opt <= row.adaptive_high
    assert row.false_security
    text = format_table(rows)
    assert IMPOSSIBLE in text and "certified" in text
    data = json.loads(to_json(rows))
    assert data[0]["naive_verdict"] == IMPOSSIBLE and data[0]["extras"] == {"certified": 0.5}


def test_defend_command_bad_input():
    from toyrobust.cli import UsageError

    parser = argparse.ArgumentParser()
    ev.add_parser(parser.add_subparsers())
    for argv in (["defend", "--n", "0"], ["defend", "--level", "1.5"], ["defend", "--seed", "-1"],
                 ["defend", "--device", "tpu"]):
        args = parser.parse_args(argv)
        with pytest.raises(UsageError, match=argv[1]):
            args.func(args)


def test_detection_rate_and_combined_risk_intervals():
    det = OddsAreOdd(_mlp(), sigma=0.5, n_noise=4, fpr=0.1, generator=0)
    x, y = D20.sample(400, generator=make_generator(1), dtype=torch.float64)
    det.fit(x)
    mask = torch.arange(400) % 2 == 0
    rate, lo, hi = det.detection_rate(x, mask, generator=7)
    k = int(det.detect(x, generator=7)[mask].sum())
    ci = scipy.stats.binomtest(k, 200).proportion_ci(0.95, method="exact")
    assert rate == k / 200 and lo == pytest.approx(ci.low) and hi == pytest.approx(ci.high)
    risk, lo, hi = det.combined_risk(x, y, generator=8)
    assert risk == float(det.errors(x, y, generator=8).double().mean()) and lo <= risk <= hi
    with pytest.raises(ValueError, match="mask"):
        det.detection_rate(x, torch.ones(3, dtype=torch.bool))


@pytest.mark.parametrize("d", [1, 2, 50])
def test_blackbox_and_detector_attacks_on_any_width_and_two_logits(d):
    """(N, d) batches of every width; a two-logit twin gets the same black-box result as the one-logit model."""
    w = torch.linspace(1.0, 2.0, d, dtype=torch.float64)
    one = tr.LinearModel.from_weights(w, 0.1, dtype=torch.float64)

    class TwoLogits(nn.Module):
        def forward(self, x):
            m = one(x)
            return torch.stack([-m / 2, m / 2], dim=1)

    x = torch.randn(6, d, generator=make_generator(0), dtype=torch.float64)
    y = torch.tensor([1, -1, 1, -1, 1, -1])
    threat = tr.Linf(0.5)
    r1, u1 = blackbox_pgd(one, x, y, threat, queries=50, n_directions=2, generator=3)
    r2, u2 = blackbox_pgd(TwoLogits(), x, y, threat, queries=50, n_directions=2, generator=3)
    assert r1.x_adv.shape == (6, d) and torch.equal(u1, u2) and torch.equal(r1.success, r2.success)
    torch.testing.assert_close(r1.x_adv, r2.x_adv)
    x_fit = torch.randn(20, d, generator=make_generator(1), dtype=torch.float64)
    det = OddsAreOdd(TwoLogits(), sigma=0.3, n_noise=4, fpr=0.2, generator=0).fit(x_fit)
    res = detector_aware_pgd(det, x, y, threat, steps=3, generator=0)
    assert res.x_adv.shape == (6, d) and bool(threat.contains(res.x_adv, x).all())


@pytest.mark.slow
def test_defend_quick_table_under_a_minute():
    import time

    start = time.perf_counter()
    rows = evaluate_defenses(config=ev.EvalConfig(quick=True, n=1000, seed=0))
    assert time.perf_counter() - start < 60
    kwta = [r for r in rows if r.defense == "k-WTA MLP" and r.setting.startswith("robust")]
    assert kwta[0].naive_verdict == IMPOSSIBLE and kwta[0].adaptive_verdict == "ok" and kwta[0].false_security
    assert all(r.adaptive_verdict == "ok" for r in rows)
