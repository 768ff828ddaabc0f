"""The toy distributions: one module each, all sharing :class:`~toyrobust.distributions.base.Distribution`.

Every module of this package is imported here, and a :class:`Distribution` subclass with a ``cli_name``
registers itself when its module is imported: a new distribution is a new module in this folder (plus its
closed forms in ``toyrobust/risks/``), with no list to edit.
"""

import importlib
import pkgutil

from .base import (
    LABELS,
    Distribution,
    ExampleSet,
    Support,
    cli_constructors,
    registered_distributions,
    unregister_distribution,
)
from .gaussian_mixture import GaussianMixture
from .point_masses import PointMasses
from .spheres import ConcentricSpheres
from .tsipras import Tsipras

for _info in pkgutil.iter_modules(__path__):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

#: every distribution class, by command-line name
REGISTRY = registered_distributions()

__all__ = ["LABELS", "Distribution", "ExampleSet", "Support", "PointMasses", "Tsipras", "GaussianMixture",
           "ConcentricSpheres", "REGISTRY", "registered_distributions", "unregister_distribution", "cli_constructors"]
__all__ += [cls.__name__ for cls in REGISTRY.values() if cls.__name__ not in __all__]
globals().update({cls.__name__: cls for cls in REGISTRY.values()})
