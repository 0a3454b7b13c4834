"""ReLU with its three backward rules (standard, guided, deconvnet), and Dropout."""

import numpy as np

from .._validate import (
    as_generator,
    check_float,
    check_float_array,
)
from .base import Layer, validates_then_computes

__all__ = ["RELU_MODES", "ReLU", "Dropout"]


RELU_MODES = ("standard", "guided", "deconvnet")
"""The backward rules of :class:`ReLU` (``relu_mode`` of :meth:`Sequential.backward`)."""


class ReLU(Layer):
    """Rectified linear unit, with the three backward rules of the CAM literature.

    Shapes: any ``x`` -> ``out`` of the same shape.

    Notes
    -----
    ``out = max(x, 0)``, with ReLU'(0) = 0. ``backward(dout, mode)``:

    - ``"standard"``: ``dx = dout * [x > 0]`` (the true gradient);
    - ``"guided"``: ``dx = dout * [x > 0] * [dout > 0]`` (guided backpropagation,
      Springenberg et al. 2015, eq. in Fig. 1);
    - ``"deconvnet"``: ``dx = dout * [dout > 0]`` (Zeiler & Fergus 2014: the
      backward pass ignores the forward sign and rectifies the signal itself).
    """

    def _forward(self, x):
        self._cache = x > 0  # the mask [x > 0], one byte per value
        return np.maximum(x, 0)  # maximum(-0.0, 0) is +0.0: no negative zeros

    def _infer(self, x):
        self._cache = None
        return np.maximum(x, 0)  # no mask

    @validates_then_computes
    def backward(self, dout, mode="standard"):
        """Check ``mode`` and ``dout``, then compute :meth:`_backward`."""
        if mode not in RELU_MODES:
            raise ValueError(f"mode must be one of {RELU_MODES}, got {mode!r}")
        check_float_array(dout, "dout")
        return self._backward(dout, mode)

    def _backward(self, dout, mode="standard"):
        mask = self._cached()
        self._check_dout(dout, mask.shape)
        if mode == "standard":
            dx = dout * mask
            dx += 0.0  # dout * False is -0.0 where dout < 0; + 0.0 makes it +0.0
            return dx
        if mode == "guided":
            return np.maximum(dout, 0) * mask
        if mode == "deconvnet":
            return np.maximum(dout, 0)
        raise ValueError(f"mode must be one of {RELU_MODES}, got {mode!r}")




class Dropout(Layer):
    """Inverted dropout: in training, zero each input with probability ``p``
    and scale the survivors by ``1 / (1 - p)``; in eval mode, the identity.

    Parameters
    ----------
    p : float in [0, 1)
    rng : None, int or numpy.random.Generator
        Source of the masks.

    Shapes: any ``x`` -> ``out`` of the same shape.
    """

    def __init__(self, p=0.5, rng=None):
        super().__init__()
        self.p = check_float(p, "p", low=0.0, high=1.0, high_inclusive=False)
        self.rng = as_generator(rng)

    def config(self):
        return {"p": self.p}

    def _forward(self, x):
        if not self.training or self.p == 0.0:
            self._cache = (None, x.shape)
            return x.copy()
        keep = self.rng.random(x.shape) >= self.p
        scale = np.where(keep, 1.0 / (1.0 - self.p), 0.0).astype(x.dtype)
        self._cache = (scale, x.shape)
        return x * scale

    def _backward(self, dout):
        scale, x_shape = self._cached()
        self._check_dout(dout, x_shape)
        return dout.copy() if scale is None else dout * scale.astype(dout.dtype, copy=False)
