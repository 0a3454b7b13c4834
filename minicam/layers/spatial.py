"""Layers over feature maps: convolution, max/average pooling, adaptive and global average pooling."""

import numpy as np

from .. import functional as F
from .._validate import (
    as_generator,
    check_bool,
    check_float_dtype,
    check_int,
    check_pair,
)
from .base import Layer, check_shape4, he_normal

__all__ = ["Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "GlobalAvgPool2d"]


class Conv2d(Layer):
    """2-D convolution (cross-correlation, no kernel flip) with zero padding.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int
        Square kernel ``K x K``.
    stride : int, default 1
    padding : int, default 0
        Zeros added on every side.
    bias : bool, default True
        ``False``: no bias at all (``params`` and ``grads`` hold only
        ``"W"``), as for a convolution followed by BatchNorm, whose ``beta``
        plays its part (ResNet, VGG-BN).
    rng : None, int or numpy.random.Generator
        Seed for He-normal weight initialisation (biases start at zero).
    dtype : float64 (default) or float32

    Shapes
    ------
    x : (N, C, H, W) -> out : (N, F, H_out, W_out), with
    ``H_out = (H + 2*padding - K) // stride + 1`` (same for W).
    ``params["W"]``: (F, C, K, K); ``params["b"]``: (F,) (only with ``bias=True``).

    Notes
    -----
    .. math:: out[n, f, i, j] = b_f + \\sum_{c,p,q} W_{f,c,p,q}\\, x_{pad}[n, c, i s + p, j s + q]

    (without the ``b_f`` when ``bias=False``). ``forward`` uses the im2col
    kernel (:func:`minicam.functional.conv2d_forward`);
    :func:`minicam.functional.conv2d_forward_naive` is the loop definition it is
    tested against. ``config()`` lists ``bias`` only when it is ``False``, so
    a convolution with a bias is saved exactly as before the option existed.
    """

    def __init__(
        self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True, rng=None, dtype=np.float64
    ):
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels", minimum=1)
        self.out_channels = check_int(out_channels, "out_channels", minimum=1)
        self.kernel_size = check_int(kernel_size, "kernel_size", minimum=1)
        self.stride = check_int(stride, "stride", minimum=1)
        self.padding = check_int(padding, "padding", minimum=0)
        self.bias = check_bool(bias, "bias")
        dtype = check_float_dtype(dtype)
        gen = as_generator(rng)
        k = self.kernel_size
        fan_in = self.in_channels * k * k
        self.params["W"] = he_normal(gen, (self.out_channels, self.in_channels, k, k), fan_in, dtype)
        if self.bias:
            self.params["b"] = np.zeros(self.out_channels, dtype=dtype)
        self.grads = {key: np.zeros_like(v) for key, v in self.params.items()}

    def config(self):
        config = {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self.padding,
        }
        if not self.bias:
            config["bias"] = False
        return config

    def output_shape(self, input_shape):
        n, c, h, w = check_shape4(input_shape, type(self).__name__)
        if c != self.in_channels:
            raise ValueError(f"Conv2d expects {self.in_channels} input channels, got {c} (input shape {tuple(input_shape)})")
        return (
            n,
            self.out_channels,
            F.output_size(h, self.kernel_size, self.stride, self.padding),
            F.output_size(w, self.kernel_size, self.stride, self.padding),
        )

    input_ndim = 4

    def _forward(self, x):
        out_shape = self.output_shape(x.shape)
        W = self.params["W"].astype(x.dtype, copy=False)
        b = self.params["b"].astype(x.dtype, copy=False) if self.bias else None
        out, cols = F.conv2d_forward(x, W, b, self.stride, self.padding)
        self._cache = (cols, x.shape, out_shape)  # cols: the unfolded input, a new array
        return out

    def _backward(self, dout):
        cols, x_shape, out_shape = self._cached()
        self._check_dout(dout, out_shape)
        W = self.params["W"].astype(dout.dtype, copy=False)
        dx, dW, db = F.conv2d_backward(dout, cols.astype(dout.dtype, copy=False), x_shape, W, self.stride, self.padding)
        if self.bias:
            self._store_grads(W=dW, b=db)
        else:
            self._store_grads(W=dW)
        return dx

    def _infer(self, x):
        self.output_shape(x.shape)
        b = self.params["b"].astype(x.dtype, copy=False) if self.bias else None
        out, _ = F.conv2d_forward(x, self.params["W"].astype(x.dtype, copy=False), b, self.stride, self.padding,
                                  keep_cols=False)
        self._cache = None  # no unfolded input is kept
        return out

    def _backward_input(self, dout):
        _, x_shape, out_shape = self._cached()
        self._check_dout(dout, out_shape)
        W = self.params["W"].astype(dout.dtype, copy=False)
        return F.conv2d_backward_input(dout, x_shape, W, self.stride, self.padding)




class _Pool2d(Layer):
    input_ndim = 4
    padding = 0  # AvgPool2d has none; MaxPool2d sets its own

    def __init__(self, kernel_size, stride=None):
        super().__init__()
        self.kernel_size = check_int(kernel_size, "kernel_size", minimum=1)
        self.stride = self.kernel_size if stride is None else check_int(stride, "stride", minimum=1)

    def config(self):
        return {"kernel_size": self.kernel_size, "stride": self.stride}

    def output_shape(self, input_shape):
        n, c, h, w = check_shape4(input_shape, type(self).__name__)
        return (
            n,
            c,
            F.output_size(h, self.kernel_size, self.stride, self.padding),
            F.output_size(w, self.kernel_size, self.stride, self.padding),
        )


class MaxPool2d(_Pool2d):
    """Max pooling over ``K x K`` windows (floor mode).

    Parameters
    ----------
    kernel_size : int
    stride : int, optional
        Defaults to ``kernel_size`` (non-overlapping windows). A smaller
        stride makes windows overlap (AlexNet's ``MaxPool2d(3, stride=2)``).
    padding : int, default 0
        Rows/columns added on every side, at most ``kernel_size // 2``
        (PyTorch's rule; ResNet's stem is ``MaxPool2d(3, stride=2, padding=1)``).
        The padding is ``-inf``: it never wins a max and never gets a gradient.

    Shapes
    ------
    x : (N, C, H, W) -> out : (N, C, H_out, W_out),
    ``H_out = (H + 2*padding - K) // stride + 1`` (same for W).
    Leftover rows/columns are dropped.

    Notes
    -----
    The gradient of each window goes to its first maximum in row-major order
    (ties are broken deterministically, as ``np.argmax`` does, and as
    PyTorch's CPU kernel does); where windows overlap, the gradients a
    position receives add up. ``config()`` lists ``padding`` only when it is
    not 0, so an unpadded pool is saved exactly as before padding existed.
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__(kernel_size, stride)
        self.padding = F.check_max_pool_padding(self.kernel_size, check_int(padding, "padding", minimum=0))

    def config(self):
        config = super().config()
        if self.padding:
            config["padding"] = self.padding
        return config

    def _forward(self, x):
        out_shape = self.output_shape(x.shape)
        out, argmax = F.max_pool2d_forward(x, self.kernel_size, self.stride, self.padding)
        self._cache = (argmax, x.shape, out_shape)
        return out

    def _backward(self, dout):
        argmax, x_shape, out_shape = self._cached()
        self._check_dout(dout, out_shape)
        return F.max_pool2d_backward(dout, argmax, x_shape, self.kernel_size, self.stride, self.padding)

    def _infer(self, x):
        self.output_shape(x.shape)
        self._cache = None
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)  # no argmax


class AvgPool2d(_Pool2d):
    """Average pooling over ``K x K`` windows (floor mode, no padding).

    Shapes: as :class:`MaxPool2d`. Each window's gradient is shared equally
    by its ``K*K`` inputs.
    """

    def _forward(self, x):
        out_shape = self.output_shape(x.shape)
        self._cache = (x.shape, out_shape)
        return F.avg_pool2d_forward(x, self.kernel_size, self.stride)

    def _backward(self, dout):
        x_shape, out_shape = self._cached()
        self._check_dout(dout, out_shape)
        return F.avg_pool2d_backward(dout, x_shape, self.kernel_size, self.stride)


class AdaptiveAvgPool2d(Layer):
    """Average pooling to a fixed output size, whatever the input size (PyTorch's rule).

    Parameters
    ----------
    output_size : int or (int, int)
        ``(H_out, W_out)``; an int means a square output. Either may be
        larger than the input's (windows then repeat rows/columns).

    Shapes
    ------
    x : (N, C, H, W) -> out : (N, C, H_out, W_out), for any ``H, W >= 1``.
    The output stays 4-D, as in PyTorch (``AdaptiveAvgPool2d(1)`` gives
    ``(N, C, 1, 1)``; :class:`GlobalAvgPool2d` gives ``(N, C)``).

    Notes
    -----
    Output row ``i`` averages input rows
    ``floor(i * H / H_out) <= r < ceil((i + 1) * H / H_out)`` (integer
    arithmetic; columns likewise), see :func:`minicam.functional.adaptive_windows`.
    Windows differ in size and may overlap; backward shares each output's
    gradient equally over its window and adds up where windows overlap.
    When ``H_out`` divides ``H`` (and ``W_out`` divides ``W``) this is
    :class:`AvgPool2d` with ``kernel_size = stride = H // H_out``.
    :func:`minicam.functional.adaptive_avg_pool2d_forward_naive` is the loop
    definition the kernel is tested against.
    """

    input_ndim = 4

    def __init__(self, output_size):
        super().__init__()
        self.output_size = check_pair(output_size, "output_size", minimum=1)

    def config(self):
        return {"output_size": list(self.output_size)}

    def output_shape(self, input_shape):
        n, c, _, _ = check_shape4(input_shape, type(self).__name__)
        return (n, c) + self.output_size

    def _forward(self, x):
        out_shape = self.output_shape(x.shape)
        self._cache = (x.shape, out_shape)
        return F.adaptive_avg_pool2d_forward(x, self.output_size)

    def _backward(self, dout):
        x_shape, out_shape = self._cached()
        self._check_dout(dout, out_shape)
        return F.adaptive_avg_pool2d_backward(dout, x_shape)


class GlobalAvgPool2d(Layer):
    """Global average pooling: the mean of each feature map.

    Shapes: x : (N, C, H, W) -> out : (N, C).

    Notes
    -----
    .. math:: F_k = \\frac{1}{Z} \\sum_{i,j} A^k_{ij}, \\qquad Z = H W

    so that ``dx[n, k, i, j] = dout[n, k] / Z``: every position of a map gets
    the same gradient, which is why Grad-CAM equals CAM on GAP networks.
    """

    input_ndim = 4

    def output_shape(self, input_shape):
        n, c, _, _ = check_shape4(input_shape, type(self).__name__)
        return (n, c)

    def _forward(self, x):
        self.output_shape(x.shape)
        self._cache = x.shape
        return x.mean(axis=(2, 3))

    def _backward(self, dout):
        x_shape = self._cached()
        self._check_dout(dout, x_shape[:2])
        z = x_shape[2] * x_shape[3]
        return np.broadcast_to((dout / z)[:, :, None, None], x_shape).copy()
