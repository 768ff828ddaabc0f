"""``python -m toyrobust.sweeps CONFIG [--store PATH] [--scheduler ADDRESS] [--resume] ...``."""

import sys

from .command import main

if __name__ == "__main__":
    sys.exit(main())
