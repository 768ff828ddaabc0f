"""Independent peers: our Linf and L2 PGD find at least as many adversarial examples as torchattacks' PGD /
PGDL2, and as a plain reference PGD loop written here, on the same torch MLP and data with the same budget.

torchattacks is an optional test dependency (``pip install --no-deps torchattacks``: its own requirements would
pull torchvision and a CUDA torch); without it those tests skip and the reference-loop tests still run.

torchattacks needs inputs in [0, 1] and image-shaped batches (its PGDL2 reshapes norms to (N, 1, 1, 1)), so the
data live in [0.25, 0.75]^d, small enough balls never reach the box (its clamping is then a no-op) and it gets
(N, d, 1, 1) tensors. Its L2 random start is not uniform in the ball (radius ~ U(0, 1)), and it uses the global
RNG, which is forked here so the test leaves it untouched.
"""

from __future__ import annotations

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


def _torchattacks_counts(torchattacks, mlp, x, y, norm, eps, random_start, runs=3):
    class TwoLogits(torch.nn.Module):  # torchattacks wants class scores of image-shaped inputs
        def __init__(self):
            super().__init__()
            self.mlp = mlp

        def forward(self, img):
            z = self.mlp(img.flatten(1))
            return torch.cat([torch.zeros_like(z), z], dim=1)  # column 1 is label +1

    model = TwoLogits().eval()
    kind = torchattacks.PGD if norm == "linf" else torchattacks.PGDL2
    cls = BUDGETS[norm][0]
    counts = []
    with torch.random.fork_rng():
        torch.manual_seed(0)
        for _ in range(runs):
            atk = kind(model, eps=eps, alpha=2.5 * eps / STEPS, steps=STEPS, random_start=random_start)
            x_ta = atk(x[:, :, None, None], ((y + 1) // 2).long()).flatten(1)
            assert cls(eps).contains(x_ta, x, atol=1e-6).all()
            counts.append(int(tr.is_adversarial("ball", mlp, x_ta, y).sum()))
    return counts


def test_linf_pgd_at_least_as_strong_as_torchattacks(setup):
    """Both with random starts (uniform in the Linf ball for both)."""
    torchattacks = pytest.importorskip("torchattacks")
    mlp, x, y = setup
    counts = _torchattacks_counts(torchattacks, mlp, x, y, "linf", BUDGETS["linf"][1], True)
    assert max(counts) > int(tr.is_adversarial("ball", mlp, x, y).sum()) + 50
    for seed in range(3):
        ours = pgd(mlp, x, y, tr.Linf(BUDGETS["linf"][1]), steps=STEPS, generator=seed)
        assert int(ours.success.sum()) >= max(counts), (int(ours.success.sum()), counts)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_from_the_clean_point_at_least_as_strong_as_torchattacks(setup, norm):
    """Without random starts both run the same iteration; ours must not lose anything to bookkeeping.

    (With random starts torchattacks' PGDL2 draws the radius from U(0, 1), not uniform in the ball: its starts
    lie closer to the clean point, which on this model gains it about 2% over any uniform start at 10-40 steps,
    ours and the reference loop alike; see the report of issue 4.)
    """
    torchattacks = pytest.importorskip("torchattacks")
    mlp, x, y = setup
    cls, eps = BUDGETS[norm]
    counts = _torchattacks_counts(torchattacks, mlp, x, y, norm, eps, False, runs=1)
    ours = pgd(mlp, x, y, cls(eps), steps=STEPS, random_start=False)
    assert counts[0] > int(tr.is_adversarial("ball", mlp, x, y).sum()) + 50
    assert int(ours.success.sum()) >= counts[0], (int(ours.success.sum()), counts)
