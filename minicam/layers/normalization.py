"""Normalisation layers: BatchNorm2d (train/eval, running statistics) and L2Normalize (embeddings)."""

import numpy as np

from .._validate import (
    check_float,
    check_float_dtype,
    check_int,
)
from .base import Layer, check_shape4

__all__ = ["BatchNorm2d", "L2Normalize"]


class BatchNorm2d(Layer):
    """Batch normalisation over the (N, H, W) axes of each channel.

    Parameters
    ----------
    num_features : int
        Number of channels C.
    eps : float, default 1e-5
    momentum : float, default 0.1
        ``running = (1 - momentum) * running + momentum * batch_statistic``
        (PyTorch's convention; the running variance uses the unbiased batch
        variance, normalisation uses the biased one).
    dtype : float64 (default) or float32

    Shapes
    ------
    x : (N, C, H, W) -> out : (N, C, H, W). ``params["gamma"]``, ``params["beta"]``,
    ``buffers["running_mean"]``, ``buffers["running_var"]``: (C,).

    Notes
    -----
    Training: :math:`\\hat x = (x - \\mu_B) / \\sqrt{\\sigma_B^2 + \\epsilon}`, ``out = gamma * x_hat + beta``,
    and with ``m = N H W``:

    .. math:: dx = \\frac{1}{m \\sqrt{\\sigma_B^2+\\epsilon}}
              \\left(m\\, d\\hat x - \\sum d\\hat x - \\hat x \\sum d\\hat x\\, \\hat x\\right),
              \\quad d\\hat x = \\gamma\\, dout

    Eval: the running statistics are constants, so ``dx = gamma * dout / sqrt(running_var + eps)``.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, dtype=np.float64):
        super().__init__()
        self.num_features = check_int(num_features, "num_features", minimum=1)
        self.eps = check_float(eps, "eps", low=0.0, low_inclusive=False)
        self.momentum = check_float(momentum, "momentum", low=0.0, high=1.0)
        dtype = check_float_dtype(dtype)
        c = self.num_features
        self.params["gamma"] = np.ones(c, dtype=dtype)
        self.params["beta"] = np.zeros(c, dtype=dtype)
        self.grads = {key: np.zeros_like(v) for key, v in self.params.items()}
        self.buffers["running_mean"] = np.zeros(c, dtype=dtype)
        self.buffers["running_var"] = np.ones(c, dtype=dtype)

    def config(self):
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum}

    def output_shape(self, input_shape):
        _, c, _, _ = check_shape4(input_shape, type(self).__name__)
        if c != self.num_features:
            raise ValueError(f"BatchNorm2d expects {self.num_features} channels, got {c} (input shape {tuple(input_shape)})")
        return tuple(input_shape)

    input_ndim = 4

    def _forward(self, x):
        self.output_shape(x.shape)
        dt = x.dtype
        gamma = self.params["gamma"].astype(dt, copy=False)
        beta = self.params["beta"].astype(dt, copy=False)
        if self.training:
            m = x.shape[0] * x.shape[2] * x.shape[3]
            if m < 2:
                raise ValueError(
                    f"BatchNorm2d in training mode needs more than one value per channel, got input shape {x.shape}"
                )
            mean = np.einsum("nchw->c", x) / m
            x_hat = x - mean[:, None, None]  # centred now, normalised below (our own array)
            var = np.einsum("nchw,nchw->c", x_hat, x_hat) / m  # biased: what normalisation uses
            rm, rv = self.buffers["running_mean"], self.buffers["running_var"]
            mom = self.momentum
            self.buffers["running_mean"] = ((1 - mom) * rm + mom * mean).astype(rm.dtype)
            self.buffers["running_var"] = ((1 - mom) * rv + mom * var * m / (m - 1)).astype(rv.dtype)
        else:
            mean = self.buffers["running_mean"].astype(dt, copy=False)
            var = self.buffers["running_var"].astype(dt, copy=False)
            x_hat = x - mean[:, None, None]
        inv_std = (1.0 / np.sqrt(var + self.eps)).astype(dt, copy=False)
        x_hat *= inv_std[:, None, None]
        self._cache = (x_hat, inv_std, self.training, x.shape)
        out = x_hat * gamma[:, None, None]
        out += beta[:, None, None]
        return out

    def _infer(self, x):
        if self.training:  # the batch statistics (and the running ones' update) need the full forward
            return super()._infer(x)
        self.output_shape(x.shape)
        dt = x.dtype
        inv_std = 1.0 / np.sqrt(self.buffers["running_var"].astype(dt, copy=False) + self.eps)
        scale = (self.params["gamma"].astype(dt, copy=False) * inv_std).astype(dt, copy=False)
        shift = (self.params["beta"] - self.buffers["running_mean"] * scale).astype(dt, copy=False)
        self._cache = None
        out = x * scale[:, None, None]  # eval mode is one affine map per channel
        out += shift[:, None, None]
        return out

    def _backward_input(self, dout):
        _, inv_std, training, x_shape = self._cached()
        if training:  # dx needs dgamma and dbeta: the full backward
            return self._backward(dout)
        self._check_dout(dout, x_shape)
        return dout * (self.params["gamma"].astype(dout.dtype, copy=False) * inv_std)[:, None, None]

    def _backward(self, dout):
        x_hat, inv_std, training, x_shape = self._cached()
        self._check_dout(dout, x_shape)
        gamma = self.params["gamma"].astype(dout.dtype, copy=False)
        dbeta = np.einsum("nchw->c", dout)
        dgamma = np.einsum("nchw,nchw->c", dout, x_hat)
        self._store_grads(gamma=dgamma, beta=dbeta)
        scale = (gamma * inv_std)[:, None, None]  # d out / d x with the statistics held fixed
        if not training:
            return dout * scale
        # dx = gamma * inv_std * (dout - mean(dout) - x_hat * mean(dout * x_hat)), the Notes'
        # formula with sum(dx_hat) = gamma * dbeta and sum(dx_hat * x_hat) = gamma * dgamma.
        m = x_shape[0] * x_shape[2] * x_shape[3]
        dx = x_hat * (dgamma / m)[:, None, None]
        dx += (dbeta / m)[:, None, None]
        np.subtract(dout, dx, out=dx)
        dx *= scale
        return dx


class L2Normalize(Layer):
    """Scale each row to unit Euclidean length: the last layer of an embedding network.

    Shapes: x : (N, D) -> out : (N, D), every row of ``out`` of norm 1.

    Notes
    -----
    With ``r = ||x_n||`` and ``y = x_n / r`` (FaceNet, Schroff et al. 2015,
    Sec. 3: the embedding lives on the unit hypersphere),

    .. math:: \\frac{\\partial y}{\\partial x} = \\frac{1}{r}\\,(I - y y^T), \\qquad
              dx = \\frac{dout - y\\,(dout \\cdot y)}{r}

    The gradient has no component along ``y``: lengthening ``x`` does not
    move ``y``. A zero row has no direction and is refused (ValueError
    naming the row), rather than divided by an epsilon.
    """

    input_ndim = 2

    def output_shape(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(f"L2Normalize expects a 2-D input (N, D), got shape {tuple(input_shape)}")
        return tuple(input_shape)

    def _forward(self, x):
        self.output_shape(x.shape)
        norm = np.sqrt(np.einsum("nd,nd->n", x, x))  # (N,)
        if x.shape[1] and (norm == 0).any():
            raise ValueError(f"L2Normalize: row {int(np.argmin(norm))} of x is zero, its direction is undefined")
        y = x / norm[:, None]
        self._cache = (y, norm)  # y is returned too: keep our own copy
        return y.copy()

    def _backward(self, dout):
        y, norm = self._cached()
        self._check_dout(dout, y.shape)
        return (dout - y * np.einsum("nd,nd->n", dout, y)[:, None]) / norm[:, None]
