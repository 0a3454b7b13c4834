"""Gradient maps at the input: saliency, guided backpropagation, deconvnet,
Guided Grad-CAM, and the SmoothGrad wrapper.

All three input maps are one backward pass of the explained score, differing
only in the rule every ReLU applies on the way back (``relu_mode`` of
:meth:`minicam.Sequential.backward`, see :class:`minicam.ReLU`): no second
network, no hooks, no module swapping.
"""

import inspect

import numbers

import numpy as np

from .._validate import as_generator, check_float, check_int
from ._core import (
    check_input,
    check_target_args,
    forward_target,
    resolve_class_idx,
    resolve_layer,
    untouched,
)
from .cams import combine, grad_cam_weights
from .postprocess import check_interpolation, check_maps, relu, upsample

__all__ = ["saliency", "saliency_map", "guided_backprop", "deconvnet", "guided_grad_cam", "smoothgrad"]


def _input_gradient(model, x, class_idx, score, target, relu_mode):
    check_target_args(class_idx, score, target)
    check_input(model, x)
    with untouched(model):
        _, _, _, dscores = forward_target(model, x, class_idx, score, target)
        return model.backward(dscores, relu_mode=relu_mode, param_grads=False)


def saliency(model, x, class_idx=None, score="logit", target=None):
    """Vanilla gradient (Simonyan et al. 2014, "Deep Inside Convolutional Networks", Sec. 3.1).

    Parameters
    ----------
    model : Sequential
    x : ndarray, shape (N, ...)
        Any input the model accepts, e.g. images (N, C, H, W) or vectors (N, D).
    class_idx : int, sequence of N ints, or None
        ``None``: the predicted class of each sample.
    score : {"logit", "softmax", "log_softmax"}
    target : callable, optional
        ``target(scores) -> (value (N,), dscores)`` instead of ``class_idx``/``score``.

    Returns
    -------
    ndarray, shape of ``x``
        The signed gradient ``d y^c / d x`` (captum's ``Saliency(abs=False)``).
        :func:`saliency_map` gives the paper's display, ``max_c |grad|``.
    """
    return _input_gradient(model, x, class_idx, score, target, "standard")


def saliency_map(grad):
    """The image-specific saliency display of Simonyan et al. 2014: ``max_c |grad[:, c]|``.

    Parameters
    ----------
    grad : ndarray, shape (N, C, H, W)
        E.g. from :func:`saliency`.

    Returns
    -------
    ndarray, shape (N, H, W), >= 0
    """
    check_maps(grad, "grad", ndim=4)
    if 0 in grad.shape[:2]:
        raise ValueError(f"grad must hold at least one sample and one channel, got shape {grad.shape}")
    return np.abs(grad).max(axis=1)


def guided_backprop(model, x, class_idx=None, score="logit", target=None):
    """Guided backpropagation (Springenberg et al. 2015, "Striving for Simplicity", Sec. 3.4, Fig. 1).

    Every ReLU passes back only positive gradient where its input was
    positive: ``dx = dout * [x > 0] * [dout > 0]``. Parameters and returns as
    :func:`saliency` (captum's ``GuidedBackprop``). The map is signed: the
    first layer's weights, below every ReLU, can flip the sign.
    """
    return _input_gradient(model, x, class_idx, score, target, "guided")


def deconvnet(model, x, class_idx=None, score="logit", target=None):
    """Deconvnet (Zeiler & Fergus 2014, "Visualizing and Understanding Convolutional Networks", Sec. 2.1).

    Every ReLU rectifies the backward signal itself, ignoring the forward
    sign: ``dx = dout * [dout > 0]``; max-pool switches and transposed
    filters are the usual backward. Parameters and returns as
    :func:`saliency` (captum's ``Deconvolution``).
    """
    return _input_gradient(model, x, class_idx, score, target, "deconvnet")


def guided_grad_cam(model, x, class_idx=None, layer=None, interpolation="bilinear", score="logit", target=None):
    """Guided Grad-CAM (Selvaraju et al. 2017, Sec. 3): upsampled Grad-CAM times guided backprop.

    Parameters
    ----------
    model : Sequential
    x : ndarray, shape (N, C, H, W)
    class_idx, layer, score, target
        As :func:`minicam.grad_cam`.
    interpolation : {"bilinear", "nearest"}
        How the Grad-CAM map is resized to (H, W): bilinear as in the paper;
        captum's ``GuidedGradCam`` uses nearest by default.

    Returns
    -------
    ndarray, shape (N, C, H, W)
        ``upsample(grad_cam(...), (H, W))[:, None] * guided_backprop(...)``,
        the map broadcast over the channels. One forward pass, two backward
        passes (standard to ``layer``, guided to the input).
    """
    check_interpolation(interpolation)
    check_target_args(class_idx, score, target)
    shapes = check_input(model, x, image=True)
    layer = resolve_layer(model, shapes, layer)
    with untouched(model):
        _, _, _, dscores = forward_target(model, x, class_idx, score, target)
        A = model.outputs[layer]
        dA = model.backward(dscores, stop_at=layer, param_grads=False)
        guided = model.backward(dscores, relu_mode="guided", param_grads=False)
    cam = relu(combine(grad_cam_weights(dA), A))
    return upsample(cam, x.shape[2:], interpolation)[:, None] * guided


def _takes_class_idx(method):
    """Whether ``method`` accepts ``class_idx=`` (a parameter of that name, or ``**kwargs``)."""
    try:
        params = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):  # no signature to read (some builtins): assume the convention
        return True
    return any(p.name == "class_idx" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def smoothgrad(method, model, x, class_idx=None, n_samples=50, sigma=0.15, rng=None, batch_size=64, **kwargs):
    """SmoothGrad (Smilkov et al. 2017, "SmoothGrad: removing noise by adding noise", Sec. 3).

    Parameters
    ----------
    method : callable
        An explanation, called as ``method(model, x, class_idx=class_idx,
        **kwargs)`` (``class_idx`` by keyword, so it can never land in
        another positional parameter), e.g. :func:`saliency`,
        :func:`guided_backprop`, :func:`minicam.grad_cam`. A class-agnostic
        method, one without a ``class_idx`` parameter (:func:`minicam.eigen_cam`),
        is called without it: ``class_idx`` must then be ``None`` (a
        ValueError says so otherwise).
    model : Sequential
    x : ndarray, shape (N, ...)
    class_idx : int, sequence of N ints, or None
        ``None``: the predicted class of each *clean* sample, kept for all
        its noisy copies.
    n_samples : int, default 50
    sigma : float, default 0.15
        Noise level relative to each sample's range: the noise added to
        sample n has standard deviation ``sigma * (max(x_n) - min(x_n))``
        (the paper's sigma / (x_max - x_min)).
    rng : None, int or numpy.random.Generator
        Source of the noise (pass a seed to reproduce).
    batch_size : int, default 64
        Images per call of ``method``: ``max(1, batch_size // N)`` noisy
        copies of the batch are stacked into one forward and one backward
        pass. The noise is drawn in the same order whatever the batch size,
        so the result does not depend on it (up to rounding). With a
        ``target`` callable, which is written for the model's N output rows,
        every call gets one copy.
    **kwargs
        Passed to ``method`` (``score=``, ``layer=``, ``target=``, ...).

    Returns
    -------
    ndarray
        The mean of ``method`` over ``n_samples`` noisy copies of ``x``, the
        shape ``method`` returns.
    """
    if not callable(method):
        raise TypeError(f"method must be an explanation function like minicam.saliency, got {type(method).__name__}")
    n_samples = check_int(n_samples, "n_samples", minimum=1)
    sigma = check_float(sigma, "sigma", low=0.0)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    gen = as_generator(rng)
    check_input(model, x)
    takes_class = _takes_class_idx(method)
    if not takes_class and class_idx is not None:
        raise ValueError(
            f"method {getattr(method, '__name__', method)!r} has no class_idx parameter (a class-agnostic method, "
            f"e.g. eigen_cam): pass class_idx=None, got class_idx={class_idx!r}"
        )
    if takes_class and class_idx is None and kwargs.get("target") is None:
        with untouched(model):
            class_idx = resolve_class_idx(None, model.forward(x))
    n = x.shape[0]
    per_call = 1 if kwargs.get("target") is not None else max(1, min(n_samples, batch_size // n))
    if takes_class and class_idx is not None and not isinstance(class_idx, numbers.Integral):
        class_idx = np.asarray(class_idx)
        if class_idx.shape != (n,):
            raise ValueError(f"class_idx must hold one class per sample (N={n}), got shape {class_idx.shape}")
    flat = x.reshape(n, -1)
    std = sigma * (flat.max(axis=1) - flat.min(axis=1))
    std = std.reshape((-1,) + (1,) * (x.ndim - 1)).astype(x.dtype)
    total = None
    done = 0
    while done < n_samples:
        copies = min(per_call, n_samples - done)
        # copies of the batch, stacked: (copies * N, ...); the noise stream is read in
        # the order one copy at a time would read it
        noise = gen.standard_normal((copies,) + x.shape).astype(x.dtype)
        noisy = (x + noise * std).reshape((copies * n,) + x.shape[1:])
        if takes_class:
            stacked = class_idx if class_idx is None or isinstance(class_idx, numbers.Integral) else np.tile(class_idx, copies)
            kwargs["class_idx"] = stacked
        maps = method(model, noisy, **kwargs)
        maps = maps.reshape((copies, n) + maps.shape[1:]).sum(axis=0)
        total = maps if total is None else total + maps
        done += copies
    return total / n_samples
