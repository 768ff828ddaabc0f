"""Every figure script runs in quick mode and writes non-empty files; figure data agree with the engine."""

import csv
import math

import mpmath
import numpy as np
import pytest
import torch
from scipy import integrate, optimize, special, stats

import toyrobust as tr
from toyrobust import reproduce


def _read(path):
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    return {k: [r[k] for r in rows] for k in rows[0]}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    return out, reproduce.run(quick=True, out=out)


def test_every_script_writes_nonempty_png_pdf_csv(built):
    out, results = built
    assert set(results) == set(reproduce.available())
    for name, paths in results.items():
        suffixes = {p.suffix for p in paths}
        assert {".png", ".pdf", ".csv"} <= suffixes, name
        for p in paths:
            assert p.parent == out and p.stat().st_size > (1000 if p.suffix != ".csv" else 20), p


def test_tsipras_toy_data_match_the_distribution(built):
    out, _ = built
    dens = _read(out / "tsipras_toy.csv")
    x2 = np.array(dens["x2"], dtype=float)
    for y in ("+1", "-1"):
        total = sum(np.trapezoid(np.array(dens[f"p(x1={s},x2|y={y})"], dtype=float), x2) for s in ("+1", "-1"))
        assert total == pytest.approx(1.0, abs=1e-4)
    summary = dict(zip(*_read(out / "tsipras_toy-summary.csv").values(), strict=True))
    bayes = tr.Tsipras(0.9, 3.0).bayes_classifier()
    for s in (1, -1):
        pt = torch.tensor([[float(s), float(summary[f"threshold_x1={s:+d}"])]], dtype=torch.float64)
        assert abs(bayes.margin(pt).item()) < 1e-9  # the threshold lies on the Bayes boundary


def test_unknown_figure_is_an_error():
    with pytest.raises(ValueError, match="unknown figure"):
        reproduce.run(only=["nope"])


# ------------------------------------------------------------------------------------------------ helpers
def _floats(table, column):
    return np.array(table[column], dtype=float)


def _rows(table, **match):
    """Indices of the rows whose columns equal the given (string) values."""
    n = len(next(iter(table.values())))
    return [i for i in range(n) if all(table[k][i] == v for k, v in match.items())]


def _Q(x):
    return stats.norm.sf(x)


# ------------------------------------------------------------------------------------------------ figure 2
def _brute_force_point_masses(t, eps, definition, gap=1.0):
    """Worst case over a dense grid of each closed ball (ends, the midpoint and the threshold included)."""
    clf = tr.Linear([-1.0], t)
    dist = tr.PointMasses(gap)
    total = 0.0
    for x0, y0 in ((0.0, 1), (gap, -1)):
        grid = np.union1d(np.linspace(x0 - eps, x0 + eps, 4001), [x0 - eps, x0 + eps, gap / 2, t])
        grid = grid[(grid >= x0 - eps) & (grid <= x0 + eps)]
        xs = torch.tensor(grid, dtype=torch.float64)[:, None]
        ys = torch.full((len(grid),), y0)
        hit = tr.is_adversarial(definition, clf, xs, ys, dist=dist, x=torch.full_like(xs, x0))
        total += 0.5 * bool(hit.any())
    return total


def test_point_masses_curves_match_indicator_closed_forms(built):
    out, _ = built
    data = _read(out / "point_masses.csv")
    eps = _floats(data, "eps_over_gap")
    assert 0.5 in eps  # the jump is on the grid
    np.testing.assert_array_equal(_floats(data, "ball"), 0.5 * (eps > 0.5) + 0.5 * (eps >= 0.5))
    np.testing.assert_array_equal(_floats(data, "optimal_ball"), np.where(eps < 0.5, 0.0, 0.5))
    np.testing.assert_array_equal(_floats(data, "projection"), 0.0)
    np.testing.assert_array_equal(_floats(data, "standard"), 0.0)


def test_point_masses_thresholds_match_brute_force(built):
    out, _ = built
    data = _read(out / "point_masses-thresholds.csv")
    t = _floats(data, "t_over_gap")
    picks = sorted(set(range(0, len(t), 7)) | {int(np.flatnonzero(t == v)[0]) for v in (0.0, 0.5, 1.0)})
    for i in picks:
        for definition in ("ball", "projection"):
            assert float(data[definition][i]) == _brute_force_point_masses(t[i], 1.0, definition), (t[i], definition)
    # seed 000: at eps = gap every accurate threshold is fooled at both points; only t = gap/2 is projection-robust
    accurate = (t >= 0) & (t < 1)
    assert np.all(_floats(data, "ball")[accurate] == 1.0)
    assert np.flatnonzero(_floats(data, "projection") == 0.0).tolist() == [int(np.flatnonzero(t == 0.5)[0])]


# ------------------------------------------------------------------------------------------------ figure 3
def test_robust_features_curves_match_normal_tails(built):
    out, _ = built
    data = _read(out / "robust_features.csv")
    D = _floats(data, "D")
    a = np.sqrt(np.log(D) / (D - 1))
    eps = 2 * a
    np.testing.assert_allclose(_floats(data, "eps"), eps, rtol=1e-9)
    s = np.sqrt(1 + (D - 1) * a**2)  # ||mean||_2 = sqrt(1 + log D)
    l1 = 1 + (D - 1) * a
    np.testing.assert_allclose(_floats(data, "bayes_standard"), _Q(np.sqrt(1 + np.log(D))), rtol=1e-8)
    np.testing.assert_allclose(_floats(data, "bayes_adversarial"), _Q((s**2 - eps * l1) / s), rtol=1e-8)
    np.testing.assert_allclose(_floats(data, "sign_x1_standard"), _Q(1.0), rtol=1e-8)
    np.testing.assert_allclose(_floats(data, "sign_x1_adversarial"), _Q(1 - eps), rtol=1e-8)
    # Bhagoji et al.: Q(distance from the mean to the eps-ball); eps > a, so only the robust coordinate is left
    np.testing.assert_allclose(_floats(data, "optimal_adversarial"), _Q(np.maximum(1 - eps, 0)), rtol=1e-8)


def test_robust_features_monte_carlo_agrees_with_closed_form(built):
    out, _ = built
    pts = _read(out / "robust_features-montecarlo.csv")
    for i in range(len(pts["D"])):
        n = int(pts["n"][i])
        k = round(float(pts["estimate"][i]) * n)
        p = float(pts["closed_form"][i])
        assert stats.binomtest(k, n, p).pvalue > 1e-4, {c: v[i] for c, v in pts.items()}
        assert float(pts["ci_low"][i]) <= float(pts["estimate"][i]) <= float(pts["ci_high"][i])


# ------------------------------------------------------------------------------------------------ figure 4
def _tsipras_linear_risk(w1, w2, b, eps, p=0.9, eta=3.0):
    """Ball risk of sign(w1 x1 + w2 x2 + b) on Tsipras(p, eta, 1) with an Linf ball of radius eps on x2 only."""
    total = 0.0
    for y in (1, -1):
        for s, weight in ((y, p / 2), (-y, (1 - p) / 2)):
            if w2 == 0:
                margin = w1 * s + b
                total += weight * (margin < 0 if y == 1 else margin >= 0)
            else:
                total += weight * _Q((y * (w1 * s + b) + eta * w2 - eps * abs(w2)) / abs(w2))
    return total


def test_tsipras_tradeoff_named_classifiers_match_direct_formula(built):
    out, _ = built
    marks = _read(out / "tsipras_tradeoff-classifiers.csv")
    for i in range(len(marks["classifier"])):
        w1, w2, b = (float(marks[c][i]) for c in ("w1", "w2", "b"))
        assert float(marks["standard_risk"][i]) == pytest.approx(_tsipras_linear_risk(w1, w2, b, 0.0), rel=1e-9)
        assert float(marks["adversarial_risk"][i]) == pytest.approx(_tsipras_linear_risk(w1, w2, b, 6.0), rel=1e-9)
    row = marks["classifier"].index("sign(x1)")
    assert float(marks["standard_risk"][row]) == pytest.approx(0.1)  # 1 - p
    assert float(marks["adversarial_risk"][row]) == pytest.approx(0.1)  # on Theorem 2.1's bound: 1 - 9 * 0.1


def test_tsipras_tradeoff_frontier_is_reached_and_obeys_theorem(built):
    out, _ = built
    fr = _read(out / "tsipras_tradeoff-frontier.csv")
    ratio, delta = _floats(fr, "eps_over_eta"), _floats(fr, "delta")
    best = _floats(fr, "min_adversarial_risk")
    ok = np.isfinite(best)
    for i in np.flatnonzero(ok)[::37]:  # the classifier listed reaches the value, within the allowed standard risk
        w1, w2, b = (float(fr[c][i]) for c in ("w1", "w2", "b"))
        assert _tsipras_linear_risk(w1, w2, b, 3.0 * ratio[i]) == pytest.approx(best[i], rel=1e-8, abs=1e-12)
        assert _tsipras_linear_risk(w1, w2, b, 0.0) <= delta[i] + 1e-9
    strong = ok & (ratio >= 2)
    np.testing.assert_allclose(_floats(fr, "theorem_2_1_bound")[strong],
                               np.maximum(0.0, 1 - 0.9 / 0.1 * delta[strong]), atol=1e-9)
    assert np.all(best[strong] >= _floats(fr, "theorem_2_1_bound")[strong] - 1e-9)
    for r in np.unique(ratio):  # a frontier never increases with the allowed standard risk
        assert np.all(np.diff(best[(ratio == r) & ok]) <= 1e-15)


# ------------------------------------------------------------------------------------------------ figure 5
def test_spherical_caps_heights_have_the_stated_measure(built):
    out, _ = built
    data = _read(out / "spherical_caps.csv")
    D, mu = _floats(data, "D"), _floats(data, "mu")
    h = _floats(data, "exact_height")
    # u^2 ~ Beta(1/2, (D-1)/2) for u = <x, e>, x uniform on the sphere, so P[u >= h] = 1/2 P[u^2 >= h^2] (h >= 0)
    # (the CSV keeps 10 digits of h: near h = 1 that is not enough for 1 - h^2, so compare heights there)
    away = h < 0.999
    np.testing.assert_allclose(0.5 * stats.beta.sf(h[away] ** 2, 0.5, (D[away] - 1) / 2), mu[away], rtol=1e-6)
    h_ref = np.sqrt(stats.beta.isf(2 * mu, 0.5, (D - 1) / 2))
    np.testing.assert_allclose(h_ref, h, rtol=1e-8)
    three = D == 3  # Archimedes: on S^2 the cap fraction is (1 - h)/2
    np.testing.assert_allclose(h[three], 1 - 2 * mu[three], rtol=1e-9)
    g = _floats(data, "gaussian_height")
    np.testing.assert_allclose(g, stats.norm.isf(mu) / np.sqrt(D), rtol=1e-9)
    # full precision references (the CSV's rounded g - h would cancel); rtol 1e-4: g - h is ~1e-6 h at D = 1e6,
    # where the engine's heights carry ~1e-11 relative rounding (scipy's beta.isf is exact there)
    g_ref = stats.norm.isf(mu) / np.sqrt(D)
    np.testing.assert_allclose(_floats(data, "relative_error"), np.abs(g_ref - h_ref) / h_ref, rtol=1e-4)
    picks = np.flatnonzero(np.isin(D, [3, 10, 100, 500, 1000]) & away)
    with mpmath.workdps(30):  # high-precision spot checks of the measure at the stated heights
        for i in picks:
            exact = 0.5 * mpmath.betainc((D[i] - 1) / 2, 0.5, 0, 1 - mpmath.mpf(h[i]) ** 2, regularized=True)
            assert float(exact) == pytest.approx(mu[i], rel=1e-6), (D[i], mu[i])


# ------------------------------------------------------------------------------------------------ figure 6
def _cap_mean_distance(n, mu):
    """Layer cake: E d(x, cap) = int_0^2 P[d > t] dt, the cap of angle theta grown by 2 arcsin(t/2) (chordal)."""
    def frac(theta):  # measure of the cap of angular radius theta in S^{n-1}
        theta = min(theta, math.pi)
        tail = 0.5 * stats.beta.sf(math.cos(theta) ** 2, 0.5, (n - 1) / 2)
        return tail if theta <= math.pi / 2 else 1 - tail

    theta = optimize.brentq(lambda t: frac(t) - mu, 0.0, math.pi, xtol=1e-15)
    value, _ = integrate.quad(lambda t: 1 - frac(theta + 2 * math.asin(t / 2)), 0, 2, limit=400, epsabs=1e-12)
    return value


def test_adversarial_spheres_bound_matches_layer_cake_integral(built):
    out, _ = built
    curve = _read(out / "adversarial_spheres.csv")
    nets = _read(out / "adversarial_spheres-networks.csv")
    mu, bound = _floats(curve, "error_rate"), _floats(curve, "isoperimetric_bound")
    n = 50  # the quick size
    for i in (0, len(mu) // 3, 2 * len(mu) // 3, len(mu) - 1):
        assert bound[i] == pytest.approx(_cap_mean_distance(n, mu[i]), rel=1e-6)
    np.testing.assert_allclose(_floats(curve, "gaussian_approximation"), stats.norm.isf(mu) / math.sqrt(n), rtol=1e-9)
    assert np.all(np.diff(bound) < 0)  # a larger error set is nearer on average
    for i in range(len(nets["step"])):
        low, mid, high = (float(nets[c][i]) for c in ("error_low", "error_rate", "error_high"))
        assert low <= mid <= high
        if mid > 0:
            assert float(nets["bound_at_error_rate"][i]) == pytest.approx(_cap_mean_distance(n, mid), rel=1e-6)


# ------------------------------------------------------------------------------------------------ figure 7
def test_adversarial_training_risks_and_fixed_point(built):
    out, _ = built
    rec = _read(out / "adversarial_training.csv")
    W = _read(out / "adversarial_training-weights.csv")
    D = 100
    a = math.sqrt(math.log(D) / (D - 1))
    eps = 2 * a
    np.testing.assert_allclose(_floats(rec, "fixed_point_w_robust"), 2 * (1 - eps), rtol=1e-9)
    mean = np.array([1.0] + [a] * (D - 1))
    weights = np.stack([_floats(W, f"w{i + 1}") for i in range(D)], axis=1)
    bias = _floats(rec, "bias")
    for i in range(0, len(bias), 17):
        w, b = weights[i], bias[i]
        s, m, drop = np.linalg.norm(w), w @ mean, eps * np.abs(w).sum()
        assert float(rec["standard_risk"][i]) == pytest.approx(0.5 * (_Q((m + b) / s) + _Q((m - b) / s)), rel=1e-7)
        assert float(rec["adversarial_risk"][i]) == pytest.approx(
            0.5 * (_Q((m + b - drop) / s) + _Q((m - b - drop) / s)), rel=1e-7)
    np.testing.assert_allclose(_floats(rec, "w_robust"), weights[:, 0])
    np.testing.assert_allclose(_floats(rec, "w_nonrobust_absmax"), np.abs(weights[:, 1:]).max(axis=1))
    # the non-robust weights fall from the standard optimum 2a towards the fixed point 0
    assert weights[0, 1:] == pytest.approx(2 * a)
    assert np.abs(weights[-1, 1:]).max() < 0.01 * 2 * a


# ------------------------------------------------------------------------------------------------ figure 8
def _mean_sphere_distance(n, r1, r2):
    """E ||x - x'|| for independent uniform points on spheres of radii r1, r2 in R^n (u = cos of their angle)."""
    log_norm = special.betaln(0.5, (n - 1) / 2)
    dens = lambda u: math.exp((n - 3) / 2 * math.log1p(-u * u) - log_norm)  # noqa: E731
    value, _ = integrate.quad(lambda u: math.sqrt(r1**2 + r2**2 - 2 * r1 * r2 * u) * dens(u), -1, 1,
                              points=[0.0], limit=200)
    return value


def test_choosing_eps_radii_and_distances(built):
    out, _ = built
    summary = _read(out / "choosing_eps-summary.csv")
    radius = dict(zip(summary["distribution"], _floats(summary, "label_invariant_radius"), strict=True))
    assert radius["point masses (gap 1)"] == 0.5  # half the gap
    assert radius["spheres (D 500, radii 1, 1.3)"] == pytest.approx(0.15)  # (r2 - r1)/2
    assert radius["Tsipras (p 0.9, eta 3)"] == 0.0 and radius["robust/non-robust (D 100)"] == 0.0  # overlapping
    heat = _read(out / "choosing_eps-heatmap.csv")
    for a_, b_ in ((-1, -1), (-1, 1), (1, 1)):
        i, = _rows(heat, distribution="spheres (D 500, radii 1, 1.3)", class_a=str(a_), class_b=str(b_))
        r1, r2 = (1.0 if a_ == -1 else 1.3), (1.0 if b_ == -1 else 1.3)
        assert float(heat["mean_distance"][i]) == pytest.approx(_mean_sphere_distance(500, r1, r2), abs=0.01)
        i, = _rows(heat, distribution="point masses (gap 1)", class_a=str(a_), class_b=str(b_))
        assert float(heat["mean_distance"][i]) == (0.0 if a_ == b_ else 1.0)
    # seed 001's surprise, on the spheres: the outer class is nearer the inner class than to itself
    assert _mean_sphere_distance(500, 1.3, 1.3) > _mean_sphere_distance(500, 1.0, 1.3)


# ------------------------------------------------------------------------------------------------ figure 9
def test_definitions_bayes_reference_matches_closed_forms(built):
    out, _ = built
    ref = _read(out / "definitions-bayes.csv")
    for key in ("point_masses", "spheres"):  # both separable with half-gap 0.5 resp. 0.15: an indicator
        half = 0.5 if key == "point_masses" else 0.15
        for definition in tr.DEFINITIONS:
            idx = _rows(ref, distribution=key, definition=definition)
            eps = _floats(ref, "eps")[idx]
            got = _floats(ref, "closed_form")[idx]
            ball = 0.5 * (eps >= half) + 0.5 * (eps > half)
            expect = ball if definition in ("ball", "prediction-change") else np.zeros_like(eps)
            np.testing.assert_array_equal(got, expect, err_msg=f"{key} {definition}")
    D = 100
    a = math.sqrt(math.log(D) / (D - 1))
    # Bayes weights w = 2 mean: <w, mean> = 2 (1 + log D), ||w||_2 = 2 sqrt(1 + log D), ||w||_1 = 2 (1 + (D-1) a)
    A, s, l1 = 2 * (1 + math.log(D)), 2 * math.sqrt(1 + math.log(D)), 2 * (1 + (D - 1) * a)
    for definition, formula in (("ball", lambda c: _Q((A - c) / s)),
                                ("prediction-change", lambda c: stats.norm.cdf((c - A) / s)
                                 - stats.norm.cdf((-c - A) / s))):
        idx = _rows(ref, distribution="robust_nonrobust", definition=definition)
        eps = _floats(ref, "eps")[idx]
        np.testing.assert_allclose(_floats(ref, "closed_form")[idx], formula(eps * l1), rtol=1e-7, atol=1e-15)


def test_definitions_estimates_are_monotone_with_valid_intervals(built):
    out, _ = built
    est = _read(out / "definitions.csv")
    assert set(est["distribution"]) == {"point_masses", "tsipras", "robust_nonrobust", "spheres"}
    assert set(est["definition"]) == set(tr.DEFINITIONS)
    for key in set(est["distribution"]):
        for definition in tr.DEFINITIONS:
            idx = _rows(est, distribution=key, definition=definition)
            eps, value = _floats(est, "eps")[idx], _floats(est, "estimate")[idx]
            assert np.all(np.diff(eps) > 0) and np.all(np.diff(value) >= 0)
            n = _floats(est, "n")[idx]
            for v, lo, hi, m in zip(value, _floats(est, "ci_low")[idx], _floats(est, "ci_high")[idx], n,
                                    strict=True):
                ref_lo, ref_hi = stats.binomtest(round(v * m), int(m)).proportion_ci(0.95, method="exact")
                assert lo == pytest.approx(ref_lo, abs=1e-9) and hi == pytest.approx(ref_hi, abs=1e-9)


# ------------------------------------------------------------------------------------------------ drawing
def _drawn(name, monkeypatch, tmp_path):
    """The matplotlib figure a script builds (captured at save time), with quick sizes."""
    module = reproduce.load(name)
    captured = {}

    def capture(fig, stem, data, out=None):
        captured["fig"] = fig
        return []

    monkeypatch.setattr(module, "save_figure", capture)
    module.main(quick=True, out=tmp_path)
    return captured["fig"]


def test_step_path_draws_jumps_vertically_at_the_breakpoints():
    from toyrobust.plotting import step_path

    xs, ys = step_path([0.4, 0.5, 0.6], [0.0, 0.5, 1.0], breaks=[0.5])
    assert {(x, y) for x, y in zip(xs, ys)} >= {(0.5, 0.0), (0.5, 1.0)}
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        assert x0 == x1 or y0 == y1  # no sloped segment


def test_point_mass_risks_are_drawn_as_steps(monkeypatch, tmp_path):
    fig = _drawn("point_masses", monkeypatch, tmp_path)
    lines = [ln for ax in fig.axes for ln in ax.get_lines() if len(ln.get_xdata()) > 2]
    assert len(lines) >= 8
    for line in lines:
        x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
        ok = np.isfinite(y[:-1]) & np.isfinite(y[1:])
        sloped = ok & (np.diff(x) != 0) & (np.diff(y) != 0)
        assert not sloped.any(), line.get_label()
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_tsipras_unreachable_hatching_includes_the_region_under_one_minus_p(monkeypatch, tmp_path):
    fig = _drawn("tsipras_tradeoff", monkeypatch, tmp_path)
    p = 0.9
    for ax in fig.axes[:2]:
        hatched = [c for c in ax.collections if c.get_hatch()]
        assert hatched
        def inside(pt, hatched=hatched, ax=ax):
            return any(path.contains_point(pt) for c in hatched for path in c.get_paths())
        # below 1 - p where Theorem 2.1's line is already 0 (delta > (1 - p)/p): unreachable by any classifier
        assert inside((0.3, (1 - p) / 2)) and inside((0.12, 0.05))
        assert inside((0.05, 0.5 * (1 - p * 0.05 / (1 - p))))  # under the theorem's line
        assert not inside((0.3, (1 - p) + 0.02))  # sign(x_1) reaches (1 - p, 1 - p): above it is reachable
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_choosing_eps_digits_data_match_scipy(built):
    """Seed 001 on the digits: the heatmap and the radii against scipy's distances on the same split, the crafted
    images within eps, and nothing excluded from the training images' examples below the label-invariant radius."""
    import importlib.util as _util

    from scipy.spatial.distance import cdist

    if _util.find_spec("sklearn") is None:
        pytest.skip("scikit-learn ships the digits")
    out, _ = built
    module = reproduce.load("choosing_eps_digits")
    X, y = tr.datasets.digits()
    Xtr, ytr, _, _ = module.split(X, y)
    Xtr, ytr = Xtr.double().numpy(), ytr.numpy()
    heat, rad = _read(out / "choosing_eps_digits-heatmap.csv"), _read(out / "choosing_eps_digits-radius.csv")
    for norm, metric in (("l2", "euclidean"), ("linf", "chebyshev")):
        D = cdist(Xtr, Xtr, metric)
        np.fill_diagonal(D, np.nan)
        rows = [i for i, n in enumerate(heat["norm"]) if n == norm]
        for i in rows[::7]:
            a, b = int(heat["class_a"][i]), int(heat["class_b"][i])
            assert float(heat["mean_distance"][i]) == pytest.approx(np.nanmean(D[np.ix_(ytr == a, ytr == b)]), rel=1e-8)
        other = np.where(ytr[:, None] != ytr[None, :], np.nan_to_num(D, nan=np.inf), np.inf).min(1)
        for i in (i for i, n in enumerate(rad["norm"]) if n == norm):
            c = int(rad["class"][i])
            assert float(rad["label_invariant_radius"][i]) == pytest.approx(other[ytr == c].min() / 2, rel=1e-8)
        # seed 001's observation, read from the same matrix
        M = np.array([float(heat["mean_distance"][i]) for i in rows]).reshape(10, 10)
        flagged = [heat["nearer_than_own_class"][i] == "True" for i in rows]
        assert flagged == [(M[i, j] < M[i, i]) and i != j for i in range(10) for j in range(10)]
    crafted = _read(out / "choosing_eps_digits-crafted.csv")
    for eps, linf, pix in zip(crafted["eps"], crafted["linf_to_x0"], crafted["pixels"], strict=True):
        values = np.array(pix.split(), dtype=float)
        assert values.min() >= 0 and values.max() <= 1
        if eps != "nan":
            assert float(linf) <= float(eps) + 1e-6
    summary = _read(out / "choosing_eps_digits-summary.csv")
    radius = float(summary["radius_linf_all_training"][0])
    proj = _read(out / "choosing_eps_digits-projection.csv")
    for images, eps, share in zip(proj["images"], proj["eps"], proj["excluded_share_linf"], strict=True):
        if images == "training" and float(eps) < radius:
            assert float(share) == 0.0
