"""Distributions: parameter checks, sampling laws, densities, projections and Bayes classifiers."""

import math

import numpy as np
import pytest
import sympy
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import toyrobust as tr
from toyrobust.constraints import integer_at_least, positive
from toyrobust.distributions import REGISTRY
from toyrobust.testing import distributions

# ----------------------------------------------------------------------------- valid and bad examples
P, ETA = sympy.Symbol("p", positive=True), sympy.Symbol("eta", positive=True)
D = sympy.Symbol("D", integer=True, positive=True)

VALID = {
    tr.PointMasses: [dict(gap=1.0), dict(gap=1e-6), dict(gap=sympy.Symbol("g", positive=True)), dict(gap=3)],
    tr.Tsipras: [dict(), dict(p=0.9, eta=3.0, d=1), dict(p=0.51, eta=0.1, d=100), dict(p=P, eta=ETA, d=D),
                 dict(p=sympy.Symbol("q"), eta=2.0)],
    tr.GaussianMixture: [dict(mean=[1.0]), dict(mean=[1.0, -2.0, 0.5], sigma=2.0), dict(mean=np.ones(4)),
                         dict(mean=torch.ones(3), sigma=sympy.Symbol("s", positive=True))],
    tr.ConcentricSpheres: [dict(), dict(dim=2, r_inner=0.5, r_outer=0.6), dict(dim=D, r_inner=1, r_outer=2)],
}

BAD = {
    tr.PointMasses: [(dict(gap=0.0), "gap"), (dict(gap=-1.0), "gap"), (dict(gap=math.inf), "gap"),
                     (dict(gap=math.nan), "gap"), (dict(gap="1"), "gap"),
                     (dict(gap=sympy.Symbol("g", negative=True)), "gap")],
    tr.Tsipras: [(dict(p=1.0), "p"), (dict(p=0.0), "p"), (dict(p=1.5), "p"), (dict(eta=0.0), "eta"),
                 (dict(eta=-1), "eta"), (dict(d=0), "d"), (dict(d=1.5), "d"), (dict(d=True), "d"),
                 (dict(p=sympy.Symbol("q", negative=True)), "p"), (dict(eta=math.nan), "eta")],
    tr.GaussianMixture: [(dict(mean=[1.0], sigma=0.0), "sigma"), (dict(mean=[1.0], sigma=-1.0), "sigma"),
                         (dict(mean=[]), "mean"), (dict(mean=[1.0, math.nan]), "mean"),
                         (dict(mean=[[1.0, 2.0]]), "mean"), (dict(mean=["a"]), "mean")],
    tr.ConcentricSpheres: [(dict(dim=1), "dim"), (dict(dim=2.5), "dim"), (dict(r_inner=0.0), "r_inner"),
                           (dict(r_inner=2.0, r_outer=1.0), "r_inner"), (dict(r_inner=1.0, r_outer=1.0), "r_inner"),
                           (dict(r_outer=math.inf), "r_outer")],
}


# a distribution may declare its own examples beside its class (a new distribution then needs no edit here)
for _cls in REGISTRY.values():
    VALID.setdefault(_cls, []).extend(dict(k) for k in getattr(_cls, "valid_params", ()))
    BAD.setdefault(_cls, []).extend((dict(k), n) for k, n in getattr(_cls, "invalid_params", ()))


def test_every_distribution_is_listed():
    classes = set(REGISTRY.values())
    assert classes == set(VALID) == set(BAD), "add new distributions to VALID and BAD"
    assert all(VALID[c] and BAD[c] for c in classes), "every distribution needs valid and bad examples"


def _check_facts(cls):
    """The facts every registered distribution must own; raises AssertionError/NotImplementedError naming the gap."""
    from hypothesis import find

    dist = find(cls.strategy(), lambda d: True)  # the strategy draws a valid instance
    assert isinstance(dist, cls)
    x, y = dist.sample(64, generator=0, dtype=torch.float64)
    assert x.shape == (64, dist.dim) and set(y.tolist()) <= {-1, 1}
    bayes = dist.bayes_classifier()
    assert set(bayes.predict(x).tolist()) <= {-1, 1}
    proj = dist.project(x + 0.01)
    assert bool(dist.support.contains(proj).all()), f"{cls.__name__}.project does not land on the support"
    assert torch.equal(dist.project(proj), proj)
    assert "bayes" in dist.named_classifiers()
    assert dist.projection_rule, f"{cls.__name__} lacks projection_rule"
    assert cls.examples(quick=True), f"{cls.__name__} offers no cross-check examples"


@pytest.mark.parametrize("cls", list(REGISTRY.values()), ids=list(REGISTRY))
def test_every_registered_distribution_owns_its_facts(cls):
    _check_facts(cls)


def test_a_distribution_lacking_its_facts_fails_the_check():
    class Incomplete(tr.PointMasses):  # no cli_name: not registered, so the registry stays clean
        # a constructor parameter that no constraint describes: the default strategy cannot draw it
        def __init__(self, offset, gap=1.0):
            super().__init__(gap)

    with pytest.raises(NotImplementedError, match="strategy"):
        _check_facts(Incomplete)

    class NoExamples(tr.PointMasses):
        examples = classmethod(lambda cls, quick=True: [])

    with pytest.raises(AssertionError, match="cross-check"):
        _check_facts(NoExamples)


@pytest.mark.parametrize("cls,kwargs", [(c, k) for c, ks in VALID.items() for k in ks])
def test_valid_examples_construct(cls, kwargs):
    dist = cls(**kwargs)
    assert dist.dim is not None
    assert dist.bayes_classifier() is not None
    assert repr(dist).startswith(cls.__name__)


@pytest.mark.parametrize("cls,kwargs,name", [(c, k, n) for c, ks in BAD.items() for k, n in ks])
def test_bad_examples_raise_naming_the_parameter(cls, kwargs, name):
    with pytest.raises((ValueError, TypeError)) as info:
        cls(**kwargs)
    assert name in str(info.value)


def test_robust_nonrobust_rejects_bad_dimension():
    for bad in (1, 0, 2.5, -3):
        with pytest.raises(ValueError, match="D"):
            tr.GaussianMixture.robust_nonrobust(bad)


class _Drawn(tr.Distribution):  # no cli_name: not registered
    arg_constraints = {"a": positive, "k": integer_at_least(2, typical_high=7)}

    def __init__(self, a=1.0, k=2):
        self._init_params(a=a, k=k)


@settings(max_examples=30, derandomize=True)
@given(st.data())
def test_default_strategy_draws_every_parameter_from_its_constraint(data):
    dist = data.draw(_Drawn.strategy())
    assert 0.05 <= dist.a <= 5.0 and 2 <= dist.k <= 7
    assert data.draw(_Drawn.strategy(max_k=3)).k <= 3
    assert data.draw(_Drawn.strategy(k=4, a=st.just(0.5))).params == {"a": 0.5, "k": 4}


def test_default_strategy_refuses_unknown_or_impossible_arguments():
    with pytest.raises(TypeError, match=r"unknown argument\(s\) \['b'\]; allowed: a, max_a, k, max_k"):
        _Drawn.strategy(b=1)
    with pytest.raises(ValueError, match="max_k must be >= 2"):
        _Drawn.strategy(max_k=1)
    with pytest.raises(TypeError, match="give k or max_k"):
        _Drawn.strategy(k=3, max_k=4)


def test_symbolic_parameters_are_refused_only_where_the_maths_reads_them():
    x = torch.tensor([[0.3, 1.0]], dtype=torch.float64)
    sym = tr.Tsipras(p=P, eta=ETA)  # its support and projection read no parameter (symbolic_ok)
    assert sym.project(x).tolist() == [[1.0, 1.0]] and sym.support.contains(x).tolist() == [False]
    for method in (sym.log_odds, sym.posterior, lambda v: sym.log_likelihood(v, 1)):
        with pytest.raises(TypeError, match="needs numeric parameters"):
            method(x)
    g = tr.PointMasses(gap=sympy.Symbol("g", positive=True))
    with pytest.raises(TypeError, match="project needs numeric parameters"):
        g.project(x[:, :1])
    with pytest.raises(TypeError, match="support.contains needs numeric parameters"):
        g.support.contains(x[:, :1])
    assert sym.label_region_pieces(1) is None


def test_label_region_methods_validate_their_arguments():
    ts = tr.Tsipras(0.9, 3.0, 1)
    z = torch.zeros(4, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"y must be a tensor of labels -1/\+1 of shape \(4,\), got \(3,\)"):
        ts.label_region_projection(z, torch.ones(3))
    with pytest.raises(ValueError, match=r"z must have shape \(N, 2\)"):
        tr.GaussianMixture([1.0, 2.0]).label_halfspace(torch.zeros(4, 3), torch.ones(4))
    with pytest.raises(ValueError, match="y must be -1 or \\+1, got 0"):
        ts.label_region_pieces(0)
    assert tr.BernoulliModel(3).label_region_projection(torch.zeros(2, 3), torch.ones(2)) is None


# ----------------------------------------------------------------------------- sampling
N = 40_000
Z = 4.5  # normal quantile for the moment checks: a false alarm once in ~150,000 tests


def _binom_ok(k, n, p, alpha=1e-5):
    return stats.binomtest(k, n, p).pvalue > alpha


@pytest.mark.parametrize("dist", [tr.PointMasses(0.7), tr.Tsipras(0.8, 1.5, 3), tr.GaussianMixture([1.0, -0.5], 2.0),
                                  tr.ConcentricSpheres(20, 1.0, 1.3)], ids=repr)
def test_class_balance(dist):
    x, y = dist.sample(N, generator=1, dtype=torch.float64)
    assert x.shape == (N, dist.dim) and y.shape == (N,) and y.dtype == torch.int64
    assert set(y.unique().tolist()) == {-1, 1}
    assert _binom_ok(int((y == 1).sum()), N, 0.5)


def test_tsipras_moments():
    dist = tr.Tsipras(0.8, 1.5, 3)
    x, y = dist.sample(N, generator=2, dtype=torch.float64)
    flips = int((x[:, 0] != y).sum())
    assert _binom_ok(flips, N, 0.2)
    assert set(x[:, 0].unique().tolist()) == {-1.0, 1.0}
    for label in (-1, 1):
        g = x[y == label, 1:]
        se = 1 / math.sqrt(g.shape[0])
        assert torch.all((g.mean(0) - 1.5 * label).abs() < Z * se)
        assert torch.all((g.var(0) - 1).abs() < Z * math.sqrt(2) * se)


def test_gaussian_mixture_moments():
    dist = tr.GaussianMixture([1.0, -0.5, 0.0], 2.0)
    x, y = dist.sample(N, generator=3, dtype=torch.float64)
    for label in (-1, 1):
        g = x[y == label]
        se = 2.0 / math.sqrt(g.shape[0])
        assert torch.all((g.mean(0) - label * torch.tensor([1.0, -0.5, 0.0], dtype=torch.float64)).abs() < Z * se)
        assert torch.all((g.std(0) - 2.0).abs() < Z * 2.0 / math.sqrt(2 * g.shape[0]))


def test_spheres_radii_and_uniformity():
    dist = tr.ConcentricSpheres(5, 1.0, 1.3)
    x, y = dist.sample(N, generator=4, dtype=torch.float64)
    r = x.norm(dim=1)
    assert torch.allclose(r[y == -1], torch.tensor(1.0, dtype=torch.float64))
    assert torch.allclose(r[y == 1], torch.tensor(1.3, dtype=torch.float64))
    # uniform on the sphere: x_1/r is distributed as 2 Beta((D-1)/2, (D-1)/2) - 1
    u = ((x[:, 0] / r + 1) / 2).numpy()
    assert stats.kstest(u, stats.beta(2, 2).cdf).pvalue > 1e-4


def test_sampling_is_reproducible_and_leaves_global_rng_alone():
    dist = tr.Tsipras(0.9, 3.0, 4)
    state = torch.get_rng_state()
    a = dist.sample(100, generator=7)
    b = dist.sample(100, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert torch.equal(torch.get_rng_state(), state)
    c = dist.sample(100, generator=8)
    assert not torch.equal(a[0], c[0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sample_dtype(dtype):
    for dist in VALID_NUMERIC():
        x, _ = dist.sample(3, generator=0, dtype=dtype)
        assert x.dtype == dtype


def VALID_NUMERIC():
    return [tr.PointMasses(1.0), tr.Tsipras(), tr.GaussianMixture.robust_nonrobust(10), tr.ConcentricSpheres(10)]


def test_sample_bad_arguments():
    dist = tr.Tsipras()
    with pytest.raises(ValueError, match="n"):
        dist.sample(-1)
    with pytest.raises(TypeError, match="generator"):
        dist.sample(3, generator="seed")
    with pytest.raises(ValueError, match="dtype"):
        dist.sample(3, dtype=torch.int32)
    with pytest.raises(TypeError, match="numeric"):
        tr.Tsipras(p=P).sample(3)


def test_sample_memory_is_linear_in_n():
    # a hidden D x D matrix at D = 20_000 would need 3.2 GB; this must run instantly
    x, _ = tr.ConcentricSpheres(20_000).sample(2, generator=0)
    assert x.shape == (2, 20_000)
    x, _ = tr.GaussianMixture.robust_nonrobust(20_000).sample(2, generator=0)
    assert x.shape == (2, 20_000)


# ----------------------------------------------------------------------------- densities vs scipy
def test_tsipras_log_likelihood_matches_scipy():
    dist = tr.Tsipras(0.7, 1.3, 3)
    x, _ = dist.sample(50, generator=5, dtype=torch.float64)
    for label in (-1, 1):
        ref = np.where(x[:, 0].numpy() == label, math.log(0.7), math.log(0.3)) + stats.norm(1.3 * label).logpdf(
            x[:, 1:].numpy()).sum(1)
        np.testing.assert_allclose(dist.log_likelihood(x, label).numpy(), ref, rtol=1e-12)
    off = x.clone()
    off[:, 0] = 0.3
    assert torch.all(dist.log_likelihood(off, 1) == -math.inf)
    assert torch.all(torch.isnan(dist.log_odds(off)))


def test_gaussian_mixture_log_likelihood_and_posterior_match_scipy():
    mean = np.array([1.0, -0.5, 2.0])
    dist = tr.GaussianMixture(mean, 1.5)
    x, _ = dist.sample(50, generator=6, dtype=torch.float64)
    pos = stats.multivariate_normal(mean, 1.5**2 * np.eye(3)).logpdf(x.numpy())
    neg = stats.multivariate_normal(-mean, 1.5**2 * np.eye(3)).logpdf(x.numpy())
    np.testing.assert_allclose(dist.log_likelihood(x, 1).numpy(), pos, rtol=1e-12)
    np.testing.assert_allclose(dist.log_likelihood(x, -1).numpy(), neg, rtol=1e-12)
    np.testing.assert_allclose(dist.posterior(x).numpy(), np.exp(pos) / (np.exp(pos) + np.exp(neg)), rtol=1e-10)


def test_spheres_log_likelihood_is_uniform_surface_density():
    dist = tr.ConcentricSpheres(3, 1.0, 2.0)
    x, y = dist.sample(20, generator=0, dtype=torch.float64)
    # in R^3 the area of the sphere of radius r is 4 pi r^2
    ref = torch.where(y == 1, -math.log(4 * math.pi * 4), -math.log(4 * math.pi)).to(torch.float64)
    assert torch.allclose(dist.log_likelihood(x, y), ref)
    assert torch.all(dist.log_likelihood(x, -y) == -math.inf)
    assert torch.equal(dist.posterior(x), (y == 1).to(torch.float64))
    assert torch.isnan(dist.log_odds(torch.full((1, 3), 0.9, dtype=torch.float64))).all()


def test_point_masses_posterior():
    dist = tr.PointMasses(2.0)
    x = torch.tensor([[0.0], [2.0], [1.0]], dtype=torch.float64)
    post = dist.posterior(x)
    assert post[0] == 1 and post[1] == 0 and torch.isnan(post[2])


@pytest.mark.parametrize("dist", [tr.Tsipras(0.8, 1.5, 2), tr.GaussianMixture([1.0, -0.5, 0.3], 0.7)], ids=repr)
def test_symbolic_log_likelihood_agrees_with_torch(dist):
    x, y = dist.sample(10, generator=9, dtype=torch.float64)
    pt = sympy.Matrix(sympy.symbols(f"x_1:{dist.dim + 1}", real=True))
    for label in (-1, 1):
        f = sympy.lambdify(list(pt), dist.log_likelihood_expr(label, pt), "math")
        ref = [f(*row) for row in x.tolist()]
        np.testing.assert_allclose(dist.log_likelihood(x, label).numpy(), ref, rtol=1e-10)
    g = sympy.lambdify(list(pt), dist.posterior_expr(pt), "math")
    np.testing.assert_allclose(dist.posterior(x).numpy(), [g(*row) for row in x.tolist()], rtol=1e-9, atol=1e-12)


def test_symbolic_dimension_log_odds_is_compact():
    dist = tr.GaussianMixture.robust_nonrobust(D)
    expr = dist.log_odds_expr()
    assert expr.has(sympy.Sum) and expr.count_ops() < 30
    # substituting D = 6 and summing gives the numeric log-odds
    x = sympy.IndexedBase("x", real=True)
    vals = [0.3, -1.0, 2.0, 0.5, 0.0, 1.5]
    numeric = expr.subs(D, 6).doit().subs({x[i + 1]: v for i, v in enumerate(vals)})
    ref = tr.GaussianMixture.robust_nonrobust(6).log_odds(torch.tensor([vals], dtype=torch.float64))
    assert float(numeric) == pytest.approx(float(ref[0]), rel=1e-12)


# ----------------------------------------------------------------------------- projection
def _support_points(dist, n, gen):
    return dist.sample(n, generator=gen, dtype=torch.float64)[0]


@given(distributions(), st.integers(0, 2**31 - 1), st.floats(0.1, 10.0))
def test_project_lands_on_support_is_idempotent_and_nearest(dist, seed, scale):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(64, dist.dim, generator=gen, dtype=torch.float64) * scale
    px = dist.project(x)
    assert px.shape == x.shape
    assert dist.support.contains(px).all()
    assert torch.equal(dist.project(px), px)
    # never farther than random support points (and than the sampled points' projections of themselves)
    cand = _support_points(dist, 256, gen)
    d_proj = (x - px).norm(dim=1)
    d_cand = torch.cdist(x, cand).min(dim=1).values
    assert torch.all(d_proj <= d_cand + 1e-9)


def test_project_tie_rules():
    pm = tr.PointMasses(2.0)
    x = torch.tensor([[1.0], [0.999], [1.001], [-5.0], [7.0]], dtype=torch.float64)
    assert pm.project(x)[:, 0].tolist() == [0.0, 0.0, 2.0, 0.0, 2.0]
    ts = tr.Tsipras(0.9, 3.0, 2)
    x = torch.tensor([[0.0, 1.0, 2.0], [-0.1, 5.0, 6.0], [3.0, 0.0, 0.0]], dtype=torch.float64)
    assert ts.project(x).tolist() == [[1.0, 1.0, 2.0], [-1.0, 5.0, 6.0], [1.0, 0.0, 0.0]]
    sp = tr.ConcentricSpheres(3, 1.0, 2.0)
    x = torch.tensor([[1.5, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.49, 0.0], [0.0, 0.0, -9.0]], dtype=torch.float64)
    assert sp.project(x).tolist() == [[2.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -2.0]]
    gm = tr.GaussianMixture([1.0, 2.0])
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(gm.project(x), x)


def test_project_agrees_with_bayes_label_ties():
    # the tie points project to the +1 class, and the Bayes classifier says +1 there too
    pm = tr.PointMasses(2.0)
    mid = torch.tensor([[1.0]], dtype=torch.float64)
    assert pm.bayes_label(mid).item() == 1 == pm.bayes_label(pm.project(mid)).item()
    sp = tr.ConcentricSpheres(3, 1.0, 2.0)
    shell = torch.tensor([[1.5, 0.0, 0.0]], dtype=torch.float64)
    assert sp.bayes_label(shell).item() == 1 == sp.bayes_label(sp.project(shell)).item()


# ----------------------------------------------------------------------------- Bayes classifier
@pytest.mark.parametrize("dist", [tr.Tsipras(0.9, 3.0, 1), tr.Tsipras(0.6, 0.4, 5),
                                  tr.GaussianMixture([1.0, -2.0], 1.5), tr.GaussianMixture.robust_nonrobust(50)],
                         ids=repr)
def test_bayes_is_argmax_of_posterior(dist):
    x, _ = dist.sample(2000, generator=11, dtype=torch.float64)
    post = dist.posterior(x)
    argmax = torch.where(post >= 0.5, 1, -1)
    decided = (post - 0.5).abs() > 1e-12
    assert torch.equal(dist.bayes_label(x)[decided], argmax[decided])


@pytest.mark.parametrize("dist", [tr.PointMasses(1.5), tr.ConcentricSpheres(10, 1.0, 1.3)], ids=repr)
def test_bayes_on_degenerate_support_is_perfect_and_equals_label_of_projection(dist):
    x, y = dist.sample(2000, generator=12, dtype=torch.float64)
    assert torch.equal(dist.bayes_label(x), y)
    post = dist.posterior(x)
    assert torch.equal(post, (y == 1).to(post.dtype))
    off = torch.randn(500, dist.dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2
    assert torch.equal(dist.bayes_label(off), dist.bayes_label(dist.project(off)))


def test_bayes_beats_other_classifiers_on_samples():
    # empirical risk of the Bayes rule is lower than sign(x1) and a random direction, beyond sampling noise
    dist = tr.Tsipras(0.7, 0.5, 4)
    x, y = dist.sample(50_000, generator=13, dtype=torch.float64)
    bayes = (dist.bayes_label(x) != y).double().mean()
    robust = (tr.Linear([1.0, 0, 0, 0, 0]).predict(x) != y).double().mean()
    assert bayes < robust - 0.02


def test_bayes_symbolic_equals_torch():
    s_sym = sympy.Symbol("s", positive=True)
    for dist, sym in [(tr.Tsipras(0.8, 1.2, 3), tr.Tsipras(P, ETA, 3)),
                      (tr.GaussianMixture([1.0, -0.3], 0.5), tr.GaussianMixture([1.0, -0.3], s_sym))]:
        pt = sympy.Matrix(sympy.symbols(f"x_1:{dist.dim + 1}", real=True))
        expr = sym.bayes_classifier().margin_expr(pt)
        subs = {P: 0.8, ETA: 1.2, sympy.Symbol("s", positive=True): 0.5}
        f = sympy.lambdify(list(pt), expr.subs(subs), "math")
        x, _ = dist.sample(200, generator=14, dtype=torch.float64)
        ref = torch.tensor([f(*r) for r in x.tolist()], dtype=torch.float64)
        assert torch.allclose(dist.bayes_classifier().margin(x), ref, rtol=1e-10)
        # and the linear Bayes margin is exactly the log-odds derived from the likelihoods
        lo = sym.log_likelihood_expr(1, pt) - sym.log_likelihood_expr(-1, pt)
        assert sympy.simplify(sympy.expand(sympy.expand_log(lo - expr, force=True))) == 0


def test_seed000_tsipras_claim():
    # y = +1 with x1 = -1 and x2 = eta; moving x2 to -eta gives Bayes label -1 (p = 0.9, eta = 3)
    dist = tr.Tsipras(0.9, 3.0, 1)
    x = torch.tensor([[-1.0, 3.0]], dtype=torch.float64)
    assert dist.bayes_label(x).item() == 1
    moved = torch.tensor([[-1.0, -3.0]], dtype=torch.float64)
    assert dist.bayes_label(moved).item() == -1
    assert dist.posterior(moved).item() < 0.5
