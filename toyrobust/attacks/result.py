"""What every attack returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["AttackResult"]


@dataclass
class AttackResult:
    """The outcome of attacking a batch.

    Attributes:
        x_adv: adversarial candidates re-projected into the threat ball around the clean points, shape (N, d).
        success: per-sample mask, shape (N,), computed on ``x_adv`` (not on an unprojected iterate) under the
            definition the attack was run with.
        norms: perturbation sizes ``||x_adv - x||`` in the threat's norm, shape (N,).
        grad_evals: number of gradient evaluations spent (summed over the batch's rows that were still attacked).
        x_raw: the attack's last iterate before the final re-projection (for diagnostics), or None.
        queries: (N,) int64 model queries per point, for black-box attacks that count them; else None.
    """

    x_adv: torch.Tensor
    success: torch.Tensor
    norms: torch.Tensor
    grad_evals: int
    x_raw: torch.Tensor | None = None
    queries: torch.Tensor | None = None
