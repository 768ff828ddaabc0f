"""Complete verification of ReLU networks: MILP (Tjeng et al. 2019) with IBP and CROWN bound tightening.

* :func:`verify` -- per point robust (proven) / vulnerable (counterexample) / unknown (time limit, or an L2 ball),
  for the ball, projection and error-region definitions.
* :func:`minimal_distance` -- the exact minimal adversarial Linf or L1 distance.
* :mod:`.bounds` -- IBP and CROWN bounds; :mod:`.network` -- reading a torch model; :mod:`.regions` -- label
  regions as unions of polyhedra.
"""

from . import regions
from .api import DistanceResult, VerificationResult, minimal_distance, verify
from .bounds import InputBall, LayerBounds, crown_bounds, ibp_bounds
from .network import ReluNetwork, extract_network

__all__ = [
    "verify",
    "minimal_distance",
    "VerificationResult",
    "DistanceResult",
    "extract_network",
    "ReluNetwork",
    "InputBall",
    "LayerBounds",
    "ibp_bounds",
    "crown_bounds",
    "regions",
]
