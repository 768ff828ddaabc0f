"""A torch ReLU network as a list of affine layers with ReLUs between them.

The verifier works on ``z_1 = W_1 x + b_1``, ``z_k = W_k relu(z_{k-1}) + b_k`` (k = 2..L), margin ``z_L``
(one output). Supported modules: ``nn.Sequential`` (nested) of ``nn.Linear``, ``nn.ReLU``, ``nn.Flatten``,
``nn.Identity``, ``nn.Dropout`` in eval mode and ``nn.BatchNorm1d`` in eval mode (folded into the affine layer
before it), and toyrobust's own :class:`~toyrobust.models.MLP` and :class:`~toyrobust.models.LinearModel`. A model
with two logits becomes one margin ``l_1 - l_0`` (column 1 is label +1). Consecutive affine layers are multiplied
out. Anything else raises ``TypeError`` naming the layer: the verifier never certifies a network it cannot read
exactly.

References:
    V. Tjeng, K. Xiao, R. Tedrake, "Evaluating robustness of neural networks with mixed integer programming",
    ICLR 2019.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["ReluNetwork", "extract_network"]


@dataclass
class ReluNetwork:
    """Affine layers ``(W_k, b_k)`` (float64, on the model's device) with a ReLU after every layer but the last.

    Attributes:
        weights: ``W_k`` of shape (n_k, n_{k-1}); the last has shape (1, n_{L-1}) (the margin).
        biases: ``b_k`` of shape (n_k,).
        dim: input dimension n_0.
    """

    weights: list[torch.Tensor]
    biases: list[torch.Tensor]

    @property
    def dim(self) -> int:
        return int(self.weights[0].shape[1])

    @property
    def hidden_sizes(self) -> list[int]:
        return [int(w.shape[0]) for w in self.weights[:-1]]

    @property
    def device(self) -> torch.device:
        return self.weights[0].device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The margin (N,) in float64 for x of shape (N, d)."""
        h = x.to(device=self.device, dtype=torch.float64)
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w.T + b
            if k < len(self.weights) - 1:
                h = torch.relu(h)
        return h[:, 0]


def _fold_bn(bn: nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
    """``bn(z) = s * z + t`` in eval mode, as (diag scale s, shift t)."""
    var = bn.running_var.detach().to(torch.float64)
    mean = bn.running_mean.detach().to(torch.float64)
    s = 1.0 / torch.sqrt(var + bn.eps)
    t = -mean * s
    if bn.affine:
        g = bn.weight.detach().to(torch.float64)
        s, t = s * g, t * g + bn.bias.detach().to(torch.float64)
    return s, t


def _flatten(module: nn.Module, ops: list[tuple[str, Any]], name: str) -> None:
    from ..models import MLP, LinearModel

    if isinstance(module, MLP):
        _flatten(module.net, ops, f"{name}.net")
    elif isinstance(module, LinearModel):
        _flatten(module.linear, ops, f"{name}.linear")
    elif isinstance(module, nn.Sequential):
        for child_name, child in module.named_children():
            _flatten(child, ops, f"{name}.{child_name}")
    elif isinstance(module, nn.Linear):
        w = module.weight.detach().to(torch.float64)
        b = module.bias.detach().to(torch.float64) if module.bias is not None else torch.zeros(
            w.shape[0], dtype=torch.float64, device=w.device)
        ops.append(("affine", (w, b)))
    elif isinstance(module, nn.ReLU):
        ops.append(("relu", None))
    elif isinstance(module, (nn.Identity, nn.Flatten)):
        # on (N, d) inputs nn.Flatten (start_dim=1) is the identity
        if isinstance(module, nn.Flatten) and module.start_dim not in (1, -1):
            raise TypeError(f"layer {name} ({module!r}) is not supported: only Flatten(start_dim=1) is the identity "
                            "on (N, d) inputs")
    elif isinstance(module, nn.Dropout):
        if module.training and module.p > 0:
            raise TypeError(f"layer {name} ({module!r}) is in training mode (random): call model.eval() first")
    elif isinstance(module, nn.BatchNorm1d):
        if module.training or module.running_var is None:
            raise TypeError(f"layer {name} ({module!r}) is in training mode (or tracks no running statistics): "
                            "only batch norm in eval mode can be folded into the affine layer; call model.eval()")
        s, t = _fold_bn(module)
        ops.append(("affine", (torch.diag(s), t)))
    else:
        raise TypeError(
            f"layer {name} ({type(module).__name__}) is not supported by the verifier: only nn.Sequential of "
            "nn.Linear, nn.ReLU, nn.Flatten, nn.Identity, eval-mode nn.Dropout and nn.BatchNorm1d (and toyrobust's "
            "MLP and LinearModel) are exact piecewise-linear networks it can verify")


def extract_network(model: Any) -> ReluNetwork:
    """The margin of ``model`` as a :class:`ReluNetwork` (float64 copies of the weights, on the model's device).

    Args:
        model: a torch module built from the supported layers (see the module docstring).

    Raises:
        TypeError: a layer that is not an exact affine or ReLU map (e.g. ``nn.Sigmoid``, ``nn.Tanh``, dropout or
            batch norm in training mode), naming it; an output that is neither one nor two logits.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (a ReLU network), got {type(model).__name__}")
    ops: list[tuple[str, Any]] = []
    _flatten(model, ops, type(model).__name__)
    if not any(kind == "affine" for kind, _ in ops):
        raise TypeError(f"model {type(model).__name__} has no nn.Linear layer: nothing to verify")
    # normalise to affine (relu affine)*: merge consecutive affines, drop repeated relus, pad the ends
    layers: list[list[torch.Tensor]] = []
    pending_relu = False
    for kind, payload in ops:
        if kind == "relu":
            if not layers:
                # a ReLU on the input: an identity affine layer before it, sized by the next Linear
                layers.append([None, None])
            pending_relu = True
            continue
        w, b = payload
        if layers and layers[-1][0] is None:
            n = w.shape[1]
            eye = torch.eye(n, dtype=torch.float64, device=w.device)
            layers[-1] = [eye, torch.zeros(n, dtype=torch.float64, device=w.device)]
        if layers and not pending_relu:
            w0, b0 = layers[-1]
            if w.shape[1] != w0.shape[0]:
                raise TypeError(f"layer shapes do not chain: {tuple(w0.shape)} then {tuple(w.shape)}")
            layers[-1] = [w @ w0, w @ b0 + b]
        else:
            layers.append([w, b])
        pending_relu = False
    if pending_relu:  # a ReLU on the output: identity affine after it
        n = layers[-1][0].shape[0]
        dev = layers[-1][0].device
        layers.append([torch.eye(n, dtype=torch.float64, device=dev), torch.zeros(n, dtype=torch.float64, device=dev)])
    for k in range(1, len(layers)):
        if layers[k][0].shape[1] != layers[k - 1][0].shape[0]:
            raise TypeError(f"layer shapes do not chain: {tuple(layers[k - 1][0].shape)} then "
                            f"{tuple(layers[k][0].shape)}")
    w, b = layers[-1]
    if w.shape[0] == 2:
        layers[-1] = [(w[1] - w[0])[None, :], (b[1] - b[0]).reshape(1)]
    elif w.shape[0] != 1:
        raise TypeError(f"model must output one logit or two (label +1 in column 1), got {w.shape[0]} outputs")
    return ReluNetwork([lw for lw, _ in layers], [lb for _, lb in layers])
