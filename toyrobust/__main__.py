"""``python -m toyrobust``: the ``toyrobust`` command."""

import sys

from .launcher import main

sys.exit(main())
