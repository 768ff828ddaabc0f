"""EmpiricalDistribution against independent references: scipy's distances, scikit-learn's 1-NN, hand-made radii."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist
from scipy.stats import binomtest

import toyrobust as tr
from toyrobust.distributions import _nearest

METRICS = {"l2": "euclidean", "linf": "chebyshev", "l1": "cityblock"}


def _blobs(n=300, d=5, k=4, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 2
    y = rng.integers(0, k, n)
    return centres[y] + rng.normal(size=(n, d)), y


# ------------------------------------------------------------------------------------------ nearest samples
@pytest.mark.parametrize("norm", ["l2", "linf", "l1"])
@pytest.mark.parametrize("method", ["brute", "kdtree"])
def test_nearest_sample_is_exact_against_scipy(norm, method):
    X, y = _blobs()
    dist = tr.EmpiricalDistribution(X, y, norm=norm, method=method)
    rng = np.random.default_rng(1)
    q = np.vstack([rng.normal(size=(400, 5)) * 3, X[:50] + 1e-3 * rng.normal(size=(50, 5)), X[50:60]])
    D = cdist(q, X, METRICS[norm])
    d, idx = dist.nearest(torch.from_numpy(q))
    assert np.allclose(d.numpy(), D.min(1), rtol=1e-12, atol=1e-12)
    assert np.allclose(D[np.arange(len(q)), idx.numpy()], D.min(1), rtol=1e-12, atol=1e-12)
    assert torch.equal(dist.project(torch.from_numpy(q)), torch.from_numpy(X[idx.numpy()]))
    # float32 queries: distances in float32, the same samples
    d32, idx32 = dist.nearest(torch.from_numpy(q).float())
    assert d32.dtype == torch.float32 and (idx32 == idx).float().mean() > 0.99


def test_l2_screen_keeps_every_candidate_and_breaks_ties_to_the_lower_index():
    # equidistant samples (ties in exact arithmetic) and near-ties below float32 resolution
    X = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0], [1.0 + 1e-12, 0.0], [3.0, 3.0]])
    dist = tr.EmpiricalDistribution(X, [0, 1, 2, 3, 4, 5])
    q = torch.tensor([[0.0, 0.0], [0.5, 0.5], [1.0 + 1e-12, 0.0], [1.0, 0.0]], dtype=torch.float64)
    _, idx = dist.nearest(q)
    assert idx.tolist() == [0, 0, 4, 0]


def test_chunking_changes_nothing(monkeypatch):
    X, y = _blobs(n=500, d=3)
    dist = tr.EmpiricalDistribution(X, y)
    q = torch.randn(300, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    full = dist.nearest(q)
    monkeypatch.setattr(_nearest, "BUDGET", 1000)  # two query rows per chunk
    monkeypatch.setattr(_nearest, "_PAIR_BUDGET", 7)
    for norm in ("l2", "linf"):
        fresh = tr.EmpiricalDistribution(X, y, norm=norm, method="brute")
        ref = fresh.nearest(q)
        assert torch.equal(ref[1], tr.EmpiricalDistribution(X, y, norm=norm, method="kdtree").nearest(q)[1])
    assert torch.equal(tr.EmpiricalDistribution(X, y).nearest(q)[1], full[1])
    stats = tr.EmpiricalDistribution(X, y).distance_statistics()
    monkeypatch.undo()
    again = tr.EmpiricalDistribution(X, y).distance_statistics()
    assert np.allclose(stats.mean, again.mean, rtol=1e-12) and np.array_equal(stats.nearest_other, again.nearest_other)


def test_nearest_labels_match_scikit_learn_knn():
    neighbors = pytest.importorskip("sklearn.neighbors")
    X, y = _blobs(n=400, d=6, k=5, seed=3)
    q = np.random.default_rng(4).normal(size=(600, 6)) * 3
    for norm, kw in (("l2", {"p": 2}), ("l1", {"p": 1}), ("linf", {"metric": "chebyshev"})):
        knn = neighbors.KNeighborsClassifier(n_neighbors=1, algorithm="brute", **kw).fit(X, y)
        dist = tr.EmpiricalDistribution(X, y, norm=norm)
        assert np.array_equal(dist.bayes_label(torch.from_numpy(q)).numpy(), knn.predict(q)), norm
        assert np.array_equal(dist.bayes_classifier().predict(torch.from_numpy(q)).numpy(), knn.predict(q))


def test_duplicates_keep_the_first_label_and_project_stays_put():
    X = [[0.0, 0.0], [0.0, 0.0], [2.0, 0.0]]
    dist = tr.EmpiricalDistribution(X, [1, -1, -1])
    x = torch.tensor([[0.1, 0.0], [0.0, 0.0]], dtype=torch.float64)
    assert dist.bayes_label(x).tolist() == [1, 1]
    assert torch.equal(dist.project(dist.project(x)), dist.project(x))
    # counting measure: x = 0 holds the one +1 point and one of the two -1 points
    assert dist.log_likelihood(x[1:], 1).item() == 0.0
    assert dist.log_likelihood(x[1:], -1).item() == pytest.approx(math.log(1 / 2))
    assert dist.log_odds(x[1:]).item() == 0.0 and math.isnan(dist.log_odds(x[:1]).item())


# ------------------------------------------------------------------------------------------ distances and radii
@pytest.mark.parametrize("norm", ["l2", "linf", "l1"])
def test_distance_statistics_match_scipy_cdist(norm):
    X, y = _blobs(n=120, d=4, k=3, seed=5)
    stats = tr.EmpiricalDistribution(X, y).distance_statistics(norm)
    D = cdist(X, X, METRICS[norm])
    np.fill_diagonal(D, np.inf)
    for a in range(3):
        for b in range(3):
            block = D[np.ix_(y == a, y == b)]
            finite = block[np.isfinite(block)]
            assert stats.mean[a, b] == pytest.approx(finite.mean(), rel=1e-12)
            assert stats.nearest_mean[a, b] == pytest.approx(block.min(1).mean(), rel=1e-12)
            assert stats.nearest_min[a, b] == pytest.approx(block.min(), rel=1e-12)
    other = np.where(y[:, None] != y[None, :], D, np.inf).min(1)
    same = np.where(y[:, None] == y[None, :], D, np.inf).min(1)
    assert np.allclose(stats.nearest_other, other, rtol=1e-12) and np.allclose(stats.nearest_same, same, rtol=1e-12)
    assert stats.radius == pytest.approx(other.min() / 2, rel=1e-12)
    assert stats.class_radius() == pytest.approx({k: other[y == k].min() / 2 for k in range(3)}, rel=1e-12)


def test_label_invariant_radius_on_hand_made_samples():
    # 1-D: 0 and 1 (class 0), 3 (class 1), 7 (class 2): closest other-class pair 1-3, so 1 overall; class 2: 2
    line = tr.EmpiricalDistribution([0.0, 1.0, 3.0, 7.0], [0, 0, 1, 2])
    for p in (1, 2, math.inf):
        assert line.label_invariant_radius(p) == 1.0
    assert line.class_radius() == {0: 1.0, 1: 1.0, 2: 2.0}
    # 2-D: (0, 0) and (3, 4) in two classes: L2 5, Linf 4, L1 7, halved
    pair = tr.EmpiricalDistribution([[0.0, 0.0], [3.0, 4.0]], [1, -1])
    assert [pair.label_invariant_radius(p) for p in (2, math.inf, 1)] == [2.5, 2.0, 3.5]
    assert tr.bounds.label_invariant_radius(pair, tr.Linf(0.1)) == 2.0
    # the radius is exact for the projection in the same norm: a ball just larger reaches the other label
    assert float(tr.risk(pair, pair.bayes_classifier(), tr.L2(2.5 * 0.999))) == 0.0
    assert float(tr.risk(pair, pair.bayes_classifier(), tr.L2(2.5 * 1.001))) == 1.0
    for p, threat in ((2, tr.L2), (math.inf, tr.Linf), (1, tr.L1)):
        d = pair.with_norm(p)
        r = d.label_invariant_radius(p)
        x = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
        res = tr.pgd(d.bayes_classifier(), x, torch.tensor([1]), threat(r * 1.01), steps=200, generator=0)
        assert bool(res.success.all()), p
        res = tr.pgd(d.bayes_classifier(), x, torch.tensor([1]), threat(r * 0.99), steps=200, generator=0)
        assert not bool(res.success.any()), p
    one = tr.EmpiricalDistribution([[0.0], [1.0]], [0, 0])
    assert one.label_invariant_radius(2) == math.inf
    with pytest.raises(NotImplementedError, match="every coordinate"):
        pair.label_invariant_radius(2, coords=[0])


def test_seed_001_nearer_elsewhere_is_read_from_the_mean_matrix():
    # class 1 is a tight cluster near a wide class 0: class 0 is nearer class 1 than itself
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(200, 2)) * 5, rng.normal(size=(200, 2)) * 0.1])
    y = np.r_[np.zeros(200, int), np.ones(200, int)]
    stats = tr.EmpiricalDistribution(X, y).distance_statistics()
    assert stats.nearer_elsewhere() == [(0, 1)]


# ------------------------------------------------------------------------------------------ sampling and risks
def test_sampling_is_uniform_over_the_points_and_by_class():
    X, y = _blobs(n=10, d=2, k=3, seed=7)
    dist = tr.EmpiricalDistribution(X, y)
    x, lab = dist.sample(20_000, generator=0, dtype=torch.float64)
    _, idx = dist.nearest(x)
    counts = torch.bincount(idx, minlength=10)
    for c in counts.tolist():
        assert binomtest(c, 20_000, 0.1).pvalue > 1e-5
    assert torch.equal(torch.from_numpy(y)[idx], lab)
    # the counter-based stream of estimate_risk: a constant classifier errs on the other classes' share
    const = tr.Linear([0.0, 0.0], 1.0)
    binary = tr.EmpiricalDistribution(X, np.where(y == 0, -1, 1))
    e = tr.estimate_risk(binary, const, n=20_000, seed=3, dtype=torch.float64)
    assert e.contains(float((y == 0).mean()))
    # given labels: uniform within the class
    from toyrobust.rng import GeneratorDraws

    want = torch.tensor([2] * 5000)
    pts = dist._sample(want, GeneratorDraws(torch.Generator().manual_seed(1), 5000), torch.float64)
    assert set(dist.bayes_label(pts).tolist()) == {2}
    assert len(set(map(tuple, pts.tolist()))) == int((y == 2).sum())


def test_k_class_network_estimate_and_projection_definition():
    X, y = _blobs(n=200, d=4, k=3, seed=8)
    train = tr.EmpiricalDistribution(X, y)
    net = tr.MLP(4, (16,), n_classes=3, seed=0, dtype=torch.float64)
    e = tr.estimate_risk(train, net, n=2000, seed=0)
    pred = net(torch.from_numpy(X)).argmax(1).numpy()
    assert e.contains(float((pred != y).mean())) and e.kind == "exact"
    ball = tr.estimate_risk(train, net, tr.Linf(0.3), n=500, seed=0, attack="pgd", attack_options={"steps": 20})
    assert ball.value >= e.value - 0.05
    # the projection definition through the nearest sample's label: never above the ball risk
    proj = tr.estimate_risk(train, net, tr.Linf(0.3), "projection", n=500, seed=0, attack="pgd",
                            attack_options={"steps": 20})
    assert proj.value <= ball.value
    with pytest.raises(ValueError, match=r"dist has labels 0\.\.2 but clf is a binary classifier"):
        tr.estimate_risk(train, tr.Linear([1.0, 0, 0, 0]), n=10)


def test_the_1nn_classifier_risks_are_exact():
    # 1-D: +1 at 0 and 1, -1 at 3: the 1-NN boundary sits at 2, so the ball risk at eps is the share of points
    # within eps of 2 (strictly: a zero margin... the cell is decided with a 1e-9 tightening)
    dist = tr.EmpiricalDistribution([[0.0], [1.0], [3.0]], [1, 1, -1])
    clf = dist.bayes_classifier()
    for eps, want in ((0.5, 0.0), (0.99, 0.0), (1.01, 2 / 3), (2.01, 1.0)):
        assert float(tr.risk(dist, clf, tr.L2(eps))) == pytest.approx(want), eps
        assert float(tr.risk(dist, clf, tr.L2(eps), "projection")) == 0.0
    # a linear threshold x < 1.5 -> +1 is wrong for no point; the projection definition counts the points that
    # reach x >= 1.5 (label -1 by the threshold) while still nearest to a +1 sample (x < 2): only 1, for eps >= 0.5
    lin = tr.Linear([-1.0], 1.5)
    assert float(tr.risk(dist, lin, tr.L2(0.6), "projection")) == pytest.approx(1 / 3)
    assert float(tr.risk(dist, lin, tr.L2(0.4), "projection")) == 0.0


# ------------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize("kwargs, match", [
    (dict(X=[[0.0], [1.0]], y=[0, 1, 2]), r"y must have shape \(2,\) to match X, got \(3,\)"),
    (dict(X=[[0.0], [math.inf]], y=[0, 1]), r"X must be finite, got a non-finite value in row 1"),
    (dict(X=[[0.0], [1.0]], y=[-1, 2]), r"y must hold the labels 0\.\.K-1 or -1/\+1, got -1"),
    (dict(X=[[0.0], [1.0]], y=[0.5, 1]), r"y must hold integer labels .*got 0\.5"),
    (dict(X=[[0.0], [1.0]], y=[0, 1], norm="l3"), r"norm must be 'l2', 'linf' or 'l1'.*got 'l3'"),
    (dict(X=[[0.0], [1.0]], y=[0, 3], n_classes=2), r"n_classes must be at least max\(y\) \+ 1 = 4, got 2"),
    (dict(X=[[0.0], [1.0]], y=[0, 1], method="ball-tree"), r"method must be one of auto, brute, kdtree"),
    (dict(X=np.zeros((0, 2)), y=[]), r"X must have shape \(n, d\) with n >= 1"),
])
def test_bad_input_names_the_parameter(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        tr.EmpiricalDistribution(**kwargs)


def test_methods_validate_points_and_labels():
    dist = tr.EmpiricalDistribution([[0.0, 0.0], [1.0, 1.0]], [0, 1])
    with pytest.raises(ValueError, match=r"x must have shape \(N, 2\)"):
        dist.project(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="NaN"):
        dist.bayes_label(torch.tensor([[math.nan, 0.0]]))
    assert torch.isnan(dist.project(torch.tensor([[math.nan, 0.0], [0.9, 0.9]]))[0]).all()
    with pytest.raises(ValueError, match=r"y must be one of the labels 0\.\.1, got 2"):
        dist.log_likelihood(torch.zeros(1, 2), 2)
    with pytest.raises(TypeError, match="log_odds is for labels -1/\\+1"):
        dist.log_odds(torch.zeros(1, 2))


def test_kdtree_and_brute_agree_on_the_digits_in_linf():
    digits = tr.EmpiricalDistribution.digits(n=400, norm="linf")
    gen = torch.Generator().manual_seed(0)
    x, _ = digits.sample(300, generator=gen, dtype=torch.float64)
    q = (x + 0.3 * (2 * torch.rand(x.shape, generator=gen, dtype=torch.float64) - 1)).clamp(0, 1)
    d1, _ = digits.nearest(q)
    d2, _ = tr.EmpiricalDistribution(digits.X, digits.y, norm="linf", method="brute").nearest(q)
    ref, _ = cKDTree(digits.X.numpy()).query(q.numpy(), p=np.inf)
    assert torch.equal(d1, d2) and np.array_equal(d1.numpy(), ref)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch.cuda.is_available() is False)")
def test_cuda_nearest_samples_sampling_and_a_k_class_estimate_agree_with_the_cpu():
    X, y = _blobs(n=2000, d=16, k=5, seed=9)
    q = torch.randn(5000, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    for norm in ("l2", "linf", "l1"):
        dist = tr.EmpiricalDistribution(X, y, norm=norm)
        d_cpu, i_cpu = dist.nearest(q)
        d_gpu, i_gpu = dist.nearest(q.cuda())
        assert i_gpu.device.type == "cuda" and torch.equal(i_gpu.cpu(), i_cpu)
        assert torch.allclose(d_gpu.cpu(), d_cpu, rtol=1e-12)
    dist = tr.EmpiricalDistribution(X, y)
    net = tr.MLP(16, (32,), n_classes=5, seed=0, device="cuda")
    e = tr.estimate_risk(dist, net, tr.Linf(0.2), n=4000, seed=0, device="cuda", attack="pgd")
    assert e.device.startswith("cuda") and 0.0 <= e.value <= 1.0
    clean = tr.estimate_risk(dist, net, n=4000, seed=0, device="cuda")
    with torch.no_grad():
        err = float((net(torch.from_numpy(X).float().cuda()).argmax(1).cpu() != torch.from_numpy(y)).double().mean())
    assert clean.contains(err)
