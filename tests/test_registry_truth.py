"""Completeness and truth, generated from the distribution registry (nothing here lists the distributions).

For every registered distribution:

* it owns its facts (strategy, sampling, likelihoods, support, projection, Bayes classifier, projection rule,
  cross-check examples): ONE named test per distribution says what is missing, and the truth tests below skip
  a distribution that lacks facts instead of failing again;
* its public methods validate their points (the base class does it once);
* its Bayes label is the argmax of the class likelihoods, computed independently (scipy.stats where a density
  is known in closed form, the distribution's own ``log_likelihood`` otherwise) — never from the Bayes margin;
* its projection lands on the support and is no farther from x than any sampled support point.

Hypothesis runs few, derandomized examples so the file stays fast on two slow cores.
"""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st
from scipy import special, stats

import toyrobust as tr
from toyrobust.distributions import registered_distributions, unregister_distribution
from toyrobust.testing import distributions, missing_facts

REGISTRY = registered_distributions()
NAMES = list(REGISTRY)

FEW = settings(max_examples=30, derandomize=True, deadline=None, database=None,
               suppress_health_check=[HealthCheck.too_slow])


def assert_owns_facts(cls):
    """One assertion naming everything ``cls`` lacks."""
    gaps = missing_facts(cls)
    assert not gaps, f"{cls.__name__} ({cls.cli_name!r}) lacks: " + "; ".join(gaps)


def complete(name):
    """The registered class ``name``, or a skip pointing at the one test that fails for it."""
    cls = REGISTRY[name]
    if missing_facts(cls):
        pytest.skip(f"{cls.__name__} lacks facts: test_every_distribution_owns_its_facts[{name}] says which")
    return cls


# ----------------------------------------------------------------------------------------------- completeness
@pytest.mark.parametrize("name", NAMES)
def test_every_distribution_owns_its_facts(name):
    assert_owns_facts(REGISTRY[name])


@pytest.mark.parametrize("name", NAMES)
def test_public_methods_validate_their_points(name):
    dist = complete(name).examples(quick=True)[0].dist
    good = dist.sample(3, generator=0, dtype=torch.float64)[0]
    methods = {"log_likelihood": lambda x: dist.log_likelihood(x, 1), "log_odds": dist.log_odds,
               "posterior": dist.posterior, "project": dist.project, "support.contains": dist.support.contains,
               "bayes_label": dist.bayes_label, "projected_bayes_label": dist.projected_bayes_label}
    for what, method in methods.items():
        assert method(good).shape == (3,) + ((dist.dim,) if what == "project" else ())
        with pytest.raises(ValueError, match=rf"x must have shape \(N, {dist.dim}\).*got \(3, {dist.dim + 1}\)"):
            method(torch.zeros(3, dist.dim + 1, dtype=torch.float64))
        with pytest.raises(ValueError, match=r"x must have shape .*got \(3,\)"):
            method(torch.zeros(3, dtype=torch.float64))
        with pytest.raises(TypeError, match="x must be a floating-point tensor .* got dtype torch.int64"):
            method(torch.zeros(3, dist.dim, dtype=torch.int64))
        with pytest.raises(TypeError, match="x must be a floating-point torch.Tensor .* got list"):
            method(good.tolist())
    with pytest.raises(ValueError, match="y must be -1 or \\+1, got 0"):
        dist.log_likelihood(good, 0)


@pytest.mark.parametrize("name", NAMES)
def test_projected_bayes_label_is_the_bayes_label_of_the_projection(name):
    # a distribution's shortcut (spheres: one norm) must give the labels of the long way, near the decision
    # boundary of the projection too (points scaled towards the middle of the support's gaps)
    for example in complete(name).examples(quick=True):
        dist = example.dist
        x = dist.sample(200, generator=1, dtype=torch.float64)[0]
        g = torch.Generator().manual_seed(2)
        pts = torch.cat([x, x + torch.randn(x.shape, generator=g, dtype=torch.float64),
                         x * (0.5 + torch.rand(200, 1, generator=g, dtype=torch.float64)), torch.zeros_like(x[:1])])
        assert torch.equal(dist.projected_bayes_label(pts), dist.bayes_label(dist.project(pts))), example


# ----------------------------------------------------------------------------------------------- references
# Class log-likelihoods computed without the package: a new distribution without an entry is still checked
# against its own log_likelihood (a different formula from its Bayes margin), and its reference test skips.
def _ref_point_masses(dist, x, y):
    point = 0.0 if y == 1 else float(dist.gap)
    return np.where(np.isclose(x[:, 0], point, rtol=0, atol=1e-12 * max(1.0, float(dist.gap))), 0.0, -np.inf)


def _ref_tsipras(dist, x, y):
    on = np.abs(x[:, 0]) == 1
    ll = stats.bernoulli(float(dist.p)).logpmf(x[:, 0] == y) + stats.norm(float(dist.eta) * y).logpdf(x[:, 1:]).sum(1)
    return np.where(on, ll, -np.inf)


def _ref_gaussian_mixture(dist, x, y):
    return stats.norm(y * dist.mean.to_numpy().astype(float), float(dist.sigma)).logpdf(x).sum(1)


def _ref_spheres(dist, x, y):
    r, d = float(dist.r_outer if y == 1 else dist.r_inner), int(dist.dim)
    log_area = math.log(2) + d / 2 * math.log(math.pi) + (d - 1) * math.log(r) - special.gammaln(d / 2)
    return np.where(np.isclose(np.linalg.norm(x, axis=1), r, rtol=1e-9, atol=0), -log_area, -np.inf)


def _ref_bernoulli(dist, x, y):
    on = np.all(np.abs(x) == 1, axis=1)
    ll = stats.bernoulli(float(dist.q)).logpmf(x == y * dist.theta.to_numpy().astype(float)).sum(1)
    return np.where(on, ll, -np.inf)


def _ref_empirical(dist, x, y):
    """log(multiplicity of x among the samples of class y / n_y), by exact row comparison in numpy."""
    X, labels = dist.X.numpy(), dist.y.numpy()
    same = np.all(x[:, None, :] == X[None, :, :], axis=2) & (labels == y)[None, :]
    counts = same.sum(1)
    with np.errstate(divide="ignore"):
        return np.log(counts / max(1, int((labels == y).sum())))


REFERENCE = {"empirical": _ref_empirical,
             "point-masses": _ref_point_masses, "tsipras": _ref_tsipras, "gaussian-mixture": _ref_gaussian_mixture,
             "spheres": _ref_spheres, "bernoulli": _ref_bernoulli}


def support_points(dist, seed):
    """Points of the support: samples, and projections of Gaussian points at three scales (near the Bayes boundary
    too, where the labels are decided by small margins)."""
    gen = torch.Generator().manual_seed(seed)
    x, _ = dist.sample(48, generator=gen, dtype=torch.float64)
    scale = torch.tensor([0.3, 1.0, 3.0], dtype=torch.float64).repeat(16)[:, None]
    z = torch.randn(48, dist.dim, generator=gen, dtype=torch.float64) * scale
    return torch.cat([x, dist.project(z), dist.project(x + 0.3 * torch.randn(x.shape, generator=gen,
                                                                             dtype=torch.float64))])


def assert_argmax(x, labels, pos, neg, source):
    """``labels`` equal the argmax of the class log-likelihoods ``pos`` (y = +1) and ``neg`` (y = -1) wherever a
    class has mass and the two are not within a small tolerance of each other (the decision boundary)."""
    known = torch.isfinite(pos) | torch.isfinite(neg)
    assert bool(known[:48].all()), f"{source}: a sampled point has no mass in either class"
    diff = pos - neg
    size = 1 + torch.where(torch.isfinite(pos), pos.abs(), 0) + torch.where(torch.isfinite(neg), neg.abs(), 0)
    decided = known & (diff.abs() > 1e-9 * size)
    want = torch.where(diff > 0, 1, -1)
    bad = decided & (labels != want)
    assert not bool(bad.any()), (f"{source}: Bayes label != argmax of the class likelihoods at {x[bad][:3].tolist()} "
                                 f"(log p(x|+1) = {pos[bad][:3].tolist()}, log p(x|-1) = {neg[bad][:3].tolist()})")
    return decided, want


# ----------------------------------------------------------------------------------------------- truth
@pytest.mark.parametrize("name", NAMES)
def test_bayes_label_is_the_argmax_of_the_class_likelihoods(name):
    cls = complete(name)

    @FEW
    @given(dist=cls.strategy(), seed=st.integers(0, 2**31 - 1))
    def check(dist, seed):
        x = support_points(dist, seed)
        labels = dist.bayes_label(x)
        decided, want = assert_argmax(x, labels, dist.log_likelihood(x, 1), dist.log_likelihood(x, -1),
                                      f"{dist!r} log_likelihood")
        post = dist.posterior(x)
        assert torch.equal(torch.where(post > 0.5, 1, -1)[decided], want[decided]), f"{dist!r}: posterior argmax"

    check()


@pytest.mark.parametrize("name", NAMES)
def test_class_likelihoods_match_an_independent_reference(name):
    cls = complete(name)
    reference = REFERENCE.get(name)
    if reference is None:
        pytest.skip(f"no independent reference density for {cls.__name__}: add one to REFERENCE")

    @FEW
    @given(dist=cls.strategy(), seed=st.integers(0, 2**31 - 1))
    def check(dist, seed):
        x = support_points(dist, seed)
        pos, neg = (torch.from_numpy(reference(dist, x.numpy(), y)) for y in (1, -1))
        for y, ref in ((1, pos), (-1, neg)):
            own = dist.log_likelihood(x, y)
            assert torch.equal(torch.isinf(own), torch.isinf(ref)), f"{dist!r}: support of class {y}"
            finite = torch.isfinite(ref)
            assert torch.allclose(own[finite], ref[finite], rtol=1e-9, atol=1e-9), f"{dist!r}: log p(x | {y})"
        assert_argmax(x, dist.bayes_label(x), pos, neg, f"{dist!r} scipy reference")

    check()


@pytest.mark.parametrize("name", NAMES)
def test_project_is_the_nearest_support_point(name):
    cls = complete(name)

    @FEW
    @given(dist=cls.strategy(), seed=st.integers(0, 2**31 - 1), scale=st.floats(0.05, 10.0))
    def check(dist, seed, scale):
        gen = torch.Generator().manual_seed(seed)
        s, _ = dist.sample(256, generator=gen, dtype=torch.float64)
        far = torch.randn(64, dist.dim, generator=gen, dtype=torch.float64) * scale
        near = s[:32] + 0.1 * scale * torch.randn(32, dist.dim, generator=gen, dtype=torch.float64)
        x = torch.cat([far, near])
        px = dist.project(x)
        assert px.shape == x.shape and px.dtype == x.dtype
        assert bool(dist.support.contains(px).all()), f"{dist!r}: a projection is off {dist.support.description}"
        assert torch.equal(dist.project(px), px), f"{dist!r}: projecting a support point moved it"
        # no farther than any sampled support point, nor than the projection of another point
        d_proj = torch.linalg.vector_norm(x - px, dim=1)
        d_cand = torch.cdist(x, torch.cat([s, px]), compute_mode="donot_use_mm_for_euclid_dist").min(1).values
        slack = 1e-9 * (1 + torch.linalg.vector_norm(x, dim=1))
        worse = d_proj > d_cand + slack
        assert not bool(worse.any()), f"{dist!r}: project is not the nearest support point at {x[worse][:2].tolist()}"

    check()


# ----------------------------------------------------------------------------------------------- one failure
class _Dummy(tr.PointMasses):
    """Everything PointMasses owns, except a strategy: its constructor needs ``offset``, which no constraint
    describes (it is registered only inside the test below)."""

    def __init__(self, offset, gap=1.0):
        super().__init__(gap)


def test_a_registered_distribution_without_a_strategy_fails_one_named_test():
    dummy = type("Dummy", (_Dummy,), {"cli_name": "dummy-without-strategy", "cli_order": 999})  # registers it
    try:
        table = registered_distributions()
        assert table["dummy-without-strategy"] is dummy
        # the completeness test fails for the dummy alone, with one message naming the gap and the fix
        failing = [n for n, c in table.items() if missing_facts(c)]
        assert failing == ["dummy-without-strategy"]
        assert len(missing_facts(dummy)) == 1
        with pytest.raises(AssertionError) as info:
            assert_owns_facts(dummy)
        message = str(info.value).splitlines()[0]
        assert message.startswith("Dummy ('dummy-without-strategy') lacks: no hypothesis strategy")
        assert "needs offset" in message and "override Dummy.strategy" in message
        # everything else still collects and runs: a module using @given(distributions()) imports (it used to fail
        # to collect), and the default strategy leaves the dummy out ...
        spec = importlib.util.spec_from_file_location("_reimported_test_distributions",
                                                      Path(__file__).with_name("test_distributions.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        settings(FEW, max_examples=3)(module.test_project_lands_on_support_is_idempotent_and_nearest)()

        @settings(FEW, max_examples=20)
        @given(distributions())
        def never_the_dummy(dist):
            assert not isinstance(dist, dummy)

        never_the_dummy()
        # ... while asking for it by name fails where it is drawn, saying why
        with pytest.raises(NotImplementedError, match="Dummy has no hypothesis strategy"):
            find(distributions(kinds=("dummy-without-strategy",)), lambda d: True)
    finally:
        unregister_distribution("dummy-without-strategy")
    assert "dummy-without-strategy" not in registered_distributions()
    assert list(registered_distributions()) == NAMES
