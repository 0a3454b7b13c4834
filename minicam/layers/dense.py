"""Layers on vectors: flatten (channel-major) and the fully connected layer."""

import numpy as np

from .._validate import (
    as_generator,
    check_float_dtype,
    check_int,
)
from .base import Layer, he_normal

__all__ = ["Flatten", "Linear"]


class Flatten(Layer):
    """Flatten every axis but the first, in NCHW (channel-major) order.

    Shapes: x : (N, C, H, W) (or any ``(N, ...)``) -> out : (N, C*H*W).
    """

    def output_shape(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(f"Flatten expects an input with at least 2 dimensions, got shape {tuple(input_shape)}")
        return (input_shape[0], int(np.prod(input_shape[1:])))

    def _forward(self, x):
        self.output_shape(x.shape)
        self._cache = x.shape
        return x.reshape(x.shape[0], -1).copy()  # a view would let a later write into x change the output

    def _backward(self, dout):
        x_shape = self._cached()
        self._check_dout(dout, (x_shape[0], int(np.prod(x_shape[1:]))))
        return dout.reshape(x_shape).copy()


class Linear(Layer):
    """Fully connected layer, ``y = x @ W.T + b`` (PyTorch's layout).

    Parameters
    ----------
    in_features, out_features : int
    rng : None, int or numpy.random.Generator
        Seed for He-normal initialisation (biases start at zero).
    dtype : float64 (default) or float32

    Shapes
    ------
    x : (N, in_features) -> out : (N, out_features).
    ``params["W"]``: (out_features, in_features); ``params["b"]``: (out_features,).

    Notes
    -----
    ``dx = dout @ W``, ``dW = dout.T @ x``, ``db = sum_n dout``.
    """

    def __init__(self, in_features, out_features, rng=None, dtype=np.float64):
        super().__init__()
        self.in_features = check_int(in_features, "in_features", minimum=1)
        self.out_features = check_int(out_features, "out_features", minimum=1)
        dtype = check_float_dtype(dtype)
        gen = as_generator(rng)
        self.params["W"] = he_normal(gen, (self.out_features, self.in_features), self.in_features, dtype)
        self.params["b"] = np.zeros(self.out_features, dtype=dtype)
        self.grads = {key: np.zeros_like(v) for key, v in self.params.items()}

    def config(self):
        return {"in_features": self.in_features, "out_features": self.out_features}

    def output_shape(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(f"Linear expects a 2-D input (N, {self.in_features}), got shape {tuple(input_shape)}")
        if input_shape[1] != self.in_features:
            raise ValueError(f"Linear expects {self.in_features} input features, got {input_shape[1]} (input shape {tuple(input_shape)})")
        return (input_shape[0], self.out_features)

    input_ndim = 2

    def _forward(self, x):
        out_shape = self.output_shape(x.shape)
        W = self.params["W"].astype(x.dtype, copy=False)
        b = self.params["b"].astype(x.dtype, copy=False)
        # A copy, not a reference: the caller may change x after forward, and
        # dW = dout.T @ x must still use the x that produced out.
        self._cache = (x.copy(), out_shape)
        return x @ W.T + b

    def _backward(self, dout):
        x, out_shape = self._cached()
        self._check_dout(dout, out_shape)
        W = self.params["W"].astype(dout.dtype, copy=False)
        self._store_grads(W=dout.T @ x, b=dout.sum(axis=0))
        return dout @ W

    def _backward_input(self, dout):
        _, out_shape = self._cached()
        self._check_dout(dout, out_shape)
        return dout @ self.params["W"].astype(dout.dtype, copy=False)
