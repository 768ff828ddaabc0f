"""Schmidt et al.'s Bernoulli model: sampling law, support, Bayes rule, and exact closed forms checked independently.

The closed forms (binomial tails with floor/ceiling ends, log space) are checked against a brute-force sum over every
value of K ~ Binomial(d, q) of scipy.stats.binom's pmf with the definitions' events evaluated directly on the margin,
against mpmath at 50 digits in the far tail, and against Monte Carlo with exact attacks.
"""

import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import sympy
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import toyrobust as tr
from toyrobust.cli import main
from toyrobust.risks.bernoulli import log_binomial_interval

DEFS = tr.DEFINITIONS


def _brute(d, tau, c, b, delta, definition):
    """Sum of pmf(K) * [event] over K = 0..d with each class's event evaluated on the margin m = c y S + b."""
    q = (1 + tau) / 2
    total = 0.0
    for k in range(d + 1):
        s = 2 * k - d
        p = stats.binom.pmf(k, d, q)
        for y in (1, -1):
            m = c * y * s + b
            bayes = 1 if y * s >= 0 else -1
            lowest, highest = m - delta, m + delta  # the margins reachable in the ball
            wrong_for = {1: lowest < 0, -1: highest >= 0}  # some x' is classified as not-this-label
            if definition == "ball":
                event = wrong_for[y]
            elif definition == "projection":
                event = wrong_for[y] and bayes == y
            elif definition == "error-region":
                event = wrong_for[bayes]
            else:
                clean = 1 if m >= 0 else -1
                event = wrong_for[clean]
            total += 0.5 * p * event
    return total


def _dual(threat, d):
    return {"Linf": d, "L2": math.sqrt(d), "L1": 1}[type(threat).__name__]


@settings(max_examples=60, deadline=None)
@given(d=st.integers(1, 30), tau=st.floats(0.05, 0.95), c=st.floats(0.2, 3.0), b=st.floats(-4, 4),
       norm=st.sampled_from(["Linf", "L2", "L1"]), eps=st.floats(0.0, 0.99), definition=st.sampled_from(DEFS),
       flips=st.lists(st.booleans(), min_size=30, max_size=30))
def test_closed_forms_equal_the_brute_force_binomial_sum(d, tau, c, b, norm, eps, definition, flips):
    theta = [-1 if f else 1 for f in flips[:d]]
    dist = tr.BernoulliModel(d, tau, theta)
    clf = tr.Linear([c * t for t in theta], b)
    threat = getattr(tr, norm)(eps)
    got = float(tr.risk(dist, clf, threat, definition))
    assert got == pytest.approx(_brute(d, tau, c, b, eps * c * _dual(threat, d), definition), abs=1e-12)


@pytest.mark.parametrize("definition", DEFS)
def test_standard_risk_at_no_threat(definition):
    dist, clf = tr.BernoulliModel(11, 0.3), tr.Linear([1.0] * 11, 0.5)
    assert float(tr.risk(dist, clf, None, definition)) == pytest.approx(_brute(11, 0.3, 1.0, 0.5, 0.0, definition),
                                                                        abs=1e-14)


def test_restricted_coordinates_use_the_restricted_dual_norm():
    dist, clf = tr.BernoulliModel(9, 0.4), tr.Linear([2.0] * 9, 1.0)
    got = float(tr.risk(dist, clf, tr.Linf(0.3, coords=(0, 3, 5))))
    assert got == pytest.approx(_brute(9, 0.4, 2.0, 1.0, 0.3 * 2.0 * 3, "ball"), abs=1e-14)


def test_far_tail_matches_mpmath_at_50_digits():
    d, tau = 4000, 0.9
    dist = tr.BernoulliModel(d, tau)
    r = tr.risk(dist, dist.bayes_classifier(), tr.Linf(0.2))
    q = mpmath.mpf(1 + mpmath.mpf("0.9")) / 2
    with mpmath.workdps(50):
        # exact on the stored numbers (toyrobust.risks.bernoulli): eps = 0.2 is the double 0.20000000000000001110,
        # so eps d = 800.0000000000000444 > 800 and the level S = 800 (K = 2400) is no tie: y = +1 errs iff
        # S < eps d, i.e. K <= 2400, and y = -1 iff S <= eps d, i.e. K <= 2400
        assert Fraction(0.2) * d > 800
        lower = mpmath.fsum(mpmath.binomial(d, k) * q**k * (1 - q) ** (d - k) for k in range(0, 2400))
        at = mpmath.binomial(d, 2400) * q**2400 * (1 - q) ** 1600
        ref = lower + at
    assert r.value < 1e-300 or r.value == pytest.approx(float(ref), rel=1e-10)
    assert r.log_value == pytest.approx(float(mpmath.log(ref)), rel=1e-12)


def test_log_binomial_interval_against_scipy_in_the_bulk_and_mpmath_in_the_tails():
    for lo, hi, n, q in [(3, 7, 10, 0.4), (0, 50, 100, 0.7), (60, 100, 100, 0.5), (0, 5, 10**6, 0.6)]:
        ref = stats.binom.cdf(hi, n, q) - stats.binom.cdf(lo - 1, n, q)
        if ref > 1e-200:
            assert math.exp(log_binomial_interval(lo, hi, n, q)) == pytest.approx(ref, rel=1e-9)
        else:
            with mpmath.workdps(40):
                qq = mpmath.mpf(q)
                exact = mpmath.fsum(mpmath.binomial(n, k) * qq**k * (1 - qq) ** (n - k) for k in range(lo, hi + 1))
            assert log_binomial_interval(lo, hi, n, q) == pytest.approx(float(mpmath.log(exact)), rel=1e-10)
    assert log_binomial_interval(5, 4, 10, 0.3) == -math.inf
    assert log_binomial_interval(-math.inf, math.inf, 10, 0.3) == 0.0


def test_symbolic_route_equals_numeric_route():
    d, tau, eps = sympy.Symbol("d", integer=True, positive=True), sympy.Symbol("tau", positive=True), \
        sympy.Symbol("eps", positive=True)
    sym = tr.BernoulliModel(d, tau)
    expr = tr.risk(sym, sym.bayes_classifier(), tr.L2(eps)).expr
    assert expr.free_symbols == {d, tau, eps}
    num = tr.BernoulliModel(51, 0.3)
    value = float(tr.risk(num, num.bayes_classifier(), tr.L2(0.4)))
    assert float(expr.subs({d: 51, tau: sympy.Rational(3, 10), eps: sympy.Rational(2, 5)}).evalf(30)) == \
        pytest.approx(value, rel=1e-12)
    f = tr.risk_function(sym, sym.bayes_classifier(), tr.L2(eps))
    assert f(51, 0.4, 0.3) == pytest.approx(value, rel=1e-12)


def test_monte_carlo_with_the_exact_attack_agrees():
    dist = tr.BernoulliModel(25, 0.2)
    clf = tr.Linear([1.0] * 25, 2.0)
    for threat in (None, tr.Linf(0.1), tr.L2(0.5), tr.L1(0.9)):
        exact = float(tr.risk(dist, clf, threat))
        est = tr.estimate_risk(dist, clf, threat, n=20_000, seed=3, level=0.999, dtype=torch.float64)
        assert est.ci_low <= exact <= est.ci_high, (threat, exact, est)


def test_sampling_law_support_and_projection():
    theta = [1, -1, 1, -1, -1]
    dist = tr.BernoulliModel(5, 0.4, theta)
    x, y = dist.sample(20_000, generator=1, dtype=torch.float64)
    assert bool(dist.support.contains(x).all())
    agree = int((x == y[:, None] * torch.tensor(theta, dtype=torch.float64)).sum())
    assert stats.binomtest(agree, x.numel(), 0.7).pvalue > 1e-4
    assert stats.binomtest(int((y == 1).sum()), 20_000, 0.5).pvalue > 1e-4
    z = torch.tensor([[0.0, -0.2, 3.0, -1e-9, 0.5]], dtype=torch.float64)
    assert dist.project(z).tolist() == [[1.0, -1.0, 1.0, -1.0, 1.0]]  # 0 -> +1
    assert torch.isnan(dist.project(torch.full((1, 5), math.nan))).all()  # NaN is not silently a vertex
    assert torch.equal(dist.project(dist.project(z)), dist.project(z))


def test_bayes_rule_is_the_argmax_posterior_and_the_symbolic_log_odds():
    dist = tr.BernoulliModel(4, 0.6, [1, -1, 1, 1])
    verts = torch.tensor(np.array(np.meshgrid(*[[-1.0, 1.0]] * 4)).reshape(4, -1).T.copy())
    post = dist.posterior(verts)
    for label in (1, -1):  # a probability law on the 16 vertices for each class
        lp = dist.log_likelihood(verts, label)
        assert torch.allclose(torch.logsumexp(lp, 0), torch.zeros((), dtype=lp.dtype), atol=1e-12)
    expected = torch.where(post >= 0.5, 1, -1)
    assert torch.equal(dist.bayes_label(verts), expected)
    pt = sympy.symbols("x1:5")
    f = sympy.lambdify(pt, dist.log_odds_expr(list(pt)))
    for v, lo in zip(verts.tolist(), dist.log_odds(verts).tolist(), strict=True):
        assert f(*v) == pytest.approx(lo, abs=1e-12)
    assert torch.isnan(dist.log_odds(torch.full((1, 4), 0.5, dtype=torch.float64))).all()


def test_label_invariant_radius_is_one():
    dist = tr.BernoulliModel(7, 0.3)
    for norm in ("linf", "l2", "l1", tr.L2(0.1, coords=(2, 3))):
        assert tr.bounds.label_invariant_radius(dist, norm) == 1
    # just below 1 no coordinate of a vertex reaches 0, at 1 one does (and 0 rounds to +1)
    x = torch.tensor([[-1.0, -1.0, -1.0, -1.0, 1.0, 1.0, 1.0]], dtype=torch.float64)  # <theta, x> = -1
    moved = x.clone()
    moved[0, 0] += 1.0
    assert dist.bayes_label(dist.project(x)).item() == -1 and dist.bayes_label(dist.project(moved)).item() == 1
    assert dist.bayes_label(dist.project(x + torch.tensor([[0.999, 0, 0, 0, 0, 0, 0]]))).item() == -1


def test_unsupported_queries_say_so():
    dist = tr.BernoulliModel(5, 0.3)
    with pytest.raises(NotImplementedError, match="c theta"):
        tr.risk(dist, tr.Linear([1.0, -1.0, 1.0, 1.0, 1.0]), tr.Linf(0.1))
    with pytest.raises(NotImplementedError, match="eps < 1"):
        tr.risk(dist, dist.bayes_classifier(), tr.Linf(1.0), "projection")


def test_command_line_knows_it_without_edits(capsys):
    assert main(["describe", "bernoulli", "--param", "d=3", "--param", "tau=0.5"]) == 0
    assert "{-1, 1}^3" in capsys.readouterr().out
    assert main(["risk", "bernoulli", "--param", "d=21", "--param", "tau=0.2", "--threat", "l2:0.3", "--json"]) == 0
    assert '"value"' in capsys.readouterr().out
    assert main(["risk", "bernoulli", "--param", "tau=2"]) == 2
    assert "tau" in capsys.readouterr().err


def test_strategy_and_crosscheck_enumerate_it():
    from toyrobust import crosscheck, testing

    assert "bernoulli" in testing.KINDS
    groups = {c.group for c in crosscheck.default_cases(quick=True, trained=False)}
    assert any(g.startswith("bernoulli") for g in groups)
