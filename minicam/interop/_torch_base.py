"""What both directions of the PyTorch bridge share: the torch import, dtypes, the layer correspondence."""

import numpy as np

try:
    import torch
    from torch import nn
except ImportError as _err:  # pragma: no cover - exercised only without torch
    raise ImportError(
        "minicam.interop.torch needs PyTorch, an optional dependency of minicam: "
        "pip install torch==2.13.0 captum (a CPU-only build is enough; see requirements-torch.txt)"
    ) from _err

from .._validate import check_float_dtype

__all__ = ["torch", "nn", "torch_dtype", "numpy_dtype", "TENSOR_NAMES", "SUPPORTED_MODULES"]

TENSOR_NAMES = {"W": "weight", "b": "bias", "gamma": "weight", "beta": "bias"}
"""minicam parameter key -> torch tensor name (running statistics keep theirs)."""

SUPPORTED_MODULES = (
    nn.Conv2d, nn.Linear, nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Dropout,
    nn.BatchNorm2d,
)
"""The torch modules that convert to one minicam layer each."""


def torch_dtype(dtype):
    """``torch.float64`` / ``torch.float32`` from a torch dtype, NumPy dtype or name.

    Parameters
    ----------
    dtype : torch.dtype, numpy dtype, type or str
        Only float32 and float64 are accepted.
    """
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        return dtype
    dt = check_float_dtype(dtype)
    return torch.float64 if dt == np.float64 else torch.float32


def numpy_dtype(dtype):
    """``np.float64`` / ``np.float32`` from a torch dtype, NumPy dtype or name."""
    if isinstance(dtype, torch.dtype):
        return np.dtype(np.float64) if torch_dtype(dtype) == torch.float64 else np.dtype(np.float32)
    return check_float_dtype(dtype)
