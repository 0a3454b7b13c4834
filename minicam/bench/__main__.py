"""``python -m minicam.bench``: the benchmark's own entry point (what run() starts per thread count)."""

import sys

from . import main

sys.exit(main())
