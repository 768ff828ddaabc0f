"""k-WTA, BPDA and EOT: exact layer behaviour, hand-computed substitute gradients, closed-form EOT expectations,
and the seed's "false sense of security" measured against the exact optimal adversarial risk."""

import math

import pytest
import scipy.stats
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import toyrobust as tr
from toyrobust.attacks import fgsm, pgd
from toyrobust.attacks.adaptive import BPDA, EOT, bpda
from toyrobust.defenses import KWTA, kwta_mlp
from toyrobust.montecarlo import clopper_pearson
from toyrobust.rng import make_generator

# ------------------------------------------------------------------------------------------------ KWTA layer

@given(width=st.integers(1, 60), num=st.integers(1, 20), den=st.integers(1, 20), n=st.integers(1, 5),
       seed=st.integers(0, 2**16))
def test_kwta_keeps_exactly_the_k_largest(width, num, den, n, seed):
    if num > den:
        num, den = den, num
    layer = KWTA(num / den)
    k = max(1, -(-num * width // den))  # ceil(num * width / den) in integers
    z = torch.randn(n, width, generator=make_generator(seed), dtype=torch.float64)
    out = layer(z)
    assert ((out != 0).sum(dim=1) == k).all()
    for row_z, row_out in zip(z, out):  # brute force: the kept entries are the k largest, unchanged
        order = sorted(range(width), key=lambda j: -float(row_z[j]))
        assert set(order[:k]) == {j for j in range(width) if row_out[j] != 0}
        assert all(row_out[j] == row_z[j] for j in order[:k])


def test_kwta_mlp_replaces_every_relu_and_trains():
    model = kwta_mlp(4, (16, 8), ratio=0.25, seed=0)
    assert sum(isinstance(m, KWTA) for m in model.modules()) == 2
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())
    dist = tr.GaussianMixture([2.0, 0.0, 0.0, 0.0])
    tr.train(model, dist, steps=200, lr=3e-3, seed=0, eval_n=0, progress=False)
    x, y = dist.sample(4000, generator=make_generator(1))
    k = int((model.classifier().predict(x) != y).sum())
    lo, hi = clopper_pearson(k, 4000, 0.999)
    assert model(x).shape == (4000,)
    assert lo <= float(tr.optimal_risk(dist, None)) + 0.02  # Bayes risk Q(2) = 0.023 is within reach
    assert hi >= float(tr.optimal_risk(dist, None))


@pytest.mark.parametrize("ratio", [0, -0.1, 1.5, float("nan")])
def test_kwta_bad_ratio(ratio):
    with pytest.raises(ValueError, match="ratio"):
        KWTA(ratio)
    with pytest.raises(ValueError, match="ratio"):
        kwta_mlp(3, (4,), ratio=ratio)


def test_kwta_bad_shape():
    with pytest.raises(ValueError, match=r"\(N, width\)"):
        KWTA(0.5)(torch.zeros(3))


# ------------------------------------------------------------------------------------------------ BPDA

def _layers(model):
    lins = [m for m in model.net if isinstance(m, nn.Linear)]
    return [(lin.weight.detach(), lin.bias.detach()) for lin in lins]


def _hand_gradient(model, x, kind):
    """d logit / d x by explicit matrix products, for a kwta_mlp, with the backward of each k-WTA layer taken
    as ``kind``: 'autograd' (1 on kept units), 'relu' (1 where the pre-activation is > 0), 'identity'."""
    (W1, b1), (W2, b2), (W3, _) = _layers(model)
    k1, k2 = model.net[1], model.net[3]
    grads = []
    for xi in x:
        z1 = W1 @ xi + b1
        a1 = k1(z1[None])[0]
        z2 = W2 @ a1 + b2
        masks = []
        for z, layer in ((z1, k1), (z2, k2)):
            if kind == "autograd":
                masks.append((layer(z[None])[0] != 0).to(z.dtype))
            elif kind == "relu":
                masks.append((z > 0).to(z.dtype))
            else:
                masks.append(torch.ones_like(z))
        grads.append(W3[0] @ torch.diag(masks[1]) @ W2 @ torch.diag(masks[0]) @ W1)
    return torch.stack(grads)


def _autograd(module, x):
    xg = x.clone().requires_grad_(True)
    out = module(xg)
    return torch.autograd.grad(out.sum(), xg)[0]


@pytest.mark.parametrize("kind", ["relu", "identity"])
def test_bpda_forward_is_exact_and_backward_is_the_substitute(kind):
    model = kwta_mlp(5, (12, 10), ratio=0.3, seed=3, dtype=torch.float64)
    x = torch.randn(7, 5, generator=make_generator(0), dtype=torch.float64)
    wrapped = bpda(model, kind)
    assert torch.equal(wrapped(x), model(x))
    torch.testing.assert_close(_autograd(wrapped, x), _hand_gradient(model, x, kind), rtol=1e-10, atol=1e-12)
    # the hooks live only inside the wrapper's call: the model itself keeps its own (masked) gradient
    torch.testing.assert_close(_autograd(model, x), _hand_gradient(model, x, "autograd"), rtol=1e-10, atol=1e-12)


def test_bpda_callable_substitute_and_other_layers():
    # any layer type, any smooth substitute: a hard sign() layer with tanh on the backward pass
    class Sign(nn.Module):
        def forward(self, z):
            return torch.sign(z)

    w = torch.tensor([[0.5, -1.0, 2.0]], dtype=torch.float64)
    net = nn.Sequential(Sign(), nn.Linear(3, 1, bias=False).to(torch.float64))
    with torch.no_grad():
        net[1].weight.copy_(w)
    x = torch.tensor([[0.3, -0.2, 1.5], [-1.0, 0.1, 0.0]], dtype=torch.float64)
    assert torch.equal(_autograd(net, x), torch.zeros_like(x))  # the masked gradient
    wrapped = BPDA(net, torch.tanh, layers=Sign)
    assert torch.equal(wrapped(x), net(x))
    torch.testing.assert_close(_autograd(wrapped, x), w * (1 - torch.tanh(x) ** 2))


def test_bpda_bad_input():
    with pytest.raises(ValueError, match="substitute"):
        bpda(kwta_mlp(2, (4,), 0.5), "sigmoid")
    with pytest.raises(ValueError, match="layers"):
        bpda(tr.MLP(2, (4,)))  # no k-WTA layer to replace
    with pytest.raises(TypeError, match="model"):
        bpda(lambda x: x)


# ------------------------------------------------------------------------------------------------ EOT

def test_eot_gradient_is_the_mean_of_the_per_draw_gradients():
    # a quadratic margin m(x) = ||x||^2 - c with Gaussian input noise: per draw the gradient is 2 (x + s u_i)
    c, s, k = 3.0, 0.7, 5

    def quad(z):
        return (z * z).sum(dim=1) - c

    x = torch.randn(4, 3, generator=make_generator(0), dtype=torch.float64)
    eot = EOT(quad, k, noise=s, generator=11)
    g = _autograd(eot, x)
    u = torch.randn((k * 4, 3), generator=make_generator(11), dtype=torch.float64).reshape(k, 4, 3)
    per_draw = [_autograd(quad, x + s * u[i]) for i in range(k)]
    torch.testing.assert_close(g, torch.stack(per_draw).mean(dim=0))


def test_eot_matches_the_closed_form_expectation():
    # E ||x + s u||^2 - c = ||x||^2 + d s^2 - c, gradient 2x; the Monte Carlo error is checked against its sd
    c, s, k, d = 1.0, 0.5, 20_000, 3

    def quad(z):
        return (z * z).sum(dim=1) - c

    x = torch.tensor([[1.0, -2.0, 0.5], [0.0, 0.0, 0.0]], dtype=torch.float64)
    val = EOT(quad, k, noise=s, generator=0)(x)
    sq = (x * x).sum(dim=1)
    exact = sq + d * s * s - c
    sd = torch.sqrt(4 * s * s * sq + 2 * d * s**4) / math.sqrt(k)
    assert ((val - exact).abs() <= 4.5 * sd).all()
    g = _autograd(EOT(quad, k, noise=s, generator=1), x)
    assert ((g - 2 * x).abs() <= 4.5 * 2 * s / math.sqrt(k)).all()


def test_eot_of_a_randomized_linear_model():
    # weights w0 + 0.5 xi, xi ~ N(0, I) drawn from the generator EOT passes in: E gradient = w0
    w0 = torch.tensor([1.0, -2.0], dtype=torch.float64)

    class RandomLinear(nn.Module):
        def forward(self, x, generator=None):
            xi = torch.randn(x.shape, generator=generator, dtype=x.dtype)
            return x @ w0 + 0.5 * (x * xi).sum(dim=1)

    x = torch.tensor([[0.3, 0.4]], dtype=torch.float64)
    k = 40_000
    g = _autograd(EOT(RandomLinear(), k, generator=5), x)
    assert ((g[0] - w0).abs() <= 4.5 * 0.5 / math.sqrt(k)).all()
    # the gradient attacks run on the wrapper unchanged
    res = fgsm(EOT(RandomLinear(), 64, generator=5), x, torch.tensor([1]), tr.Linf(0.1))
    torch.testing.assert_close(res.x_adv, x - 0.1 * torch.sign(w0))


def test_eot_bad_input():
    with pytest.raises(ValueError, match="samples"):
        EOT(tr.MLP(2, (3,)), 0)
    with pytest.raises(ValueError, match="noise"):
        EOT(tr.MLP(2, (3,)), 4, noise=-1.0)
    with pytest.raises(ValueError, match="shape"):
        EOT(tr.MLP(2, (3,)), 4)(torch.zeros(2))


# ------------------------------------------------------------------------------------------------ false security

def _attack_errors(model, module, x, y, threat, seed):
    res = pgd(module, x, y, threat, steps=20, generator=seed)
    with torch.no_grad():
        clf = model.classifier()
        return (clf.predict(res.x_adv) != y) | (clf.predict(x) != y)


def test_seed004_kwta_gives_a_false_sense_of_security():
    """Seed 004: k-WTA masks the gradient; BPDA (k-WTA's backward taken as ReLU's) finds what naive PGD misses.

    One wide sparse layer (1024 units, ratio 0.01) trained on the robust/non-robust model (D = 20), Linf 0.3:
    naive PGD finds fewer adversarial points than BPDA on the same points (an exact one-sided McNemar test on
    the points where the two disagree), and neither estimate lies below the exact optimal adversarial risk
    beyond its Clopper-Pearson interval.
    """
    dist = tr.GaussianMixture.robust_nonrobust(20)
    threat = tr.Linf(0.3)
    model = kwta_mlp(20, (1024,), ratio=0.01, seed=0)
    tr.train(model, dist, steps=300, lr=3e-3, seed=0, eval_n=0, progress=False)
    x, y = dist.sample(1000, generator=make_generator(1))
    naive = _attack_errors(model, model, x, y, threat, 0)
    adaptive = _attack_errors(model, bpda(model, "relu"), x, y, threat, 0)
    b, c = int((adaptive & ~naive).sum()), int((naive & ~adaptive).sum())
    assert scipy.stats.binomtest(b, b + c, 0.5, alternative="greater").pvalue < 1e-3
    opt = float(tr.optimal_risk(dist, threat))
    for errs in (naive, adaptive):
        lo, hi = clopper_pearson(int(errs.sum()), 1000, 0.999)
        assert hi >= opt


def test_seed004_kwta_naive_attack_goes_below_the_optimal_risk():
    """Three sparse layers (256 units each, ratio 0.02: 6 kept per layer; the evaluation table's k-WTA): naive
    PGD reports an adversarial risk whose whole interval lies below the optimal risk -- impossible for any
    classifier, so the evaluation, not the defense, is broken -- while BPDA's does not."""
    dist = tr.GaussianMixture.robust_nonrobust(20)
    threat = tr.Linf(0.3)
    model = kwta_mlp(20, (256, 256, 256), ratio=0.02, seed=0)
    tr.train(model, dist, steps=300, lr=3e-3, seed=0, eval_n=0, progress=False)
    x, y = dist.sample(1000, generator=make_generator(1))
    opt = float(tr.optimal_risk(dist, threat))
    _, hi_naive = clopper_pearson(int(_attack_errors(model, model, x, y, threat, 0).sum()), 1000, 0.999)
    _, hi_bpda = clopper_pearson(int(_attack_errors(model, bpda(model, "relu"), x, y, threat, 0).sum()), 1000,
                                 0.999)
    assert hi_naive < opt <= hi_bpda
