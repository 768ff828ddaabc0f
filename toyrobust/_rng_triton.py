"""Fused Triton kernels for :class:`toyrobust.rng.CounterStream` on a GPU: one launch per request, nothing but the
output in memory.

The eager (torch) path makes a dozen passes over int64 scratch tiles per request: fine on a CPU, where the tiles
stay in cache, but on a GPU each pass is a trip through device memory. These kernels compute the same numbers in
registers: the same SplitMix64 words (bitwise; uint64 arithmetic wraps here as in the scalar definition), the same
bit fields, the same Box-Muller formula; the floats differ from the eager path only where ``log``, ``sin`` and
``cos`` differ between libdevice and torch (a few ulps). Loaded only when a CUDA device draws and Triton imports;
``TRITON_INTERPRET=1`` runs them on CPU tensors (how the test suite checks them without a GPU).

References:
    G. L. Steele, D. Lea, C. H. Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014.
    P. Tillet, H. T. Kung, D. Cox, "Triton: an intermediate language and compiler for tiled neural network
    computations", MAPL 2019.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import torch
import triton
import triton.language as tl
from triton.language.extra import libdevice

__all__ = ["signs", "uniform", "normal"]

_BLOCK = 1024
# the interpreter (TRITON_INTERPRET=1, CPU tensors) has no libdevice: numpy's log/sin/cos stand in there
_INTERPRET: tl.constexpr = tl.constexpr(os.environ.get("TRITON_INTERPRET", "0") == "1")


@triton.jit
def _word(counter, key):
    """SplitMix64: ``mix(key + counter * golden)`` on uint64 (wrapping)."""
    z = counter * 0x9E3779B97F4A7C15 + key
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB
    return z ^ (z >> 31)


# integer arguments are not specialised (one compilation per dtype) and are widened to int64 before any product:
# Triton passes small Python ints as int32, and start * k overflows int32 past 2^31 words


@triton.jit(do_not_specialize=["start", "n", "key"])
def _signs_kernel(out_ptr, start, n, key, BLOCK: tl.constexpr):
    start = start.to(tl.int64)
    idx = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = idx < n.to(tl.int64)
    z = _word((start + idx).to(tl.uint64), key.to(tl.uint64))
    top = (z >> 63).to(tl.int64)
    tl.store(out_ptr + idx, 1 - 2 * top, mask=mask)


@triton.jit(do_not_specialize=["start", "n", "k", "key"])
def _uniform_kernel(out_ptr, start, n, k, key, BITS: tl.constexpr, BLOCK: tl.constexpr):
    start, n, k = start.to(tl.int64), n.to(tl.int64), k.to(tl.int64)
    idx = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = idx < n * k
    z = _word((start * k + idx).to(tl.uint64), key.to(tl.uint64))
    if BITS == 24:
        u = (z >> 40).to(tl.float32) * 5.9604644775390625e-08  # 2^-24
    else:
        u = (z >> 11).to(tl.float64) * 1.1102230246251565e-16  # 2^-53
    tl.store(out_ptr + idx, u, mask=mask)


@triton.jit(do_not_specialize=["start", "n", "h", "k", "key", "stride"])
def _normal_kernel(out_ptr, start, n, h, k, key, stride, SINGLE: tl.constexpr, BLOCK: tl.constexpr):
    # one Box-Muller pair per lane: row ``row``, cosine column ``col`` and sine column ``col + h``
    start, n, h, k, stride = start.to(tl.int64), n.to(tl.int64), h.to(tl.int64), k.to(tl.int64), stride.to(tl.int64)
    idx = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = idx < n * h
    row = idx // h
    col = idx - row * h
    kk = key.to(tl.uint64)
    if SINGLE:  # one word: 40 bits for the radius, 24 for the angle
        z = _word(((start + row) * h + col).to(tl.uint64), kk)
        u = (z & 0xFFFFFFFFFF).to(tl.float32)
        v = (z >> 40).to(tl.float32)
        u = (u + 0.5) * 9.094947017729282e-13  # 2^-40
        a = v * 3.7450702829239286e-07  # float32(2 pi 2^-24), as the eager path rounds it
    else:  # two words of 53 bits: (row, col) for the radius, (row, col + h) for the angle
        first = (start + row) * (2 * h) + col
        z1 = _word(first.to(tl.uint64), kk)
        z2 = _word((first + h).to(tl.uint64), kk)
        u = (z1 >> 11).to(tl.float64)
        v = (z2 >> 11).to(tl.float64)
        u = (u + 0.5) * 1.1102230246251565e-16  # 2^-53
        # (v * 2 pi) * 2^-53 is v * (2 pi 2^-53) exactly (a power of two): a float64 constant, never a float32 one
        a = v * tl.full([], 6.283185307179586, tl.float64) * 1.1102230246251565e-16
    if _INTERPRET:
        lg = tl.log(u)
        c = tl.cos(a)
        s = tl.sin(a)
    else:  # libdevice: the accurate CUDA math library (not the approximate PTX instructions)
        lg = libdevice.log(u)
        c = libdevice.cos(a)
        s = libdevice.sin(a)
    if SINGLE:
        r = tl.sqrt_rn(-2.0 * lg)  # correctly rounded, as torch's
    else:
        r = tl.sqrt(-2.0 * lg)  # float64: always correctly rounded
    base = out_ptr + row * stride + col
    tl.store(base, r * c, mask=mask)
    tl.store(base + h, r * s, mask=mask & (col + h < k))


def _grid(total: int) -> tuple[int]:
    return (max(1, triton.cdiv(total, _BLOCK)),)


def _on(out: torch.Tensor) -> Any:
    """Launch on ``out``'s GPU (Triton launches on the current device, which may be another one)."""
    return torch.cuda.device(out.device) if out.is_cuda else contextlib.nullcontext()


def signs(out: torch.Tensor, start: int, key: int) -> None:
    """Fill ``out`` (n,) int64 with the labels of rows ``start ..`` (top bit set: -1)."""
    n = out.shape[0]
    if n:
        with _on(out):
            _signs_kernel[_grid(n)](out, start, n, key, BLOCK=_BLOCK)


def uniform(out: torch.Tensor, start: int, key: int) -> None:
    """Fill the contiguous (n, k) float ``out`` with the uniforms of rows ``start ..``."""
    n, k = out.shape
    if n * k:
        bits = 24 if out.dtype == torch.float32 else 53
        with _on(out):
            _uniform_kernel[_grid(n * k)](out, start, n, k, key, BITS=bits, BLOCK=_BLOCK)


def normal(out: torch.Tensor, start: int, key: int, k: int) -> None:
    """Fill the contiguous (n, 2h) float ``out`` (``h = ceil(k / 2)``) with the normals of rows ``start ..``
    (columns ``k ..`` are left as they are)."""
    n, width = out.shape
    h = width // 2
    if n * h:
        with _on(out):
            _normal_kernel[_grid(n * h)](out, start, n, h, k, key, out.stride(0),
                                         SINGLE=out.dtype == torch.float32, BLOCK=_BLOCK)
