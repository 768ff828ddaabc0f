"""Explicit randomness and device choice: nothing in toyrobust touches the global RNG.

Besides seeds and generators, this is the home of the counter-based streams that Monte Carlo estimates draw their
points from (:class:`CounterStream`): any range of points can be drawn directly, so the points a seed gives never
depend on how the work is cut.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

__all__ = [
    "make_generator", "resolve_device", "resolve_dtype", "derive_seed", "Draws", "GeneratorDraws", "CounterStream",
    "CounterDraws", "splitmix64",
]


def resolve_device(device: Any = None) -> torch.device:
    """``None`` or ``"auto"`` means CUDA when available, CPU otherwise; anything else is passed to torch."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {device!r}") from err


def resolve_dtype(dtype: Any = None) -> torch.dtype:
    """``None`` means torch's default floating dtype; only float32 and float64 are allowed."""
    if dtype is None:
        return torch.get_default_dtype()
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    return dtype


def make_generator(generator: Any = None, device: Any = "cpu") -> torch.Generator:
    """A ``torch.Generator`` from a generator (returned as is), an int seed, or None (a fresh random seed).

    Args:
        generator: a ``torch.Generator``, an int seed, or None.
        device: device of a newly created generator.
    """
    if isinstance(generator, torch.Generator):
        return generator
    device = torch.device(device)
    gen = torch.Generator(device=device)
    if generator is None:
        gen.seed()  # seeds this generator only, from OS entropy; the global RNG is untouched
        return gen
    if isinstance(generator, bool) or not isinstance(generator, int):
        raise TypeError(f"generator must be a torch.Generator, an int seed or None, got {generator!r}")
    if generator < 0:
        raise ValueError(f"generator seed must be >= 0, got {generator!r}")
    gen.manual_seed(generator)
    return gen


# ---------------------------------------------------------------------------------------------------- streams


def derive_seed(seed: int, *key: int) -> int:
    """A 63-bit seed for the stream named by ``key`` under the master ``seed`` (numpy's SeedSequence hash).

    Distinct keys give statistically independent streams; the same ``(seed, key)`` always gives the same seed.

    Args:
        seed: master seed (int >= 0).
        key: non-negative ints naming the stream, e.g. ``(0, call_index)``.
    """
    state = np.random.SeedSequence(entropy=seed, spawn_key=tuple(int(k) for k in key)).generate_state(
        1, dtype=np.uint64)
    return int(state[0]) & (2**63 - 1)


class Draws:
    """The random numbers for ``n`` rows (points), handed to :meth:`Distribution.draw`.

    Each call returns a fresh (n, k) block; distributions call :meth:`signs`, :meth:`uniform` and :meth:`normal`
    in a fixed order, so the same source gives the same points. Two implementations: :class:`GeneratorDraws`
    (a ``torch.Generator``, consumed sequentially) and :class:`CounterDraws` (rows of a counter-based stream:
    row ``i`` of call ``c`` is a pure function of ``(seed, c, i)``).
    """

    n: int
    device: torch.device

    def signs(self) -> torch.Tensor:
        """(n,) int64 labels in {-1, +1}, each with probability 1/2."""
        raise NotImplementedError

    def uniform(self, k: int, dtype: torch.dtype) -> torch.Tensor:
        """(n, k) independent uniforms on [0, 1)."""
        raise NotImplementedError

    def normal(self, k: int, dtype: torch.dtype) -> torch.Tensor:
        """(n, k) independent standard normals."""
        raise NotImplementedError


class GeneratorDraws(Draws):
    """:class:`Draws` from a ``torch.Generator``, consumed in call order (what ``Distribution.sample`` uses)."""

    def __init__(self, generator: torch.Generator, n: int):
        self.gen, self.n, self.device = generator, n, generator.device

    def signs(self) -> torch.Tensor:
        return torch.randint(0, 2, (self.n,), generator=self.gen, device=self.device) * 2 - 1

    def uniform(self, k: int, dtype: torch.dtype) -> torch.Tensor:
        return torch.rand(self.n, k, generator=self.gen, device=self.device, dtype=dtype)

    def normal(self, k: int, dtype: torch.dtype) -> torch.Tensor:
        return torch.randn(self.n, k, generator=self.gen, device=self.device, dtype=dtype)


# SplitMix64 (Steele, Lea, Flood 2014): state_j = key + j * GOLDEN, output = mix(state_j). Constants as signed
# int64 (torch has no uint64 arithmetic); products wrap modulo 2^64 as two's complement, right shifts are arithmetic,
# so every logical shift is followed by a mask.
_GOLDEN = 0x9E3779B97F4A7C15 - 2**64
_MIX1 = 0xBF58476D1CE4E5B9 - 2**64
_MIX2 = 0x94D049BB133111EB - 2**64
#: int64 entries per scratch tile: cache-sized on a CPU (a few MB in flight), large on a GPU (few launches)
_TILE = {"cpu": 1 << 18}
_TILE_ACCELERATOR = 1 << 25


def splitmix64(index: int, key: int) -> int:
    """Reference SplitMix64 output for counter ``index`` under ``key`` (Python ints, mod 2^64): the scalar
    definition :class:`CounterStream` vectorises, kept for tests and documentation."""
    z = (key + index * (_GOLDEN % 2**64)) % 2**64
    z = ((z ^ (z >> 30)) * (_MIX1 % 2**64)) % 2**64
    z = ((z ^ (z >> 27)) * (_MIX2 % 2**64)) % 2**64
    return z ^ (z >> 31)


class CounterStream:
    """A counter-based random stream: the numbers of row ``i`` depend only on ``(seed, key, i)``.

    Call ``c`` (the ``c``-th of :meth:`Draws.signs`/``uniform``/``normal`` made for a row range) with ``w`` words
    per row gives row ``i``, column ``j`` the 64-bit word ``splitmix64(i * w + j, key_c)``, with
    ``key_c = derive_seed(seed, *key, c)``. So any row range can be drawn directly, in any order, on any device:
    cutting a stream into chunks of any size gives bitwise the same integers (and the same floats on one device;
    CPU and CUDA agree to a few ulps, their ``log``/``sin``/``cos`` differ in the last bits). No block of rows is
    ever drawn to be thrown away, and the work is cut into tiles only to bound scratch memory.

    From the words: uniforms take the top 24 (float32) or 53 (float64) bits; normals are Box-Muller pairs
    ``sqrt(-2 log u) (cos 2 pi v, sin 2 pi v)``, float32 from one word (40 bits for ``u``: tails to 7.5 sigma, then
    24 for ``v``), float64 from two words (53 bits each: tails to 8.6 sigma); labels take the top bit.

    On a CUDA device with Triton installed, fused kernels (:mod:`toyrobust._rng_triton`) make the same words in
    registers, one launch per request; elsewhere torch makes them in cache-sized tiles.

    Args:
        seed: master seed (int >= 0).
        key: non-negative ints naming the stream (e.g. sampling vs attack randomness).
        device: where the numbers are made.
        backend: ``"auto"`` (Triton kernels on CUDA when Triton imports, torch otherwise), ``"torch"`` or
            ``"triton"`` (on CPU tensors only under ``TRITON_INTERPRET=1``: for tests).

    References:
        G. L. Steele, D. Lea, C. H. Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014.
        J. K. Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011 (counter-based streams).
    """

    def __init__(self, seed: int, *key: int, device: Any = "cpu", backend: str = "auto"):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        self.seed, self.key, self.device = int(seed), tuple(int(k) for k in key), torch.device(device)
        self._keys: list[int] = []
        self._scratch: dict[tuple[str, torch.dtype], torch.Tensor] = {}
        self.tile = _TILE.get(self.device.type, _TILE_ACCELERATOR)
        self.kernels = _kernels(backend, self.device)

    @property
    def backend(self) -> str:
        """``"triton"`` or ``"torch"``: what makes the numbers."""
        return "torch" if self.kernels is None else "triton"

    def call_key(self, c: int) -> int:
        """``key_c`` of the ``c``-th call (cached)."""
        while len(self._keys) <= c:
            self._keys.append(derive_seed(self.seed, *self.key, len(self._keys)))
        return self._keys[c]

    def rows(self, start: int, n: int) -> CounterDraws:
        """:class:`Draws` for rows ``start, ..., start + n - 1``."""
        return CounterDraws(self, int(start), int(n))

    def _buffer(self, name: str, size: int, dtype: torch.dtype) -> torch.Tensor:
        buf = self._scratch.get((name, dtype))
        if buf is None or buf.numel() < size:
            buf = self._scratch[(name, dtype)] = torch.empty(size, dtype=dtype, device=self.device)
        return buf[:size]

    def words(self, c: int, start: int, n: int, w: int, out: Callable[[int, int, torch.Tensor], None]) -> None:
        """Make the (n, w) words of call ``c`` for rows from ``start`` tile by tile; ``out(r0, m, z)`` consumes
        rows ``r0 .. r0 + m - 1`` (relative to ``start``) given as an (m, w) int64 tensor valid until it returns."""
        key = self.call_key(c)
        rows = max(1, self.tile // max(w, 1))
        for r0 in range(0, n, rows):
            m = min(rows, n - r0)
            z = self._buffer("z", m * w, torch.int64)
            t = self._buffer("t", m * w, torch.int64)
            first = (start + r0) * w
            torch.arange(first, first + m * w, dtype=torch.int64, device=self.device, out=z)
            z.mul_(_GOLDEN).add_(key - 2**64 if key >= 2**63 else key)
            for shift, mult in ((30, _MIX1), (27, _MIX2), (31, None)):
                torch.bitwise_right_shift(z, shift, out=t)
                t.bitwise_and_((1 << (64 - shift)) - 1)
                z.bitwise_xor_(t)
                if mult is not None:
                    z.mul_(mult)
            out(r0, m, z.view(m, w))

    def _bits(self, z: torch.Tensor, shift: int, width: int, dtype: torch.dtype, name: str) -> torch.Tensor:
        """``(z >>> shift) & (2^width - 1)`` as ``dtype`` in a scratch buffer of z's shape."""
        t = self._buffer("t", z.numel(), torch.int64).view(z.shape)
        torch.bitwise_right_shift(z, shift, out=t)
        t.bitwise_and_((1 << width) - 1)
        f = self._buffer(name, z.numel(), dtype).view(z.shape)
        f.copy_(t)
        return f


def _kernels(backend: str, device: torch.device) -> Any:
    """The Triton kernel module for ``backend`` on ``device``, or None for the torch path."""
    if backend not in ("auto", "torch", "triton"):
        raise ValueError(f"backend must be 'auto', 'torch' or 'triton', got {backend!r}")
    if backend == "torch" or (backend == "auto" and device.type != "cuda"):
        return None
    try:
        from . import _rng_triton
    except ImportError as err:  # Triton is optional: torch makes the same numbers
        if backend == "triton":
            raise ValueError(f"backend='triton' needs the triton package ({err})") from None
        return None
    return _rng_triton


class CounterDraws(Draws):
    """Rows ``start .. start + n - 1`` of a :class:`CounterStream` (see there for the mapping)."""

    def __init__(self, stream: CounterStream, start: int, n: int):
        self.stream, self.start, self.n, self.device = stream, start, n, stream.device
        self.calls = 0

    def _next_call(self) -> int:
        self.calls += 1
        return self.calls - 1

    def signs(self) -> torch.Tensor:
        out = torch.empty(self.n, dtype=torch.int64, device=self.device)
        if self.stream.kernels is not None:
            self.stream.kernels.signs(out, self.start, self.stream.call_key(self._next_call()))
            return out

        def take(r0: int, m: int, z: torch.Tensor) -> None:
            o = out[r0:r0 + m]
            torch.bitwise_right_shift(z[:, 0], 63, out=o)  # -1 where the top bit is set, 0 elsewhere
            o.mul_(2).add_(1)

        self.stream.words(self._next_call(), self.start, self.n, 1, take)
        return out

    def uniform(self, k: int, dtype: torch.dtype) -> torch.Tensor:
        bits = 24 if dtype == torch.float32 else 53
        out = torch.empty(self.n, k, dtype=dtype, device=self.device)
        if self.stream.kernels is not None:
            self.stream.kernels.uniform(out, self.start, self.stream.call_key(self._next_call()))
            return out

        def take(r0: int, m: int, z: torch.Tensor) -> None:
            o = out[r0:r0 + m]
            o.copy_(self.stream._bits(z, 64 - bits, bits, dtype, "u"))
            o.mul_(2.0 ** -bits)

        self.stream.words(self._next_call(), self.start, self.n, k, take)
        return out

    def normal(self, k: int, dtype: torch.dtype) -> torch.Tensor:
        h = (k + 1) // 2
        out = torch.empty(self.n, 2 * h, dtype=dtype, device=self.device)
        single = dtype == torch.float32
        st = self.stream
        if st.kernels is not None:
            st.kernels.normal(out, self.start, st.call_key(self._next_call()), k)
            return out[:, :k] if 2 * h != k else out

        def take(r0: int, m: int, z: torch.Tensor) -> None:
            if single:  # one word per pair: 40 bits for the radius, 24 for the angle
                u, ubits = st._bits(z, 0, 40, dtype, "u"), 40
                v, vbits = st._bits(z, 40, 24, dtype, "v"), 24
            else:  # two words per pair, 53 bits each
                u, ubits = st._bits(z[:, :h], 11, 53, dtype, "u"), 53
                v, vbits = st._bits(z[:, h:], 11, 53, dtype, "v"), 53
            # u in (0, 1): never 0, so the log is finite
            u.add_(0.5).mul_(2.0 ** -ubits).log_().mul_(-2.0).sqrt_()
            v.mul_(2 * math.pi * 2.0 ** -vbits)
            o = out[r0:r0 + m]
            w = st._buffer("w", v.numel(), dtype).view(v.shape)
            w.copy_(v).sin_()  # in place on contiguous scratch: sin into a strided slice is several times slower
            v.cos_()
            torch.mul(u, v, out=o[:, :h])
            torch.mul(u, w, out=o[:, h:])

        self.stream.words(self._next_call(), self.start, self.n, h if single else 2 * h, take)
        return out[:, :k] if 2 * h != k else out
