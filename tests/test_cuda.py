"""The CUDA tier: the main job's GPU paths (sampling, every attack and definition, estimates, training with
checkpoints, the cross-check and the figure scripts), each checked against closed forms or exact replays.

Run the tier with ``python -m pytest -m cuda``. Every test here carries the ``cuda`` marker. Most are written once
with the device as a parameter: the ``cpu`` half runs everywhere (it proves the test code itself and is kept to
a few seconds; on the CPU the ``--only`` and ``--n`` options keep the cross-check rows few), the ``cuda`` half
skips itself cleanly where ``torch.cuda.is_available()`` is False. Tests without a device parameter need CUDA and
skip without it (``_devices(cpu_slow=True)`` marks a CPU half ``slow`` instead, for checks too long for CI).

References (the independent answers): the closed forms of ``tr.risk`` (spherical caps, the weighted chi-square
sign of Gilmer et al.'s quadratic classifier, Gaussian tails), checked to lie in exact Clopper-Pearson intervals
at level 0.999; for inexact attacks the closed form must lie at or above the interval's lower end (verified
successes are a lower bound); bitwise replays for seeds, chunk sizes and resumed training.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import toyrobust as tr
from toyrobust.cli import main as cli_main
from toyrobust.definitions import DEFINITIONS
from toyrobust.models import MLP, LinearModel
from toyrobust.montecarlo import derive_seed, estimate_risk, iter_samples
from toyrobust.rng import CounterStream, splitmix64
from toyrobust.training import train

HAS_CUDA = torch.cuda.is_available()
NEEDS_CUDA = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device (torch.cuda.is_available() is False)")
LEVEL = 0.999


def _devices(cpu_slow: bool = False) -> list:
    """``cpu`` and ``cuda`` parameters: the CUDA half carries the tier marker and skips without a GPU."""
    cpu_marks = [pytest.mark.slow] if cpu_slow else [pytest.mark.cuda]
    return [pytest.param("cpu", marks=cpu_marks, id="cpu"),
            pytest.param("cuda", marks=[pytest.mark.cuda, NEEDS_CUDA], id="cuda")]


# the attacks estimate_risk accepts by name, read from the attack registry (never a hand-written list here)
ATTACKS = tr.attacks.ATTACKS.names()
# definitions the exact attack solves; the others must be refused with a ValueError
EXACT_DEFINITIONS = ("ball", "prediction-change")


def _attack_options(attack: str) -> dict | None:
    """Few iterations for the iterative attacks (options only where the attack has them)."""
    defaults = tr.attacks.ATTACKS.lookup(attack)().options
    small = {"steps": 10, "search_steps": 3, "queries": 200, "samples": 4}
    return {k: v for k, v in small.items() if k in defaults} or None


def _params(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten().cpu() for p in model.parameters()])


def _spheres_case(dim: int = 20):
    """Spheres (radii 1, 1.3), the cap classifier x1 >= 0.05 and an L2 ball: a closed form for every definition."""
    sp = tr.ConcentricSpheres(dim, 1.0, 1.3)
    w = [1.0] + [0.0] * (dim - 1)
    return sp, tr.Linear(w, -0.05), w, tr.L2(0.1)


@pytest.mark.cuda
def test_attack_table_is_not_empty():
    assert {"pgd", "exact_attack", "apgd"} <= set(ATTACKS)
    assert all(callable(getattr(tr.attacks, tr.attacks.ATTACKS.lookup(a).__name__)) for a in ATTACKS)


# ------------------------------------------------------------------------------------------ sampling
@pytest.mark.parametrize("device", _devices())
def test_iter_samples_chunk_size_independent_on_device(device):
    """The stream's points depend on (seed, index, device type, dtype) only, and stay on the device."""
    dist = tr.Tsipras(0.8, 1.0, d=3)
    dev = torch.device(device)
    chunks = {}
    for cs in (7, 999, 4096, 5000, 20000):
        parts = list(iter_samples(dist, 10_003, seed=5, chunk_size=cs, device=device))
        assert all(x.shape[0] <= cs and x.device.type == dev.type and y.device.type == dev.type for x, y in parts)
        # concatenation with empty tensors made on the same device (CPU-made ones would fail on CUDA)
        empty_x = torch.empty(0, 4, dtype=parts[0][0].dtype, device=dev)
        empty_y = torch.empty(0, dtype=parts[0][1].dtype, device=dev)
        chunks[cs] = (torch.cat([empty_x] + [x for x, _ in parts]), torch.cat([empty_y] + [y for _, y in parts]))
    x0, y0 = chunks[20000]
    assert x0.shape == (10_003, 4)
    for x, y in chunks.values():
        assert torch.equal(x, x0) and torch.equal(y, y0)
    # rows 4000.. are those of the counter-based stream (seed, 0) drawn directly on the device
    xb, yb = dist.draw(CounterStream(5, 0, device=dev).rows(4000, 96), x0.dtype)
    assert xb.device.type == dev.type
    assert torch.equal(xb, x0[4000:4096]) and torch.equal(yb, y0[4000:4096])
    # the CPU draws the same labels and, up to the last bits of log/sin/cos, the same points
    xc, yc = next(iter_samples(dist, 10_003, seed=5, chunk_size=10_003, device="cpu", dtype=x0.dtype))
    assert torch.equal(yc, y0.cpu())
    torch.testing.assert_close(xc, x0.cpu(), rtol=1e-5, atol=1e-5)
    # labels are +-1 with the Tsipras law: x1 = y w.p. 0.8
    agree = float((x0[:, 0] == y0.to(x0.dtype)).double().mean())
    assert abs(agree - 0.8) < 4 * math.sqrt(0.8 * 0.2 / 10_003)


@pytest.mark.cuda
def test_iter_samples_default_device_is_resolve_device():
    """``device=None`` draws where ``resolve_device(None)`` points (CUDA when present): tests must not assume CPU."""
    x, y = next(iter_samples(tr.Tsipras(0.8, 1.0, d=3), 10, seed=0))
    expected = tr.rng.resolve_device(None).type
    assert x.device.type == expected and y.device.type == expected


@pytest.mark.parametrize("device", _devices())
@given(cs=st.integers(1, 700), start=st.integers(0, 2**40))
def test_iter_samples_any_chunk_size_property(device, cs, start):
    """For every chunk size the concatenated stream equals the one-chunk stream, bitwise, on the device."""
    dist = tr.GaussianMixture([1.0, -0.5], 1.0)
    n = 1500
    whole_x, whole_y = next(iter_samples(dist, n, seed=3, chunk_size=n, device=device))
    parts = list(iter_samples(dist, n, seed=3, chunk_size=cs, device=device))
    assert torch.equal(torch.cat([x for x, _ in parts]), whole_x)
    assert torch.equal(torch.cat([y for _, y in parts]), whole_y)
    assert whole_x.device.type == torch.device(device).type
    # far along the stream (row 2^40 and beyond) the device's words still equal the scalar SplitMix64
    stream = CounterStream(3, 0, device=device, backend="torch" if device == "cuda" else "auto")
    got = []
    stream.words(0, start, 3, 2, lambda r0, m, z: got.append(
        z.cpu().numpy().view(np.uint64).copy() if isinstance(z, torch.Tensor) else z.copy()))
    want = [[splitmix64((start + i) * 2 + j, derive_seed(3, 0, 0)) for j in range(2)] for i in range(3)]
    assert np.concatenate(got).tolist() == want


@pytest.mark.cuda
@NEEDS_CUDA
def test_counter_stream_backends_agree_on_cuda():
    """On CUDA the fused Triton kernels (when Triton imports) and the torch tiles give the same labels and uniforms
    bitwise and the same normals to a few ulps, and both agree with the CPU's; a large request is one launch."""
    try:
        import triton  # noqa: F401

        backends = ["torch", "triton"]
    except ImportError:
        backends = ["torch"]
    assert CounterStream(1, 0, device="cuda").backend == backends[-1]
    cpu = CounterStream(7, 0).rows(2**33, 300)
    ref = {"signs": cpu.signs(), "uniform": cpu.uniform(5, torch.float64), "normal": cpu.normal(501, torch.float32),
           "normal64": cpu.normal(3, torch.float64)}
    for backend in backends:
        d = CounterStream(7, 0, device="cuda", backend=backend).rows(2**33, 300)
        assert torch.equal(d.signs().cpu(), ref["signs"])
        assert torch.equal(d.uniform(5, torch.float64).cpu(), ref["uniform"])
        torch.testing.assert_close(d.normal(501, torch.float32).cpu(), ref["normal"], rtol=2e-6, atol=2e-6)
        torch.testing.assert_close(d.normal(3, torch.float64).cpu(), ref["normal64"], rtol=1e-13, atol=1e-13)
    # 2^16 points of D = 500 on the device: the law holds (mean 0, variance 1 to 4 standard errors)
    z = CounterStream(9, 0, device="cuda").rows(0, 1 << 16).normal(500, torch.float32)
    m, v = float(z.double().mean()), float(z.double().var())
    se = 1 / math.sqrt(z.numel())
    assert abs(m) < 5 * se and abs(v - 1) < 5 * math.sqrt(2) * se


# ------------------------------------------------------------------------------------------ every attack, definition
@pytest.mark.parametrize("device", _devices())
@pytest.mark.parametrize("kind", ["analytic", "network"])
@pytest.mark.parametrize("attack", ATTACKS)
def test_estimate_risk_every_attack_and_definition(device, kind, attack):
    """Every named attack under every definition, on an analytic classifier and on a torch network on the device.

    Reference: ``tr.risk`` of the cap classifier (closed form, spherical caps). A verified count can only
    under-count, so the closed form must lie at or above the interval's lower end; the exact attack must contain
    it. The exact attack refuses the projection and error-region definitions on the spheres (their label regions
    are not polyhedra) and torch modules.
    """
    sp, clf, w, threat = _spheres_case()
    target = clf if kind == "analytic" else LinearModel.from_weights(w, -0.05, device=device, dtype=torch.float64)
    for definition in DEFINITIONS:
        exact_value = float(tr.risk(sp, clf, threat, definition))
        kwargs = dict(attack=attack, n=600, seed=11, device=device, dtype=torch.float64, level=LEVEL,
                      attack_options=_attack_options(attack))
        obj = tr.attacks.make_attack(attack, kwargs["attack_options"])
        if not obj.supports(tr.as_classifier(target), threat, definition, sp):
            assert attack != "exact_attack" or definition not in EXACT_DEFINITIONS or kind == "network"
            with pytest.raises((ValueError, TypeError)):
                estimate_risk(sp, target, threat, definition, **kwargs)
            continue
        est = estimate_risk(sp, target, threat, definition, **kwargs)
        assert torch.device(est.device).type == device
        assert est.dtype == "float64"
        assert est.n == 600 and 0 <= est.k <= 600
        assert est.invalid_claims == 0, (attack, definition, est)
        assert est.ci_low <= exact_value + 1e-12, (attack, definition, est, exact_value)
        if obj.kind == "exact":
            assert est.contains(exact_value), (definition, est, exact_value)
    if kind == "network":
        assert next(target.parameters()).device.type == device  # never moved


@pytest.mark.parametrize("device", _devices())
def test_standard_and_exact_adversarial_risk_contain_closed_form(device):
    """Standard risk of a quadratic classifier (weighted chi-square sign) and the exact L2 attack on a cap."""
    sp = tr.ConcentricSpheres(20, 1.0, 1.3)
    quad = tr.Quadratic([1.0] * 10 + [0.5] * 10, 1.0)
    exact_std = float(tr.risk(sp, quad))
    assert 0.003 < exact_std < 0.02
    est = estimate_risk(sp, quad, None, n=200_000, seed=2, device=device, dtype=torch.float64, level=LEVEL,
                        chunk_size=65_536)
    assert est.contains(exact_std), (est, exact_std)
    sp, cap, _, threat = _spheres_case(20)
    exact_adv = float(tr.risk(sp, cap, threat))
    est = estimate_risk(sp, cap, threat, attack="exact", n=50_000, seed=3, device=device, dtype=torch.float64,
                        level=LEVEL)
    assert est.contains(exact_adv), (est, exact_adv)
    assert torch.device(est.device).type == device


# ------------------------------------------------------------------------------------------ reproducibility
@pytest.mark.parametrize("device", _devices())
def test_same_seed_reproducible_on_same_device(device):
    """Same seed, same device, same dtype: identical counts (PGD with random starts on an MLP, exact attack);
    a deterministic attack gives the same count for every chunk size."""
    dist = tr.GaussianMixture([1.0, 0.5, -0.3, 0.2], 1.0)
    net = MLP(4, (16, 16), seed=0, device=device)
    kw = dict(attack="pgd", n=3000, seed=7, level=LEVEL, attack_options={"steps": 10})
    a = estimate_risk(dist, net, tr.Linf(0.3), **kw)
    b = estimate_risk(dist, net, tr.Linf(0.3), **kw)
    assert torch.device(a.device).type == device
    assert (a.k, a.n) == (b.k, b.n)
    c = estimate_risk(dist, net, tr.Linf(0.3), **{**kw, "seed": 8})
    assert c.n == a.n  # another seed: other points (counts may coincide, the points may not)
    x7, _ = next(iter_samples(dist, 50, seed=7, device=device))
    x8, _ = next(iter_samples(dist, 50, seed=8, device=device))
    assert not torch.equal(x7, x8)
    lin = tr.Linear([1.0, 0.5, -0.3, 0.2], 0.1)
    counts = {cs: estimate_risk(dist, lin, tr.L2(0.4), attack="exact", n=10_000, seed=4, device=device,
                                dtype=torch.float64, chunk_size=cs).k for cs in (333, 4096, 10_000)}
    assert len(set(counts.values())) == 1, counts


@pytest.mark.cuda
@NEEDS_CUDA
def test_cpu_and_cuda_agree_with_closed_form():
    """CPU and CUDA draw the same points (one counter-based stream; floats equal to the last bits) and both
    intervals contain the exact risk: Gilmer's quadratic classifier on the spheres D = 500 (standard risk
    0.0058299), the exact L2 attack on a cap, and PGD on a torch linear network against its twin's closed form."""
    sp = tr.ConcentricSpheres(500, 1.0, 1.3)
    quad = tr.Quadratic([1.375] * 250 + [0.5] * 250, 1.0)
    exact = float(tr.risk(sp, quad))
    assert exact == pytest.approx(0.0058299, rel=1e-4)
    on = {dev: estimate_risk(sp, quad, None, n=n, seed=1, device=dev, dtype=torch.float64, level=LEVEL)
          for dev, n in (("cpu", 100_000), ("cuda", 2_000_000))}
    for dev, est in on.items():
        assert est.contains(exact), (dev, est, exact)
        assert torch.device(est.device).type == dev
    # the first 100,000 points are the same on both devices: the counts agree but for points within float
    # rounding of the boundary (float64: none expected)
    head = estimate_risk(sp, quad, None, n=100_000, seed=1, device="cuda", dtype=torch.float64)
    assert abs(head.k - on["cpu"].k) <= 2, (head.k, on["cpu"].k)
    sp, cap, w, threat = _spheres_case(500)
    exact = float(tr.risk(sp, cap, threat))
    for dev, n in (("cpu", 50_000), ("cuda", 500_000)):
        est = estimate_risk(sp, cap, threat, attack="exact", n=n, seed=2, device=dev, dtype=torch.float64,
                            level=LEVEL)
        assert est.contains(exact), (dev, est, exact)
    gm = tr.GaussianMixture([1.0, 0.5, -0.3], 1.0)
    lin_w, lin_b = [1.5, 0.7, -0.2], 0.3
    exact = float(tr.risk(gm, tr.Linear(lin_w, lin_b), tr.Linf(0.2)))
    for dev in ("cpu", "cuda"):
        net = LinearModel.from_weights(lin_w, lin_b, device=dev, dtype=torch.float64)
        est = estimate_risk(gm, net, tr.Linf(0.2), attack="pgd", n=20_000, seed=3, level=LEVEL,
                            attack_options={"steps": 20})
        assert est.contains(exact), (dev, est, exact)


# ------------------------------------------------------------------------------------------ training
@pytest.mark.parametrize("device", _devices())
def test_training_checkpoint_and_resume_on_device(device, tmp_path):
    """An interrupted run resumed from its checkpoint (into a differently initialised model) ends bitwise where
    the uninterrupted run ends: PGD adversarial training of an MLP and closed-form training of a linear model."""
    dist = tr.GaussianMixture([1.0, -0.5, 0.25], 1.0)
    opts = dict(steps=24, batch_size=64, lr=0.01, adversarial="pgd", threat=tr.Linf(0.1),
                attack_options={"steps": 3}, seed=0, device=device, eval_every=8, eval_n=512)
    ref = train(MLP(3, (8,), seed=0), dist, **opts)
    assert next(ref.model.parameters()).device.type == device
    path = tmp_path / f"mlp-{device}.pt"
    cut = train(MLP(3, (8,), seed=0), dist, checkpoint=path, checkpoint_every=100,
                callback=lambda step, model, rec: step == 10, **opts)
    assert cut.stopped_early and cut.steps == 10 and path.exists()
    res = train(MLP(3, (8,), seed=5), dist, checkpoint=path, **opts)
    assert res.start_step == 10 and res.steps == 24
    assert torch.equal(_params(res.model), _params(ref.model))
    assert [h["risk"] for h in res.history] == [h["risk"] for h in ref.history]

    lin = dict(steps=40, batch_size=128, lr=0.05, adversarial="closed-form", threat=tr.Linf(0.1), seed=1,
               device=device, eval_every=10, eval_n=20_000)
    ref = train(LinearModel(3), dist, **lin)
    path = tmp_path / f"lin-{device}.pt"
    train(LinearModel(3), dist, checkpoint=path, **{**lin, "steps": 20})
    res = train(LinearModel(3), dist, checkpoint=path, **lin)
    assert torch.equal(_params(res.model), _params(ref.model))
    # the trained rule is close to the Bayes rule: its error is near the Bayes risk (closed form)
    bayes = float(tr.risk(dist, dist.bayes_classifier()))
    assert ref.history[-1]["risk"] == pytest.approx(bayes, abs=0.03)


# ------------------------------------------------------------------------------------------ verification, smoothing
@pytest.mark.parametrize("device", _devices())
def test_verification_and_smoothing_on_device(device):
    """The verifier, the verified bracket of estimate_risk and randomized smoothing on a model on the device.

    References are closed forms for a linear model: point i is Linf-robust iff ``|m_i| / ||w||_1 > eps``; the
    adversarial risk is ``tr.risk`` of its twin; the smoothed linear classifier is the classifier itself, with
    exact L2 radius ``|m_i| / ||w||_2`` (certified radii may only be smaller, with probability >= 1 - alpha)."""
    dist = tr.GaussianMixture([1.0, -0.5], 1.0)
    w, b, eps = torch.tensor([1.5, 0.7], dtype=torch.float64), 0.3, 0.2
    net = LinearModel.from_weights(w.tolist(), b, device=device, dtype=torch.float64)
    x, y = dist.sample(200, generator=torch.Generator(device=device).manual_seed(4), device=device,
                       dtype=torch.float64)
    res = tr.verify(net, x, y, tr.Linf(eps))
    m = (x.cpu() @ w + b) * y.cpu().double()  # signed margin: > 0 where the point is classified right
    dist_inf = m / w.abs().sum()
    clear = (dist_inf - eps).abs() > 1e-9
    assert torch.equal(res.robust.cpu()[clear], (dist_inf > eps)[clear])
    assert torch.equal(res.vulnerable.cpu()[clear], (dist_inf <= eps)[clear])
    assert res.x_adv.device.type == torch.device(device).type

    est = estimate_risk(dist, net, tr.Linf(eps), attack="pgd", upper="verify", n=4000, seed=6, level=LEVEL,
                        attack_options={"steps": 20})
    exact = float(tr.risk(dist, tr.Linear(w.tolist(), b), tr.Linf(eps)))
    assert est.kind == "bracket" and est.decided == est.n and est.k == est.upper_k
    assert est.ci_low <= exact <= est.upper_ci_high, (est, exact)

    smooth = tr.RandomizedSmoothing(net, 0.5)
    labels, radii = smooth.certify(x[:50], 100, 2000, 0.001, generator=1)
    assert labels.device.type == torch.device(device).type
    given = labels.cpu() != 0
    pred = torch.where(x[:50].cpu() @ w + b >= 0, 1, -1)
    assert bool(given.any()) and torch.equal(labels.cpu()[given], pred[given])
    true_radius = ((x[:50].cpu() @ w + b).abs() / torch.linalg.vector_norm(w)).double()
    assert bool((radii.cpu().double()[given] <= true_radius[given] + 1e-9).all())


# ------------------------------------------------------------------------------------------ command line
def _cli(argv: list[str], capsys) -> tuple[int, str, str]:
    rc = cli_main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def _check_crosscheck_output(rc: int, out: str, err: str) -> None:
    assert rc == 0, (out[-3000:], err[-3000:])
    assert "DISAGREE" not in out, out
    assert "BOUND VIOLATED" not in out, out
    summary = [line for line in out.splitlines() if "cases at level" in line]
    assert summary and int(summary[-1].split()[0]) > 0, out[-2000:]


@pytest.mark.parametrize("device", _devices())
def test_crosscheck_quick_analytic(device, capsys):
    """``toyrobust crosscheck --quick --device DEVICE --no-trained --strict``: every verdict agrees with the closed
    forms (CPU half: the point-mass rows only, with fewer samples, to stay short)."""
    argv = ["crosscheck", "--quick", "--device", device, "--no-trained", "--strict"]
    if device == "cpu":
        argv += ["--only", "point masses", "--n", "3000"]
    _check_crosscheck_output(*_cli(argv, capsys))


@pytest.mark.parametrize("device", _devices())
def test_crosscheck_quick_trained(device, capsys):
    """The trained networks on the device (issue 11: the per-sphere error count of the ReLU MLP sampled on the
    CPU and fed a CUDA model); ``--only`` keeps the evaluated rows to the trained spheres networks (the networks
    are still all trained: the case list is built before the filter)."""
    argv = ["crosscheck", "--quick", "--device", device, "--only", "trained, spheres", "--n", "5000", "--strict"]
    _check_crosscheck_output(*_cli(argv, capsys))


@pytest.mark.cuda
@NEEDS_CUDA
def test_reproduce_quick_on_cuda(tmp_path, capsys):
    """``toyrobust reproduce --quick`` with CUDA present. The figure scripts take no device argument: they draw
    and train on ``resolve_device(None)``, which is CUDA here, so running them as they are is the CUDA path."""
    from toyrobust import reproduce

    assert tr.rng.resolve_device(None).type == "cuda"
    rc, out, err = _cli(["reproduce", "--quick", "--out", str(tmp_path)], capsys)
    assert rc == 0, err[-3000:]
    for name in reproduce.available():
        png = tmp_path / f"{name}.png"
        assert png.exists() and png.stat().st_size > 0, (name, out[-2000:])
        assert list(tmp_path.glob(f"{name}*.csv")), name
