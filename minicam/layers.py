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
"""

import numpy as np

from . import functional as F
from ._validate import (
    StateError,
    as_generator,
    check_float,
    check_float_array,
    check_float_dtype,
    check_int,
)

__all__ = [
    "Layer",
    "Conv2d",
    "ReLU",
    "MaxPool2d",
    "AvgPool2d",
    "GlobalAvgPool2d",
    "Flatten",
    "Linear",
    "Dropout",
    "BatchNorm2d",
    "L2Normalize",
    "RELU_MODES",
    "LAYER_TYPES",
]

RELU_MODES = ("standard", "guided", "deconvnet")


def _validates_then_computes(method):
    # Marks minicam's public forward/backward, which only check their input and
    # then call _forward/_backward. Sequential checks its input once and calls
    # the private method of a layer whose public one carries this mark; a method
    # without it (a subclass's, a student's, a monkeypatched one) is called as is.
    method.validates_then_computes = True
    return method


def calls_unchecked(layer, method):
    """True when ``layer``'s public ``method`` ("forward"/"backward") is minicam's check-then-compute wrapper."""
    return getattr(getattr(type(layer), method), "validates_then_computes", False)


class Layer:
    """Base class: parameter bookkeeping, train/eval switch and input checks."""

    input_ndim = None  # rank that forward's x must have (None: any)

    def __init__(self):
        self.params = {}
        self.grads = {}
        self.buffers = {}  # state that is saved but not trained (BatchNorm statistics)
        self.training = True
        self._cache = None

    # -- protocol ---------------------------------------------------------
    @_validates_then_computes
    def forward(self, x):
        """Check ``x`` (finite float ndarray of rank :attr:`input_ndim`), then compute :meth:`_forward`."""
        check_float_array(x, "x", ndim=self.input_ndim)
        return self._forward(x)

    @_validates_then_computes
    def backward(self, dout):
        """Check ``dout`` (finite float ndarray), then compute :meth:`_backward`."""
        check_float_array(dout, "dout")
        return self._backward(dout)

    def _forward(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def _backward(self, dout):  # pragma: no cover - abstract
        raise NotImplementedError

    def config(self):
        """Constructor hyper-parameters (JSON-serialisable), used to save the architecture."""
        return {}

    def output_shape(self, input_shape):
        """Shape of ``forward``'s output for an input of ``input_shape`` (without computing it)."""
        return tuple(input_shape)

    # -- modes --------------------------------------------------------------
    def train(self, mode=True):
        """Switch to training behaviour (``mode=False`` is :meth:`eval`). Returns ``self``."""
        self.training = bool(mode)
        return self

    def eval(self):
        """Switch to inference behaviour. Returns ``self``."""
        return self.train(False)

    @property
    def num_params(self):
        """Number of trainable scalars."""
        return int(sum(p.size for p in self.params.values()))

    # -- helpers --------------------------------------------------------------
    def _cached(self):
        if self._cache is None:
            raise StateError(f"{type(self).__name__}.backward called before forward")
        return self._cache

    def _check_dout(self, dout, out_shape):
        if dout.shape != tuple(out_shape):
            raise ValueError(
                f"dout must have the shape of {type(self).__name__}'s last output {tuple(out_shape)}, "
                f"got {dout.shape}"
            )
        return dout

    def _store_grads(self, **grads):
        for key, value in grads.items():
            self.grads[key] = np.asarray(value, dtype=self.params[key].dtype)

    def _param_shapes(self):
        return ", ".join(f"{k}: {tuple(v.shape)}" for k, v in self.params.items())

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        shapes = self._param_shapes()
        return f"{type(self).__name__}({args})" + (f"  [{shapes}]" if shapes else "")


def _he_normal(rng, shape, fan_in, dtype):
    # He et al. 2015: std = sqrt(2 / fan_in) keeps activation variance
    # roughly constant through ReLU layers.
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)


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
    rng : None, int or numpy.random.Generator
        Seed for He-normal weight initialisation (biases start at zero).
    dtype : float64 (default) or float32

    Shapes
    ------
    x : (N, C, H, W) -> out : (N, F, H_out, W_out), with
    ``H_out = (H + 2*padding - K) // stride + 1`` (same for W).
    ``params["W"]``: (F, C, K, K); ``params["b"]``: (F,).

    Notes
    -----
    .. math:: out[n, f, i, j] = b_f + \\sum_{c,p,q} W_{f,c,p,q}\\, x_{pad}[n, c, i s + p, j s + q]

    ``forward`` uses the im2col kernel (:func:`minicam.functional.conv2d_forward`);
    :func:`minicam.functional.conv2d_forward_naive` is the loop definition it is
    tested against.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, rng=None, dtype=np.float64):
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels", minimum=1)
        self.out_channels = check_int(out_channels, "out_channels", minimum=1)
        self.kernel_size = check_int(kernel_size, "kernel_size", minimum=1)
        self.stride = check_int(stride, "stride", minimum=1)
        self.padding = check_int(padding, "padding", minimum=0)
        dtype = check_float_dtype(dtype)
        gen = as_generator(rng)
        k = self.kernel_size
        fan_in = self.in_channels * k * k
        self.params["W"] = _he_normal(gen, (self.out_channels, self.in_channels, k, k), fan_in, dtype)
        self.params["b"] = np.zeros(self.out_channels, dtype=dtype)
        self.grads = {key: np.zeros_like(v) for key, v in self.params.items()}

    def config(self):
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self.padding,
        }

    def output_shape(self, input_shape):
        n, c, h, w = _check_shape4(input_shape, type(self).__name__)
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
        b = self.params["b"].astype(x.dtype, copy=False)
        out, cols = F.conv2d_forward(x, W, b, self.stride, self.padding)
        self._cache = (cols, x.shape, out_shape)  # cols: the unfolded input, a new array
        return out

    def _backward(self, dout):
        cols, x_shape, out_shape = self._cached()
        self._check_dout(dout, out_shape)
        W = self.params["W"].astype(dout.dtype, copy=False)
        dx, dW, db = F.conv2d_backward(dout, cols.astype(dout.dtype, copy=False), x_shape, W, self.stride, self.padding)
        self._store_grads(W=dW, b=db)
        return dx


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

    @_validates_then_computes
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


class _Pool2d(Layer):
    input_ndim = 4

    def __init__(self, kernel_size, stride=None):
        super().__init__()
        self.kernel_size = check_int(kernel_size, "kernel_size", minimum=1)
        self.stride = self.kernel_size if stride is None else check_int(stride, "stride", minimum=1)

    def config(self):
        return {"kernel_size": self.kernel_size, "stride": self.stride}

    def output_shape(self, input_shape):
        n, c, h, w = _check_shape4(input_shape, type(self).__name__)
        return (
            n,
            c,
            F.output_size(h, self.kernel_size, self.stride),
            F.output_size(w, self.kernel_size, self.stride),
        )


class MaxPool2d(_Pool2d):
    """Max pooling over ``K x K`` windows (floor mode).

    Parameters
    ----------
    kernel_size : int
    stride : int, optional
        Defaults to ``kernel_size`` (non-overlapping windows).

    Shapes
    ------
    x : (N, C, H, W) -> out : (N, C, H_out, W_out), ``H_out = (H - K) // stride + 1``.
    Leftover rows/columns are dropped.

    Notes
    -----
    The gradient of each window goes to its first maximum in row-major order
    (ties are broken deterministically, as ``np.argmax`` does).
    """

    def _forward(self, x):
        out_shape = self.output_shape(x.shape)
        out, argmax = F.max_pool2d_forward(x, self.kernel_size, self.stride)
        self._cache = (argmax, x.shape, out_shape)
        return out

    def _backward(self, dout):
        argmax, x_shape, out_shape = self._cached()
        self._check_dout(dout, out_shape)
        return F.max_pool2d_backward(dout, argmax, x_shape, self.kernel_size, self.stride)


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
        n, c, _, _ = _check_shape4(input_shape, type(self).__name__)
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
        self.params["W"] = _he_normal(gen, (self.out_features, self.in_features), self.in_features, dtype)
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
        _, c, _, _ = _check_shape4(input_shape, type(self).__name__)
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


def _check_shape4(shape, who):
    if len(shape) != 4:
        raise ValueError(f"{who} expects a 4-D input (N, C, H, W), got shape {tuple(shape)}")
    return shape


LAYER_TYPES = {
    cls.__name__: cls
    for cls in (Conv2d, ReLU, MaxPool2d, AvgPool2d, GlobalAvgPool2d, Flatten, Linear, Dropout, BatchNorm2d, L2Normalize)
}
"""Layer classes by name: the vocabulary of saved architectures."""
