"""Counter-based random streams (toyrobust.rng.CounterStream): the published SplitMix64 outputs, bitwise agreement
of the vectorised words with the scalar definition, chunk-size independence of the sample stream, and the laws of
the uniforms, normals and labels against exact references (scipy, exact binomial intervals)."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import sys

import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import toyrobust as tr
from toyrobust.montecarlo import clopper_pearson, iter_samples
from toyrobust.rng import CounterStream, GeneratorDraws, derive_seed, splitmix64


def test_splitmix64_published_vector():
    # Vigna's splitmix64.c seeded with 1234567: the first five outputs (state advanced before mixing)
    assert [splitmix64(j + 1, 1234567) for j in range(5)] == [
        6457827717110365317, 3203168211198807973, 9817491932198370423, 4593380528125082431, 16408922859458223821]


def _words(stream: CounterStream, c: int, start: int, n: int, w: int) -> np.ndarray:
    out = np.zeros((n, w), dtype=np.uint64)

    def take(r0, m, z):
        z = z.cpu().numpy() if isinstance(z, torch.Tensor) else z
        out[r0:r0 + m] = z.view(np.uint64)

    stream.words(c, start, n, w, take)
    return out


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**63 - 1), start=st.integers(0, 2**33), n=st.integers(1, 40), w=st.integers(1, 9),
       tile=st.integers(1, 50), c=st.integers(0, 3), backend=st.sampled_from(["numpy", "torch"]))
def test_vectorised_words_equal_scalar_splitmix64(seed, start, n, w, tile, c, backend):
    """numpy's uint64 and torch's wrapping int64 arithmetic give the scalar mod-2^64 definition, across tiles."""
    stream = CounterStream(seed, 0, backend=backend)
    assert stream.backend == backend
    if backend == "numpy":
        stream.impl.TILE = tile
    else:
        stream.impl.tile = tile
    got = _words(stream, c, start, n, w)
    key = derive_seed(seed, 0, c)
    want = np.array([[splitmix64((start + i) * w + j, key) for j in range(w)] for i in range(n)], dtype=np.uint64)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cpu_backends_agree(dtype):
    """numpy (the CPU default) and torch give the same labels and uniforms bitwise, normals to a few ulps."""
    for start, n, k in ((0, 3, 1), (77, 700, 9), (2**35, 50, 500)):
        a, b = CounterStream(6, 0, backend="numpy").rows(start, n), CounterStream(6, 0, backend="torch").rows(start, n)
        assert torch.equal(a.signs(), b.signs())
        assert torch.equal(a.uniform(k, dtype), b.uniform(k, dtype))
        tol = 2e-6 if dtype == torch.float32 else 1e-14
        torch.testing.assert_close(a.normal(k, dtype), b.normal(k, dtype), rtol=tol, atol=tol)
    # labels: the top bit set means -1
    y = CounterStream(8, 0).rows(123, 40).signs()
    key = derive_seed(8, 0, 0)
    assert y.tolist() == [-1 if splitmix64(123 + i, key) >> 63 else 1 for i in range(40)]


@pytest.mark.parametrize("dist", [
    tr.Tsipras(0.8, 1.0, d=3), tr.GaussianMixture([1.0, -0.5], 0.7), tr.ConcentricSpheres(5, 1.0, 1.3),
    tr.PointMasses(0.5), tr.BernoulliModel(6, 0.4),
], ids=lambda d: type(d).__name__)
@settings(max_examples=15, deadline=None)
@given(cs=st.integers(1, 400), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_iter_samples_any_chunk_size(dist, cs, dtype):
    """Every distribution's stream is the same, bitwise, however it is cut."""
    n = 900
    whole_x, whole_y = next(iter_samples(dist, n, seed=11, chunk_size=n, device="cpu", dtype=dtype))
    parts = list(iter_samples(dist, n, seed=11, chunk_size=cs, device="cpu", dtype=dtype))
    assert all(x.shape[0] <= cs for x, _ in parts)
    assert torch.equal(torch.cat([x for x, _ in parts]), whole_x)
    assert torch.equal(torch.cat([y for _, y in parts]), whole_y)
    assert whole_x.dtype == dtype and whole_y.dtype == torch.int64


def test_rows_can_be_drawn_out_of_order():
    """Row i of a stream is a pure function of (seed, i): a late range drawn first equals its slice."""
    dist = tr.GaussianMixture([0.3] * 7)
    stream = CounterStream(5, 0)
    late_x, late_y = dist.draw(stream.rows(10_000, 50), torch.float32)
    x, y = dist.draw(CounterStream(5, 0).rows(0, 10_050), torch.float32)
    assert torch.equal(late_x, x[10_000:]) and torch.equal(late_y, y[10_000:])


def test_uniforms_follow_the_uniform_law():
    for dtype, n in ((torch.float32, 200_000), (torch.float64, 200_000)):
        u = CounterStream(1, 0).rows(0, n).uniform(1, dtype)[:, 0].numpy()
        assert u.min() >= 0.0 and u.max() < 1.0
        assert scipy.stats.kstest(u, "uniform").pvalue > 1e-3
        counts = np.bincount((u * 64).astype(int), minlength=64)
        assert scipy.stats.chisquare(counts).pvalue > 1e-3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_normals_follow_the_normal_law(dtype):
    z = CounterStream(2, 0).rows(0, 40_000).normal(11, dtype)  # odd width: the last sine column is dropped
    assert z.shape == (40_000, 11) and z.dtype == dtype
    flat = z.double().numpy().ravel()
    assert scipy.stats.kstest(flat, "norm").pvalue > 1e-3
    # columns are uncorrelated, including a cosine column and its sine partner (columns j and j + 6)
    corr = np.corrcoef(z.double().numpy(), rowvar=False)
    off = corr[~np.eye(11, dtype=bool)]
    assert np.abs(off).max() < 5 / math.sqrt(40_000)


def test_normal_tails_are_not_truncated():
    """P(|Z| > 4) = 6.33e-5: the count in 2 x 10^7 float32 draws lies in its exact 99.9% interval."""
    n = 20_000_000
    z = CounterStream(3, 0).rows(0, n // 500).normal(500, torch.float32)
    k = int((z.abs() > 4).sum())
    low, high = clopper_pearson(k, n, 0.999)
    p = 2 * scipy.stats.norm.sf(4.0)
    assert low <= p <= high, (k, p)
    assert float(z.abs().max()) > 5.0  # Box-Muller from 40-bit uniforms reaches 7.5 sigma


def test_signs_are_fair_coins():
    n = 100_001
    y = CounterStream(4, 0).rows(0, n).signs()
    assert set(y.unique().tolist()) == {-1, 1}
    low, high = clopper_pearson(int((y == 1).sum()), n, 0.999)
    assert low <= 0.5 <= high


def test_sample_with_a_generator_is_unchanged():
    """dist.sample(generator=...) still draws labels then normals from the generator in that order."""
    dist = tr.GaussianMixture([1.0, -2.0, 0.5], 0.7)
    x, y = dist.sample(64, generator=9, dtype=torch.float64)
    g = torch.Generator().manual_seed(9)
    y_ref = torch.randint(0, 2, (64,), generator=g) * 2 - 1
    z = torch.randn(64, 3, generator=g, dtype=torch.float64)
    x_ref = 0.7 * z + y_ref[:, None].double() * torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    assert torch.equal(y, y_ref)
    assert torch.allclose(x, x_ref, rtol=0, atol=1e-15)


def test_draw_rejects_what_is_not_a_source():
    with pytest.raises(TypeError, match="draws must be"):
        tr.PointMasses(0.5).draw(torch.Generator(), torch.float32)
    assert isinstance(GeneratorDraws(torch.Generator(), 3), tr.rng.Draws)


_TRITON_CHECK = r"""
import torch
from toyrobust.rng import CounterStream, derive_seed, splitmix64
checked = 0
for dtype in (torch.float32, torch.float64):
    for start, n, k in ((0, 5, 1), (1000, 37, 7), (2**40, 9, 500), (3, 1500, 2)):
        tri = CounterStream(3, 0, backend="triton")
        ref = CounterStream(3, 0, backend="torch")
        assert tri.backend == "triton" and ref.backend == "torch"
        a, b = tri.rows(start, n), ref.rows(start, n)
        assert torch.equal(a.signs(), b.signs())
        assert torch.equal(a.uniform(k, dtype), b.uniform(k, dtype))
        za, zb = a.normal(k, dtype), b.normal(k, dtype)
        assert za.shape == zb.shape == (n, k) and za.dtype == dtype
        tol = 1e-6 if dtype == torch.float32 else 1e-14
        torch.testing.assert_close(za, zb, rtol=tol, atol=tol)
        checked += 1
# the labels' words are the scalar SplitMix64 words (top bit set: -1)
y = CounterStream(8, 0, backend="triton").rows(123, 40).signs()
key = derive_seed(8, 0, 0)
assert y.tolist() == [-1 if splitmix64(123 + i, key) >> 63 else 1 for i in range(40)]
from toyrobust.rng import _triton_usable
assert _triton_usable(torch.device("cpu"))  # the once-per-device self-check passes on the real kernels
print("triton kernels ok", checked)
"""


@pytest.mark.skipif(not (sys.platform.startswith("linux") and platform.machine() == "x86_64"),
                    reason="Triton wheels exist for Linux x86_64 only")
def test_triton_kernels_match_the_torch_path_interpreted():
    """The fused GPU kernels, run by Triton's interpreter on CPU tensors: labels and uniforms bitwise equal to the
    torch path, normals equal up to the last bits of log/sin/cos (numpy's here, libdevice's on a GPU)."""
    import triton  # noqa: F401  (the test extra installs it on Linux x86_64; a missing one fails here)

    env = {**os.environ, "TRITON_INTERPRET": "1"}
    out = subprocess.run([sys.executable, "-c", _TRITON_CHECK], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "triton kernels ok 8" in out.stdout


def test_backend_is_validated():
    with pytest.raises(ValueError, match="backend must be one of"):
        CounterStream(1, 0, backend="cuda")
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        CounterStream(-1, 0)
    for start, n in ((-1, 5), (0, -2), (1.5, 3), (2**53, 1)):
        with pytest.raises(ValueError, match="must be"):
            CounterStream(1, 0).rows(start, n)
    with pytest.raises(ValueError, match="CPU only"):
        CounterStream(1, 0, device="meta", backend="numpy")
    assert CounterStream(1, 0).backend == "numpy"  # CPU: numpy, whatever is installed
    with pytest.raises(ValueError, match="no word arrays"):
        CounterStream(1, 0, backend="triton").words(0, 0, 1, 1, lambda *a: None)


def test_broken_triton_kernels_fall_back_to_torch(monkeypatch):
    """A kernel that fails to compile, or disagrees with the torch backend, is not used: one warning, and the
    stream draws with torch (the main job must not crash on a GPU whose Triton is broken)."""
    import types

    import toyrobust.rng as rng

    def broken(*args, **kwargs):
        raise RuntimeError("PTX compilation failed")

    def wrong(out, *args, **kwargs):
        out.zero_()

    for fn, match in ((broken, "PTX compilation failed"), (wrong, "disagree")):
        fake = types.SimpleNamespace(signs=fn, uniform=fn, normal=fn)
        monkeypatch.setitem(sys.modules, "toyrobust._rng_triton", fake)
        monkeypatch.setattr(tr, "_rng_triton", fake, raising=False)
        monkeypatch.setattr(rng, "_TRITON_USABLE", {})
        with pytest.warns(UserWarning, match=match):
            assert not rng._triton_usable(torch.device("cpu"))
        assert rng._triton_usable(torch.device("cpu")) is False  # decided once: no second warning


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_numpy_stream_threads_do_not_change_the_numbers(dtype, monkeypatch):
    """The numpy backend shares tiles out to threads: 1, 2 and 4 threads, many small tiles, bitwise the same."""
    import toyrobust.rng as rng

    def draw(threads: int) -> list[torch.Tensor]:
        monkeypatch.setattr(rng, "_stream_threads", lambda tiles: min(threads, tiles))
        stream = CounterStream(11, 2, backend="numpy")
        stream.impl.TILE = 96  # a few rows per tile: dozens of tiles
        d = stream.rows(2**20 + 3, 401)
        return [d.signs(), d.uniform(5, dtype), d.normal(7, dtype), d.normal(500, dtype)]

    one = draw(1)
    for threads in (2, 4):
        assert all(torch.equal(a, b) for a, b in zip(one, draw(threads)))


def test_numpy_stream_thread_errors_reach_the_caller(monkeypatch):
    import toyrobust.rng as rng

    monkeypatch.setattr(rng, "_stream_threads", lambda tiles: min(2, tiles))
    stream = CounterStream(1, backend="numpy")
    stream.impl.TILE = 8

    def take(r0, m, z):
        if r0 >= 40:
            raise RuntimeError("tile failed")

    with pytest.raises(RuntimeError, match="tile failed"):
        stream.words(0, 0, 100, 1, take)
