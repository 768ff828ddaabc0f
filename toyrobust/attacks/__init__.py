"""White-box attacks on (N, d) batches: gradient attacks, exact attacks for analytic classifiers."""

from .base import Attack, AttackResult

__all__ = ["Attack", "AttackResult"]
