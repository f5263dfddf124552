"""``python -m bench``: the same program as ``python bench/run.py``."""

import sys

from bench.run import main

sys.exit(main())
