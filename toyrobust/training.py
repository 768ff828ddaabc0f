"""Training on fresh samples: standard, PGD adversarial (Madry) and closed-form adversarial (linear models).

Every step draws a new batch from the distribution with a seeded generator (no fixed dataset unless one is
given), and minimises the logistic loss of the one-logit margin ``m(x)``:

* standard:     ``E softplus(-y m(x))``;
* ``"pgd"``:     ``E softplus(-y m(x_adv))`` with ``x_adv`` found by :func:`toyrobust.attacks.pgd` in the
  threat ball (Madry et al. 2018), any norm;
* ``"closed-form"`` (linear models ``m(x) = w.x + b``): the inner maximum is exact,
  ``max_{||d||_p <= eps} softplus(-y (w.(x + d) + b)) = softplus(-y (w.x + b) + eps ||w||_q)`` with
  ``1/p + 1/q = 1`` (the dual norm over the threat's coordinates; survey seed 004, whose printed formula has
  the sign of the ``eps ||w||`` term flipped).

Checkpoints (model, optimizer, generator states, step, history) are written atomically and hold only tensors
and plain containers, so they load with ``torch.load(..., weights_only=True)``; a run resumed from step k
reproduces the uninterrupted run exactly (same seed, same device).

References:
    A. Madry, A. Makelov, L. Schmidt, D. Tsipras, A. Vladu, "Towards deep learning models resistant to
    adversarial attacks", ICLR 2018.
    EPFL CS-433 lecture notes "Adversarial ML" (seed 003): adversarial training and its fixed point.
    "An excursion into adversarial robustness" (seed 004): the closed-form inner max for linear models.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .attacks import ATTACKS, Attack, make_attack
from .classifiers import TorchClassifier, check_labels, margin_from_logits
from .constraints import check_int, check_positive_float
from .models import LinearModel
from .risks.robust_loss import robust_logistic_loss
from .threats import ThreatModel

__all__ = ["TrainResult", "train", "logistic_loss", "robust_linear_loss"]

#: the built-in settings of ``adversarial=`` (any registered attack name or Attack object works too)
ADVERSARIAL = (None, "pgd", "closed-form")
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "cosine")
CHECKPOINT_FORMAT = "toyrobust-train-1"
#: PGD options used during training unless overridden by ``attack_options`` (Madry et al. run every step)
DEFAULT_ATTACK_OPTIONS = {"steps": 10, "early_stop": False}


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        model: the trained module (the same object that was passed in), left in eval mode.
        history: one record per evaluation: ``step``, ``loss`` (mean training loss since the previous record,
            None at step 0), ``risk`` (standard error rate on the evaluation sample), ``eval_n``, ``adv_risk``
            (error rate under ``threat``, or None), and for :class:`~toyrobust.models.LinearModel` the weights
            ``w`` (list of floats) and bias ``b``.
        steps: optimisation steps completed in total (including those before a resume).
        start_step: the step this call started from (0, or the checkpoint's step when resumed).
        stopped_early: the callback asked to stop.
        wall_time: seconds spent in this call.
        train_time: seconds spent in training steps (sampling, attack, forward, backward, update) only.
        samples_per_second: training samples per second of ``train_time`` in this call.
        checkpoint: the checkpoint path, or None.
    """

    model: nn.Module
    history: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    start_step: int = 0
    stopped_early: bool = False
    wall_time: float = 0.0
    train_time: float = 0.0
    samples_per_second: float = math.nan
    checkpoint: str | None = None

    def series(self, key: str) -> list[Any]:
        """The values of one history field, in step order (e.g. ``result.series("risk")``)."""
        return [rec.get(key) for rec in self.history]


def logistic_loss(margin: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean logistic loss ``mean softplus(-y * margin)`` (numerically stable for any margin).

    Args:
        margin: (N,) one-logit margins, positive meaning +1.
        y: (N,) labels -1/+1.
    """
    return F.softplus(-y.to(margin.dtype) * margin).mean()


def robust_linear_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel) -> torch.Tensor:
    """Mean worst-case logistic loss of a linear model over the threat ball, in closed form.

    ``max_{x' in B(x)} softplus(-y (w.x' + b)) = softplus(-y (w.x + b) + eps ||w||_q)`` (Hoelder: the inner
    minimum of ``y w.d`` over ``||d||_p <= eps`` is ``-eps ||w||_q``, ``q`` the dual exponent, the norm taken
    over the threat's coordinates), computed by the analytic engine's
    :func:`toyrobust.risks.robust_loss.robust_logistic_loss`. Differentiable in the weights (a subgradient
    where ``||w||_q`` has a kink).

    Args:
        model: a :class:`~toyrobust.models.LinearModel` (or any module with a 1-output ``nn.Linear`` as
            ``.linear``).
        x: (N, d) inputs; y: (N,) labels -1/+1.
        threat: the threat model (numeric eps).
    """
    w, b = _linear_params(model)
    return robust_logistic_loss(w, b, x, y, threat)


def _linear_params(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    lin = getattr(model, "linear", None)
    if not isinstance(lin, nn.Linear) or lin.out_features != 1:
        raise TypeError(
            f"model must be a linear model (toyrobust.LinearModel) for adversarial='closed-form', "
            f"got {type(model).__name__}; use adversarial='pgd' for other models")
    b = lin.bias[0] if lin.bias is not None else torch.zeros((), dtype=lin.weight.dtype, device=lin.weight.device)
    return lin.weight[0], b


def _margin(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return margin_from_logits(model(x))


def _derive_seed(seed: int, stream: int) -> int:
    """Independent seeds for the data, attack and evaluation streams of one run."""
    return int(np.random.SeedSequence([seed, stream]).generate_state(1, np.uint64)[0] % (2**63 - 1))


def _new_generator(seed: int, device: torch.device) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def _check_int(name: str, value: Any, low: int) -> int:
    # one integer validator (constraints.check_int); training has always answered ValueError for both cases
    try:
        return check_int(name, value, low)
    except TypeError as err:
        raise ValueError(str(err)) from None


def _make_optimizer(optimizer: Any, params: list[torch.Tensor], lr: float, options: dict) -> torch.optim.Optimizer:
    if callable(optimizer) and not isinstance(optimizer, str):
        opt = optimizer(params)
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(f"optimizer factory must return a torch.optim.Optimizer, got {type(opt).__name__}")
        return opt
    if optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, **options)
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, **options)
    raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)} or a factory params -> Optimizer, "
                     f"got {optimizer!r}")


def _lr_at(schedule: str, lr: float, step: int, steps: int) -> float:
    if schedule == "constant":
        return lr
    return 0.5 * lr * (1 + math.cos(math.pi * step / max(steps, 1)))


def _atomic_save(obj: dict, path: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pt", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows: a reader sees the old or the new file, never half
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _config(dist: Any, model: nn.Module, *, batch_size: int, lr: float, optimizer: Any, adversarial: Any,
            threat: Any, attack_options: dict, seed: int, schedule: str, steps: int, dataset: Any,
            optimizer_options: dict) -> dict[str, Any]:
    """What must match for a checkpoint to be resumed (plain strings and numbers only)."""
    return {
        "dist": repr(dist),
        "model": type(model).__name__,
        "batch_size": batch_size,
        "lr": lr,
        "optimizer": optimizer if isinstance(optimizer, str) else "custom",
        "optimizer_options": repr(sorted(optimizer_options.items())),
        "adversarial": "none" if adversarial is None else adversarial,
        "threat": repr(threat),
        "attack_options": repr(sorted(attack_options.items())) if adversarial not in (None, "closed-form") else "",
        "seed": seed,
        "schedule": schedule,
        "steps": steps if schedule != "constant" else -1,
        "dataset": "none" if dataset is None else f"{tuple(dataset[0].shape)}",
    }


@torch.no_grad()
def _evaluate(model: nn.Module, dist: Any, threat: Any, *, eval_n: int, seed: int, device: torch.device,
              dtype: torch.dtype, chunk: int, attack: Attack | None) -> tuple[float, float | None]:
    """Error rates on a fixed evaluation sample (same points every time: regenerated from ``seed``)."""
    gen = _new_generator(_derive_seed(seed, 2), device)
    attack_gen = _new_generator(_derive_seed(seed, 3), device)
    errors, adv_errors, done = 0, 0, 0
    linear = isinstance(model, LinearModel)
    while done < eval_n:
        n = min(chunk, eval_n - done)
        x, y = dist.sample(n, generator=gen, device=device, dtype=dtype)
        m = _margin(model, x)
        pred = torch.where(m >= 0, 1, -1)
        errors += int((pred != y).sum())
        if threat is not None:
            if linear:
                # exact worst case of a linear rule: the margin moves by eps * ||w||_q towards the wrong side
                w, _ = _linear_params(model)
                drop = float(threat.eps) * threat.dual_norm(w[None, :])[0]
                worst = torch.where(y == 1, m - drop, m + drop)
                adv_errors += int((torch.where(worst >= 0, 1, -1) != y).sum())
            else:
                with torch.enable_grad():
                    x_adv = _attack(model, dist, x, y, threat, attack_gen, attack)
                adv_errors += int((torch.where(_margin(model, x_adv) >= 0, 1, -1) != y).sum())
        done += n
    return errors / eval_n, (adv_errors / eval_n if threat is not None else None)


def _attack(model: nn.Module, dist: Any, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
            generator: torch.Generator, attack: Attack) -> torch.Tensor:
    result = attack.run(TorchClassifier(model), x, y, threat, dist=dist, generator=generator)
    return result.x_adv.detach()


def _training_attack(adversarial: Any, attack_options: dict | None, threat: ThreatModel | None, model: nn.Module,
                     dist: Any) -> tuple[Attack | None, dict, str | None]:
    """The attack of adversarial training (and of the adversarial evaluation of non-linear models), its options and
    its name: PGD with :data:`DEFAULT_ATTACK_OPTIONS` unless ``adversarial`` names or is another attack."""
    if threat is None:
        return None, {**DEFAULT_ATTACK_OPTIONS, **(attack_options or {})}, adversarial
    name = adversarial if isinstance(adversarial, str) and adversarial != "closed-form" else None
    base = adversarial if isinstance(adversarial, Attack) else (name or "pgd")
    if isinstance(base, str) and ATTACKS.canonical(base) not in ATTACKS:
        raise ValueError(f"adversarial must be None, 'closed-form' or an attack name ({ATTACKS.listing()}), "
                         f"got {adversarial!r}")
    if isinstance(base, str) and ATTACKS.canonical(base) == "pgd":
        options = {**DEFAULT_ATTACK_OPTIONS, **(attack_options or {})}
    else:
        options = dict(attack_options or {})
    attack = make_attack(base, options)
    support = attack.supports(TorchClassifier(model), threat, "ball", dist)
    if not support:
        raise ValueError(f"adversarial={attack.label!r} cannot be trained against: {support.reason}")
    if adversarial is None or adversarial == "closed-form":
        return attack, options, adversarial
    return attack, options, attack.label


def train(
    model: nn.Module,
    dist: Any,
    *,
    steps: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    optimizer: Any = "adam",
    optimizer_options: dict | None = None,
    schedule: str = "constant",
    adversarial: str | None = None,
    threat: ThreatModel | None = None,
    attack_options: dict | None = None,
    seed: int = 0,
    device: Any = None,
    dataset: tuple[torch.Tensor, torch.Tensor] | None = None,
    eval_every: int | None = None,
    eval_n: int = 10_000,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = True,
    progress: bool | None = None,
    callback: Callable[[int, nn.Module, dict | None], Any] | None = None,
) -> TrainResult:
    """Train a one-logit model on fresh samples of ``dist`` with the (optionally adversarial) logistic loss.

    Each step draws ``batch_size`` new points (or a batch of ``dataset``, with replacement); one optimizer step on

    * ``adversarial=None``: ``mean softplus(-y m(x))``;
    * an attack (``"pgd"``, any name or Attack): ``mean softplus(-y m(x_adv))``, ``x_adv`` found in eval mode;
    * ``adversarial="closed-form"``: ``mean softplus(-y (w.x + b) + eps ||w||_q)`` (linear models: the exact max).

    Every ``eval_every`` steps (and at the start and the end) the standard error rate, and with ``threat`` the
    adversarial one (exact for linear models, the attack otherwise), is measured on a fixed sample of ``eval_n``
    points from its own seeded stream. The model is left in **eval mode** on return (``model.train()`` to continue).

    Args:
        model: a torch module mapping (N, d) to (N,), (N, 1) or (N, 2) logits (e.g. :class:`LinearModel`,
            :class:`QuadraticNet`, :class:`MLP`). It is moved to ``device`` in place.
        dist: a numeric distribution (``dist.dim`` must match the model's input).
        steps: total number of optimisation steps (a resumed run continues up to ``steps``).
        batch_size: samples per step.
        lr: learning rate (the peak rate with ``schedule="cosine"``).
        optimizer: ``"adam"``, ``"sgd"``, or a factory ``params -> torch.optim.Optimizer``.
        optimizer_options: extra keyword arguments of the optimizer (e.g. ``{"momentum": 0.9}``).
        schedule: ``"constant"`` or ``"cosine"`` (``lr_t = lr (1 + cos(pi t / steps)) / 2``, no state).
        adversarial: None, ``"pgd"``, ``"closed-form"``, or any registered attack name or
            :class:`~toyrobust.attacks.Attack` object (e.g. ``"apgd"``, ``tr.APGD(steps=20)``): the batches are
            replaced by that attack's points.
        threat: the threat model for adversarial training and for the adversarial evaluation.
        attack_options: options of the attack (for PGD, the default, ``steps=10, early_stop=False`` unless
            overridden), used in training and in the adversarial evaluation.
        seed: int >= 0; the data, attack and evaluation streams are derived from it.
        device: where to train; None means the device of the model's parameters.
        dataset: optional fixed training set ``(x, y)`` of shapes (n, d) and (n,) instead of fresh samples.
        eval_every: steps between evaluations (None: ``max(1, steps // 10)``; 0: only the final one).
        eval_n: size of the evaluation sample (0 disables evaluation altogether).
        checkpoint: file path, written atomically every ``checkpoint_every`` steps (None: ``max(1, steps // 20)``,
            the most an interrupted run loses) and at the end; ``resume``: continue from an existing checkpoint
            (its settings must match; False overwrites it).
        progress: show a tqdm bar; None means only when stderr is a terminal.
        callback: ``callback(step, model, record)`` after every step (``record`` is the new history entry at
            an evaluation, else None); returning True stops training (a checkpoint is written first).

    Returns:
        :class:`TrainResult`.

    References:
        Madry et al. 2018 (PGD adversarial training); seeds 003 and 004 (closed-form adversarial training of
        linear models and its fixed point).
    """
    plan = _plan(model, dist, _TrainRequest(
        steps=steps, batch_size=batch_size, lr=lr, optimizer=optimizer, optimizer_options=optimizer_options,
        schedule=schedule, adversarial=adversarial, threat=threat, attack_options=attack_options, seed=seed,
        device=device, dataset=dataset, eval_every=eval_every, eval_n=eval_n, checkpoint=checkpoint,
        checkpoint_every=checkpoint_every, progress=progress))
    run = _Run(model, dist, plan)
    if plan.path is not None and resume and os.path.exists(plan.path):
        run.resume()
    return run.loop(callback)


@dataclass
class _Plan:
    """The validated settings of one training run (everything :func:`train` was asked for)."""

    steps: int
    batch_size: int
    lr: float
    schedule: str
    adversarial: str | None
    threat: ThreatModel | None
    attack_options: dict
    attack: Attack | None
    seed: int
    device: torch.device
    dtype: torch.dtype
    dataset: tuple | None
    eval_every: int
    eval_n: int
    checkpoint_every: int
    path: str | None
    progress: bool
    optimizer: torch.optim.Optimizer
    config: dict[str, Any]


@dataclass(frozen=True)
class _TrainRequest:
    """The keyword options of one :func:`train` call, as given (validated by :func:`_plan`)."""

    steps: Any
    batch_size: Any
    lr: Any
    optimizer: Any
    optimizer_options: Any
    schedule: Any
    adversarial: Any
    threat: Any
    attack_options: Any
    seed: Any
    device: Any
    dataset: Any
    eval_every: Any
    eval_n: Any
    checkpoint: Any
    checkpoint_every: Any
    progress: Any


def _plan(model: nn.Module, dist: Any, request: _TrainRequest) -> _Plan:
    """Validate every argument of :func:`train` (before any work) and place the model on its device."""
    (steps, batch_size, lr, optimizer, optimizer_options, schedule, adversarial, threat, attack_options, seed, device,
     dataset, eval_every, eval_n, checkpoint, checkpoint_every, progress) = (
        getattr(request, f.name) for f in fields(_TrainRequest))
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if getattr(dist, "is_symbolic", True) or not hasattr(dist, "sample"):
        raise TypeError(f"dist must be a toyrobust distribution with numeric parameters, got {dist!r}")
    steps = _check_int("steps", steps, 0)
    batch_size = _check_int("batch_size", batch_size, 1)
    lr = check_positive_float("lr", lr)
    seed = _check_int("seed", seed, 0)
    eval_n = _check_int("eval_n", eval_n, 0)
    eval_every = max(1, steps // 10) if eval_every is None else _check_int("eval_every", eval_every, 0)
    checkpoint_every = (max(1, steps // 20) if checkpoint_every is None
                        else _check_int("checkpoint_every", checkpoint_every, 1))
    if adversarial is not None and adversarial != "closed-form" and not isinstance(adversarial, (str, Attack)):
        raise TypeError(f"adversarial must be None, 'closed-form', an attack name ({ATTACKS.listing()}) or an "
                        f"Attack, got {type(adversarial).__name__}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    if threat is not None and not isinstance(threat, ThreatModel):
        raise TypeError(f"threat must be a toyrobust threat model (Linf, L2, L1) or None, got {threat!r}")
    if adversarial is not None and threat is None:
        raise ValueError(f"adversarial={adversarial!r} needs a threat model: pass threat=Linf(eps) (or L2, L1)")
    if threat is not None:
        threat.radius  # noqa: B018  (a symbolic radius cannot be trained against: raises TypeError)
    if adversarial == "closed-form":
        _linear_params(model)
    attack, attack_options, adversarial = _training_attack(adversarial, attack_options, threat, model, dist)
    optimizer_options = dict(optimizer_options or {})
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    device = torch.device(params[0].device if device is None else device)
    model.to(device)
    dtype = params[0].dtype
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"model parameters must be float32 or float64, got {dtype}")
    model_dim = getattr(model, "dim", None)
    if model_dim is not None and model_dim != dist.dim:
        raise ValueError(f"dist.dim = {dist.dim} does not match the model's input dimension {model_dim}")
    if dataset is not None:
        dataset = _check_dataset(dataset, dist.dim, device, dtype)
    if progress is None:
        progress = bool(getattr(sys.stderr, "isatty", lambda: False)())
    opt = _make_optimizer(optimizer, params, lr, optimizer_options)
    config = _config(dist, model, batch_size=batch_size, lr=lr, optimizer=optimizer, adversarial=adversarial,
                     threat=threat, attack_options=attack_options, seed=seed, schedule=schedule, steps=steps,
                     dataset=dataset, optimizer_options=optimizer_options)
    return _Plan(steps=steps, batch_size=batch_size, lr=lr, schedule=schedule, adversarial=adversarial,
                 threat=threat, attack_options=attack_options, attack=attack, seed=seed, device=device, dtype=dtype,
                 dataset=dataset, eval_every=eval_every, eval_n=eval_n, checkpoint_every=checkpoint_every,
                 path=None if checkpoint is None else os.fspath(checkpoint), progress=bool(progress), optimizer=opt,
                 config=config)


class _Run:
    """The state of one training run: model, optimizer, the data and attack streams, the history, the running
    loss; small steps (:meth:`batch`, :meth:`update`, :meth:`record`, :meth:`save`, :meth:`resume`) and the loop."""

    def __init__(self, model: nn.Module, dist: Any, plan: _Plan):
        self.model, self.dist, self.plan = model, dist, plan
        self.opt = plan.optimizer
        self.data_gen = _new_generator(_derive_seed(plan.seed, 0), plan.device)
        self.attack_gen = _new_generator(_derive_seed(plan.seed, 1), plan.device)
        self.history: list[dict[str, Any]] = []
        self.start = 0
        self._reset_loss()

    def _reset_loss(self) -> None:
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=self.plan.device)
        self.loss_count = 0

    # ------------------------------------------------------------------ checkpoints
    def resume(self) -> None:
        """Load the checkpoint (it must have been written with the same settings)."""
        state = torch.load(self.plan.path, map_location=self.plan.device, weights_only=True)
        _check_checkpoint(state, self.plan.config, self.plan.path)
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.data_gen.set_state(state["data_generator"].cpu())
        self.attack_gen.set_state(state["attack_generator"].cpu())
        self.history = list(state["history"])
        self.start = int(state["step"])
        self.loss_sum = state["loss_sum"].to(device=self.plan.device, dtype=torch.float64)
        self.loss_count = int(state["loss_count"])

    def save(self, step: int) -> None:
        if self.plan.path is None:
            return
        _atomic_save({
            "format": CHECKPOINT_FORMAT,
            "config": self.plan.config,
            "step": step,
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "data_generator": self.data_gen.get_state(),
            "attack_generator": self.attack_gen.get_state(),
            "history": self.history,
            "loss_sum": self.loss_sum.detach().cpu(),
            "loss_count": self.loss_count,
        }, self.plan.path)

    # ------------------------------------------------------------------ evaluation
    def record(self, step: int) -> dict[str, Any]:
        """Append the mean training loss since the last record and the evaluation risks to the history."""
        plan, model = self.plan, self.model
        rec: dict[str, Any] = {"step": step, "loss": float(self.loss_sum) / self.loss_count
                               if self.loss_count else None}
        self._reset_loss()
        was_training = model.training
        model.eval()
        if plan.eval_n:
            risk, adv = _evaluate(model, self.dist, plan.threat, eval_n=plan.eval_n, seed=plan.seed,
                                  device=plan.device, dtype=plan.dtype, chunk=max(plan.batch_size, 4096),
                                  attack=plan.attack)
        else:
            risk, adv = None, None
        model.train(was_training)
        rec.update(risk=risk, eval_n=plan.eval_n, adv_risk=adv)
        if isinstance(model, LinearModel):
            rec["w"] = model.weight.detach().cpu().to(torch.float64).tolist()
            rec["b"] = float(model.bias.detach())
        self.history.append(rec)
        return rec

    # ------------------------------------------------------------------ one step
    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A fresh batch (or one drawn from the fixed dataset), attacked first for PGD training."""
        plan = self.plan
        if plan.dataset is None:
            x, y = self.dist.sample(plan.batch_size, generator=self.data_gen, device=plan.device, dtype=plan.dtype)
        else:
            idx = torch.randint(0, plan.dataset[0].shape[0], (plan.batch_size,), generator=self.data_gen,
                                device=plan.device)
            x, y = plan.dataset[0][idx], plan.dataset[1][idx]
        if plan.adversarial not in (None, "closed-form"):
            self.model.eval()
            x = _attack(self.model, self.dist, x, y, plan.threat, self.attack_gen, plan.attack)
            self.model.train()
        return x, y

    def update(self, step: int) -> None:
        """One optimiser step on the (adversarial) logistic loss of a fresh batch."""
        plan = self.plan
        if plan.schedule != "constant":
            for group in self.opt.param_groups:
                group["lr"] = _lr_at(plan.schedule, plan.lr, step, plan.steps)
        x, y = self.batch()
        self.opt.zero_grad(set_to_none=True)
        if plan.adversarial == "closed-form":
            loss = robust_linear_loss(self.model, x, y, plan.threat)
        else:
            loss = logistic_loss(_margin(self.model, x), y)
        loss.backward()
        self.opt.step()
        self.loss_sum += loss.detach()
        self.loss_count += 1

    # ------------------------------------------------------------------ the loop
    def loop(self, callback: Callable[[int, nn.Module, dict | None], Any] | None) -> TrainResult:
        plan, model = self.plan, self.model
        t_call = time.perf_counter()
        train_time = 0.0
        stopped = False
        step = self.start
        bar = None
        if plan.progress:
            from tqdm.auto import tqdm  # loaded only when a bar is shown

            bar = tqdm(total=plan.steps, initial=self.start, desc="train", unit="step", dynamic_ncols=True)
        try:
            if self.start == 0 and plan.eval_every and not self.history:
                self.record(0)
            model.train()
            t0 = time.perf_counter()
            while step < plan.steps:
                self.update(step)
                step += 1
                rec = None
                at_eval = (plan.eval_every and step % plan.eval_every == 0) or step == plan.steps
                at_save = step % plan.checkpoint_every == 0 or step == plan.steps
                if at_eval or at_save or callback is not None or bar is not None:
                    train_time += time.perf_counter() - t0  # evaluation and saving are not training time
                    if at_eval:
                        rec = self.record(step)
                    if bar is not None:
                        bar.update(1)
                        if rec is not None:
                            bar.set_postfix(loss=f"{rec['loss']:.4g}", risk=rec["risk"], refresh=False)
                    if callback is not None and callback(step, model, rec):
                        stopped = True
                    if at_save or stopped:
                        self.save(step)
                    if stopped:
                        break
                    t0 = time.perf_counter()
            else:
                train_time += time.perf_counter() - t0
        finally:
            if bar is not None:
                bar.close()
            model.eval()
        n_done = step - self.start
        return TrainResult(
            model=model, history=self.history, steps=step, start_step=self.start, stopped_early=stopped,
            wall_time=time.perf_counter() - t_call, train_time=train_time,
            samples_per_second=n_done * plan.batch_size / train_time if n_done and train_time > 0 else math.nan,
            checkpoint=plan.path,
        )


def _check_dataset(dataset: Any, dim: Any, device: torch.device, dtype: torch.dtype) -> tuple:
    if not (isinstance(dataset, (tuple, list)) and len(dataset) == 2):
        raise TypeError(f"dataset must be a pair (x, y) of tensors, got {type(dataset).__name__}")
    x, y = dataset
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
        raise TypeError("dataset must be a pair (x, y) of torch tensors")
    if x.ndim != 2 or x.shape[1] != dim or y.shape != (x.shape[0],) or x.shape[0] == 0:
        raise ValueError(f"dataset must be (x, y) with x of shape (n, {dim}) and y of shape (n,), n >= 1, got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    y = check_labels(y, x.shape[0], None, name="dataset labels y")  # the one label check (one-logit models)
    return x.to(device=device, dtype=dtype), y.to(device=device, dtype=torch.int64)


def _check_checkpoint(state: Any, config: dict, path: str) -> None:
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint {path!r} is not a toyrobust training checkpoint ({CHECKPOINT_FORMAT})")
    saved = state["config"]
    diff = [k for k in config if saved.get(k) != config[k]]
    if diff:
        shown = ", ".join(f"{k}: checkpoint {saved.get(k)!r} vs now {config[k]!r}" for k in diff)
        raise ValueError(f"checkpoint {path!r} was written with other settings ({shown}); pass resume=False to "
                         "start over, or another checkpoint path")
