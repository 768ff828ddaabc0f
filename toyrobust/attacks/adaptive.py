"""Adaptive attacks on defended models: BPDA (a substitute backward pass) and EOT (gradients averaged over the
defense's randomness). Both are wrappers that return ordinary torch modules, so every gradient attack of the
toolkit (:func:`~toyrobust.attacks.fgsm`, :func:`~toyrobust.attacks.pgd`, ...) runs on them unchanged.

* **BPDA** (Athalye, Carlini and Wagner 2018; seed 004, section 9): for a network ``f = f_n o ... o f_1`` with
  a layer ``f_i`` whose gradient is useless (zero, undefined or misleading), run the forward pass through
  ``f_i`` exactly and, on the backward pass, use the vector-Jacobian product of a differentiable substitute
  ``g ~ f_i``; ``g = identity`` is the straight-through estimator.
* **EOT** (Athalye, Engstrom, Ilyas and Kwok 2018; seed 004, section 10): for a randomized model ``f_r``,
  attack ``E_r f_r(x)`` through ``grad E_r f_r(x) = E_r grad f_r(x) ~ (1/k) sum_i grad f_{r_i}(x)``. The same
  average over a small input noise, ``E_u f(x + u)``, smooths a deterministic but discontinuous model (this is
  how Tramer et al. 2020 broke k-WTA).

References:
    A. Athalye, N. Carlini, D. Wagner, "Obfuscated gradients give a false sense of security", ICML 2018.
    A. Athalye, L. Engstrom, A. Ilyas, K. Kwok, "Synthesizing robust adversarial examples", ICML 2018.
    F. Tramer, N. Carlini, W. Brendel, A. Madry, "On adaptive attacks to adversarial example defenses",
    NeurIPS 2020.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..classifiers import Classifier, TorchClassifier, as_classifier, margin_from_logits
from ..constraints import check_int, check_number, nonnegative
from ..rng import make_generator
from .base import SUPPORTED, Support
from .gradient import PGD

__all__ = ["BPDA", "bpda", "EOT", "SUBSTITUTES", "BPDAAttack", "EOTAttack"]

Substitute = Callable[[torch.Tensor], torch.Tensor]


def _identity(z: torch.Tensor) -> torch.Tensor:
    return z


#: named backward substitutes: ``"identity"`` (straight-through) and ``"relu"``
SUBSTITUTES: dict[str, Substitute] = {"identity": _identity, "relu": F.relu}


def _check_substitute(substitute: Any) -> Substitute:
    if isinstance(substitute, str):
        if substitute not in SUBSTITUTES:
            raise ValueError(f"substitute must be one of {', '.join(map(repr, SUBSTITUTES))} or a callable, "
                             f"got {substitute!r}")
        return SUBSTITUTES[substitute]
    if not callable(substitute):
        raise TypeError(f"substitute must be a name ({', '.join(SUBSTITUTES)}) or a callable, got {substitute!r}")
    return substitute


class _BPDAFunction(torch.autograd.Function):
    """Forward: the real layer's output ``out`` (passed in, detached). Backward: ``J_g(z)^T grad``."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, out: torch.Tensor, substitute: Substitute) -> torch.Tensor:
        ctx.save_for_backward(z)
        ctx.substitute = substitute
        return out.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        (z,) = ctx.saved_tensors
        if ctx.substitute is _identity:
            if grad.shape != z.shape:
                raise ValueError(f"the identity substitute needs a layer whose output has its input's shape, got "
                                 f"{tuple(z.shape)} -> {tuple(grad.shape)}")
            return grad, None, None
        with torch.enable_grad():
            zz = z.detach().requires_grad_(True)
            s = ctx.substitute(zz)
            if s.shape != grad.shape:
                raise ValueError(f"the substitute's output shape {tuple(s.shape)} differs from the layer's "
                                 f"{tuple(grad.shape)}")
            (gz,) = torch.autograd.grad(s, zz, grad, allow_unused=True)
        return (torch.zeros_like(z) if gz is None else gz), None, None


class BPDA(nn.Module):
    """A model whose forward pass is the wrapped model's, and whose backward pass replaces chosen layers by a
    differentiable substitute (Backward Pass Differentiable Approximation).

    For every submodule ``f_i`` of ``model`` selected by ``layers``, the forward value is ``f_i(z)`` exactly
    (the real layer runs), and the backward pass returns ``J_g(z)^T grad`` with ``g`` the substitute, instead of
    ``J_{f_i}(z)^T grad``. The replacement is done by forward hooks that exist only during this wrapper's own
    forward call: calling ``model`` directly is unaffected, and the wrapper always sees the model's current
    weights (it holds a reference, not a copy).

    Substitutes: ``"identity"`` (straight-through, Athalye et al.'s default for a non-differentiable
    approximation of the identity), ``"relu"`` (the layer's gradient is taken to be ReLU's, ``1[z > 0]``), or
    any differentiable callable ``g(z)`` with the layer's output shape. For :class:`~toyrobust.defenses.KWTA`
    autograd already gives "identity on the kept units, 0 elsewhere" (the naive gradient of one linear piece);
    BPDA with ``"relu"`` treats k-WTA as the ReLU it replaces, so the gradient also flows through the positive
    units that were not kept, and ``"identity"`` lets it flow through every unit (the network's gradient is
    then that of the network with the k-WTA layers removed). Which one is stronger is an empirical question;
    :mod:`toyrobust.defenses.evaluate` uses ``"relu"``.

    Args:
        model: a torch module (one or two logits).
        substitute: ``"identity"``, ``"relu"`` or a callable ``(z) -> g(z)``.
        layers: a module type or tuple of types to replace (default: :class:`~toyrobust.defenses.KWTA`), or a
            predicate ``module -> bool``.

    References:
        Athalye, Carlini and Wagner, ICML 2018; seed 004, section 9.
    """

    def __init__(self, model: nn.Module, substitute: Any = "identity", layers: Any = None):
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.substitute = _check_substitute(substitute)
        if layers is None:
            # the default targets say so themselves (k-WTA sets bpda_target), so attacks need not import defenses
            def layers(m: nn.Module) -> bool:
                return bool(getattr(type(m), "bpda_target", False))
        if isinstance(layers, type) or (isinstance(layers, tuple) and all(isinstance(t, type) for t in layers)):
            types = layers

            def select(m: nn.Module) -> bool:
                return isinstance(m, types)
        elif callable(layers):
            select = layers
        else:
            raise TypeError(f"layers must be a module type, a tuple of types or a predicate, got {layers!r}")
        self._targets = [m for m in model.modules() if m is not model and select(m)]
        if not self._targets:
            raise ValueError(f"model has no layer selected by layers={layers!r}: nothing for BPDA to replace")
        self.dim = getattr(model, "dim", None)

    @contextlib.contextmanager
    def _hooked(self) -> Iterator[None]:
        sub = self.substitute

        def hook(module: nn.Module, inputs: tuple, out: torch.Tensor) -> torch.Tensor:
            return _BPDAFunction.apply(inputs[0], out.detach(), sub)

        handles = [m.register_forward_hook(hook) for m in self._targets]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The wrapped model's output on ``x`` (the same values), with the substitute backward pass."""
        with self._hooked():
            return self.model(x)


def bpda(model: nn.Module, substitute: Any = "identity", layers: Any = None) -> BPDA:
    """``BPDA(model, substitute, layers)``: the model with a substitute backward pass (see :class:`BPDA`)."""
    return BPDA(model, substitute, layers)


def _accepts_generator(fn: Any) -> bool:
    target = fn.forward if isinstance(fn, nn.Module) else fn
    try:
        return "generator" in inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False


class EOT(nn.Module):
    """Expectation over transformation: the margin averaged over ``samples`` draws of the randomness.

    ``m_EOT(x) = (1/k) sum_{i=1}^k m_{r_i}(x + sigma u_i)``, ``u_i ~ N(0, I)``, where ``m_r`` is the margin of
    the model for its own random draw ``r`` (a model whose ``forward`` accepts a ``generator=`` keyword is
    called with this wrapper's generator; a deterministic model has no ``r``), and ``sigma = noise`` adds
    Gaussian input noise (0: none). Its gradient is exactly the mean of the ``k`` per-draw gradients, the
    Monte Carlo estimate of ``grad E_r m_r(x) = E_r grad m_r(x)``; PGD on this module is the EOT attack. The
    draws are fresh at every call (the generator advances), as in the attack of Athalye et al.; pass an int
    seed or a generator to make a run reproducible. An attack's success mask on this wrapper is judged on the
    averaged margin; judge the returned points on the defended model itself (with its own fresh randomness), and
    prefer ``early_stop=False`` so that one lucky draw does not end a row's search.

    The output is a one-logit margin of shape (N,) (two-logit models are reduced with
    :func:`~toyrobust.classifiers.margin_from_logits` before averaging, so the average is of the logit
    difference, not of the logits' softmax). All ``k`` copies are evaluated in one batch of ``k N`` rows.

    Args:
        model: a torch module or toyrobust classifier (one or two logits), possibly randomized.
        samples: k >= 1, draws per forward pass.
        noise: sigma >= 0 of the Gaussian input noise.
        generator: ``torch.Generator`` or int seed (on the inputs' device); None: fresh OS entropy.

    References:
        Athalye, Engstrom, Ilyas and Kwok, ICML 2018; seed 004, section 10; Tramer et al. 2020 (EOT over input
        noise against k-WTA).
    """

    def __init__(self, model: Any, samples: int = 16, *, noise: float = 0.0, generator: Any = None):
        super().__init__()
        if isinstance(model, nn.Module):
            self.model = model
            self._clf: Classifier = TorchClassifier(model)
        else:
            self._clf = as_classifier(model)
            self.model = self._clf.module if isinstance(self._clf, TorchClassifier) and isinstance(
                self._clf.module, nn.Module) else None
        self.samples = check_int("samples", samples, 1)
        self.noise = check_number("noise", noise, nonnegative)
        self._gen_spec = generator
        self._gens: dict[str, torch.Generator] = {}
        if isinstance(generator, torch.Generator):
            self._gens[str(generator.device)] = generator
        elif generator is not None:
            make_generator(generator)  # validates the seed now
        target = self._clf.module if isinstance(self._clf, TorchClassifier) else self._clf.margin
        self._pass_generator = _accepts_generator(target)
        self.dim = getattr(model, "dim", None)

    def generator(self, device: torch.device) -> torch.Generator:
        """The generator used on ``device`` (created from the seed on first use)."""
        key = str(torch.device(device))
        if key not in self._gens:
            if isinstance(self._gen_spec, torch.Generator):
                raise ValueError(f"the EOT generator lives on {self._gen_spec.device}, inputs on {device}")
            self._gens[key] = make_generator(self._gen_spec, device)
        return self._gens[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Average margin (N,) over ``samples`` draws, for ``x`` of shape (N, d)."""
        if not isinstance(x, torch.Tensor) or x.ndim != 2:
            raise ValueError(f"x must be a tensor of shape (N, d), got {getattr(x, 'shape', type(x).__name__)}")
        n, k = x.shape[0], self.samples
        gen = self.generator(x.device) if (self.noise > 0 or self._pass_generator) else None
        xs = x.repeat(k, 1)  # draw-major: rows i*n .. (i+1)*n - 1 are draw i
        if self.noise > 0:
            xs = xs + self.noise * torch.randn(xs.shape, generator=gen, device=x.device, dtype=x.dtype)
        if self._pass_generator:
            target = self._clf.module if isinstance(self._clf, TorchClassifier) else self._clf.margin
            m = margin_from_logits(target(xs, generator=gen))
        else:
            m = self._clf.margin(xs)
        return m.reshape(k, n).mean(dim=0)


class BPDAAttack(PGD):
    """PGD through a BPDA wrapper: the forward pass is the model's, the backward pass replaces its
    non-differentiable layers by ``substitute`` (see :class:`BPDA`); success is judged on the model itself.

    Args:
        substitute: ``"identity"`` or ``"relu"`` (see :class:`BPDA`).
        steps, step_size, restarts, random_start, loss, targeted, early_stop: as in
            :class:`~toyrobust.attacks.gradient.PGD`.

    References:
        Athalye, Carlini and Wagner, ICML 2018; seed 004, section 9.
    """

    name = "bpda"

    def __init__(self, *, substitute: str = "relu", steps: int = 40, step_size: float | None = None,
                 restarts: int = 1, random_start: bool = True, loss: str = "margin", targeted: bool = False,
                 early_stop: bool = True) -> None:
        if substitute not in SUBSTITUTES:
            raise ValueError(f"substitute must be one of {', '.join(map(repr, SUBSTITUTES))}, got {substitute!r}")
        self._set_options(substitute=substitute, **self._pgd_options(steps, step_size, restarts, random_start,
                                                                     loss, targeted, early_stop))

    def supports(self, clf: Any, threat: Any, definition: str = "ball", dist: Any = None) -> Support:
        if not (isinstance(clf, TorchClassifier) and isinstance(clf.module, nn.Module)):
            return Support(False, f"BPDA wraps a torch module, got {type(clf).__name__}")
        if not any(getattr(type(m), "bpda_target", False) for m in clf.module.modules()):
            return Support(False, f"{type(clf.module).__name__} has no layer BPDA replaces (a class attribute "
                                  f"bpda_target = True marks one, e.g. toyrobust.KWTA); use pgd")
        return SUPPORTED

    def _attack(self, clf, x, y, threat, definition, dist, generator):
        wrapped = TorchClassifier(BPDA(clf.module, self.substitute))
        res = super()._attack(wrapped, x, y, threat, definition, dist, generator)
        return res.x_adv  # re-checked on the model itself by run()


class EOTAttack(PGD):
    """PGD on the margin averaged over ``samples`` draws of the model's randomness and Gaussian input noise of
    size ``noise`` (see :class:`EOT`); the draws come from the attack's generator. Success is judged on the model
    itself (one fresh draw); ``early_stop=False`` by default so that one lucky draw does not end a row's search.

    Args:
        samples: draws per forward pass (>= 1).
        noise: sigma >= 0 of the Gaussian input noise.
        steps, step_size, restarts, random_start, loss, targeted, early_stop: as in
            :class:`~toyrobust.attacks.gradient.PGD`.

    References:
        Athalye, Engstrom, Ilyas and Kwok, ICML 2018; seed 004, section 10.
    """

    name = "eot"

    def __init__(self, *, samples: int = 16, noise: float = 0.0, steps: int = 40, step_size: float | None = None,
                 restarts: int = 1, random_start: bool = True, loss: str = "margin", targeted: bool = False,
                 early_stop: bool = False) -> None:
        self._set_options(samples=check_int("samples", samples, 1), noise=check_number("noise", noise, nonnegative),
                          **self._pgd_options(steps, step_size, restarts, random_start, loss, targeted, early_stop))

    def _attack(self, clf, x, y, threat, definition, dist, generator):
        gen = make_generator(generator, x.device)
        eot = EOT(clf.module if isinstance(clf, TorchClassifier) else clf, self.samples, noise=self.noise,
                  generator=gen)
        res = super()._attack(TorchClassifier(eot), x, y, threat, definition, dist, gen)
        return res.x_adv
