"""Draws too large for the memory (issue 22 item 6): ``tr.GaussianMixture.robust_nonrobust(10**9).sample(10)`` and
``tr.estimate_risk(tr.ConcentricSpheres(10**9), ...)`` failed with the allocator's ``RuntimeError: [enforce fail at
alloc_cpu.cpp:127] ... tried to allocate 400000000000 bytes``. Now a ValueError, before anything is allocated, says
what was asked, the bytes it needs, and what to do (fewer points, a smaller chunk_size, the closed form tr.risk).

The available memory is patched to a fixed 8 GiB where the outcome would otherwise depend on the machine, so that no
test ever tries a draw this machine might actually attempt.
"""

from __future__ import annotations

import sys

import pytest
import torch

import toyrobust as tr
from toyrobust.distributions import base
from toyrobust.distributions.base import DRAW_CHECK_BYTES, SampleTooLargeError, available_memory, check_draw_size

GIB = 2**30


@pytest.fixture
def eight_gib(monkeypatch):
    """The memory check sees 8 GiB available on every device."""
    monkeypatch.setattr(base, "available_memory", lambda device: (8 * GIB, "available memory"))


def test_sample_of_huge_dimension_says_what_it_needs_and_what_to_do(eight_gib):
    with pytest.raises(ValueError) as info:
        tr.GaussianMixture.robust_nonrobust(10**9).sample(10)
    msg = str(info.value)
    assert isinstance(info.value, SampleTooLargeError)
    assert msg.startswith("GaussianMixture.sample: 10 points need 40,000,000,000 bytes (37.3 GiB)"), msg
    assert "dimension 1000000000 in float32 (3.73 GiB per point)" in msg and "8 GiB of available memory on cpu" in msg
    assert "draw fewer points" in msg and "chunk_size" in msg and "tr.risk(dist, clf, threat)" in msg
    # one point fits: fewer points is the advice; float64 doubles the bytes
    with pytest.raises(ValueError, match="3 points need 24,000,000,000 bytes"):
        tr.GaussianMixture.robust_nonrobust(10**9).sample(3, dtype=torch.float64)


def test_estimate_risk_of_huge_dimension_is_refused_before_any_draw(eight_gib, monkeypatch):
    def no_draw(*args, **kwargs):
        raise AssertionError("drew points")

    monkeypatch.setattr(base.Distribution, "draw", no_draw)
    with pytest.raises(ValueError) as info:
        tr.estimate_risk(tr.ConcentricSpheres(10**9), tr.Radial(1.15), tr.L2(0.1), n=100_000, attack="exact")
    msg = str(info.value)
    assert msg.startswith("estimate_risk: 8192 points need 32,768,000,000,000 bytes"), msg
    assert "pass a smaller chunk_size (now 8192" in msg and "tr.risk(dist, clf, threat)" in msg
    with pytest.raises(ValueError, match="estimate_risk: 3 points need 12,000,000,000 bytes"):
        tr.estimate_risk(tr.ConcentricSpheres(10**9), tr.Radial(1.15), n=100, chunk_size=3)


def test_even_one_point_too_large_points_to_the_closed_form():
    """Real memory: 10**15 float32 coordinates (4 PB) fit nowhere."""
    dist = tr.GaussianMixture.robust_nonrobust(10**15)
    with pytest.raises(ValueError, match=r"1 point needs 4,000,000,000,000,000 bytes .*even one point does not fit: "
                                         r"use the closed form tr.risk"):
        dist.sample(1)
    assert 0 < float(tr.risk(dist, dist.bayes_classifier())) < 1  # the closed form answers
    with pytest.raises(ValueError, match="even one point does not fit"):
        tr.estimate_risk(tr.ConcentricSpheres(10**300), tr.Radial(1.15), n=10)


def test_small_draws_do_not_read_the_free_memory(monkeypatch):
    def unread(device):
        raise AssertionError("read the free memory for a small draw")

    monkeypatch.setattr(base, "available_memory", unread)
    x, y = tr.GaussianMixture.robust_nonrobust(1000).sample(50, generator=0)
    assert x.shape == (50, 1000)
    check_draw_size(DRAW_CHECK_BYTES // 4 - 1, 1, "cpu", torch.float32)
    est = tr.estimate_risk(tr.Tsipras(), tr.Tsipras().bayes_classifier(), n=1000)
    assert 0 <= est.value <= 1


def test_draws_that_fit_are_not_refused(eight_gib):
    check_draw_size(2 * 10**6, 1000, "cpu", torch.float32)  # exactly 8e9 bytes < 8 GiB
    check_draw_size(10**6, 1000, "cpu", torch.float64)
    with pytest.raises(SampleTooLargeError):
        check_draw_size(2 * 10**6 + 200_000, 1000, "cpu", torch.float32)
    check_draw_size(10**12, tr.GaussianMixture.robust_nonrobust(__import__("sympy").Symbol("D")).dim, "cpu",
                    torch.float32)  # a symbolic dimension is not checked (it cannot be sampled anyway)


def test_available_memory_without_psutil(monkeypatch):
    found = available_memory("cpu")
    assert found is not None and found[0] > 0
    monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil raises ImportError
    fallback = available_memory("cpu")
    if sys.platform.startswith("linux"):
        assert fallback is not None and fallback[0] > 0 and "memory" in fallback[1]
    assert available_memory("meta") is None


def test_sweep_estimate_records_the_refusal_in_one_line(tmp_path, eight_gib):
    """The command line's estimates run as sweep tasks: the row's error is the one-line message."""
    pytest.importorskip("pandas")
    from toyrobust.sweeps import command, load_results

    config = tmp_path / "big.toml"
    config.write_text('task = "estimate"\n[grid]\ndist = "spheres"\ndim = 1000000000\nclassifier = "radial:1.15"\n'
                      'n = 100\n')
    assert command.main([str(config), "--store", str(tmp_path / "s"), "--workers", "0", "--no-progress"]) == 1
    (error,) = load_results(tmp_path / "s").error
    assert error.startswith("SampleTooLargeError: estimate_risk: 100 points need 400,000,000,000 bytes") and \
        "\n" not in error
