"""The hard-training-points toy of seed 002, checked against independent references.

References: scipy's barycentric interpolation and numpy's monomial least squares (not the Chebyshev-basis code
under test), Gauss-Legendre quadrature, dense grids with Brent refinement, mpmath, classical theorems with known
constants (the minimax property of T_m / 2^(m-1), Gauss-Legendre nodes as the L2-optimal nodes), Monte Carlo.
"""

import math

import mpmath
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from numpy.polynomial import chebyshev as C
from numpy.polynomial import legendre
from scipy import interpolate, optimize, signal

from toyrobust import hardpoints as hp


# ------------------------------------------------------------------------------------------------ references
def _barycentric_max_error(f, nodes, size=200_001):
    """max |p - f| with p from scipy's barycentric interpolator: dense grid, then Brent around the best cells."""
    p = interpolate.BarycentricInterpolator(nodes, f(nodes))
    xs = np.linspace(-1.0, 1.0, size)
    err = np.abs(p(xs) - f(xs))
    best = err.max()
    for i in np.argsort(err)[::-1][:8]:
        lo, hi = xs[max(i - 1, 0)], xs[min(i + 1, size - 1)]
        res = optimize.minimize_scalar(lambda t: -abs(float(p(t)) - float(f(np.array(t)))), bounds=(lo, hi),
                                       method="bounded", options={"xatol": 1e-14})
        best = max(best, -res.fun)
    return float(best)


def _mpmath_lagrange_error(f_mp, nodes, x):
    """|p(x) - f(x)| for the Lagrange interpolant, in 40-digit arithmetic."""
    with mpmath.workdps(40):
        xs = [mpmath.mpf(float(v)) for v in nodes]
        x = mpmath.mpf(x)
        total = mpmath.mpf(0)
        for i, xi in enumerate(xs):
            li = mpmath.mpf(1)
            for j, xj in enumerate(xs):
                if j != i:
                    li *= (x - xj) / (xi - xj)
            total += li * f_mp(xi)
        return float(abs(total - f_mp(x)))


def _dense_local_maxima(values, xs):
    """Local maxima of a sampled function, end points included (strict on the grid)."""
    padded = np.concatenate([[-np.inf], values, [-np.inf]])
    idx = signal.argrelextrema(padded, np.greater)[0] - 1
    return xs[idx], values[idx]


# ------------------------------------------------------------------------------------------------ Runge, bounds
@pytest.mark.parametrize("kind, literature", [("uniform", 1.9156), ("chebyshev", 0.109)])
def test_runge_max_error_on_11_points(kind, literature):
    nodes = hp.grid(kind, 11)
    where, got = hp.interpolation_max_error(hp.runge, nodes)
    ref = _barycentric_max_error(hp.runge, nodes)
    assert got == pytest.approx(ref, rel=1e-9)
    exact = _mpmath_lagrange_error(lambda t: 1 / (1 + 25 * t ** 2), nodes, where)
    assert got == pytest.approx(exact, rel=1e-9)
    assert got == pytest.approx(literature, abs=5e-4)  # the quoted values: 1.9156 equispaced, about 0.109 Chebyshev


def test_runge_phenomenon_uniform_diverges_chebyshev_converges():
    uniform = [hp.interpolation_max_error(hp.runge, hp.uniform_points(m), grid_size=4001)[1] for m in (11, 21)]
    cheb = [hp.interpolation_max_error(hp.runge, hp.chebyshev_nodes(m), grid_size=4001)[1] for m in (11, 21, 41)]
    assert uniform[1] > 10 * uniform[0] > 10
    assert cheb[0] > cheb[1] > cheb[2] and cheb[2] < 1e-3


@pytest.mark.parametrize("f, lower, upper", [(np.sin, 0.0, 1.0), (np.exp, math.exp(-1), math.e)])
@pytest.mark.parametrize("n", range(1, 11))  # n = 0 (one node) is beyond scipy's barycentric reference
def test_chebyshev_node_error_bound(f, lower, upper, n):
    """f - p = f^(n+1)(xi) T_{n+1}(x) / (2^n (n+1)!): between lower and upper bounds of |f^(n+1)| on [-1, 1]."""
    nodes = hp.chebyshev_nodes(n + 1)
    err = _barycentric_max_error(f, nodes, size=20_001)
    bound = hp.chebyshev_error_bound(n, upper)
    assert bound == pytest.approx(upper / (2 ** n * math.factorial(n + 1)), rel=1e-15)
    assert hp.interpolation_max_error(f, nodes)[1] == pytest.approx(err, rel=1e-6, abs=1e-14)
    assert err <= bound * (1 + 1e-9) + 1e-15
    if lower > 0:  # exp: the bound is tight within a factor e^2 (|f^(n+1)| >= 1/e, and |T_{n+1}(1)| = 1)
        assert err >= bound * lower / upper * (1 - 1e-6)


def test_lebesgue_constants():
    assert hp.lebesgue_constant(hp.chebyshev_nodes(2)) == pytest.approx(math.sqrt(2), rel=1e-10)
    assert hp.lebesgue_constant(hp.uniform_points(3)) == pytest.approx(1.25, rel=1e-10)
    for m in (5, 11, 21):
        assert hp.lebesgue_constant(hp.chebyshev_nodes(m)) <= 2 / math.pi * math.log(m) + 1
    # reference: barycentric Lagrange basis on a dense grid
    nodes = hp.uniform_points(11)
    xs = np.linspace(-1, 1, 200_001)
    basis = sum(np.abs(interpolate.BarycentricInterpolator(nodes, np.eye(11)[i])(xs)) for i in range(11))
    assert hp.lebesgue_constant(nodes) == pytest.approx(basis.max(), rel=1e-6)
    assert basis.max() == pytest.approx(29.9, abs=0.05)  # the classical value for 11 equispaced points


# ------------------------------------------------------------------------------------------------ learning
def test_learning_on_nodes_a_subnormal_apart_returns_finite_coefficients():
    # the case hypothesis found: the fit is the least-squares minimum-norm answer, finite, exact at the nodes
    x = np.array([0.0, 2.225073858507203e-309])
    learned = hp.fit(x, C.chebval(x, [0.5]), 1)
    assert np.all(np.isfinite(learned)) and np.allclose(C.chebval(x, learned), 0.5)


@given(n=st.integers(0, 8), extra=st.integers(0, 6), data=st.data())
def test_learning_reproduces_polynomials_of_degree_at_most_n(n, extra, data):
    d = data.draw(st.integers(0, n))
    coef = np.array(data.draw(st.lists(st.floats(-5, 5), min_size=d + 1, max_size=d + 1)))
    m = n + 1 + extra
    raw = data.draw(st.lists(st.floats(-1, 1), min_size=m, max_size=m, unique=True))
    x = np.sort(np.array(raw))
    assert np.all(np.diff(x) > 0)
    learned = hp.fit(x, C.chebval(x, coef), n)
    cond = np.linalg.cond(C.chebvander(x, n))
    # nodes a subnormal apart (hypothesis drew [0, 2.2e-309] in CI) make the Vandermonde matrix singular in floating
    # point: no accuracy is claimed there (the bound below would be an infinite atol, which numpy refuses)
    assume(np.isfinite(cond))
    tol = 1e-12 * cond * (1 + np.abs(coef).sum())
    np.testing.assert_allclose(learned[: d + 1], coef, atol=tol)
    np.testing.assert_allclose(learned[d + 1:], 0.0, atol=tol)
    np.testing.assert_allclose(hp.error_coefficients(coef, x, n), 0.0, atol=tol)


def test_fit_matches_monomial_least_squares():
    rng = np.random.default_rng(1)
    x = np.sort(rng.uniform(-1, 1, 15))
    y = np.cos(3 * x) + x ** 3
    ours = C.chebval(np.linspace(-1, 1, 101), hp.fit(x, y, 6))
    ref = np.polyval(np.polyfit(x, y, 6), np.linspace(-1, 1, 101))
    np.testing.assert_allclose(ours, ref, atol=1e-10)


def test_gram_matrix_against_gauss_legendre():
    nodes, weights = legendre.leggauss(40)
    vand = C.chebvander(nodes, 25)
    np.testing.assert_allclose(hp.gram_matrix(25), (vand.T * weights) @ vand / 2, atol=1e-14)


# ------------------------------------------------------------------------------------------------ adversarial points
@pytest.mark.parametrize("seed", range(12))
def test_adversarial_points_are_the_dense_grid_local_maxima(seed):
    rng = np.random.default_rng(seed)
    prior = hp.ChebyshevPrior.geometric(14, 0.85)
    x_train = np.sort(rng.uniform(-1, 1, 9))
    e = hp.error_coefficients(prior.sample(1, rng)[0], x_train, 6)
    pts, vals = hp.adversarial_points(e)
    xs = np.linspace(-1, 1, 400_001)
    ref_x, ref_v = _dense_local_maxima(np.abs(C.chebval(xs, e)), xs)
    assert pts.size == ref_x.size
    np.testing.assert_allclose(pts, ref_x, atol=2e-5)
    # the grid only samples the maxima: ours are at least the grid values and barely above them
    assert np.all(np.abs(vals) >= ref_v * (1 - 1e-12)) and np.all(np.abs(vals) <= ref_v * (1 + 1e-6))
    assert ref_v.max() * (1 - 1e-12) <= hp.max_abs(e)[1] <= ref_v.max() * (1 + 1e-6)


def test_adversarial_points_of_t_n_are_the_chebyshev_extrema():
    for n in (1, 4, 9):
        pts, vals = hp.adversarial_points(np.eye(n + 1)[n])
        np.testing.assert_allclose(pts, hp.chebyshev_extrema(n + 1), atol=1e-12)
        np.testing.assert_allclose(np.abs(vals), 1.0, atol=1e-12)
    assert hp.adversarial_points(np.zeros(4))[0].size == 0


def test_hard_points_are_the_local_maxima_of_the_expected_loss():
    prior = hp.ChebyshevPrior.geometric(12, 0.7)
    x_train = hp.uniform_points(8)
    pts, vals = hp.hard_points(x_train, 7, prior)
    xs = np.linspace(-1, 1, 200_001)
    ref_x, ref_v = _dense_local_maxima(hp.expected_squared_error(xs, x_train, 7, prior), xs)
    np.testing.assert_allclose(pts, ref_x, atol=2e-5)
    assert np.all(vals >= ref_v * (1 - 1e-12)) and np.all(vals <= ref_v * (1 + 1e-6))
    assert ref_v.max() * (1 - 1e-12) <= hp.worst_case_expected_error(x_train, 7, prior)[1] <= ref_v.max() * (1 + 1e-6)
    # the seed's objective (2) summed over the hard points; zero on the training points (interpolation)
    assert hp.hard_points_objective(pts, x_train, 7, prior) == pytest.approx(ref_v.sum(), rel=1e-6)
    assert hp.hard_points_objective(x_train, x_train, 7, prior) < 1e-20


# ------------------------------------------------------------------------------------------------ closed form vs MC
@pytest.mark.parametrize("m, degree", [(6, 5), (10, 5)])  # interpolation, least squares
def test_expected_squared_error_matches_monte_carlo(m, degree):
    prior = hp.ChebyshevPrior.geometric(11, 0.8)
    x_train = np.sort(np.random.default_rng(m).uniform(-1, 1, m))
    coef = prior.sample(20_000, rng=7)
    # independent route: monomial least squares (numpy.polyfit) and Gauss-Legendre quadrature
    learned = np.polyfit(x_train, C.chebval(x_train, coef.T).T, degree)  # (degree + 1, samples), monomial basis
    nodes, weights = legendre.leggauss(30)
    probe = np.array([-1.0, -0.3, 0.55, 1.0])
    pts = np.concatenate([nodes, probe])
    err = (np.vander(pts, degree + 1) @ learned).T - C.chebval(pts, coef.T)  # (samples, points)
    l2 = (err[:, :30] ** 2 @ weights) / 2
    z = 4.0  # two-sided normal interval; a false failure has probability ~6e-5
    exact = hp.expected_l2_error(x_train, degree, prior)
    assert abs(l2.mean() - exact) <= z * l2.std(ddof=1) / math.sqrt(l2.size)
    pointwise = hp.expected_squared_error(probe, x_train, degree, prior)
    sq = err[:, 30:] ** 2
    assert np.all(np.abs(sq.mean(axis=0) - pointwise) <= z * sq.std(axis=0, ddof=1) / math.sqrt(sq.shape[0]))
    # E max|e| >= max_x E|e(x)| = sqrt(2/pi) * max_x sqrt(E e(x)^2) (Gaussian e(x))
    mean, se = hp.expected_max_error(x_train, degree, prior, samples=300, rng=3)
    assert mean + z * se >= math.sqrt(2 / math.pi * hp.worst_case_expected_error(x_train, degree, prior)[1])


# ------------------------------------------------------------------------------------------------ grids
@pytest.mark.parametrize("m", [4, 7])
def test_optimised_points_recover_the_classical_optima(m):
    """Only T_m unknown: E e^2 = (2^(m-1) prod (x - x_i))^2, minimised in max by the Chebyshev nodes (value 1
    exactly, the minimax property of T_m / 2^(m-1)) and in mean by the Gauss-Legendre nodes. Started uniform."""
    prior = hp.ChebyshevPrior.flat(m, low=m)
    assert hp.grid_objective(hp.chebyshev_nodes(m), m - 1, prior, "max") == pytest.approx(1.0, rel=1e-10)
    x = hp.optimise_training_points(m, prior=prior, criterion="max", init="uniform")
    np.testing.assert_allclose(x, hp.chebyshev_nodes(m), atol=1e-4)
    assert 1 - 1e-9 <= hp.grid_objective(x, m - 1, prior, "max") <= 1 + 1e-3
    x = hp.optimise_training_points(m, prior=prior, criterion="mean", init="uniform")
    np.testing.assert_allclose(x, legendre.leggauss(m)[0], atol=1e-6)


def test_chebyshev_close_to_optimised_and_far_better_than_uniform():
    """The seed's Figure 4 claim, measured: for H = geometric(20, 0.6) (std_k = 0.6^k) and interpolation on
    m = 8 points, the optimised points sit within 0.02 of the Chebyshev nodes, and the Chebyshev grid's worst-case
    expected squared error is 1.6x the optimum's (measured 1.591; 1.591 again at m = 12); the uniform grid's is
    9.4x the Chebyshev grid's at m = 8 (138x at m = 12)."""
    prior = hp.ChebyshevPrior.geometric(20, 0.6)
    res = hp.compare_grids(8, prior=prior)
    objective = {k: v["objective"] for k, v in res.items()}
    gap = objective["chebyshev"] / objective["optimised"]
    assert 1.3 < gap < 1.8
    assert np.abs(res["optimised"]["points"] - res["chebyshev"]["points"]).max() < 0.02
    assert objective["uniform"] > 5 * objective["chebyshev"]
    assert objective["optimised"] < objective["chebyshev"] < objective["chebyshev_extrema"]
    # the same optimum from the uniform start (a local optimiser, but not start dependent here)
    other = hp.optimise_training_points(8, prior=prior, init="uniform")
    assert hp.grid_objective(other, 7, prior) == pytest.approx(objective["optimised"], rel=1e-3)


def test_sample_complexity_chebyshev_beats_uniform():
    prior = hp.ChebyshevPrior.geometric(20, 0.5)
    res = hp.sample_complexity(prior, 1e-8, m_max=20)
    needed = {k: v["needed"] for k, v in res.items()}
    assert needed["uniform"] is None or needed["uniform"] > needed["chebyshev"]
    assert needed["optimised"] <= needed["chebyshev"] <= needed["chebyshev_extrema"]
    # "needed" is the first m whose exact objective is below the target
    cheb = res["chebyshev"]
    i = cheb["m"].index(needed["chebyshev"])
    assert cheb["objective"][i] <= 1e-8 < cheb["objective"][i - 1]
    assert hp.grid_objective(hp.chebyshev_nodes(needed["chebyshev"]), needed["chebyshev"] - 1, prior) <= 1e-8


def test_grids():
    np.testing.assert_allclose(hp.chebyshev_nodes(3), [-math.sqrt(3) / 2, 0.0, math.sqrt(3) / 2], atol=1e-15)
    np.testing.assert_allclose(hp.chebyshev_extrema(3), [-1.0, 0.0, 1.0], atol=1e-15)
    np.testing.assert_allclose(C.chebval(hp.chebyshev_nodes(9), np.eye(10)[9]), 0.0, atol=1e-14)
    np.testing.assert_allclose(hp.uniform_points(5), [-1, -0.5, 0, 0.5, 1])


# ------------------------------------------------------------------------------------------------ bad input
PRIOR = hp.ChebyshevPrior.flat(3)


@pytest.mark.parametrize("call, error, match", [
    (lambda: hp.fit([0.0, 0.5], [1.0, 2.0], -1), ValueError, "degree"),
    (lambda: hp.fit([0.0, 0.5], [1.0, 2.0], 1.5), TypeError, "degree"),
    (lambda: hp.fit([0.0, 0.5], [1.0, 2.0], True), TypeError, "degree"),
    (lambda: hp.fit([0.0, 0.5], [1.0, 2.0], 2), ValueError, "m >= degree"),
    (lambda: hp.fit([0.0, 1.5], [1.0, 2.0], 1), ValueError, r"x_train must lie inside \[-1, 1\]"),
    (lambda: hp.fit([0.0, 0.0, 0.5], [1.0, 1.0, 2.0], 1), ValueError, "distinct"),
    (lambda: hp.fit([0.0, float("nan")], [1.0, 2.0], 1), ValueError, "NaN"),
    (lambda: hp.fit([0.0, 0.5], [1.0, float("nan")], 1), ValueError, "y_train"),
    (lambda: hp.fit([0.0, 0.5], [1.0, 2.0, 3.0], 1), ValueError, "y_train"),
    (lambda: hp.expected_squared_error([2.0], [0.0, 0.5], 1, PRIOR), ValueError, "x must lie"),
    (lambda: hp.expected_l2_error([0.0, 0.5], 1, "flat"), TypeError, "prior"),
    (lambda: hp.grid("random", 5), ValueError, "kind"),
    (lambda: hp.grid_objective([0.0, 0.5], 1, PRIOR, "median"), ValueError, "criterion"),
    (lambda: hp.chebyshev_nodes(0), ValueError, "m must be"),
    (lambda: hp.chebyshev_error_bound(3, -1.0), ValueError, "derivative_bound"),
    (lambda: hp.ChebyshevPrior((1.0, -1.0)), ValueError, "std"),
    (lambda: hp.ChebyshevPrior.geometric(3, float("nan")), ValueError, "ratio"),
    (lambda: PRIOR.sample(3, rng=1.5), TypeError, "rng"),
    (lambda: hp.optimise_training_points(3, degree=4, prior=PRIOR), ValueError, "m must be >= degree"),
    (lambda: hp.optimise_training_points(3, prior=PRIOR, init=[0.0, 0.1]), ValueError, "init"),
    (lambda: hp.sample_complexity(PRIOR, 0.0), ValueError, "target"),
    (lambda: hp.sample_complexity(PRIOR, 1e-3, oversampling=0.5), ValueError, "oversampling"),
    (lambda: hp.critical_points([1.0, float("inf")]), ValueError, "e_coef"),
])
def test_bad_input_is_one_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_randomness_is_explicit():
    a = PRIOR.sample(4, rng=5)
    np.testing.assert_array_equal(a, PRIOR.sample(4, rng=np.random.default_rng(5)))
    state = np.random.get_state()[1].copy()
    PRIOR.sample(4, rng=5)
    np.testing.assert_array_equal(state, np.random.get_state()[1])
