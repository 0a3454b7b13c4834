"""Layers with hand-written forward and backward passes.

Every layer follows one protocol:

- ``params`` and ``grads``: dicts with the same keys (``"W"``, ``"b"``; for
  BatchNorm ``"gamma"``, ``"beta"``), ``grads`` overwritten by each backward;
- ``forward(x) -> out`` caches what backward needs;
- ``backward(dout) -> dx`` returns the gradient with respect to the input.
  The cache survives backward, so one forward serves several backward passes
  (Grad-CAM and guided backprop on the same forward, for instance);
- ``training``: ``train()`` / ``eval()`` switch Dropout and BatchNorm.

The public ``forward``/``backward`` check their argument (a finite float
array of the right rank) and call ``_forward``/``_backward``, which do the
work and check only shapes. :class:`~minicam.model.Sequential` checks its
input once and calls the unchecked methods, so a model does not scan every
activation for NaN.

No method writes into its arguments: ``x``, ``dout`` and the cached
activations are never modified in place. The cache never shares memory with
an array the caller holds (``x`` or the returned ``out``): what a layer keeps
is its own (an unfolded input, a mask, an argmax, a normalised copy), so
changing ``x`` or ``out`` after ``forward`` does not change the gradients.
Each layer computes in its input's dtype (float64 by default; float32 for
speed) and stores gradients in its parameters' dtype.

The layers live in rooms: :mod:`~minicam.layers.base` (the protocol),
:mod:`~minicam.layers.spatial` (Conv2d, pools, adaptive pool, GAP), :mod:`~minicam.layers.dense`
(Flatten, Linear), :mod:`~minicam.layers.activations` (ReLU, Dropout),
:mod:`~minicam.layers.normalization` (BatchNorm2d, L2Normalize).
"""

from .activations import RELU_MODES, Dropout, ReLU
from .base import Layer
from .dense import Flatten, Linear
from .normalization import BatchNorm2d, L2Normalize
from .spatial import AdaptiveAvgPool2d, AvgPool2d, Conv2d, GlobalAvgPool2d, MaxPool2d

__all__ = [
    "Layer",
    "Conv2d",
    "ReLU",
    "MaxPool2d",
    "AvgPool2d",
    "AdaptiveAvgPool2d",
    "GlobalAvgPool2d",
    "Flatten",
    "Linear",
    "Dropout",
    "BatchNorm2d",
    "L2Normalize",
    "RELU_MODES",
    "LAYER_TYPES",
]


LAYER_TYPES = {
    cls.__name__: cls
    for cls in (
        Conv2d, ReLU, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, GlobalAvgPool2d, Flatten, Linear, Dropout, BatchNorm2d,
        L2Normalize,
    )
}
"""Layer classes by name: the vocabulary of saved architectures."""
