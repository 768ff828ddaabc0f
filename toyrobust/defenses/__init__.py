"""Defenses against adversarial examples, judged against the toy distributions' exact risks."""

from .smoothing import (  # noqa: F401
                        RandomizedSmoothing,
                        certified_accuracy,
                        certified_accuracy_curves,
                        exact_linear_radius,
                        linear_certified_accuracy,
                        train_with_noise,
)
