"""Gradient checking by central differences, in float64.

The analytic backward of a layer is compared with

.. math:: \\frac{\\partial}{\\partial x_i} \\sum_j f(x)_j\\, g_j \\approx
          \\frac{\\sum_j \\left(f(x + h e_i)_j - f(x - h e_i)_j\\right) g_j}{2h}

for a *random* upstream gradient ``g`` (an all-ones ``g`` lets some wrong
backward passes through: errors that cancel in a plain sum). The error
reported is the norm-wise relative error of :func:`rel_error`.

Thresholds used by the tests and ``python -m minicam gradcheck``:
``LAYER_TOL = 1e-7`` for one layer and ``MODEL_TOL = 1e-5`` for a whole
model. Inputs are built away from kinks (ReLU at 0, max-pool ties), where
central differences are meaningless.
"""

import copy
import numbers

import numpy as np

from ._validate import as_generator, check_float, check_float_array
from .layers import (
    AdaptiveAvgPool2d,
    AvgPool2d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    GlobalAvgPool2d,
    Layer,
    Linear,
    MaxPool2d,
    ReLU,
)
from .losses import softmax_cross_entropy
from .model import Sequential

__all__ = [
    "CONV_CASES",
    "LAYER_TOL",
    "MODEL_TOL",
    "numerical_gradient",
    "rel_error",
    "check_layer",
    "check_model",
    "relu_rule_errors",
    "kink_free_input",
    "distinct_input",
    "layer_cases",
    "model_cases",
]

LAYER_TOL = 1e-7
MODEL_TOL = 1e-5


def _require_float64(arr, name):
    check_float_array(arr, name)
    if arr.dtype != np.float64:
        raise TypeError(
            f"gradient checks need float64 ({name} is {arr.dtype}): in float32 the rounding error of "
            "a central difference (~1e-7 / h) swamps the quantity being checked"
        )
    return arr


def _check_step(h):
    # h = 0 divides by zero and NaN propagates: both give NaN gradients, never an error
    return check_float(h, "h", low=0.0, low_inclusive=False)


def _check_dout(dout):
    if isinstance(dout, numbers.Real) and not isinstance(dout, (bool, np.bool_)):
        dout = np.asarray(dout, dtype=np.float64)
    check_float_array(dout, "dout")
    return dout.astype(np.float64, copy=False)


def numerical_gradient(f, x, dout, h=1e-5):
    """Central-difference gradient of ``sum(f(x) * dout)`` with respect to ``x``.

    Parameters
    ----------
    f : callable
        ``f(x) -> ndarray`` (or a float). Called ``2 * x.size`` times.
    x : ndarray, float64, any shape
        Not modified (it may be read-only): ``f`` is called with a copy of
        ``x`` perturbed one entry at a time, so ``f`` must use its argument.
    dout : ndarray or float
        Upstream gradient, the shape of ``f(x)``; finite.
    h : float
        Step size, finite and > 0.

    Returns
    -------
    grad : ndarray, shape of ``x``
    """
    if not callable(f):
        raise TypeError(f"f must be a callable x -> ndarray, got {f!r} ({type(f).__name__})")
    _require_float64(x, "x")
    h = _check_step(h)
    dout = _check_dout(dout)
    x = x.copy()  # the caller's array is never written (and may be read-only)
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        try:
            x[idx] = old + h
            fp = np.array(f(x), dtype=np.float64)  # a copy: f may return a view of x
            x[idx] = old - h
            fm = np.array(f(x), dtype=np.float64)
        finally:
            x[idx] = old
        if fp.shape != dout.shape:
            raise ValueError(f"dout must have the shape of f(x) {fp.shape}, got {dout.shape}")
        grad[idx] = np.sum((fp - fm) * dout) / (2.0 * h)
    return grad


def rel_error(a, b):
    """Norm-wise relative error ``max|a - b| / max(max|a|, max|b|)``.

    Unlike the element-wise ``|a - b| / (|a| + |b|)``, this does not blow up
    on entries that are zero up to rounding (common in ReLU networks); it is
    0 when both arrays are exactly zero. It is meaningless when the true
    gradient is zero but both estimates carry rounding noise (e.g. a conv
    bias directly followed by train-mode BatchNorm): compare the absolute
    values then.

    Parameters
    ----------
    a, b : array_like, same shape

    Returns
    -------
    float
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    if a.size == 0:
        return 0.0
    scale = max(np.abs(a).max(), np.abs(b).max())
    if scale == 0.0:
        return 0.0
    return float(np.abs(a - b).max() / scale)


def _fresh(template):
    # A deep copy: the parameters, buffers and random state (Dropout's
    # generator) of the template, so every evaluation sees the same state;
    # the forward that follows replaces whatever cache the copy carried.
    return copy.deepcopy(template)


def check_layer(layer, x, dout=None, rng=0, h=1e-5):
    """Compare a layer's backward with central differences.

    Every evaluation runs on a fresh copy of ``layer`` (taken before this
    call), so layers with random state (Dropout's mask) or running
    statistics (BatchNorm) see the same state every time, and ``layer``
    itself is left untouched.

    Parameters
    ----------
    layer : Layer
        With float64 parameters.
    x : ndarray, float64
        Input (not modified).
    dout : ndarray, optional
        Upstream gradient, the shape of the output; random normal if omitted.
    rng : None, int or numpy.random.Generator
        Draws ``dout`` when it is not given.
    h : float

    Returns
    -------
    dict
        ``{"x": err, "<param>": err, ...}``: relative error of ``dx`` and of
        each parameter gradient (see :func:`rel_error`).
    """
    if not isinstance(layer, Layer):
        raise TypeError(f"layer must be a minicam Layer, got {type(layer).__name__}")
    _require_float64(x, "x")
    h = _check_step(h)
    for key, value in layer.params.items():
        _require_float64(value, f"params[{key!r}]")
    template = _fresh(layer)
    analytic = _fresh(template)
    out = analytic.forward(x)
    if dout is None:
        dout = as_generator(rng).standard_normal(out.shape)
    _require_float64(dout, "dout")
    dx = analytic.backward(dout)
    errors = {"x": rel_error(dx, numerical_gradient(lambda xx: _fresh(template).forward(xx), x.copy(), dout, h))}
    for key in template.params:

        def f(p, key=key):
            probe = _fresh(template)
            probe.params[key] = p
            return probe.forward(x)

        numeric = numerical_gradient(f, template.params[key].copy(), dout, h)
        errors[key] = rel_error(analytic.grads[key], numeric)
    return errors


def check_model(model, x, y, h=1e-5):
    """Compare a whole model's backward with central differences of the loss.

    The loss is :func:`minicam.losses.softmax_cross_entropy` of the model's
    output. Every evaluation runs on a fresh copy of the model, so Dropout
    masks and BatchNorm statistics are the same each time and ``model`` is
    left untouched.

    Parameters
    ----------
    model : Sequential, float64 parameters
    x : ndarray, float64, shape (N, ...)
    y : ndarray of int, shape (N,)
    h : float

    Returns
    -------
    dict
        ``{"x": err, "<layer>.<param>": err, ...}``.
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a minicam Sequential, got {type(model).__name__}")
    _require_float64(x, "x")
    h = _check_step(h)
    for key, value in model.named_parameters():
        _require_float64(value, key)

    def fresh():
        m = copy.deepcopy(model)
        m.clear_state()
        return m

    def loss_of(m, inp):
        return softmax_cross_entropy(m.forward(inp), y)[0]

    analytic = fresh()
    _, dscores = softmax_cross_entropy(analytic.forward(x), y)
    dx = analytic.backward(dscores)
    errors = {"x": rel_error(dx, numerical_gradient(lambda xx: loss_of(fresh(), xx), x.copy(), 1.0, h))}
    for (name, layer), (_, ref_layer) in zip(analytic.named_layers(), model.named_layers()):
        for key in layer.params:

            def f(p, name=name, key=key):
                probe = fresh()
                probe[name].params[key] = p
                return loss_of(probe, x)

            numeric = numerical_gradient(f, ref_layer.params[key].copy(), 1.0, h)
            errors[f"{name}.{key}"] = rel_error(layer.grads[key], numeric)
    return errors


def relu_rule_errors(x, dout):
    """Check every ReLU backward mode against its rule, written independently.

    ``"standard"`` is also a true gradient (checked by :func:`check_layer`);
    ``"guided"`` and ``"deconvnet"`` are *rules*, not gradients, so they are
    checked against their definitions, written here in a different form:
    guided = ``max(standard gradient, 0)`` and deconvnet = ``max(dout, 0)``.

    Returns
    -------
    dict
        mode -> max absolute difference (0.0 when the rule holds).
    """
    relu = ReLU()
    relu.forward(x)
    standard = dout * (x > 0)
    expected = {"standard": standard, "guided": np.maximum(standard, 0.0), "deconvnet": np.maximum(dout, 0.0)}
    return {mode: float(np.abs(relu.backward(dout, mode=mode) - want).max()) for mode, want in expected.items()}


def kink_free_input(shape, rng, margin=0.1):
    """Random float64 input whose entries are at least ``margin`` away from 0 (no ReLU kink)."""
    gen = as_generator(rng)
    magnitude = margin + gen.random(shape)
    return np.where(gen.random(shape) < 0.5, -magnitude, magnitude)


def distinct_input(shape, rng, spacing=1e-2):
    """Random float64 input whose entries differ pairwise by at least ``spacing``.

    Max-pool has a kink wherever two window entries tie; with ``spacing``
    far above the finite-difference step no perturbation changes an argmax.
    """
    gen = as_generator(rng)
    size = int(np.prod(shape))
    return (gen.permutation(size) * spacing - size * spacing / 2).reshape(shape)


# The convolution grid every check shares -- the layer gradient checks here, the
# naive-vs-fast kernel tests and the convolution exercises' checkers:
# (N, C, H, W, F, K, stride, padding). Non-square and odd sizes, stride 2 and 3,
# padding, a 1x1 and a 5x5 kernel, and C == F in some cases, so that a
# transposed weight still has the right shape and only its values can tell.
CONV_CASES = (
    (2, 3, 7, 5, 4, 3, 1, 1),
    (2, 2, 8, 7, 3, 3, 2, 1),
    (1, 3, 5, 6, 2, 2, 2, 0),
    (2, 1, 6, 9, 2, 5, 1, 2),
    (2, 2, 4, 3, 2, 1, 1, 0),
    (2, 2, 7, 10, 3, 3, 3, 0),
    (1, 1, 4, 4, 1, 3, 1, 0),
    (2, 2, 7, 6, 2, 3, 2, 1),
)


def layer_cases(seed=0):
    """The layer x configuration x shape grid checked by the tests and the CLI.

    Shapes include non-square inputs, odd sizes, stride 2, padding and
    overlapping pooling windows.

    Returns
    -------
    list of (label, layer, x)
    """
    rng = np.random.default_rng(seed)
    cases = []

    def add(label, layer, x):
        cases.append((label, layer, x))

    for n, c, h, w, f, k, s, p in CONV_CASES:
        layer = Conv2d(c, f, k, stride=s, padding=p, rng=rng)
        layer.params["b"] = rng.standard_normal(f)
        add(f"Conv2d(k={k}, s={s}, p={p}) on {c}x{h}x{w}", layer, rng.standard_normal((n, c, h, w)))
    for k, s, h, w in [(2, None, 6, 5), (3, 2, 7, 7), (2, 1, 5, 4), (3, None, 7, 8)]:
        add(f"MaxPool2d(k={k}, s={s or k}) on {h}x{w}", MaxPool2d(k, s), distinct_input((2, 3, h, w), rng))
        add(f"AvgPool2d(k={k}, s={s or k}) on {h}x{w}", AvgPool2d(k, s), rng.standard_normal((2, 3, h, w)))
    add("GlobalAvgPool2d on 3x5x4", GlobalAvgPool2d(), rng.standard_normal((2, 3, 5, 4)))
    add("Flatten on 3x4x5", Flatten(), rng.standard_normal((2, 3, 4, 5)))
    lin = Linear(7, 5, rng=rng)
    lin.params["b"] = rng.standard_normal(5)
    add("Linear(7 -> 5)", lin, rng.standard_normal((4, 7)))
    add("ReLU on 3x5x4", ReLU(), kink_free_input((2, 3, 5, 4), rng))
    add("ReLU on vectors 6", ReLU(), kink_free_input((3, 6), rng))
    add("Dropout(p=0.3) train", Dropout(0.3, rng=int(rng.integers(2**31))), rng.standard_normal((2, 3, 4, 5)))
    add("Dropout(p=0.3) eval", Dropout(0.3, rng=0).eval(), rng.standard_normal((2, 3, 4, 5)))
    for training in (True, False):
        bn = BatchNorm2d(3)
        bn.params["gamma"] = 1.0 + 0.5 * rng.standard_normal(3)
        bn.params["beta"] = rng.standard_normal(3)
        bn.buffers["running_mean"] = rng.standard_normal(3)
        bn.buffers["running_var"] = 0.5 + rng.random(3)
        bn.train(training)
        add(f"BatchNorm2d {'train' if training else 'eval'} on 3x5x3", bn, 2.0 + rng.standard_normal((4, 3, 5, 3)))
    # The AlexNet/VGG/ResNet layers come last, so the cases above keep their random draws.
    # Adaptive pooling: ResNet's (1, 1); windows of unequal size that overlap (7 -> 3,
    # 5 -> 2); an output larger than the input (windows repeat rows); a divisible case.
    for (oh, ow), h, w in [((1, 1), 5, 4), ((3, 2), 7, 5), ((4, 6), 3, 4), ((2, 2), 6, 6)]:
        add(f"AdaptiveAvgPool2d(({oh}, {ow})) on {h}x{w}", AdaptiveAvgPool2d((oh, ow)), rng.standard_normal((2, 3, h, w)))
    # Padded max-pool: ResNet's stem (3/2/1, overlapping), non-overlapping windows whose
    # edge ones are half padding, stride 1; padding is -inf, so it never wins.
    for k, s, p, h, w in [(3, 2, 1, 7, 8), (2, 2, 1, 5, 6), (3, 1, 1, 4, 5)]:
        add(f"MaxPool2d(k={k}, s={s}, p={p}) on {h}x{w}", MaxPool2d(k, s, padding=p), distinct_input((2, 3, h, w), rng))
    # Convolutions without a bias (before BatchNorm in ResNet): a 3x3 stride-2 one and
    # ResNet's 1x1 stride-2 shortcut; their only parameter is W.
    for n, c, h, w, f, k, s, p in [(2, 3, 7, 6, 4, 3, 2, 1), (2, 4, 7, 5, 3, 1, 2, 0)]:
        add(f"Conv2d(k={k}, s={s}, p={p}, bias=False) on {c}x{h}x{w}", Conv2d(c, f, k, stride=s, padding=p, bias=False, rng=rng),
            rng.standard_normal((n, c, h, w)))
    return cases


def model_cases(seed=0):
    """Small whole models checked end to end: a GAP net, an FC net, and one with BatchNorm + Dropout.

    Returns
    -------
    list of (label, model, x, y)
    """
    rng = np.random.default_rng(seed)
    gap = Sequential([
        Conv2d(3, 4, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2),
        Conv2d(4, 5, 3, padding=1, rng=rng), ReLU(), GlobalAvgPool2d(), Linear(5, 3, rng=rng),
    ])
    fc = Sequential([
        Conv2d(2, 3, 3, stride=2, padding=1, rng=rng), ReLU(), AvgPool2d(2),
        Flatten(), Linear(3 * 2 * 2, 6, rng=rng), ReLU(), Linear(6, 4, rng=rng),
    ])
    bn = Sequential([
        # ReLU before BatchNorm: a conv bias *directly* before train-mode
        # BatchNorm has a gradient that is exactly zero (the batch mean
        # removes it), whose relative error is rounding noise over rounding
        # noise -- meaningless, see rel_error.
        Conv2d(3, 4, 3, padding=1, rng=rng), ReLU(), BatchNorm2d(4),
        Conv2d(4, 4, 3, stride=2, rng=rng), ReLU(), Dropout(0.25, rng=1), GlobalAvgPool2d(), Linear(4, 3, rng=rng),
    ])
    return [
        ("GAP net (conv-relu-pool-conv-relu-gap-fc) on 3x8x6", gap, rng.standard_normal((3, 3, 8, 6)), np.array([0, 2, 1])),
        ("FC net (conv s2-relu-avgpool-flatten-fc-relu-fc) on 2x9x8", fc, rng.standard_normal((3, 2, 9, 8)), np.array([3, 0, 1])),
        ("BN + Dropout net (conv-relu-bn-conv-relu-dropout-gap-fc) on 3x7x7", bn, rng.standard_normal((4, 3, 7, 7)), np.array([0, 1, 2, 1])),
    ]
