"""Explicit randomness and device choice: nothing in toyrobust touches the global RNG.

Besides seeds and generators, this is the home of the counter-based streams that Monte Carlo estimates draw their
points from (:class:`CounterStream`): any range of points can be drawn directly, so the points a seed gives never
depend on how the work is cut.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

__all__ = [
    "make_generator", "resolve_device", "resolve_dtype", "derive_seed", "Draws", "GeneratorDraws", "CounterStream",
    "CounterDraws", "splitmix64", "BACKENDS", "STREAM_ROWS",
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


# SplitMix64 (Steele, Lea, Flood 2014): state_j = key + j * GOLDEN, output = mix(state_j).
_GOLDEN, _MIX1, _MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
#: the backends of :class:`CounterStream`
BACKENDS = ("auto", "numpy", "torch", "triton")
#: rows of one stream: counters stay below 2^64 (no wrap-around) for up to 2^11 words per row
STREAM_ROWS = 2**53


def splitmix64(index: int, key: int) -> int:
    """Reference SplitMix64 output for counter ``index`` under ``key`` (Python ints, mod 2^64): the scalar
    definition every backend of :class:`CounterStream` vectorises, kept for tests and documentation."""
    z = (key + index * _GOLDEN) % 2**64
    z = ((z ^ (z >> 30)) * _MIX1) % 2**64
    z = ((z ^ (z >> 27)) * _MIX2) % 2**64
    return z ^ (z >> 31)


class CounterStream:
    """A counter-based random stream: the numbers of row ``i`` depend only on ``(seed, key, i)``.

    Call ``c`` (the ``c``-th of :meth:`Draws.signs`/``uniform``/``normal`` made for a row range) with ``w`` words
    per row gives row ``i``, column ``j`` the 64-bit word ``splitmix64(i * w + j, key_c)``, with
    ``key_c = derive_seed(seed, *key, c)``. So any row range can be drawn directly, in any order, on any device:
    cutting a stream into chunks of any size gives bitwise the same integers (and the same floats on one device;
    CPU and CUDA agree to a few ulps, their ``log``/``sin``/``cos`` differ in the last bits). No block of rows is
    ever drawn to be thrown away.

    From the words: uniforms take the top 24 (float32) or 53 (float64) bits; normals are Box-Muller pairs
    ``sqrt(-2 log u) (cos 2 pi v, sin 2 pi v)``, float32 from one word (40 bits for ``u``: tails to 7.5 sigma, then
    24 for ``v``), float64 from two words (53 bits each: tails to 8.6 sigma); labels take the top bit.

    Backends (same words, bitwise): on a CPU, numpy in cache-sized tiles on one thread (its native uint64 needs no
    masks, and one thread never waits at an OpenMP barrier: steady on a loaded machine, and as fast as
    ``torch.randn`` on two cores); on CUDA with Triton installed, fused kernels (:mod:`toyrobust._rng_triton`)
    that make the numbers in registers, one launch per request; elsewhere torch int64 arithmetic in tiles.

    Args:
        seed: master seed (int >= 0).
        key: non-negative ints naming the stream (e.g. sampling vs attack randomness).
        device: where the numbers are made.
        backend: one of :data:`BACKENDS`: ``"auto"`` (numpy on a CPU, Triton on CUDA when it imports, torch
            otherwise), ``"numpy"`` (CPU only), ``"torch"``, or ``"triton"`` (on CPU tensors only under
            ``TRITON_INTERPRET=1``: for tests).

    References:
        G. L. Steele, D. Lea, C. H. Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014.
        J. K. Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011 (counter-based streams).
    """

    def __init__(self, seed: int, *key: int, device: Any = "cpu", backend: str = "auto"):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        self.seed, self.key, self.device = int(seed), tuple(int(k) for k in key), torch.device(device)
        self._keys: list[int] = []
        self.backend, self.impl = _backend(backend, self.device)

    def call_key(self, c: int) -> int:
        """``key_c`` of the ``c``-th call (cached)."""
        while len(self._keys) <= c:
            self._keys.append(derive_seed(self.seed, *self.key, len(self._keys)))
        return self._keys[c]

    def rows(self, start: int, n: int) -> CounterDraws:
        """:class:`Draws` for rows ``start, ..., start + n - 1`` (``0 <= start``, ``start + n <= 2^53``)."""
        for name, value in (("start", start), ("n", n)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        if start + n > STREAM_ROWS:
            raise ValueError(f"start + n must be at most 2^53 (the rows of one stream), got start={start}, n={n}")
        return CounterDraws(self, int(start), int(n))

    def words(self, c: int, start: int, n: int, w: int, take: Callable[[int, int, Any], None]) -> None:
        """The (n, w) words of call ``c`` for rows from ``start``, tile by tile: ``take(r0, m, z)`` receives rows
        ``r0 .. r0 + m - 1`` (relative to ``start``) as an (m, w) array of the words' bits (numpy uint64, or torch
        int64 on the torch backend), valid until it returns. Not on the Triton backend (its words never leave
        registers)."""
        if self.backend == "triton":
            raise ValueError("the triton backend makes no word arrays; use backend='torch' or 'numpy'")
        self.impl.words(start, n, w, self.call_key(c), take)


def _backend(backend: str, device: torch.device) -> tuple[str, Any]:
    """The name and implementation of ``backend`` on ``device``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, got {backend!r}")
    if backend == "numpy" and device.type != "cpu":
        raise ValueError(f"backend='numpy' draws on the CPU only, got device {str(device)!r}")
    if backend == "auto":  # Triton is optional: where it is missing or broken, torch makes the same numbers
        backend = "numpy" if device.type == "cpu" else (
            "triton" if device.type == "cuda" and _triton_usable(device) else "torch")
    if backend == "triton":
        try:
            from . import _rng_triton
        except ImportError as err:
            raise ValueError(f"backend='triton' needs the triton package ({err})") from None
        return backend, _rng_triton
    if backend == "numpy":
        return backend, _NumpyWords()
    return backend, _TorchWords(device)


_TRITON_USABLE: dict[str, bool] = {}


def _backend_sample(impl: Any, device: torch.device) -> list[torch.Tensor]:
    """A few rows far along a stream from ``impl``: labels, uniforms and normals in float32 and float64."""
    start, n, key, out = 2**33 + 5, 33, derive_seed(1, 2, 3), []
    for dtype in (torch.float32, torch.float64):
        y = torch.empty(n, dtype=torch.int64, device=device)
        u = torch.empty(n, 3, dtype=dtype, device=device)
        z = torch.empty(n, 8, dtype=dtype, device=device)
        impl.signs(y, start, key)
        impl.uniform(u, start, key)
        impl.normal(z, start, key, 7)
        out += [y, u, z[:, :7]]
    return out


def _triton_usable(device: torch.device) -> bool:
    """Whether the Triton kernels import, compile and agree with the torch backend on ``device``: checked once per
    device and process; a kernel that fails or disagrees warns once, and the torch backend draws instead."""
    name = str(device)
    if name not in _TRITON_USABLE:
        try:
            from . import _rng_triton
        except ImportError:
            _TRITON_USABLE[name] = False
            return False
        try:
            got, want = _backend_sample(_rng_triton, device), _backend_sample(_TorchWords(device), device)
            same = all(torch.equal(a, b) if not a.is_floating_point() else
                       torch.allclose(a, b, rtol=1e-5, atol=1e-5) for a, b in zip(got, want))
            problem = None if same else "its numbers disagree with the torch backend's"
        except Exception as err:  # a compiler or driver problem must not stop the sampling: torch takes over
            problem = f"{type(err).__name__}: {err}"
        if problem is not None:
            warnings.warn(f"toyrobust: the Triton sampling kernels are not used on {name} ({problem}); the torch "
                          "backend draws the same numbers, more slowly", UserWarning, stacklevel=3)
        _TRITON_USABLE[name] = problem is None
    return _TRITON_USABLE[name]


class _NumpyWords:
    """The CPU backend: numpy uint64 (wrapping products, logical shifts) in tiles of :attr:`TILE` words.

    Tiles are independent (each is a pure function of its counters), so they are shared out to a small pool of
    threads, each taking the next tile when it finishes one (numpy releases the GIL inside its loops). No thread
    waits at a barrier between operations, as OpenMP teams do: on a machine loaded by other processes, a thread
    that is descheduled delays only its own tile. The numbers do not depend on the number of threads.
    """

    TILE = 1 << 17

    def __init__(self) -> None:
        self._local = threading.local()
        self._iota = np.arange(self.TILE, dtype=np.uint64)

    def _buffer(self, name: str, size: int, dtype: Any) -> np.ndarray:
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = {}
        buf = scratch.get((name, dtype))
        if buf is None or buf.size < size:
            buf = scratch[(name, dtype)] = np.empty(size, dtype=dtype)
        return buf[:size]

    def words(self, start: int, n: int, w: int, key: int, take: Callable[[int, int, np.ndarray], None]) -> None:
        rows = max(1, self.TILE // max(w, 1))
        if rows * w > self._iota.size:
            self._iota = np.arange(rows * w, dtype=np.uint64)
        iota = self._iota

        def tile(r0: int) -> None:
            m = min(rows, n - r0)
            z = self._buffer("z", m * w, np.uint64)
            t = self._buffer("t", m * w, np.uint64)
            with np.errstate(over="ignore"):  # uint64 products wrap modulo 2^64 by design
                np.add(iota[:m * w], np.uint64(((start + r0) * w) % 2**64), out=z)
                z *= np.uint64(_GOLDEN)
                z += np.uint64(key)
                for shift, mult in ((30, _MIX1), (27, _MIX2), (31, None)):
                    np.right_shift(z, np.uint64(shift), out=t)
                    z ^= t
                    if mult is not None:
                        z *= np.uint64(mult)
            take(r0, m, z.reshape(m, w))

        starts = range(0, n, rows)
        workers = _stream_threads(len(starts))
        if workers == 1:
            for r0 in starts:
                tile(r0)
        else:  # list() re-raises the first exception of a tile
            list(_thread_pool(workers).map(tile, starts))

    def _bits(self, z: np.ndarray, shift: int, width: int, dtype: Any, name: str,
              out: np.ndarray | None = None) -> np.ndarray:
        """``(z >>> shift) & (2^width - 1)`` converted to ``dtype`` (in ``out``, or a scratch buffer)."""
        t = self._buffer("t", z.size, np.uint64).reshape(z.shape)
        if shift:
            np.right_shift(z, np.uint64(shift), out=t)
            if shift + width < 64:
                t &= np.uint64((1 << width) - 1)
        else:
            np.bitwise_and(z, np.uint64((1 << width) - 1), out=t)
        f = self._buffer(name, z.size, dtype).reshape(z.shape) if out is None else out
        f[...] = t.view(np.int64)  # below 2^63, so the same value; int64 converts faster than uint64
        return f

    def signs(self, out: torch.Tensor, start: int, key: int) -> None:
        o = out.numpy()

        def take(r0: int, m: int, z: np.ndarray) -> None:
            top = (z[:, 0] >> np.uint64(63)).astype(np.int64)
            np.subtract(1, 2 * top, out=o[r0:r0 + m])

        self.words(start, o.shape[0], 1, key, take)

    def uniform(self, out: torch.Tensor, start: int, key: int) -> None:
        o = out.numpy()
        bits = 24 if o.dtype == np.float32 else 53

        def take(r0: int, m: int, z: np.ndarray) -> None:
            dst = o[r0:r0 + m]
            if dst.flags.c_contiguous:
                self._bits(z, 64 - bits, bits, o.dtype, "u", out=dst)
            else:
                dst[...] = self._bits(z, 64 - bits, bits, o.dtype, "u")
            dst *= o.dtype.type(2.0 ** -bits)

        self.words(start, o.shape[0], o.shape[1], key, take)

    def normal(self, out: torch.Tensor, start: int, key: int, k: int) -> None:
        o = out.numpy()
        h = o.shape[1] // 2
        single = o.dtype == np.float32
        f = o.dtype.type

        def take(r0: int, m: int, z: np.ndarray) -> None:
            if single:  # one word per pair: 40 bits for the radius, 24 for the angle
                u, v, ubits, vbits = self._bits(z, 0, 40, o.dtype, "u"), self._bits(z, 40, 24, o.dtype, "v"), 40, 24
            else:  # two words per pair, 53 bits each
                u = self._bits(z[:, :h], 11, 53, o.dtype, "u")
                v = self._bits(z[:, h:], 11, 53, o.dtype, "v")
                ubits = vbits = 53
            u += f(0.5)  # u in (0, 1): never 0, so the log is finite
            u *= f(2.0 ** -ubits)
            np.log(u, out=u)
            u *= f(-2.0)
            np.sqrt(u, out=u)
            v *= f(2 * math.pi * 2.0 ** -vbits)
            w = self._buffer("w", v.size, o.dtype).reshape(v.shape)
            if single:  # numpy's float32 sin/cos are vectorised
                np.sin(v, out=w)
                np.cos(v, out=v)
            else:  # numpy's float64 sin/cos are scalar loops, four times slower than torch's (same memory, no copy)
                _torch_sin_cos(v, w)
            dst = o[r0:r0 + m]
            np.multiply(u, v, out=dst[:, :h])
            np.multiply(u, w, out=dst[:, h:])

        self.words(start, o.shape[0], h if single else 2 * h, key, take)


def _torch_sin_cos(v: np.ndarray, w: np.ndarray) -> None:
    """``w = sin(v)``, ``v = cos(v)`` (float64, contiguous) with torch's vectorised kernels, in pieces of at most
    torch's grain size so that each call runs on the calling thread (no OpenMP team inside a stream thread)."""
    tv, tw = torch.from_numpy(v.reshape(-1)), torch.from_numpy(w.reshape(-1))
    for i in range(0, tv.numel(), _GRAIN):
        torch.sin(tv[i:i + _GRAIN], out=tw[i:i + _GRAIN])
        tv[i:i + _GRAIN].cos_()


_GRAIN = 32768  # at::internal::GRAIN_SIZE: element-wise ops on fewer elements stay on the calling thread
_POOL: dict[int, ThreadPoolExecutor] = {}
_POOL_LOCK = threading.Lock()


def _stream_threads(tiles: int) -> int:
    """Threads for ``tiles`` tiles: torch's intra-op thread count (so ``torch.set_num_threads(1)``, as in sweep
    workers, keeps the stream on one thread), at most the tiles, one inside a stream thread."""
    if tiles < 2 or threading.current_thread().name.startswith("toyrobust-stream"):
        return 1
    return max(1, min(torch.get_num_threads(), tiles, 8))


def _one_intra_op_thread() -> None:
    """A stream thread's torch ops stay on it: no OpenMP team of its own. Each team's threads count against the
    cores, and once the process has more OpenMP threads than cores, libgomp stops spinning at its barriers, which
    made every later small-op workload of the process (Quad-CROWN's branch and bound on the cross-check's D=20 row)
    about 2x slower. ``torch.set_num_threads`` here sets this thread's OpenMP count only (the main thread keeps its
    own, and its matrix products their threads)."""
    torch.set_num_threads(1)


def _thread_pool(workers: int) -> ThreadPoolExecutor:
    """The process's pool of ``workers`` stream threads, made once (daemon threads, idle between calls; one
    intra-op thread each, :func:`_one_intra_op_thread`)."""
    with _POOL_LOCK:
        pool = _POOL.get(workers)
        if pool is None:
            pool = _POOL[workers] = ThreadPoolExecutor(workers, thread_name_prefix="toyrobust-stream",
                                                       initializer=_one_intra_op_thread)
        return pool


class _TorchWords:
    """The torch backend: int64 arithmetic (products wrap as two's complement; right shifts are arithmetic, so
    every logical shift is followed by a mask), in tiles sized for the device."""

    def __init__(self, device: torch.device):
        self.device = device
        # int64 entries per tile: cache-sized on a CPU, large on an accelerator (few launches)
        self.tile = 1 << 18 if device.type == "cpu" else 1 << 24  # 2^24: ~0.4 GB of scratch in all
        self._scratch: dict[tuple[str, torch.dtype], torch.Tensor] = {}

    def _buffer(self, name: str, size: int, dtype: torch.dtype) -> torch.Tensor:
        buf = self._scratch.get((name, dtype))
        if buf is None or buf.numel() < size:
            buf = self._scratch[(name, dtype)] = torch.empty(size, dtype=dtype, device=self.device)
        return buf[:size]

    def words(self, start: int, n: int, w: int, key: int, take: Callable[[int, int, torch.Tensor], None]) -> None:
        signed = [c - 2**64 for c in (_GOLDEN, _MIX1, _MIX2)]  # the same bits as int64
        rows = max(1, self.tile // max(w, 1))
        for r0 in range(0, n, rows):
            m = min(rows, n - r0)
            z = self._buffer("z", m * w, torch.int64)
            t = self._buffer("t", m * w, torch.int64)
            first = (start + r0) * w
            torch.arange(first, first + m * w, dtype=torch.int64, device=self.device, out=z)
            z.mul_(signed[0]).add_(key)
            for shift, mult in ((30, signed[1]), (27, signed[2]), (31, None)):
                torch.bitwise_right_shift(z, shift, out=t)
                t.bitwise_and_((1 << (64 - shift)) - 1)
                z.bitwise_xor_(t)
                if mult is not None:
                    z.mul_(mult)
            take(r0, m, z.view(m, w))

    def _bits(self, z: torch.Tensor, shift: int, width: int, dtype: torch.dtype, name: str) -> torch.Tensor:
        """``(z >>> shift) & (2^width - 1)`` as ``dtype`` in a scratch buffer of z's shape."""
        t = self._buffer("t", z.numel(), torch.int64).view(z.shape)
        torch.bitwise_right_shift(z, shift, out=t)
        t.bitwise_and_((1 << width) - 1)
        f = self._buffer(name, z.numel(), dtype).view(z.shape)
        f.copy_(t)
        return f

    def signs(self, out: torch.Tensor, start: int, key: int) -> None:
        def take(r0: int, m: int, z: torch.Tensor) -> None:
            o = out[r0:r0 + m]
            torch.bitwise_right_shift(z[:, 0], 63, out=o)  # -1 where the top bit is set, 0 elsewhere
            o.mul_(2).add_(1)

        self.words(start, out.shape[0], 1, key, take)

    def uniform(self, out: torch.Tensor, start: int, key: int) -> None:
        bits = 24 if out.dtype == torch.float32 else 53

        def take(r0: int, m: int, z: torch.Tensor) -> None:
            o = out[r0:r0 + m]
            o.copy_(self._bits(z, 64 - bits, bits, out.dtype, "u"))
            o.mul_(2.0 ** -bits)

        self.words(start, out.shape[0], out.shape[1], key, take)

    def normal(self, out: torch.Tensor, start: int, key: int, k: int) -> None:
        h = out.shape[1] // 2
        dtype = out.dtype
        single = dtype == torch.float32

        def take(r0: int, m: int, z: torch.Tensor) -> None:
            if single:  # one word per pair: 40 bits for the radius, 24 for the angle
                u, v, ubits, vbits = self._bits(z, 0, 40, dtype, "u"), self._bits(z, 40, 24, dtype, "v"), 40, 24
            else:  # two words per pair, 53 bits each
                u = self._bits(z[:, :h], 11, 53, dtype, "u")
                v = self._bits(z[:, h:], 11, 53, dtype, "v")
                ubits = vbits = 53
            # u in (0, 1): never 0, so the log is finite
            u.add_(0.5).mul_(2.0 ** -ubits).log_().mul_(-2.0).sqrt_()
            v.mul_(2 * math.pi * 2.0 ** -vbits)
            o = out[r0:r0 + m]
            w = self._buffer("w", v.numel(), dtype).view(v.shape)
            w.copy_(v).sin_()  # in place on contiguous scratch: sin into a strided slice is several times slower
            v.cos_()
            torch.mul(u, v, out=o[:, :h])
            torch.mul(u, w, out=o[:, h:])

        self.words(start, out.shape[0], h if single else 2 * h, key, take)


class CounterDraws(Draws):
    """Rows ``start .. start + n - 1`` of a :class:`CounterStream` (see there for the mapping)."""

    def __init__(self, stream: CounterStream, start: int, n: int):
        self.stream, self.start, self.n, self.device = stream, start, n, stream.device
        self.calls = 0

    def _key(self) -> int:
        self.calls += 1
        return self.stream.call_key(self.calls - 1)

    def signs(self) -> torch.Tensor:
        out = torch.empty(self.n, dtype=torch.int64, device=self.device)
        self.stream.impl.signs(out, self.start, self._key())
        return out

    def uniform(self, k: int, dtype: torch.dtype) -> torch.Tensor:
        out = torch.empty(self.n, k, dtype=dtype, device=self.device)
        self.stream.impl.uniform(out, self.start, self._key())
        return out

    def normal(self, k: int, dtype: torch.dtype) -> torch.Tensor:
        h = (k + 1) // 2
        out = torch.empty(self.n, 2 * h, dtype=dtype, device=self.device)
        self.stream.impl.normal(out, self.start, self._key(), k)
        return out[:, :k] if 2 * h != k else out
