"""Adversarial images from minicam's own input gradient: FGSM and projected gradient descent.

Both attacks ascend the softmax cross-entropy of the given labels with
respect to the **input**, through the model's hand-written backward passes
(``Sequential.backward`` down to the input; no second network, no
framework). The model runs in the mode it is in and is left as it was found
(:func:`minicam.explain._core.untouched`); ``x`` is never written into.

=====================  ===========================================================
function               image returned
=====================  ===========================================================
:func:`fgsm`           ``clip(x + eps * sign(dCE/dx), 0, 1)`` (Goodfellow et al. 2015)
:func:`pgd`            ``x_{t+1} = Proj_{B(x, eps) and [0,1]}(x_t + step * sign(dCE/dx_t))``
                       (Madry et al. 2018), from ``x`` or a random point of the ball
=====================  ===========================================================

Budgets are L-infinity, in pixel units of images in [0, 1] (``eps = 8/255``
is the usual ImageNet budget).
"""

import numbers

import numpy as np

from .._validate import as_generator, check_int
from ..explain._core import check_input, resolve_class_idx, untouched
from ..losses import softmax_cross_entropy

__all__ = ["check_budget", "loss_input_gradient", "fgsm", "pgd"]


def check_budget(value, name, positive=False):
    """``value`` as a float if it is a finite real number >= 0 (> 0 with ``positive``)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not np.isfinite(value) or value < 0 or (positive and value == 0):
        want = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a finite number {want}, got {value!r}")
    return value


def _check_attack_input(model, x):
    check_input(model, x, image=True)
    if x.min() < 0 or x.max() > 1:
        raise ValueError(f"x must hold images in [0, 1] (the attacks clip to that range), got values in "
                         f"[{x.min():.3g}, {x.max():.3g}]")


def loss_input_gradient(model, x, labels):
    """Mean softmax cross-entropy of ``labels`` and its gradient with respect to the input.

    Parameters
    ----------
    model : Sequential
        Run in the mode it is in; left as it was found.
    x : ndarray, shape (N, C, H, W)
    labels : int, sequence of N ints, or None
        The classes whose cross-entropy is differentiated (``None``: the
        model's own prediction on ``x``).

    Returns
    -------
    loss : float
        ``-(1/N) sum_n log p_{n, labels_n}``.
    dx : ndarray, shape (N, C, H, W)
        ``d loss / d x``, from :meth:`Sequential.backward` with the
        upstream gradient ``(softmax - onehot) / N``.
    """
    check_input(model, x, image=True)
    with untouched(model):
        scores = model.forward(x)
        labels = resolve_class_idx(labels, scores)
        loss, dscores = softmax_cross_entropy(scores, labels)
        dx = model.backward(dscores, param_grads=False)
    return loss, dx


def fgsm(model, x, labels, eps):
    """Fast gradient sign method (Goodfellow et al. 2015, "Explaining and Harnessing Adversarial Examples", eq. 3).

    Parameters
    ----------
    model : Sequential
        Left untouched (mode, parameters, gradients, caches, BatchNorm statistics).
    x : ndarray, shape (N, C, H, W), values in [0, 1]
        Not modified.
    labels : int, sequence of N ints, or None
        The true classes (the cross-entropy of these is increased); ``None``:
        the model's prediction on ``x``.
    eps : float >= 0
        L-infinity budget; ``0`` returns a copy of ``x``.

    Returns
    -------
    ndarray, shape and dtype of ``x``
        ``clip(x + eps * sign(dCE/dx), 0, 1)``. A pixel whose gradient is
        exactly 0 does not move (``sign(0) = 0``).
    """
    eps = check_budget(eps, "eps")
    _check_attack_input(model, x)
    _, dx = loss_input_gradient(model, x, labels)
    return np.clip(x + eps * np.sign(dx), 0.0, 1.0).astype(x.dtype, copy=False)


def pgd(model, x, labels, eps, step, n_steps, rng=None):
    """Projected gradient descent on the negative loss, L-infinity (Madry et al. 2018, eq. 2).

    Parameters
    ----------
    model, x, labels, eps
        As :func:`fgsm`.
    step : float > 0
        Step size of each signed-gradient step (Madry et al. use ``2.5 eps / n_steps``).
    n_steps : int >= 1
        Number of steps.
    rng : None, int or numpy.random.Generator
        ``None`` (default) starts at ``x`` itself, so the first step is an
        FGSM step of size ``step`` and the result is deterministic. A seed or
        Generator starts at a uniform random point of the ball,
        ``clip(x + U(-eps, eps), 0, 1)``, as Madry et al. do (random restarts
        find stronger attacks; here one start).

    Returns
    -------
    ndarray, shape and dtype of ``x``
        Within ``eps`` of ``x`` in every pixel, and in [0, 1].

    Notes
    -----
    The labels are fixed once (``None`` is resolved on the clean ``x``),
    so every step increases the loss of the same classes.
    """
    eps = check_budget(eps, "eps")
    step = check_budget(step, "step", positive=True)
    n_steps = check_int(n_steps, "n_steps", minimum=1)
    _check_attack_input(model, x)
    if labels is None:
        with untouched(model):
            labels = model.forward(x).argmax(axis=1)
    low, high = np.maximum(x - eps, 0.0), np.minimum(x + eps, 1.0)  # the ball, inside [0, 1]
    if rng is None:
        adv = x.copy()
    else:
        gen = as_generator(rng)
        adv = np.clip(x + gen.uniform(-eps, eps, size=x.shape), low, high)
    for _ in range(n_steps):
        _, dx = loss_input_gradient(model, adv, labels)
        adv = np.clip(adv + step * np.sign(dx), low, high)
    return adv.astype(x.dtype, copy=False)
