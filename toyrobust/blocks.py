"""Vectors stored as runs of equal entries, so that a dimension may be a sympy symbol.

The robust/non-robust features model has mean ``(1, a, ..., a)`` with ``D - 1`` copies of ``a``; storing it as
``Blocks([(1, 1), (a, D - 1)])`` keeps every closed form small (``||mean||_2^2 = 1 + (D - 1) a^2``) and lets
``D`` be a symbol. Numeric vectors are stored the same way (consecutive equal entries merged).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import sympy
import torch

from .constraints import is_symbolic

__all__ = ["Blocks", "as_blocks", "point_symbols"]


def _num(value: Any) -> Any:
    """Plain python number for numeric sympy values; sympy expressions stay symbolic."""
    if isinstance(value, sympy.Basic) and value.is_Number:
        return int(value) if value.is_Integer else float(value)
    if isinstance(value, (np.generic,)):
        return value.item()
    return value


class Blocks:
    """A vector ``(v_1 repeated c_1 times, v_2 repeated c_2 times, ...)``.

    Args:
        blocks: iterable of ``(value, count)``; values are numbers or sympy expressions, counts are positive
            integers or sympy expressions (a symbolic dimension).
    """

    __slots__ = ("blocks", "_cache", "_numeric")

    def __init__(self, blocks: Iterable[tuple[Any, Any]]):
        items = []
        for value, count in blocks:
            value, count = _num(value), _num(count)
            if not is_symbolic(count):
                if isinstance(count, float) and not count.is_integer():
                    raise ValueError(f"block count must be an integer, got {count!r}")
                count = int(count)
                if count < 0:
                    raise ValueError(f"block count must be >= 0, got {count!r}")
                if count == 0:
                    continue
            if not is_symbolic(value) and not _finite(value):
                raise ValueError(f"vector entries must be finite floats, got {value!r}")
            if items and not is_symbolic(value) and not is_symbolic(items[-1][0]) and items[-1][0] == value \
                    and not is_symbolic(count) and not is_symbolic(items[-1][1]):
                items[-1] = (value, items[-1][1] + count)
            else:
                items.append((value, count))
        if not items:
            raise ValueError("a vector needs at least one entry")
        self.blocks: tuple[tuple[Any, Any], ...] = tuple(items)
        self._cache: dict = {}
        self._numeric = not any(is_symbolic(v) or is_symbolic(c) for v, c in self.blocks)

    @classmethod
    def from_array(cls, values: Any) -> Blocks:
        """Build from a 1-D sequence, array or tensor (consecutive equal entries merged)."""
        if isinstance(values, torch.Tensor):
            values = values.detach().cpu().tolist()
        elif isinstance(values, np.ndarray):
            values = values.tolist()
        values = list(values)
        return cls((v, 1) for v in values)

    # ------------------------------------------------------------------ structure
    @property
    def dim(self) -> Any:
        """Number of entries (an int, or a sympy expression)."""
        total = sum(c for _, c in self.blocks)
        return _num(sympy.sympify(total)) if is_symbolic(total) else int(total)

    @property
    def is_numeric(self) -> bool:
        """True when every value and count is a number."""
        return self._numeric

    def __len__(self) -> int:
        if not self.is_numeric:
            raise TypeError("a vector with a symbolic dimension has no len(); use .dim")
        return self.dim

    def __repr__(self) -> str:
        return "Blocks(" + ", ".join(f"({v}, {c})" for v, c in self.blocks) + ")"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Blocks) and self.blocks == other.blocks

    def __hash__(self) -> int:
        return hash(self.blocks)

    def starts(self) -> list[Any]:
        """0-based index of the first entry of each block."""
        out, pos = [], 0
        for _, c in self.blocks:
            out.append(pos)
            pos = pos + c
        return out

    # ------------------------------------------------------------------ arithmetic
    def map(self, fn) -> Blocks:
        """Apply ``fn`` to every value."""
        return Blocks((fn(v), c) for v, c in self.blocks)

    def __mul__(self, scalar: Any) -> Blocks:
        return self.map(lambda v: v * scalar)

    __rmul__ = __mul__

    def __neg__(self) -> Blocks:
        return self.map(lambda v: -v)

    def norm(self, p: float) -> Any:
        """The Lp norm, ``p`` in 1, 2, inf: a float for numbers, a sympy expression otherwise."""
        if self.is_numeric:
            vals = np.array([float(v) for v, _ in self.blocks])
            counts = np.array([c for _, c in self.blocks], dtype=float)
            if p == 1:
                return float(np.sum(np.abs(vals) * counts))
            if p == 2:
                scale = float(np.max(np.abs(vals)))  # rescaled so tiny or huge entries do not under/overflow
                return 0.0 if scale == 0 else scale * float(math.sqrt(np.sum((vals / scale) ** 2 * counts)))
            if p == math.inf:
                return float(np.max(np.abs(vals)))
            raise ValueError(f"p must be 1, 2 or inf, got {p!r}")
        if p == 1:
            return sympy.Add(*[sympy.Abs(v) * c for v, c in self.blocks])
        if p == 2:
            return sympy.sqrt(sympy.Add(*[v**2 * c for v, c in self.blocks]))
        if p == math.inf:
            return sympy.Max(*[sympy.Abs(v) for v, _ in self.blocks])
        raise ValueError(f"p must be 1, 2 or inf, got {p!r}")

    def _aligned(self, other: Blocks) -> list[tuple[Any, Any, Any]]:
        """Common refinement ``[(a, b, count)]`` of two vectors of the same dimension."""
        if self.is_numeric and other.is_numeric:
            if self.dim != other.dim:
                raise ValueError(f"vectors have different dimensions {self.dim} and {other.dim}")
            out, i, j = [], 0, 0
            a = [list(b) for b in self.blocks]
            b = [list(x) for x in other.blocks]
            while i < len(a) and j < len(b):
                n = min(a[i][1], b[j][1])
                out.append((a[i][0], b[j][0], n))
                a[i][1] -= n
                b[j][1] -= n
                i += a[i][1] == 0
                j += b[j][1] == 0
            return out
        if len(self.blocks) == len(other.blocks) and all(
            sympy.simplify(sympy.sympify(c1) - c2) == 0 for (_, c1), (_, c2) in zip(self.blocks, other.blocks)
        ):
            return [(v1, v2, c) for (v1, c), (v2, _) in zip(self.blocks, other.blocks)]
        raise ValueError(f"cannot align vectors with symbolic block sizes: {self} and {other}")

    def dot(self, other: Blocks) -> Any:
        """The inner product ``sum_i self_i other_i``."""
        terms = [a * b * c for a, b, c in self._aligned(other)]
        total = sum(terms[1:], terms[0])
        return _num(total) if isinstance(total, sympy.Basic) else total

    def hadamard(self, other: Blocks) -> Blocks:
        """The entrywise product."""
        return Blocks((a * b, c) for a, b, c in self._aligned(other))

    def restrict(self, coords: Any) -> tuple[Blocks | None, Blocks | None]:
        """Split into (entries inside ``coords``, entries outside), each as zero-padded vectors.

        ``coords`` is None (all), a ``slice(start, stop)`` (stop may be None) or a sequence of indices (numeric
        dimension only). Returns vectors of the full dimension with the other entries set to 0.
        """
        if coords is None:
            return self, self.map(lambda v: 0)
        if isinstance(coords, slice) and self.is_numeric and not is_symbolic(coords.start) \
                and not is_symbolic(coords.stop):
            if coords.step not in (None, 1):
                raise ValueError(f"coords slices must have step 1, got {coords!r}")
            coords = range(self.dim)[coords]
        if isinstance(coords, slice):
            if coords.step not in (None, 1):
                raise ValueError(f"coords slices must have step 1, got {coords!r}")
            start = coords.start or 0
            stop = coords.stop
            inside, outside = [], []
            for (v, c), s in zip(self.blocks, self.starts()):
                e = s + c
                lo = _simp(sympy.Min(sympy.Max(start, s), e))
                hi = e if stop is None else _simp(sympy.Max(sympy.Min(stop, e), lo))
                before, n_in = _simp(sympy.sympify(lo) - s), _simp(sympy.sympify(hi) - lo)
                after = _simp(sympy.sympify(e) - hi)
                inside += [(0, before), (v, n_in), (0, after)]
                outside += [(v, before), (0, n_in), (v, after)]
            return _regroup(inside, self), _regroup(outside, self)
        if not self.is_numeric:
            raise TypeError("index lists need a numeric dimension; use a slice for a symbolic one")
        arr = self.to_numpy()
        mask = np.zeros(len(arr), dtype=bool)
        mask[list(coords)] = True
        return Blocks.from_array(np.where(mask, arr, 0.0)), Blocks.from_array(np.where(mask, 0.0, arr))

    # ------------------------------------------------------------------ conversions
    def to_numpy(self) -> np.ndarray:
        """Dense float64 array (numeric vectors only)."""
        if not self.is_numeric:
            raise TypeError(f"cannot make a dense array of a symbolic vector {self}")
        return np.concatenate([np.full(c, float(v)) for v, c in self.blocks])

    def to_tensor(self, device: Any = None, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Dense tensor, cached per (device, dtype)."""
        dtype = dtype or torch.get_default_dtype()
        key = (str(torch.device(device) if device is not None else torch.device("cpu")), dtype)
        if key not in self._cache:
            self._cache[key] = torch.as_tensor(self.to_numpy(), dtype=dtype, device=device)
        return self._cache[key]

    def dot_expr(self, x: Any) -> sympy.Expr:
        """``sum_i self_i x_i`` for a symbolic point ``x`` (a sympy Matrix/list, or an IndexedBase)."""
        if isinstance(x, sympy.IndexedBase):
            i = sympy.Dummy("i", integer=True)
            terms = []
            for (v, c), s in zip(self.blocks, self.starts()):
                if not is_symbolic(c) and c == 1:
                    terms.append(v * x[s + 1])
                else:
                    terms.append(v * sympy.Sum(x[i], (i, s + 1, s + c)))
            return sympy.Add(*terms)
        vals = self.to_list()
        if len(vals) != len(x):
            raise ValueError(f"point has {len(x)} coordinates, vector has {len(vals)}")
        return sympy.Add(*[sympy.sympify(v) * xi for v, xi in zip(vals, x)])

    def square_dot_expr(self, x: Any) -> sympy.Expr:
        """``sum_i self_i x_i^2`` for a symbolic point."""
        if isinstance(x, sympy.IndexedBase):
            i = sympy.Dummy("i", integer=True)
            return sympy.Add(*[
                v * sympy.Sum(x[i] ** 2, (i, s + 1, s + c)) for (v, c), s in zip(self.blocks, self.starts())
            ])
        vals = self.to_list()
        return sympy.Add(*[sympy.sympify(v) * xi**2 for v, xi in zip(vals, x)])

    def to_list(self) -> list[Any]:
        """Entries as a python list (numeric dimension only)."""
        if any(is_symbolic(c) for _, c in self.blocks):
            raise TypeError(f"cannot list the entries of a vector of symbolic dimension {self}")
        return [v for v, c in self.blocks for _ in range(c)]


def _finite(value: Any) -> bool:
    """Whether a number is a finite float (an int beyond the float range is not: it would overflow later)."""
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _simp(value: Any) -> Any:
    value = sympy.simplify(sympy.sympify(value))
    return _num(value)


def _regroup(items: list[tuple[Any, Any]], like: Blocks) -> Blocks | None:
    kept = [(v, c) for v, c in items if not (not is_symbolic(c) and c == 0)]
    if not kept:
        return Blocks([(0, like.dim)])
    return Blocks(kept)


def as_blocks(values: Any, name: str = "w") -> Blocks:
    """Coerce a sequence, array, tensor, scalar or Blocks to :class:`Blocks`; errors name ``name``."""
    if isinstance(values, Blocks):
        return values
    if isinstance(values, (int, float, sympy.Basic)) and not isinstance(values, bool):
        values = [values]
    if isinstance(values, torch.Tensor) and values.ndim == 0:
        values = values.reshape(1)
    try:
        arr = values if isinstance(values, (list, tuple)) else list(values)
    except TypeError:
        raise TypeError(f"{name} must be a 1-D sequence of numbers, got {values!r}") from None
    if len(arr) == 0:
        raise ValueError(f"{name} must have at least one entry, got {values!r}")
    flat = []
    for v in arr:
        if isinstance(v, (list, tuple)) or (hasattr(v, "ndim") and v.ndim > 0):
            raise ValueError(f"{name} must be 1-D, got {values!r}")
        v = v.item() if hasattr(v, "item") and not isinstance(v, sympy.Basic) else v
        if isinstance(v, bool) or not isinstance(v, (int, float, sympy.Basic)):
            raise TypeError(f"{name} entries must be numbers or sympy expressions, got {v!r}")
        if not isinstance(v, sympy.Basic) and not _finite(v):
            raise ValueError(f"{name} entries must be finite floats, got {v!r}")
        flat.append(v)
    return Blocks.from_array(flat)


#: numeric dimensions above this get an IndexedBase point (sums over blocks) instead of d separate symbols
EXPANDED_DIM = 10


def point_symbols(dim: Any, name: str = "x", max_expanded: int | None = None) -> Any:
    """A symbolic point: real symbols ``x_1..x_d`` (numeric dim up to ``max_expanded``, default
    :data:`EXPANDED_DIM`) or an IndexedBase ``x`` (symbolic or larger dim), so that formulas of a block vector
    are sums over its blocks (``6.0*Sum(x[i], (i, 2, 100001))``) and stay small for any dimension."""
    limit = EXPANDED_DIM if max_expanded is None else max_expanded
    if is_symbolic(dim) or int(dim) > limit:
        return sympy.IndexedBase(name, real=True)
    return sympy.Matrix(sympy.symbols(f"{name}_1:{int(dim) + 1}", real=True))

