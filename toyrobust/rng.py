"""Explicit randomness and device choice: nothing in toyrobust touches the global RNG."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["make_generator", "resolve_device", "resolve_dtype"]


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
