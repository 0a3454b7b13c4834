"""``python -m minicam.bench``: the benchmark's own entry point (what run() starts per thread count)."""

import sys

from . import main

if __name__ == "__main__":  # importing this module (e.g. walking the package) runs nothing
    sys.exit(main())
