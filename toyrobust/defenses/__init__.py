"""Defenses (k-winners-take-all, odds-are-odd detection) and their adaptive evaluation against the optimal risk."""

from .detection import *  # noqa: F401,F403
from .evaluate import *  # noqa: F401,F403
from .kwta import *  # noqa: F401,F403
