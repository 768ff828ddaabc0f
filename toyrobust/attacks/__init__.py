"""Attacks on (N, d) batches, as objects (:class:`Attack`) registered by name (:data:`ATTACKS`), and as functions.

Every attack is an :class:`Attack` subclass in one module of this package; defining it registers it, and
:func:`make_attack` turns a name, a class, an instance or a plain function into one. The functions (``pgd``,
``exact_attack``, ...) are the same attacks called once with their options.
"""

import importlib as _importlib
import pkgutil as _pkgutil

from .adaptive import BPDA, EOT, SUBSTITUTES, BPDAAttack, EOTAttack, bpda
from .base import ATTACK_KINDS, ATTACKS, Attack, FunctionAttack, Support, make_attack
from .blackbox import DIRECTIONS, BlackBoxPGD, blackbox_pgd, finite_difference_gradient
from .cw import CarliniWagnerL2, carlini_wagner_l2
from .exact import ExactAttack, default_attack, exact_attack, supports_exact
from .gradient import FGSM, PGD, fgsm, pgd
from .losses import LOSSES, attack_loss
from .manifold import OnManifoldPGD, ProjectionAttack, label_region_projection, on_manifold_attack, projection_attack
from .minimal import minimal_perturbation
from .result import AttackResult

# every module of this package is imported, so that an attack defined in a new file registers itself with no
# line added here; its class is then also an attribute of this package (``toyrobust.attacks.APGD``)
for _module in _pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        _importlib.import_module(f"{__name__}.{_module.name}")
globals().update({_cls.__name__: _cls for _cls in ATTACKS.values()})

__all__ = [
    "Attack",
    "AttackResult",
    "ATTACKS",
    "ATTACK_KINDS",
    "FunctionAttack",
    "Support",
    "make_attack",
    "FGSM",
    "PGD",
    "ExactAttack",
    "CarliniWagnerL2",
    "ProjectionAttack",
    "OnManifoldPGD",
    "BlackBoxPGD",
    "BPDAAttack",
    "EOTAttack",
    "BPDA",
    "EOT",
    "SUBSTITUTES",
    "bpda",
    "DIRECTIONS",
    "blackbox_pgd",
    "finite_difference_gradient",
    "LOSSES",
    "attack_loss",
    "fgsm",
    "pgd",
    "carlini_wagner_l2",
    "exact_attack",
    "minimal_perturbation",
    "supports_exact",
    "default_attack",
    "projection_attack",
    "on_manifold_attack",
    "label_region_projection",
]
__all__ += sorted(c.__name__ for c in ATTACKS.values() if c.__name__ not in __all__)
