"""Independent peers: our Linf and L2 PGD find at least as many adversarial examples as an independent PGD, on the
same torch MLP and data with the same budget, and as a plain reference PGD loop written here from the same start.

The peer is torchattacks' PGD / PGDL2 when torchattacks is importable (an optional test dependency,
``pip install --no-deps torchattacks``: its own requirements would pull torchvision and a CUDA torch), and always
:func:`_madry_pgd`, a plain Madry et al. PGD written in this file with torchattacks' semantics (cross-entropy on two
logits, fixed step, last iterate, box clamp, the same random starts) and nothing from toyrobust's attack code. So the
README's test command (``python -m pytest``, without torchattacks) runs every peer check; none is skipped, and the
test ids name the peer (``reference`` or ``torchattacks``). Where torchattacks is installed, the reference is also
checked against it: from the clean point both reach the same points (Linf: identical; L2: up to float rounding).

torchattacks needs inputs in [0, 1] and image-shaped batches (its PGDL2 reshapes norms to (N, 1, 1, 1)), so the
data live in [0.25, 0.75]^d, small enough balls never reach the box (its clamping is then a no-op) and it gets
(N, d, 1, 1) tensors. Its L2 random start is not uniform in the ball (radius ~ U(0, 1)), and it uses the global
RNG, which is forked here so the test leaves it untouched.
"""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

import toyrobust as tr
from toyrobust.attacks import pgd

D, N, STEPS = 10, 1500, 10
BUDGETS = {"linf": (tr.Linf, 0.04), "l2": (tr.L2, 0.12)}



class _Centred(torch.nn.Module):
    """An MLP on ``(x - 1/2) / 0.1``: the data sit in the box [0.25, 0.75]^d."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(D, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
                                       torch.nn.ReLU(), torch.nn.Linear(64, 1))

    def forward(self, x):
        return self.net((x - 0.5) / 0.1)


@pytest.fixture(scope="module")
def setup():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        mlp = _Centred()
    # a short training run on a Gaussian mixture squeezed into the box, so the model is not trivial
    dist = tr.GaussianMixture([0.06] * D, sigma=0.08)
    opt = torch.optim.Adam(mlp.parameters(), lr=1e-2)
    for _ in range(100):
        xb, yb = dist.sample(256, generator=gen)
        loss = torch.nn.functional.softplus(-yb * mlp((xb + 0.5).clamp(0.25, 0.75))[:, 0]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    for p in mlp.parameters():
        p.grad = None
        p.requires_grad_(False)
    x, y = dist.sample(N, generator=gen)
    x = (x + 0.5).clamp(0.25, 0.75)
    with torch.no_grad():
        acc = (torch.where(mlp(x)[:, 0] >= 0, 1, -1) == y).float().mean()
    torch.set_num_threads(threads)
    assert acc > 0.9
    return mlp, x, y


def _reference_pgd(mlp, x, y, norm, eps, steps, start):
    """Madry et al.'s PGD, written independently: fixed step 2.5 eps / steps from ``start``, last iterate."""
    alpha = 2.5 * eps / steps
    delta = start - x
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = (-y * mlp(x + delta)[:, 0]).sum()
        (g,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            if norm == "linf":
                delta = (delta + alpha * g.sign()).clamp(-eps, eps)
            else:
                delta = delta + alpha * g / g.norm(dim=1, keepdim=True).clamp_min(1e-30)
                delta = delta * (eps / delta.norm(dim=1, keepdim=True)).clamp(max=1.0)
    return (x + delta).detach()


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("random_start", [True, False])
def test_pgd_at_least_as_strong_as_a_reference_loop(setup, norm, random_start):
    """Same start (the threat's uniform draw from the same seed, or the clean point), same steps: the reference
    keeps its last iterate, ours also stops early and keeps the best one, so it finds at least as many."""
    mlp, x, y = setup
    cls, eps = BUDGETS[norm]
    for seed in range(3):
        ours = pgd(mlp, x, y, cls(eps), steps=STEPS, generator=seed, random_start=random_start)
        start = cls(eps).random_start(x, torch.Generator().manual_seed(seed)) if random_start else x.clone()
        x_ref = _reference_pgd(mlp, x, y, norm, eps, STEPS, start)
        assert cls(eps).contains(x_ref, x, atol=1e-6).all()
        ref = int(tr.is_adversarial("ball", mlp, x_ref, y).sum())
        assert ref > int(tr.is_adversarial("ball", mlp, x, y).sum()) + 50  # the budget matters
        assert int(ours.success.sum()) >= ref, (int(ours.success.sum()), ref)


def _has_torchattacks() -> bool:
    """Whether torchattacks can be imported (decided without importing it: the import costs a second)."""
    if "torchattacks" in sys.modules:
        return sys.modules["torchattacks"] is not None  # None: blocked (the tests of the fallback do that)
    return importlib.util.find_spec("torchattacks") is not None


#: the peers every check runs against: the reference PGD of this file always, torchattacks where it is installed
PEERS = ["reference"] + (["torchattacks"] if _has_torchattacks() else [])


def _madry_pgd(mlp, x, y, norm, eps, steps, random_start, generator):
    """Madry et al.'s PGD on flat (N, d) batches, written independently of toyrobust's attacks, with torchattacks'
    semantics: ascent on the cross-entropy of the two logits (0, f(x)) (label +1 is column 1), step ``alpha =
    2.5 eps / steps`` (the sign of the gradient for Linf, the gradient over its L2 norm for L2), projection onto the
    ball, clamp to the box [0, 1], last iterate. Random starts: uniform in the Linf box; for L2 a Gaussian direction
    with radius ``eps * U(0, 1)`` (torchattacks' PGDL2, not uniform in the ball)."""
    alpha = 2.5 * eps / steps
    adv = x.clone()
    if random_start:
        if norm == "linf":
            noise = (torch.rand(x.shape, generator=generator, dtype=x.dtype) * 2 - 1) * eps
        else:
            direction = torch.randn(x.shape, generator=generator, dtype=x.dtype)
            radius = torch.rand((x.shape[0], 1), generator=generator, dtype=x.dtype) * eps
            noise = direction / direction.norm(dim=1, keepdim=True) * radius
        adv = (x + noise).clamp(0.0, 1.0)
    for _ in range(steps):
        adv.requires_grad_(True)
        logits = torch.cat([torch.zeros_like(mlp(adv)), mlp(adv)], dim=1)
        loss = torch.nn.functional.cross_entropy(logits, ((y + 1) // 2).long(), reduction="sum")
        (grad,) = torch.autograd.grad(loss, adv)
        with torch.no_grad():
            if norm == "linf":
                delta = (adv + alpha * grad.sign() - x).clamp(-eps, eps)
            else:
                delta = adv + alpha * grad / (grad.norm(dim=1, keepdim=True) + 1e-10) - x
                delta = delta * (eps / delta.norm(dim=1, keepdim=True)).clamp(max=1.0)
            adv = (x + delta).clamp(0.0, 1.0)
    return adv.detach()


def _peer_counts(peer, mlp, x, y, norm, eps, random_start, runs=3):
    """Adversarial examples found by the peer in each of ``runs`` runs (each checked to lie in the ball)."""
    cls = BUDGETS[norm][0]
    if peer == "reference":
        gen = torch.Generator().manual_seed(12345)
        advs = [_madry_pgd(mlp, x, y, norm, eps, STEPS, random_start, gen) for _ in range(runs)]
    else:
        advs = _torchattacks_advs(mlp, x, y, norm, eps, random_start, runs)
    counts = []
    for x_adv in advs:
        assert cls(eps).contains(x_adv, x, atol=1e-6).all()
        counts.append(int(tr.is_adversarial("ball", mlp, x_adv, y).sum()))
    return counts


def _torchattacks_advs(mlp, x, y, norm, eps, random_start, runs):
    import torchattacks

    class TwoLogits(torch.nn.Module):  # torchattacks wants class scores of image-shaped inputs
        def __init__(self):
            super().__init__()
            self.mlp = mlp

        def forward(self, img):
            z = self.mlp(img.flatten(1))
            return torch.cat([torch.zeros_like(z), z], dim=1)  # column 1 is label +1

    model = TwoLogits().eval()
    kind = torchattacks.PGD if norm == "linf" else torchattacks.PGDL2
    advs = []
    with torch.random.fork_rng():
        torch.manual_seed(0)
        for _ in range(runs):
            atk = kind(model, eps=eps, alpha=2.5 * eps / STEPS, steps=STEPS, random_start=random_start)
            advs.append(atk(x[:, :, None, None], ((y + 1) // 2).long()).flatten(1))
    return advs


@pytest.mark.parametrize("peer", PEERS)
def test_linf_pgd_at_least_as_strong_as_an_independent_peer(setup, peer):
    """Both with random starts (uniform in the Linf ball for both)."""
    mlp, x, y = setup
    counts = _peer_counts(peer, mlp, x, y, "linf", BUDGETS["linf"][1], True)
    assert max(counts) > int(tr.is_adversarial("ball", mlp, x, y).sum()) + 50
    for seed in range(3):
        ours = pgd(mlp, x, y, tr.Linf(BUDGETS["linf"][1]), steps=STEPS, generator=seed)
        assert int(ours.success.sum()) >= max(counts), (int(ours.success.sum()), counts)


@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_from_the_clean_point_at_least_as_strong_as_an_independent_peer(setup, norm, peer):
    """Without random starts both run the same iteration; ours must not lose anything to bookkeeping.

    (With random starts torchattacks' PGDL2 draws the radius from U(0, 1), not uniform in the ball: its starts
    lie closer to the clean point, which on this model gains it about 2% over any uniform start at 10-40 steps,
    ours and the reference loop alike; see the report of issue 4.)
    """
    mlp, x, y = setup
    cls, eps = BUDGETS[norm]
    counts = _peer_counts(peer, mlp, x, y, norm, eps, False, runs=1)
    ours = pgd(mlp, x, y, cls(eps), steps=STEPS, random_start=False)
    assert counts[0] > int(tr.is_adversarial("ball", mlp, x, y).sum()) + 50
    assert int(ours.success.sum()) >= counts[0], (int(ours.success.sum()), counts)
    if peer == "torchattacks":  # the reference peer is the same algorithm: it finds the same points
        reference = _peer_counts("reference", mlp, x, y, norm, eps, False, runs=1)
        assert abs(reference[0] - counts[0]) <= 0.005 * N, (reference, counts)
