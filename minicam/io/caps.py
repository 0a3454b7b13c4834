"""The format's constants and the caps on what a model file may declare (see :mod:`minicam.io`)."""

__all__ = [
    "FORMAT", "FORMAT_VERSION", "ARCHITECTURE_KEY", "MAX_ARCHITECTURE_CHARS", "MAX_LAYERS", "MAX_FEATURES",
    "MAX_KERNEL_SIZE", "MAX_STRIDE", "MAX_PADDING", "MAX_OUTPUT_SIZE", "MAX_ARRAY_ELEMENTS", "MAX_PARAMETERS",
    "MAX_ABS_VALUE", "MAX_DEPTH",
]

FORMAT = "minicam-model"
FORMAT_VERSION = 2
ARCHITECTURE_KEY = "__architecture__"

# Caps on what a model file may declare (see the module docstring). Each is far
# above any model minicam trains or converts (VGG-16's largest matrix,
# 25088 x 4096, is 103 M scalars) and far below what would exhaust a laptop.
MAX_ARCHITECTURE_CHARS = 1_000_000
"""Longest architecture JSON text, in characters (metadata included)."""
MAX_LAYERS = 1_000
"""Most layers in one model."""
MAX_FEATURES = 65_536
"""Largest ``in_channels``, ``out_channels``, ``in_features``, ``out_features``, ``num_features``."""
MAX_KERNEL_SIZE = 64
"""Largest ``kernel_size`` of a convolution or pooling layer."""
MAX_STRIDE = 64
"""Largest ``stride``."""
MAX_PADDING = 64
"""Largest ``padding``."""
MAX_OUTPUT_SIZE = 1024
"""Largest side of an adaptive pooling layer's ``output_size``."""
MAX_ARRAY_ELEMENTS = 2**27
"""Most scalars in one stored array (134 M: 1 GiB in float64)."""
MAX_PARAMETERS = 2**28
"""Most scalars in all stored arrays together (268 M: 2 GiB in float64)."""
MAX_ABS_VALUE = 1e12
"""Largest magnitude of a stored value. Trained weights and statistics are
many orders of magnitude smaller; 1e12 squared is still far from float32's
3.4e38, so a value at the cap cannot overflow a multiply-add by itself."""

MAX_DEPTH = 16
"""Deepest nesting of containers in a model file."""
