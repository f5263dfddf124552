"""``python -m genconv``: the same command line as ``genconv``."""

import sys

from genconv.cli import main

sys.exit(main())
