"""Training: convergence to closed forms, seed 003's reproductions, checkpoints, determinism, side effects.

Closed forms are computed inline (the Gaussian tail of a linear margin, with the adversary's margin drop
``eps * ||w||_q``), independently of the analytic engine; Monte Carlo comparisons use exact binomial intervals.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import sympy
import torch
from scipy import integrate, optimize
from scipy.stats import binomtest, norm

import toyrobust as tr
from toyrobust import attacks
from toyrobust.attacks.base import AttackResult
from toyrobust.dynamics import adversarial_training_dynamics, robust_fixed_point
from toyrobust.models import MLP, LinearModel, QuadraticNet
from toyrobust.training import TrainResult, train


def _standin_pgd(clf, x, y, threat, *, steps=40, step_size=None, restarts=1, random_start=True, loss="margin",
                 targeted=False, early_stop=True, definition="ball", dist=None, generator=None):
    """A minimal PGD on the margin loss, used only until toyrobust.attacks.pgd lands."""
    clf = tr.as_classifier(clf)
    step_size = 2.5 * float(threat.eps) / steps if step_size is None else step_size
    x0 = x.detach()
    xa = threat.random_start(x0, generator) if random_start else x0.clone()
    for _ in range(steps):
        xa = xa.detach().requires_grad_(True)
        (g,) = torch.autograd.grad((-y.to(x.dtype) * clf.margin(xa)).sum(), xa)
        xa = threat.project(xa.detach() + threat.steepest_ascent(g, step_size), x0)
    with torch.no_grad():
        success = clf.predict(xa) != y
    return AttackResult(x_adv=xa.detach(), success=success, norms=threat.norm(xa - x0), grad_evals=steps * len(x))


@pytest.fixture
def pgd_available(monkeypatch):
    if getattr(attacks, "pgd", None) is None:
        monkeypatch.setattr(attacks, "pgd", _standin_pgd, raising=False)


def _risk(mean, w, b, drop=0.0, sigma=1.0):
    """Closed form: P[sign(w.x + b) != y] for x ~ N(y mean, sigma^2 I) after the margin moves by ``drop``."""
    s = sigma * np.linalg.norm(w)
    wm = float(np.dot(w, mean))
    return 0.5 * (norm.sf((wm + b - drop) / s) + norm.sf((wm - b - drop) / s))


def _params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


# ------------------------------------------------------------------------------------------ convergence


def test_standard_training_reaches_bayes_risk_on_gaussian_mixture():
    mean = np.array([0.8, -0.5, 0.3, 0.2, -0.1])
    dist = tr.GaussianMixture(mean.tolist(), 1.0)
    model = LinearModel(5, dtype=torch.float64)
    res = train(model, dist, steps=800, batch_size=256, lr=0.05, seed=1, eval_every=0, eval_n=0,
                schedule="cosine")
    w, b = res.model.weight.detach().numpy(), float(res.model.bias.detach())
    bayes = norm.sf(np.linalg.norm(mean))  # Q(||mu|| / sigma)
    got = _risk(mean, w, b)
    assert bayes - 1e-12 <= got <= bayes + 0.003
    # the logistic loss is well specified here: its population minimiser is the log-odds 2 mu / sigma^2
    np.testing.assert_allclose(w, 2 * mean, atol=0.15)
    assert abs(b) < 0.1


def test_twin_closed_form_agrees_with_monte_carlo_of_the_network():
    """The closed form of the twin (bias included) matches the network's own error on fresh samples."""
    mean = np.array([1.0, 0.5, -0.5])
    dist = tr.GaussianMixture(mean.tolist(), 1.3)
    model = LinearModel.from_weights([0.9, 0.2, -0.7], 0.6, dtype=torch.float64)
    twin = model.twin()
    exact = _risk(mean, np.array(twin.w.to_list()), float(twin.b), sigma=1.3)
    n = 400_000
    x, y = dist.sample(n, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    with torch.no_grad():
        k = int((torch.where(model(x) >= 0, 1, -1) != y).sum())
    ci = binomtest(k, n).proportion_ci(0.999, method="exact")
    assert ci.low <= exact <= ci.high
    biasless = _risk(mean, np.array(twin.w.to_list()), 0.0, sigma=1.3)
    assert not ci.low <= biasless <= ci.high  # a twin that ignored the bias would be caught


def test_seed003_standard_training_is_accurate_but_not_robust():
    D = 60
    a = math.sqrt(math.log(D) / (D - 1))
    eps = 2 * a
    dist = tr.GaussianMixture.robust_nonrobust(D)
    mean = dist.mean.to_numpy()
    model = LinearModel(D, dtype=torch.float64)
    res = train(model, dist, steps=500, batch_size=256, lr=0.02, seed=0, threat=tr.Linf(eps), eval_every=0,
                eval_n=20_000)
    w, b = model.weight.detach().numpy(), float(model.bias.detach())
    bayes = norm.sf(math.sqrt(1 + math.log(D)))
    std = _risk(mean, w, b)
    adv = _risk(mean, w, b, eps * np.abs(w).sum())  # Linf: the margin drops by eps ||w||_1
    assert std < bayes + 0.01 and std < 0.03
    assert adv > 0.8
    # the exact evaluation on the fixed sample agrees with the closed forms (binomial test)
    final = res.history[-1]
    n = final["eval_n"]
    assert binomtest(round(final["risk"] * n), n, std).pvalue > 1e-4
    assert binomtest(round(final["adv_risk"] * n), n, adv).pvalue > 1e-4


def test_seed003_fixed_point_closed_form():
    """w* = (2 (1 - eps), 0, ..., 0) minimises the population robust loss (numerical check in 1-D + KKT)."""
    for D, eps in [(60, None), (500, None), (100, 0.5)]:
        a = math.sqrt(math.log(D) / (D - 1))
        eps = 2 * a if eps is None else eps
        fp = robust_fixed_point(D, eps)
        assert fp["drops_nonrobust"] and fp["w_nonrobust"] == 0.0

        def loss(c, mu=1 - eps):
            # E softplus(-c (mu + z)), z ~ N(0, 1)
            f = lambda z: np.logaddexp(0, -c * (mu + z)) * norm.pdf(z)  # noqa: E731
            return integrate.quad(f, -40, 40, epsabs=1e-13)[0]

        c_num = optimize.minimize_scalar(loss, bounds=(0, 10), method="bounded", options={"xatol": 1e-9}).x
        assert fp["w_robust"] == pytest.approx(c_num, abs=1e-5)
    assert not robust_fixed_point(60, 0.1)["drops_nonrobust"]  # eps < a: the non-robust weights survive
    assert robust_fixed_point(5, 2 * math.sqrt(math.log(5) / 4))["w_robust"] == 0.0  # 2a >= 1: w* = 0


def test_seed003_adversarial_training_drops_nonrobust_features():
    D = 60
    dyn = adversarial_training_dynamics(D, steps=500, batch_size=256, lr=0.03, seed=0)
    a = dyn.a
    assert dyn.eps == pytest.approx(2 * a)
    assert dyn.w_nonrobust_absmax[0] / dyn.w_robust[0] == pytest.approx(a)  # starts at the Bayes weights 2 mu
    assert dyn.w_nonrobust_absmax[-1] / dyn.w_robust[-1] < 0.02 * a
    assert dyn.w_robust[-1] == pytest.approx(dyn.fixed_point["w_robust"], rel=0.05)
    # the risks follow: robust to eps at the price of standard accuracy (Q(1 - 2a) vs Q(1) for the robust rule)
    mean = tr.GaussianMixture.robust_nonrobust(D).mean.to_numpy()
    w, b = dyn.weights[-1], dyn.bias[-1]
    assert dyn.adversarial_risk[-1] == pytest.approx(_risk(mean, w, b, dyn.eps * np.abs(w).sum()), rel=1e-9)
    assert dyn.adversarial_risk[-1] == pytest.approx(norm.sf(1 - dyn.eps), abs=0.005)
    assert dyn.standard_risk[-1] == pytest.approx(norm.sf(1), abs=0.005)
    assert dyn.adversarial_risk[0] > 0.8


def test_small_eps_adversarial_training_keeps_nonrobust_features():
    """Below eps = a, zero is not optimal for the non-robust weights (the KKT condition fails)."""
    D = 60
    a = math.sqrt(math.log(D) / (D - 1))
    dyn = adversarial_training_dynamics(D, eps=a / 2, steps=300, batch_size=256, seed=0)
    assert dyn.w_nonrobust_mean[-1] / dyn.w_robust[-1] > 0.3 * a


@pytest.mark.parametrize("threat", [tr.Linf(0.4), tr.L2(0.7), tr.L1(0.9), tr.Linf(0.5, coords=(0, 2))])
def test_robust_linear_loss_is_the_max_over_the_ball(threat):
    """The closed-form inner max equals a brute-force max over the ball's extreme points (d = 3)."""
    from itertools import product

    from toyrobust.training import robust_linear_loss

    gen = torch.Generator().manual_seed(0)
    model = LinearModel.from_weights([0.7, -1.2, 0.4], -0.3, dtype=torch.float64)
    x = torch.randn(20, 3, generator=gen, dtype=torch.float64)
    y = torch.where(torch.rand(20, generator=gen) < 0.5, 1, -1)
    free = threat.coord_indices(3)
    eps = float(threat.eps)
    if threat.p == math.inf:  # corners of the cube on the free coordinates
        deltas = [torch.zeros(3, dtype=torch.float64).index_put_((torch.tensor(free),),
                                                                 torch.tensor(s, dtype=torch.float64) * eps)
                  for s in product([-1.0, 1.0], repeat=len(free))]
    elif threat.p == 1:  # vertices of the cross-polytope
        deltas = [s * eps * torch.eye(3, dtype=torch.float64)[i] for i in free for s in (-1.0, 1.0)]
    else:  # a fine grid of directions on the sphere (the max is attained at -y eps w / ||w||)
        th = torch.linspace(0, math.pi, 181, dtype=torch.float64)
        ph = torch.linspace(0, 2 * math.pi, 361, dtype=torch.float64)
        T, P = torch.meshgrid(th, ph, indexing="ij")
        dirs = torch.stack([T.sin() * P.cos(), T.sin() * P.sin(), T.cos()], -1).reshape(-1, 3)
        deltas = list(eps * dirs)
    D = torch.stack(deltas)  # (K, 3)
    with torch.no_grad():
        margins = model((x[:, None, :] + D[None]).reshape(-1, 3)).reshape(20, -1)  # (N, K)
        worst = torch.nn.functional.softplus(-y[:, None].double() * margins).amax(dim=1)
        got = robust_linear_loss(model, x, y, threat)
    tol = 1e-12 if threat.p != 2 else 1e-4  # the grid only approaches the L2 maximiser
    assert float(got) == pytest.approx(float(worst.mean()), abs=tol)
    assert float(got) >= float(worst.mean()) - 1e-12


def test_pgd_training_equals_closed_form_training_for_linear_models(pgd_available):
    """Danskin: PGD at the exact Linf corner gives the closed-form robust loss's gradient, step for step."""
    mean = [1.0, -0.4, 0.2, 0.6]
    dist = tr.GaussianMixture(mean, 1.0)
    threat = tr.Linf(0.3)
    runs = {}
    for mode in ("pgd", "closed-form"):
        model = LinearModel(4, init="uniform", seed=7, dtype=torch.float64)
        runs[mode] = train(model, dist, steps=60, batch_size=64, lr=0.05, seed=3, adversarial=mode, threat=threat,
                           attack_options={"steps": 20, "step_size": 0.1}, eval_every=20, eval_n=2000)
    w_pgd, w_cf = (np.array(runs[m].series("w")) for m in ("pgd", "closed-form"))
    np.testing.assert_allclose(w_pgd, w_cf, atol=1e-9)
    # and both differ from standard training
    std = train(LinearModel(4, init="uniform", seed=7, dtype=torch.float64), dist, steps=60, batch_size=64,
                lr=0.05, seed=3, eval_every=20, eval_n=0)
    assert np.abs(np.array(std.series("w"))[-1] - w_cf[-1]).max() > 0.05


def test_pgd_training_runs_on_an_mlp_and_restores_modes(pgd_available):
    dist = tr.ConcentricSpheres(5, 1.0, 1.3)
    mlp = MLP(5, (16,), batch_norm=True, seed=1, dtype=torch.float64)
    modes = []
    res = train(mlp, dist, steps=6, batch_size=32, lr=1e-3, adversarial="pgd", threat=tr.L2(0.05), seed=0,
                attack_options={"steps": 3}, eval_every=3, eval_n=200,
                callback=lambda step, model, rec: modes.append(model.training))
    assert all(modes) and not mlp.training
    assert [r["step"] for r in res.history] == [0, 3, 6]
    assert all(0 <= r["adv_risk"] <= 1 and r["adv_risk"] >= r["risk"] - 1e-12 for r in res.history)


def test_quadratic_net_learns_the_spheres():
    dist = tr.ConcentricSpheres(20, 1.0, 1.3)
    net = QuadraticNet(20, 40, seed=0)
    res = train(net, dist, steps=600, batch_size=128, lr=1e-2, seed=0, eval_every=0, eval_n=20_000)
    assert res.history[-1]["risk"] < 0.01
    alpha = net.gilmer_alpha()
    # perfect on the spheres of radii 1 and 1.3 iff 1/1.3^2 < alpha_i < 1 (Gilmer et al.); nearly there
    assert float(alpha.min()) > 1 / 1.3**2 - 0.1 and float(alpha.max()) < 1.1


def test_mlp_learns_the_spheres():
    dist = tr.ConcentricSpheres(10, 1.0, 1.3)
    res = train(MLP(10, (64, 64), seed=0), dist, steps=400, batch_size=128, lr=3e-3, seed=0, eval_every=0,
                eval_n=10_000)
    assert res.history[-1]["risk"] < 0.05


# ------------------------------------------------------------------------------------------ checkpoints


def _mlp_run(tmp_path=None, **kw):
    dist = tr.ConcentricSpheres(6, 1.0, 1.3)
    model = MLP(6, (12,), batch_norm=True, seed=kw.pop("init_seed", 0))
    opts = dict(steps=30, batch_size=16, lr=1e-2, seed=2, eval_every=10, eval_n=500)
    opts.update(kw)
    return train(model, dist, **opts)


def test_interrupted_run_resumes_to_identical_weights(tmp_path):
    ref = _mlp_run()
    path = tmp_path / "ck.pt"

    def crash(step, model, rec):
        if step == 17:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _mlp_run(checkpoint=path, checkpoint_every=5, callback=crash)
    state = torch.load(path, weights_only=True)  # only tensors and plain containers
    assert state["step"] == 15
    # resume into a differently initialised model: everything comes from the checkpoint
    res = _mlp_run(checkpoint=path, checkpoint_every=5, init_seed=99)
    assert res.start_step == 15 and res.steps == 30
    assert torch.equal(_params(res.model), _params(ref.model))
    for k in ("running_mean", "running_var"):
        assert torch.equal(res.model.net[1].state_dict()[k], ref.model.net[1].state_dict()[k])
    assert res.history == ref.history


def test_training_in_two_calls_equals_one(tmp_path):
    ref = _mlp_run()
    path = tmp_path / "two.pt"
    first = _mlp_run(checkpoint=path, steps=12)
    assert first.steps == 12
    res = _mlp_run(checkpoint=path, steps=30, init_seed=5)
    assert res.start_step == 12
    assert torch.equal(_params(res.model), _params(ref.model))
    # the first call's final evaluation adds a record at step 12 (and restarts the loss average there)
    assert [r["step"] for r in res.history] == [0, 10, 12, 20, 30]
    strip = lambda recs: [{k: v for k, v in r.items() if k != "loss"} for r in recs if r["step"] != 12]  # noqa: E731
    assert strip(res.history) == strip(ref.history)
    assert res.history[-1] == ref.history[-1]


def test_callback_stop_writes_checkpoint(tmp_path):
    path = tmp_path / "stop.pt"
    res = _mlp_run(checkpoint=path, checkpoint_every=100, callback=lambda step, model, rec: step == 7)
    assert res.stopped_early and res.steps == 7
    assert torch.load(path, weights_only=True)["step"] == 7


def test_checkpoint_settings_must_match(tmp_path):
    path = tmp_path / "m.pt"
    _mlp_run(checkpoint=path, steps=5)
    with pytest.raises(ValueError, match="lr"):
        _mlp_run(checkpoint=path, lr=0.5)
    res = _mlp_run(checkpoint=path, lr=0.5, resume=False, steps=3)  # overwrite
    assert res.start_step == 0 and torch.load(path, weights_only=True)["config"]["lr"] == 0.5
    bad = tmp_path / "other.pt"
    torch.save({"hello": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="not a toyrobust training checkpoint"):
        _mlp_run(checkpoint=bad)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    """A crash while writing leaves the previous checkpoint intact and no temporary file behind."""
    path = tmp_path / "a.pt"
    _mlp_run(checkpoint=path, steps=5)
    before = path.read_bytes()
    real_save = torch.save

    def broken(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        _mlp_run(checkpoint=path, steps=10, checkpoint_every=5)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["a.pt"]


# ------------------------------------------------------------------------------------------ determinism, side effects


def test_same_seed_same_result_other_seed_other_result():
    a, b, c = _mlp_run(), _mlp_run(), _mlp_run(seed=3)
    assert torch.equal(_params(a.model), _params(b.model)) and a.history == b.history
    assert not torch.equal(_params(a.model), _params(c.model))


def test_no_global_rng_use(pgd_available):
    torch_state, np_state = torch.random.get_rng_state(), np.random.get_state()
    _mlp_run(steps=4)
    dist = tr.GaussianMixture([1.0, 0.5], 1.0)
    train(LinearModel(2), dist, steps=3, adversarial="pgd", threat=tr.L2(0.1), eval_n=50, seed=0)
    assert torch.equal(torch_state, torch.random.get_rng_state())
    after = np.random.get_state()
    assert np_state[0] == after[0] and np.array_equal(np_state[1], after[1]) and np_state[2:] == after[2:]


def test_model_is_returned_in_eval_mode_and_trained_in_train_mode():
    mlp = MLP(6, (12,), batch_norm=True, seed=0)
    mlp.eval()
    seen = []
    before = mlp.net[1].running_mean.clone()
    train(mlp, tr.ConcentricSpheres(6, 1.0, 1.3), steps=4, batch_size=8, seed=0, eval_n=0,
          callback=lambda step, model, rec: seen.append(model.training))
    assert seen == [True] * 4
    assert not mlp.training and not any(m.training for m in mlp.modules())
    assert not torch.equal(before, mlp.net[1].running_mean)  # batch norm ran in train mode
    # eval mode: each row's output does not depend on the rest of the batch
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(mlp(x)[:2], mlp(x[:2]), atol=1e-6)


def test_fixed_dataset_is_used_instead_of_fresh_samples():
    dist = tr.GaussianMixture([1.5, 0.0], 1.0)
    x, y = dist.sample(500, generator=torch.Generator().manual_seed(0))
    res = train(LinearModel(2), dist, dataset=(x, -y), steps=300, batch_size=64, lr=0.05, seed=0, eval_every=0,
                eval_n=5000)
    assert res.history[-1]["risk"] > 0.85  # learnt the flipped labels of the dataset


def test_progress_bar(capsys):
    dist = tr.GaussianMixture([1.0], 1.0)
    train(LinearModel(1), dist, steps=3, progress=True, eval_n=10)
    assert "train" in capsys.readouterr().err
    train(LinearModel(1), dist, steps=3, progress=False, eval_n=10)
    assert capsys.readouterr().err == ""


def test_train_result_fields():
    res = _mlp_run(steps=10, eval_every=5)
    assert isinstance(res, TrainResult)
    assert res.series("step") == [0, 5, 10] and res.history[0]["loss"] is None
    assert all(isinstance(v, float) and v > 0 for v in res.series("loss")[1:])
    assert res.samples_per_second > 0 and res.train_time <= res.wall_time
    lin = train(LinearModel(2), tr.GaussianMixture([1.0, 2.0]), steps=2, eval_every=1, eval_n=10)
    assert len(lin.history[-1]["w"]) == 2 and isinstance(lin.history[-1]["b"], float)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(adversarial="fgsm"), ValueError, "adversarial"),
    (dict(adversarial="pgd"), ValueError, "threat"),
    (dict(adversarial="closed-form", threat=tr.Linf(0.1)), TypeError, "model"),
    (dict(steps=-1), ValueError, "steps"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(lr=0.0), ValueError, "lr"),
    (dict(optimizer="rmsprop"), ValueError, "optimizer"),
    (dict(schedule="step"), ValueError, "schedule"),
    (dict(threat="linf:0.1"), TypeError, "threat"),
    (dict(threat=tr.Linf(sympy.Symbol("e", positive=True))), TypeError, "eps"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(eval_every=-2), ValueError, "eval_every"),
    (dict(dataset=(torch.zeros(3, 5), torch.ones(3))), ValueError, "dataset"),
    (dict(dataset=(torch.zeros(3, 6), torch.zeros(3))), ValueError, "dataset"),
])
def test_errors_name_the_parameter(kwargs, exc, match):
    opts = dict(steps=2, eval_n=0)
    opts.update(kwargs)
    with pytest.raises(exc, match=match):
        train(MLP(6, (4,)), tr.ConcentricSpheres(6, 1.0, 1.3), **opts)


def test_errors_on_model_and_distribution():
    with pytest.raises(ValueError, match="dim"):
        train(LinearModel(3), tr.GaussianMixture([1.0, 2.0]), steps=1)
    with pytest.raises(TypeError, match="dist"):
        train(LinearModel(2), tr.GaussianMixture([sympy.Symbol("m"), 1.0]), steps=1)
    with pytest.raises(TypeError, match="model"):
        train(lambda x: x, tr.GaussianMixture([1.0]), steps=1)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_training_and_resume(tmp_path):
    dist = tr.GaussianMixture([1.0, -0.5, 0.25], 1.0)
    ref = train(LinearModel(3, device="cuda"), dist, steps=40, batch_size=128, lr=0.05, seed=0, eval_every=10)
    assert ref.model.weight.device.type == "cuda"
    path = tmp_path / "cuda.pt"
    train(LinearModel(3, device="cuda"), dist, steps=20, batch_size=128, lr=0.05, seed=0, eval_every=10,
          checkpoint=path)
    res = train(LinearModel(3, device="cuda"), dist, steps=40, batch_size=128, lr=0.05, seed=0, eval_every=10,
                checkpoint=path)
    assert torch.equal(_params(res.model), _params(ref.model))
    assert ref.history[-1]["risk"] == pytest.approx(norm.sf(math.sqrt(1.3125)), abs=0.02)


# ------------------------------------------------------------------------------------------ heavy versions


@pytest.mark.slow
def test_seed003_adversarial_training_at_d500():
    dyn = adversarial_training_dynamics(500, steps=3000, batch_size=1024, seed=0)
    assert dyn.w_nonrobust_absmax[-1] / dyn.w_robust[-1] < 0.01 * dyn.a
    assert dyn.w_robust[-1] == pytest.approx(dyn.fixed_point["w_robust"], rel=0.05)


@pytest.mark.slow
def test_gilmer_quadratic_net_reduced_scale():
    """Gilmer et al. at D = 100, h = 200: a tiny error, and the twin's exact error matches the network's."""
    dist = tr.ConcentricSpheres(100, 1.0, 1.3)
    net = QuadraticNet(100, 200, seed=0, init_bias=1.3225)
    res = train(net, dist, steps=4000, batch_size=256, lr=3e-3, seed=0, eval_every=0, eval_n=100_000)
    assert res.history[-1]["risk"] < 1e-3
    alpha = net.gilmer_alpha()
    # most of the spectrum inside Gilmer's perfect-accuracy window (1/1.3^2, 1)
    assert float(((alpha > 1 / 1.3**2) & (alpha < 1)).double().mean()) > 0.75
    exact = float(tr.risks.risk(dist, net.twin()))  # a lost registration fails here, it does not skip
    n = 400_000
    x, y = dist.sample(n, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        k = int((torch.where(net(x) >= 0, 1, -1) != y).sum())
    ci = binomtest(k, n).proportion_ci(0.999, method="exact")
    assert ci.low <= exact <= ci.high
