"""k-winners-take-all (k-WTA) activations and the MLPs built with them (Xiao, Zhong and Zheng 2020).

The k-WTA activation keeps, for each sample, the ``k`` largest pre-activations of a layer and sets the others to
zero (seed 004, section 8):

    [phi_k(z)]_j = z_j  if z_j is among the k largest entries of z,  else 0,     k = ceil(gamma * width).

The function is piecewise linear but *discontinuous*: when the k-th and the (k+1)-th entries swap, one unit jumps
from its value to 0 and another from 0 to its value. Autograd differentiates each linear piece (gradient 1 on the
kept units, 0 elsewhere), which says nothing about the jumps; on a wide, sparse layer the pieces are small and
the local gradient is a poor guide for an attack (the "gradient masking" Xiao et al. rely on, and that BPDA and
EOT undo, :mod:`toyrobust.attacks.adaptive`).

References:
    C. Xiao, P. Zhong, C. Zheng, "Enhancing adversarial defense by k-winners-take-all", ICLR 2020.
    F. Tramer, N. Carlini, W. Brendel, A. Madry, "On adaptive attacks to adversarial example defenses",
    NeurIPS 2020 (k-WTA broken by averaging gradients over small input noise).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch
from torch import nn

from ..models import MLP

__all__ = ["KWTA", "kwta_mlp"]


def check_ratio(ratio: Any) -> float:
    """The sparsity ratio ``gamma`` as a float in (0, 1]; TypeError/ValueError naming ``ratio`` otherwise."""
    if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real):
        raise TypeError(f"ratio must be a number in (0, 1], got {ratio!r}")
    if not (math.isfinite(float(ratio)) and 0 < ratio <= 1):
        raise ValueError(f"ratio must be in (0, 1] (the fraction of units kept), got {ratio!r}")
    return float(ratio)


class KWTA(nn.Module):
    """k-winners-take-all activation: keep the ``ceil(ratio * width)`` largest entries of each row, zero the rest.

    ``phi_k(z)_j = z_j 1[z_j >= z_(k)]`` with ``z_(k)`` the k-th largest entry of the row (ties broken by
    ``torch.topk``, so exactly k units are kept). The kept values may be negative: k-WTA keeps the k largest,
    not the positive ones (Xiao et al. 2020, eq. 1).

    Args:
        ratio: the sparsity ratio gamma in (0, 1]; ``ratio = 1`` is the identity.

    Shapes:
        input (N, width) -> output (N, width).
    """

    #: BPDA replaces this layer's backward pass by default (read by toyrobust.attacks.adaptive.BPDA)
    bpda_target = True

    def __init__(self, ratio: float = 0.1):
        super().__init__()
        self.ratio = check_ratio(ratio)

    def extra_repr(self) -> str:
        return f"ratio={self.ratio}"

    def k(self, width: int) -> int:
        """Units kept per sample for a layer of this width: ``ceil(ratio * width)`` (at least 1)."""
        # the small tolerance keeps e.g. 0.1 * 30 = 3.0000000000000004 from rounding up to 4
        return max(1, min(width, math.ceil(self.ratio * width - 1e-9)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 2:
            raise ValueError(f"KWTA input must have shape (N, width), got {tuple(z.shape)}")
        k = self.k(z.shape[1])
        idx = torch.topk(z, k, dim=1).indices
        mask = torch.zeros_like(z, dtype=torch.bool).scatter_(1, idx, True)
        return z * mask  # gradient 1 on the kept units, 0 elsewhere (autograd's view of each linear piece)


def kwta_mlp(dim: int, hidden: Any = (256,), ratio: float = 0.1, seed: Any = 0, *, device: Any = None,
             dtype: torch.dtype | None = None) -> MLP:
    """An :class:`~toyrobust.models.MLP` (one logit, positive means +1) with :class:`KWTA` in place of each ReLU.

    ``d -> hidden[0] -> KWTA -> ... -> hidden[-1] -> KWTA -> 1``, with the MLP's initialisation (He-uniform
    hidden weights, zero biases, explicit seed). The result is an ``MLP`` instance, so ``.classifier()``,
    :func:`toyrobust.train` and every attack accept it unchanged.

    Args:
        dim: input dimension d.
        hidden: widths of the hidden layers (an int or a non-empty sequence of ints >= 1).
        ratio: the k-WTA sparsity ratio gamma in (0, 1].
        seed: int or CPU ``torch.Generator`` for the initial weights.
        device, dtype: where the parameters live.

    References:
        Xiao, Zhong and Zheng, ICLR 2020.
    """
    ratio = check_ratio(ratio)
    model = MLP(dim, hidden, seed=seed, device=device, dtype=dtype)
    for i, layer in enumerate(model.net):
        if isinstance(layer, nn.ReLU):
            model.net[i] = KWTA(ratio)
    return model
