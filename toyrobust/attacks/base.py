"""What every attack returns, and the calling convention shared by all attacks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch

__all__ = ["AttackResult", "Attack"]


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
    """

    x_adv: torch.Tensor
    success: torch.Tensor
    norms: torch.Tensor
    grad_evals: int
    x_raw: torch.Tensor | None = None


class Attack(Protocol):
    """The calling convention: a plain function of a classifier, a batch and a threat model.

    ``attack(clf, x, y, threat, *, definition="ball", dist=None, generator=None, **options) -> AttackResult``
    where ``x`` is (N, d), ``y`` is (N,) in {-1, +1}, and ``dist`` is needed by the projection and error-region
    definitions.
    """

    def __call__(self, clf: Any, x: torch.Tensor, y: torch.Tensor, threat: Any, *, definition: str = "ball",
                 dist: Any = None, generator: Any = None, **options: Any) -> AttackResult: ...
