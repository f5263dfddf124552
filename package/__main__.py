"""``python -m genconv``: the same command line as ``genconv``."""

import sys

from genconv.bindings.cli import main

sys.exit(main())
