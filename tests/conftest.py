import os

if "PYTEST_XDIST_WORKER" in os.environ:
    # Under pytest-xdist (-n 2) each worker gets one core: one BLAS/OpenMP thread each, set
    # before NumPy or torch load (two workers with two threads each contend for the cores).
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import numpy as np
import pytest


@pytest.fixture
def rng():
    """A fresh, seeded generator per test (no global random state)."""
    return np.random.default_rng(1234)
