"""White-box attacks on (N, d) batches: gradient attacks, exact attacks for analytic classifiers."""

from .adaptive import BPDA, EOT, SUBSTITUTES, bpda
from .base import Attack, AttackResult
from .blackbox import DIRECTIONS, TransferResult, blackbox_pgd, finite_difference_gradient, transfer_attack
from .cw import carlini_wagner_l2
from .exact import default_attack, exact_attack, minimal_perturbation, supports_exact
from .gradient import fgsm, pgd
from .losses import LOSSES, attack_loss
from .manifold import label_region_projection, on_manifold_attack, projection_attack

__all__ = [
    "BPDA",
    "EOT",
    "SUBSTITUTES",
    "bpda",
    "DIRECTIONS",
    "TransferResult",
    "blackbox_pgd",
    "finite_difference_gradient",
    "transfer_attack",
    "Attack",
    "AttackResult",
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
