"""The layer protocol (:class:`Layer`), the mark of its checked public methods, and shared helpers."""

import numpy as np

from .._validate import (
    StateError,
    check_batch,
    check_float_array,
)

__all__ = ["Layer", "validates_then_computes", "calls_unchecked", "he_normal", "check_shape4"]


def validates_then_computes(method):
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
    @validates_then_computes
    def forward(self, x):
        """Check ``x`` (finite float ndarray of rank :attr:`input_ndim`), then compute :meth:`_forward`."""
        check_batch(check_float_array(x, "x", ndim=self.input_ndim))
        return self._forward(x)

    @validates_then_computes
    def backward(self, dout):
        """Check ``dout`` (finite float ndarray), then compute :meth:`_backward`."""
        check_float_array(dout, "dout")
        return self._backward(dout)

    def _forward(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def _backward(self, dout):  # pragma: no cover - abstract
        raise NotImplementedError

    def _infer(self, x):
        """The forward output, keeping nothing for a backward (the cache is forgotten).

        What a model's ``forward(x, cache=False)`` calls on layers no
        backward will visit. By default the forward with its cache
        dropped; Conv2d, ReLU, MaxPool2d and eval-mode BatchNorm2d skip
        computing what they would keep.
        """
        out = self._forward(x)
        self._cache = None
        return out

    def _backward_input(self, dout):
        """Only the gradient with respect to the input; ``grads`` may be left as they were.

        What a model's ``backward(..., param_grads=False)`` calls (an
        explanation needs no parameter gradients). By default the full
        backward; layers whose parameter gradients cost a matrix product
        (Conv2d, Linear) skip it.
        """
        return self._backward(dout)

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
            raise StateError(
                f"{type(self).__name__}.backward called before forward (or after a forward that kept no cache "
                "for it: Sequential.forward(x, cache=False), or cache=<a layer after this one>)"
            )
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


def he_normal(rng, shape, fan_in, dtype):
    # He et al. 2015: std = sqrt(2 / fan_in) keeps activation variance
    # roughly constant through ReLU layers.
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)




def check_shape4(shape, who):
    if len(shape) != 4:
        raise ValueError(f"{who} expects a 4-D input (N, C, H, W), got shape {tuple(shape)}")
    return shape
