"""Complete verification of ReLU networks: MILP (Tjeng et al. 2019) for Linf and L1, branch and bound with a
second-order-cone program per node for L2 (:mod:`.l2bab`), both with IBP and CROWN bound tightening; quadratic
networks exactly under L2 (the trust-region subproblem, :mod:`.quadratic`).

* :func:`verify` -- per point robust (proven) / vulnerable (counterexample) / unknown (time or node limit), for
  the ball, projection and error-region definitions.
* :func:`minimal_distance` -- the exact minimal adversarial Linf, L1 or L2 distance (ReLU networks), L2 distance
  (quadratic networks).
* :data:`VERIFIERS` -- the verifiers (:class:`ModelVerifier`), tried in order.
* :mod:`.bounds` -- IBP and CROWN bounds; :mod:`.alpha` -- alpha-CROWN (optimised lower slopes, a stage of
  :func:`verify`); :mod:`.network` -- reading a torch model; :mod:`.regions` -- label
  regions as unions of polyhedra.
"""

from . import regions
from .api import VERIFIERS, DistanceResult, VerificationResult, minimal_distance, verifier_for, verify
from .bounds import InputBall, LayerBounds, crown_bounds, ibp_bounds
from .common import ModelVerifier
from .network import ReluNetwork, extract_network

__all__ = [
    "verify",
    "minimal_distance",
    "VerificationResult",
    "DistanceResult",
    "VERIFIERS",
    "verifier_for",
    "ModelVerifier",
    "extract_network",
    "ReluNetwork",
    "InputBall",
    "LayerBounds",
    "ibp_bounds",
    "crown_bounds",
    "regions",
]
