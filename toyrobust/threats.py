"""Lp-ball threat models: the set of allowed perturbations of an input.

A threat model is the ball ``B = {x0 + delta : ||delta||_p <= eps, delta_j = 0 for j outside coords}`` for
p in {1, 2, inf}. It knows its norm and dual norm, the exact Euclidean projection onto the ball, the
steepest-ascent step (the maximiser of a linear function over the ball) and a uniform random start.

``eps`` may be a sympy expression, for use by the analytic engine; the torch methods then need a number.
All torch methods take ``(N, d)`` batches, keep dtype and device, and never move a coordinate outside
``coords``.

References:
    J. Duchi, S. Shalev-Shwartz, Y. Singer, T. Chandra, "Efficient projections onto the l1-ball for learning
    in high dimensions", ICML 2008.
    A. Madry, A. Makelov, L. Schmidt, D. Tsipras, A. Vladu, "Towards deep learning models resistant to
    adversarial attacks", ICLR 2018.
    cleverhans v4, ``optimize_linear(grad, eps, norm)``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import sympy
import torch

from .constraints import check, is_symbolic, nonnegative
from .rng import make_generator

__all__ = ["L1", "L2", "THREAT_MODELS", "Linf", "ThreatModel", "make_threat", "parse_threat", "parse_coords"]

Coords = tuple[int, ...] | slice | None
GeneratorLike = torch.Generator | int | None


def _check_eps(eps: Any) -> float | sympy.Expr:
    value = check("eps", eps, nonnegative)
    if is_symbolic(value):
        return value
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"eps must be a finite number >= 0 within the float range, got an integer of "
                         f"{len(str(abs(int(value))))} digits") from None


def _is_index(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_coords(coords: Any) -> Coords:
    """Normalise ``coords``: None, a sorted tuple of distinct non-negative ints, or ``slice(start, stop)``."""
    if coords is None:
        return None
    if isinstance(coords, slice):
        start, stop, step = coords.start, coords.stop, coords.step
        start = 0 if start is None else start
        if not _is_index(start) or start < 0:
            raise TypeError(f"coords slice start must be a non-negative int or None, got {coords!r}")
        if stop is not None and (not _is_index(stop) or stop < 0):
            raise TypeError(f"coords slice stop must be a non-negative int or None, got {coords!r}")
        if step not in (None, 1):
            raise ValueError(f"coords slice step must be None or 1, got {coords!r}")
        if stop is not None and int(stop) <= int(start):
            raise ValueError(f"coords must select at least one coordinate, got the empty slice {coords!r}")
        return slice(int(start), None if stop is None else int(stop))
    if isinstance(coords, (tuple, list, range)):
        items = list(coords)
        if not all(_is_index(i) for i in items):
            raise TypeError(f"coords must hold non-negative ints, got {coords!r}")
        items = [int(i) for i in items]
        if not items:
            raise ValueError("coords must select at least one coordinate, got an empty sequence")
        if min(items) < 0:
            raise ValueError(f"coords must hold non-negative ints, got {coords!r}")
        if len(set(items)) != len(items):
            raise ValueError(f"coords must hold distinct ints, got {coords!r}")
        return tuple(sorted(items))
    raise TypeError(
        f"coords must be None, a tuple/list of distinct non-negative ints or slice(start, stop), "
        f"got {coords!r} of type {type(coords).__name__}"
    )


#: CPU row blocks of :meth:`ThreatModel.contains` hold at most this many bytes: a temporary of this size is reused
#: from the heap and stays in the cache (a 16 MiB one already costs about 4x more per row: page faults, memory)
_CPU_BLOCK_BYTES = 1 << 22


def _check_batch(name: str, x: Any) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, d), got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (N, d), got shape {tuple(x.shape)}")
    return x


def _check_pair(x: Any, x0: Any) -> tuple[torch.Tensor, torch.Tensor]:
    x, x0 = _check_batch("x", x), _check_batch("x0", x0)
    if x.shape != x0.shape:
        raise ValueError(f"x and x0 must have the same shape, got {tuple(x.shape)} and {tuple(x0.shape)}")
    return x, x0


def _vector_norm(v: torch.Tensor, ord: float, keepdim: bool = False) -> torch.Tensor:
    """Lp norm over the last dimension; p = 2 is scaled by max|v| so it neither underflows nor overflows.

    (In float32 a saturated-loss gradient of size 1e-25 has a squared norm of 0, which would zero the step.)
    """
    if ord != 2:
        return torch.linalg.vector_norm(v, ord=ord, dim=-1, keepdim=keepdim)
    if v.device.type == "cpu" and v.dtype.is_floating_point and v.numel() > 0:
        # one pass: the plain sum of squares is accurate unless a square underflowed or overflowed; only such rows
        # (a norm below sqrt(d tiny / eps), or not finite) are rescaled. On a GPU the branch would cost a host sync.
        out = torch.linalg.vector_norm(v, ord=2, dim=-1, keepdim=True)
        fin = torch.finfo(v.dtype)
        low = math.sqrt(max(1, v.shape[-1]) * fin.tiny / fin.eps)
        bad = ~(out >= low) | torch.isinf(out)  # NaN too
        if bool(bad.any()):
            # rows of zeros (a misclassified point's zero perturbation: common) are exact already: one max finds
            # them without gathering rows
            bad = bad & (torch.linalg.vector_norm(v, ord=math.inf, dim=-1, keepdim=True) > 0)
            if bool(bad.any()):
                rows = bad.reshape(-1).nonzero()[:, 0]
                fixed = _scaled_norm(v.reshape(-1, v.shape[-1])[rows])[:, 0]
                out = out.reshape(-1).index_put((rows,), fixed).reshape(out.shape)  # out of place: autograd
        return out if keepdim else out.squeeze(-1)
    out = _scaled_norm(v)
    return out if keepdim else out.squeeze(-1)


def _scaled_norm(v: torch.Tensor) -> torch.Tensor:
    """The L2 norm over the last dimension (kept), computed as ``max|v| * ||v / max|v|||`` (no under/overflow)."""
    a = v.abs().amax(dim=-1, keepdim=True)
    ok = (a > 0) & torch.isfinite(a)
    safe = torch.where(ok, a, torch.ones_like(a))
    scaled = safe * torch.linalg.vector_norm(v / safe, ord=2, dim=-1, keepdim=True)
    return torch.where(ok, scaled, torch.linalg.vector_norm(v, ord=2, dim=-1, keepdim=True))


class ThreatModel:
    """An Lp ball of radius ``eps`` around a clean input, optionally on a subset of coordinates.

    The ball around ``x0`` is ``{z : ||z - x0||_p <= eps, z_j = x0_j for j not in coords}``. Subclasses
    (``Linf``, ``L2``, ``L1``) fix ``p``, its dual exponent ``q`` (1/p + 1/q = 1) and ``name``.

    Args:
        eps: radius, a finite number >= 0 or a sympy expression not provably negative.
        coords: None (all coordinates), a tuple/list of distinct non-negative ints, or ``slice(start, stop)``
            (``stop=None`` means up to the last coordinate, so it also fits a symbolic dimension).
    """

    p: float
    q: float
    name: str

    __slots__ = ("coords", "eps")

    def __init__(self, eps: Any, coords: Any = None) -> None:
        if type(self) is ThreatModel:
            raise TypeError("ThreatModel is abstract: use Linf, L2 or L1")
        object.__setattr__(self, "eps", _check_eps(eps))
        object.__setattr__(self, "coords", _check_coords(coords))

    # -- value semantics -------------------------------------------------------------------------------------

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; use with_eps() for a new radius")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.eps, self.coords))

    def _key(self) -> tuple[Any, ...]:
        c = self.coords
        coords_key = ("slice", c.start, c.stop) if isinstance(c, slice) else c  # slices are unhashable
        return (type(self), self.eps, coords_key)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ThreatModel):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        coords = "" if self.coords is None else f", coords={self.coords!r}"
        return f"{type(self).__name__}(eps={self.eps!r}{coords})"

    def with_eps(self, eps: Any) -> ThreatModel:
        """A copy with radius ``eps`` and the same norm and coordinates."""
        return type(self)(eps, coords=self.coords)

    # -- coordinates -----------------------------------------------------------------------------------------

    def n_free(self, d: Any) -> Any:
        """Number k of perturbed coordinates for input dimension ``d`` (an int, or sympy for a symbolic d), counted
        without listing them (O(1) for any d, 10**300 included); a numeric d is checked like :meth:`coord_indices`."""
        c = self.coords
        if not is_symbolic(d) and _is_index(d):
            if d < 1:
                raise ValueError(f"d must be an int >= 1, got {d!r}")
            if isinstance(c, slice):
                stop = d if c.stop is None else c.stop
                if stop > d or c.start >= d:
                    raise ValueError(f"coords={c!r} reaches past the last coordinate of a {d}-dimensional input")
            elif c is not None and c[-1] >= d:
                raise ValueError(f"coords={c!r} holds index {c[-1]} >= d = {d}")
        if c is None:
            return d
        if isinstance(c, slice):
            return (d if c.stop is None else c.stop) - c.start
        return len(c)

    def coord_indices(self, d: int) -> list[int]:
        """The perturbed coordinates as a sorted list of ints in ``range(d)`` (:meth:`n_free` counts them without
        listing them).

        Raises:
            ValueError: an index is >= d, or the subset is empty for this ``d``.
        """
        if not _is_index(d) or d < 1:
            raise ValueError(f"d must be an int >= 1, got {d!r}")
        c = self.coords
        if c is None:
            return list(range(d))
        if isinstance(c, slice):
            stop = d if c.stop is None else c.stop
            if stop > d or c.start >= d:
                raise ValueError(f"coords={c!r} reaches past the last coordinate of a {d}-dimensional input")
            return list(range(c.start, stop))
        if c[-1] >= d:
            raise ValueError(f"coords={c!r} holds index {c[-1]} >= d = {d}")
        return list(c)

    def mask(self, d: int, device: Any = None, dtype: torch.dtype | None = None) -> torch.Tensor:
        """A 0/1 vector of shape (d,), 1 on the perturbed coordinates (``dtype=torch.bool`` allowed)."""
        out = torch.zeros(d, device=device, dtype=torch.bool)
        idx = self.coord_indices(d)
        if isinstance(self.coords, slice) or self.coords is None:
            out[idx[0] : idx[-1] + 1] = True
        else:
            out[torch.tensor(idx, device=out.device)] = True
        return out if dtype is torch.bool else out.to(torch.get_default_dtype() if dtype is None else dtype)

    # -- helpers ---------------------------------------------------------------------------------------------

    @property
    def radius(self) -> float:
        """The radius eps as a float (TypeError when eps is a sympy expression: torch methods need numbers)."""
        if is_symbolic(self.eps):
            raise TypeError(
                f"eps must be numeric for the torch methods of {type(self).__name__}, got the sympy "
                f"expression {self.eps!r}; use with_eps(number)"
            )
        return float(self.eps)

    def _radius(self, radius: Any, n: int, dtype: torch.dtype, device: Any) -> float | torch.Tensor:
        """``radius`` as a float or an (N, 1) tensor; None means ``eps``."""
        if radius is None:
            return self.radius
        if isinstance(radius, torch.Tensor) and radius.ndim > 0:
            if radius.shape != (n,):
                raise ValueError(
                    f"radius must be a number or a tensor of shape ({n},), got {tuple(radius.shape)}"
                )
            return radius.unsqueeze(-1).to(dtype=dtype, device=device)
        return float(check("radius", radius, nonnegative))

    def _bool_mask(self, x: torch.Tensor) -> torch.Tensor:
        return self.mask(x.shape[-1], device=x.device, dtype=torch.bool)

    def _restrict(self, x: torch.Tensor) -> torch.Tensor:
        """x with the coordinates outside ``coords`` set to 0 (no NaN from inf outside)."""
        if self.coords is None:
            self.coord_indices(x.shape[-1])
            return x
        return torch.where(self._bool_mask(x), x, torch.zeros((), dtype=x.dtype, device=x.device))

    # -- norms -----------------------------------------------------------------------------------------------

    def norm(self, x: torch.Tensor) -> torch.Tensor:
        """Lp norm over the perturbed coordinates: ``(sum_{j in coords} |x_j|^p)^(1/p)``.

        Args:
            x: (N, d) batch (typically a perturbation ``x - x0``).

        Returns:
            (N,) norms, same dtype and device as ``x``.
        """
        x = _check_batch("x", x)
        return _vector_norm(self._restrict(x), self.p)

    def dual_norm(self, g: torch.Tensor) -> torch.Tensor:
        """Dual (Lq) norm over the perturbed coordinates: ``max_{||d||_p <= 1} <d, g> = ||g||_q``.

        Args:
            g: (N, d) batch (typically a gradient).

        Returns:
            (N,) dual norms, same dtype and device as ``g``.
        """
        g = _check_batch("g", g)
        return _vector_norm(self._restrict(g), self.q)

    def contains(self, x: torch.Tensor, x0: torch.Tensor, atol: float | None = None) -> torch.Tensor:
        """Which rows of ``x`` lie in the ball around the matching rows of ``x0``.

        Tests ``||x - x0||_p <= eps + atol`` and ``|x_j - x0_j| <= atol`` for j outside coords.

        Args:
            x, x0: (N, d) batches.
            atol: absolute slack; None means ``128 * machine_eps(dtype) * max(1, eps)``.

        Returns:
            (N,) bool mask.
        """
        x, x0 = _check_pair(x, x0)
        eps = self.radius
        if atol is None:
            fin = torch.finfo(x.dtype) if x.dtype.is_floating_point else torch.finfo(torch.float32)
            atol = 128 * fin.eps * max(1.0, eps)
        n, d = x.shape
        # on a CPU, row blocks keep the difference x - x0 small (see _CPU_BLOCK_BYTES)
        step = n if x.device.type != "cpu" else max(1, _CPU_BLOCK_BYTES // (max(1, d) * x.element_size()))
        if step >= n:
            return self._contains(x, x0, eps + atol, atol)
        return torch.cat([self._contains(x[i:i + step], x0[i:i + step], eps + atol, atol) for i in range(0, n, step)])

    def _contains(self, x: torch.Tensor, x0: torch.Tensor, limit: float, atol: float) -> torch.Tensor:
        delta = x - x0
        fin = torch.finfo(delta.dtype) if delta.dtype.is_floating_point else None
        if self.p == 2 and fin is not None and math.sqrt(delta.shape[-1] * fin.tiny / fin.eps) <= limit \
                <= math.sqrt(fin.max) / 4:
            # the plain sum of squares decides exactly here: underflowed squares change the norm by at most
            # sqrt(d tiny), far below the limit, and an overflow (inf) means a norm far above it; no rescaling pass
            inside = torch.linalg.vector_norm(self._restrict(delta), ord=2, dim=-1) <= limit
        else:
            inside = self.norm(delta) <= limit
        if self.coords is not None:
            outside = torch.where(self._bool_mask(x), torch.zeros((), dtype=x.dtype, device=x.device), delta)
            inside = inside & (outside.abs() <= atol).all(dim=-1)
        return inside

    # -- projection, steepest ascent, random start ----------------------------------------------------------

    def project(self, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """Euclidean projection onto the ball around ``x0``.

        Solves, row by row, ``argmin_z ||z - x||_2  s.t.  ||z - x0||_p <= eps, z_j = x0_j (j not in coords)``.
        Rows already in the ball are returned unchanged (bitwise).

        Args:
            x: (N, d) points to project.
            x0: (N, d) centres.

        Returns:
            (N, d) projected points, same dtype and device as ``x``.

        References:
            Duchi et al. 2008 (the sort-based l1-ball projection used by ``L1``).
        """
        x, x0 = _check_pair(x, x0)
        eps = self.radius
        if self.coords is None:  # every coordinate free: no mask to apply (same numbers, two passes fewer)
            return self._project_delta(x, x0, x - x0, eps)
        m = self._bool_mask(x)
        delta = torch.where(m, x - x0, torch.zeros((), dtype=x.dtype, device=x.device))
        z = self._project_delta(x, x0, delta, eps)
        return torch.where(m, z, x0)

    def _project_delta(
        self, x: torch.Tensor, x0: torch.Tensor, delta: torch.Tensor, eps: float
    ) -> torch.Tensor:
        raise NotImplementedError

    def steepest_ascent(self, g: torch.Tensor, radius: Any = None) -> torch.Tensor:
        """Steepest-ascent step: the maximiser of a linear function over the ball.

        Returns ``d* = argmax_{||d||_p <= r, d_j = 0 for j not in coords} <d, g>``, so that
        ``<d*, g> = r * ||g||_q`` (the dual norm over coords). Linf: ``r * sign(g)``; L2: ``r * g / ||g||_2``
        (0 where g = 0); L1: ``r * sign(g_i) e_i`` at the largest ``|g_i|`` (lowest index on ties).

        Args:
            g: (N, d) gradients.
            radius: a number >= 0 or an (N,) tensor; None means ``eps``.

        Returns:
            (N, d) steps, same dtype and device as ``g``.

        References:
            Madry et al. 2018 (PGD's steepest-ascent step); cleverhans ``optimize_linear``.
        """
        g = _check_batch("g", g)
        r = self._radius(radius, g.shape[0], g.dtype, g.device)
        return self._steepest(self._restrict(g), r)

    def _steepest(self, g: torch.Tensor, r: float | torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def random_start(self, x0: torch.Tensor, generator: GeneratorLike = None) -> torch.Tensor:
        """A point drawn uniformly from the ball around each row of ``x0``.

        Returns ``x0 + delta`` with ``delta`` uniform on ``{||delta||_p <= eps, delta_j = 0 for j not in
        coords}``; for p = 1, 2 the radius ``||delta||_p / eps`` follows Beta(k, 1), k = number of coords.

        Args:
            x0: (N, d) centres.
            generator: a ``torch.Generator``, an int seed (a fresh generator), or None (a fresh generator
                seeded from OS entropy: the global RNG is never used).

        Returns:
            (N, d) points, same dtype and device as ``x0``.
        """
        x0 = _check_batch("x0", x0)
        eps = self.radius
        gen = make_generator(generator, x0.device)
        dev = gen.device if gen is not None else x0.device
        m = self._bool_mask(x0).to(dev)
        k = int(m.sum())
        # sample in float64 on the generator's device, then cast: exact laws up to the final rounding
        delta = self._sample(x0.shape, m, k, eps, gen, dev).to(device=x0.device, dtype=x0.dtype)
        return torch.where(m.to(x0.device), x0 + delta, x0)

    def _sample(
        self, shape: torch.Size, m: torch.Tensor, k: int, eps: float, gen: torch.Generator | None, dev: Any
    ) -> torch.Tensor:
        raise NotImplementedError


class Linf(ThreatModel):
    """The L-infinity ball ``{||delta||_inf <= eps}`` (dual norm L1)."""

    p = math.inf
    q = 1
    name = "linf"
    __slots__ = ()

    def _project_delta(self, x, x0, delta, eps):
        # per-coordinate clamp; coordinates already within eps are left bitwise
        return torch.where(delta.abs() <= eps, x, x0 + delta.clamp(-eps, eps))

    def _steepest(self, g, r):
        return r * torch.sign(g)

    def _sample(self, shape, m, k, eps, gen, dev):
        u = torch.rand(shape, generator=gen, device=dev, dtype=torch.float64)
        return eps * (2 * u - 1)


class L2(ThreatModel):
    """The Euclidean ball ``{||delta||_2 <= eps}`` (self-dual)."""

    p = 2
    q = 2
    name = "l2"
    __slots__ = ()

    def _project_delta(self, x, x0, delta, eps):
        n = _vector_norm(delta, 2, keepdim=True)
        inside = n <= eps
        scale = torch.where(inside, torch.ones_like(n), n)
        if torch.is_grad_enabled() and (x.requires_grad or x0.requires_grad):
            return torch.where(inside, x, x0 + delta / scale * eps)
        # x0 + delta / n * eps in place in one buffer. Divide first: eps / n overflows for a subnormal n (and is
        # 0/0 where the CPU flushes subnormals to zero), delta / n does not
        z = (delta / scale).mul_(eps).add_(x0)
        return torch.where(inside, x, z, out=z)

    def _steepest(self, g, r):
        n = _vector_norm(g, 2, keepdim=True)
        nonzero = n > 0
        # divide first (see L2._project_delta): r / n is inf or NaN for a subnormal norm
        if torch.is_grad_enabled() and g.requires_grad:
            return torch.where(nonzero, g / torch.where(nonzero, n, torch.ones_like(n)) * r, torch.zeros_like(g))
        z = (g / torch.where(nonzero, n, torch.ones_like(n))).mul_(r)
        if z.device.type == "cpu" and bool(nonzero.all()):  # the usual case; on an accelerator, no host sync
            return z
        return z.masked_fill_(~nonzero, 0.0)

    def _sample(self, shape, m, k, eps, gen, dev):
        # Gaussian direction, radius eps * U^(1/k) ~ eps * Beta(k, 1)
        z = torch.randn(shape, generator=gen, device=dev, dtype=torch.float64) * m
        n = torch.linalg.vector_norm(z, dim=-1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
        u = torch.rand((shape[0], 1), generator=gen, device=dev, dtype=torch.float64)
        return z / n * (eps * u ** (1.0 / k))


class L1(ThreatModel):
    """The L1 ball (cross-polytope) ``{||delta||_1 <= eps}`` (dual norm L-infinity)."""

    p = 1
    q = math.inf
    name = "l1"
    __slots__ = ()

    def _project_delta(self, x, x0, delta, eps):
        # Duchi et al. 2008, Fig. 1: w = sign(v) * max(|v| - theta, 0) with theta from the sorted |v|
        u = delta.abs()
        inside = u.sum(dim=-1, keepdim=True) <= eps
        s = torch.sort(u, dim=-1, descending=True).values
        css = s.cumsum(dim=-1) - eps
        j = torch.arange(1, u.shape[-1] + 1, device=u.device)
        cond = s - css / j.to(u.dtype) > 0
        rho = torch.where(cond, j, torch.zeros_like(j)).amax(dim=-1, keepdim=True).clamp_min(1)
        theta = (css.gather(-1, rho - 1) / rho.to(u.dtype)).clamp_min(0)
        w = torch.sign(delta) * (u - theta).clamp_min(0)
        return torch.where(inside, x, x0 + w)

    def _steepest(self, g, r):
        a = torch.where(self._bool_mask(g), g.abs(), torch.full((), -1.0, dtype=g.dtype, device=g.device))
        idx = a.argmax(dim=-1, keepdim=True)  # first maximum on ties
        step = r * torch.sign(g.gather(-1, idx))
        return torch.zeros_like(g).scatter(-1, idx, step)

    def _sample(self, shape, m, k, eps, gen, dev):
        # uniform on the cross-polytope: random signs times the first k of Dirichlet(1, ..., 1) (k + 1 parts),
        # built from exponential spacings; then ||delta||_1 / eps = 1 - E_{k+1}/S ~ Beta(k, 1)
        e = -torch.log1p(-torch.rand(shape, generator=gen, device=dev, dtype=torch.float64)) * m
        e_last = -torch.log1p(-torch.rand((shape[0], 1), generator=gen, device=dev, dtype=torch.float64))
        total = e.sum(dim=-1, keepdim=True) + e_last
        signs = 2.0 * torch.randint(0, 2, shape, generator=gen, device=dev).to(torch.float64) - 1.0
        return eps * signs * e / total


THREAT_MODELS: dict[str, type[ThreatModel]] = {"linf": Linf, "l2": L2, "l1": L1}


def parse_coords(text: Any) -> Any:
    """Perturbed coordinates from a string: ``"1:"`` -> slice(1, None), ``"0:3"`` -> slice(0, 3), ``"0,2"`` -> (0, 2).

    None, a slice or a sequence of ints are returned as they are (checked by the threat model)."""
    if text is None or not isinstance(text, str):
        return text
    try:
        if ":" in text:
            start, _, stop = text.partition(":")
            return slice(int(start) if start.strip() else 0, int(stop) if stop.strip() else None)
        return tuple(int(t) for t in text.split(","))
    except ValueError:
        raise ValueError(f"coords must look like '1:', '0:3' or '0,2', got {text!r}") from None


def parse_threat(spec: str | ThreatModel | None, coords: Any = None, *, symbols: bool = False) -> ThreatModel | None:
    """The package's one threat-spec parser (the API and every command-line command use it).

    Args:
        spec: ``"<norm>:<eps>"`` with norm in linf, l2, l1 (any case) and eps a finite number >= 0 (or, with
            ``symbols``, a name, which becomes a non-negative sympy symbol); a ThreatModel is returned as is;
            None means no threat (then ``coords`` must be None too).
        coords: perturbed coordinates: None (all), a slice, indices, or a string (:func:`parse_coords`).
        symbols: accept a symbol name for eps.

    Raises:
        ValueError: a one-line message naming the spec and what is allowed.
    """
    if spec is None:
        if coords is not None:
            raise ValueError("coords need a threat spec")
        return None
    if isinstance(spec, ThreatModel):
        return spec if coords is None else type(spec)(spec.eps, coords=parse_coords(coords))
    if not isinstance(spec, str):
        raise TypeError(f"threat spec must be a string like 'linf:0.3', got {type(spec).__name__}")
    allowed = ("expected '<norm>:<eps>' with norm in linf, l2, l1 and eps a finite number >= 0"
               + (" or a symbol name" if symbols else "") + ", e.g. 'linf:0.3'")
    head, sep, tail = spec.strip().partition(":")
    cls = THREAT_MODELS.get(head.strip().lower())
    if not sep or cls is None or "\n" in spec:
        raise ValueError(f"threat spec {spec!r} not understood: {allowed}")
    text = tail.strip()
    if symbols and text.isidentifier() and text.lower() not in ("nan", "inf", "infinity"):
        eps: Any = sympy.Symbol(text, nonnegative=True)
    else:
        try:
            eps = float(text)
        except ValueError:
            raise ValueError(f"threat spec {spec!r} has eps {text!r} that is not a number: {allowed}") from None
        if not (math.isfinite(eps) and eps >= 0):
            raise ValueError(f"threat spec {spec!r}: eps must be a finite number >= 0, got {text!r}")
        eps = int(eps) if eps.is_integer() and abs(eps) < 2**53 else eps
    return cls(eps, coords=parse_coords(coords))


def make_threat(spec: str | ThreatModel) -> ThreatModel:
    """Parse a numeric threat-model spec such as ``"linf:0.3"``, ``"l2:1.5"`` or ``"L1:2"`` (case-insensitive).

    The same parser as the command line (:func:`parse_threat`), numbers only.

    Raises:
        ValueError: a one-line message for any other string.
    """
    if spec is None:
        raise TypeError("threat spec must be a string like 'linf:0.3', got NoneType")
    return parse_threat(spec)
