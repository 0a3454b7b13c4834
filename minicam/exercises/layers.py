"""Checkers for the layer exercises: ReLU backward (three rules), max-pool backward, convolution forward and backward."""

import numpy as np

from .. import functional as F
from .._validate import check_int
from ..gradcheck import CONV_CASES
from ..layers import RELU_MODES, MaxPool2d, ReLU
from .report import Case, run_cases, x_context

__all__ = ["check_relu_backward", "check_maxpool_backward", "check_conv_forward", "check_conv_backward"]


# --------------------------------------------------------------------------
# ReLU
# --------------------------------------------------------------------------


def _relu_cases(rng):
    cases = []
    for shape in [(2, 3, 4, 5), (3, 7), (1, 2, 6, 3)]:
        x = rng.standard_normal(shape)
        dout = rng.standard_normal(shape)
        # The conventions live at the kinks: exact zeros in x (ReLU'(0) = 0)
        # and in dout (the guided and deconvnet rules keep dout > 0 only).
        x.flat[rng.choice(x.size, size=max(2, x.size // 8), replace=False)] = 0.0
        dout.flat[rng.choice(dout.size, size=max(2, dout.size // 8), replace=False)] = 0.0
        cases.append((x, dout))
    return cases


_RELU_RULE_MISTAKE = {
    ("standard", "guided"): "you kept only dout > 0 (the guided rule): the gradient passes dout of either sign "
                            "where x > 0",
    ("standard", "deconvnet"): "you masked with dout > 0 (the deconvnet rule): the gradient masks with x > 0",
    ("guided", "standard"): "you masked with x > 0 only (the gradient): the guided rule also drops dout <= 0",
    ("guided", "deconvnet"): "you masked with dout > 0 only (deconvnet): the guided rule also needs x > 0",
    ("deconvnet", "standard"): "you masked with x > 0 (the gradient): deconvnet ignores x and keeps dout > 0",
    ("deconvnet", "guided"): "you masked with x > 0 as well (the guided rule): deconvnet ignores x",
}


def check_relu_backward(student_fn, mode="standard", seed=0, raise_on_fail=False, verbose=True):
    """Check a ReLU backward pass (standard, guided or deconvnet rule).

    Parameters
    ----------
    student_fn : callable
        ``student_fn(dout, x) -> dx``, called with keywords. ``x`` is the ReLU's
        input and ``dout`` the upstream gradient, both ndarrays of the same
        (any) shape; ``dx`` has that shape too.
    mode : {"standard", "guided", "deconvnet"}
        Which rule the student implemented (see :class:`minicam.ReLU`):
        standard ``dout * [x > 0]``; guided ``dout * [x > 0] * [dout > 0]``;
        deconvnet ``dout * [dout > 0]``.
    seed : int
        Seed of the random cases (4-D and 2-D inputs with exact zeros in ``x``
        and ``dout``).
    raise_on_fail : bool
        Raise :class:`ExerciseError` instead of returning ``False``.
    verbose : bool
        Print the report.

    Returns
    -------
    bool
        True when every case matches :meth:`minicam.ReLU.backward`.
    """
    if mode not in RELU_MODES:
        raise ValueError(f"mode must be one of {RELU_MODES}, got {mode!r}")
    seed = check_int(seed, "seed", minimum=0)
    cases = []
    for x, dout in _relu_cases(np.random.default_rng(seed)):
        relu = ReLU()
        relu.forward(x)
        dx = relu.backward(dout, mode=mode)
        rules = {m: relu.backward(dout, mode=m) for m in RELU_MODES}
        mistakes = [("dx", rules[m], _RELU_RULE_MISTAKE[mode, m]) for m in RELU_MODES if m != mode]
        if mode != "deconvnet":  # the kink of x matters only to the rules that read x
            at_kink = dout * (x >= 0) * ((dout > 0) if mode == "guided" else 1.0)
            mistakes.append(("dx", at_kink, "you let the gradient through where x = 0 (x >= 0): ReLU'(0) = 0, "
                                            "so the mask is x > 0, strictly"))
        mistakes.append(("dx", dout, "dx = dout: the mask is missing"))
        cases.append(Case(f"x and dout of shape {x.shape}, with exact zeros in both",
                           {"dout": dout, "x": x}, {"dx": dx}, x_context(x, dout), mistakes))
    hints = {
        "standard": ["dx = dout * [x > 0]; ReLU'(0) = 0: the gradient passes where x > 0 (strictly), not x >= 0",
                     "the sign of dout does not matter: negative gradients pass too"],
        "guided": ["guided: keep dout only where x > 0 AND dout > 0 (both masks, both strict)",
                   "x > 0 comes from the forward pass (ReLU'(0) = 0); dout > 0 drops negative gradients"],
        "deconvnet": ["deconvnet: dx = dout * [dout > 0], the positive part of dout",
                      "the forward input x plays no role in this rule: do not mask with it"],
    }[mode]
    hints.append("the result has the shape of x; multiply dout by a mask, do not replace it")
    return run_cases(f"check_relu_backward(mode={mode!r})", student_fn, cases, hints, raise_on_fail, verbose)


# --------------------------------------------------------------------------
# Max pooling
# --------------------------------------------------------------------------


def _maxpool_context(x, kernel_size, stride):
    def context(name, idx):
        n, c, i, j = idx
        # the windows that contain (i, j)
        wins = []
        h_out = F.output_size(x.shape[2], kernel_size, stride)
        w_out = F.output_size(x.shape[3], kernel_size, stride)
        for a in range(h_out):
            for b in range(w_out):
                if a * stride <= i < a * stride + kernel_size and b * stride <= j < b * stride + kernel_size:
                    wins.append((a, b))
        where = ", ".join(str(w) for w in wins) if wins else "none: a dropped leftover row/column"
        return f"x = {x[idx]:.4g}; in output window(s) {where}"

    return context


def check_maxpool_backward(student_fn, seed=0, raise_on_fail=False, verbose=True):
    """Check a max-pooling backward pass.

    Parameters
    ----------
    student_fn : callable
        ``student_fn(dout, x, kernel_size, stride) -> dx``, called with keywords
        (the signature of :func:`minicam.functional.max_pool2d_backward_naive`).
        ``x``: the input, shape (N, C, H, W); ``dout``: shape (N, C, H_out, W_out)
        with ``H_out = (H - kernel_size) // stride + 1`` (floor mode);
        ``dx``: shape (N, C, H, W).
    seed : int
        Seed of the random cases: non-square inputs, leftover rows/columns,
        stride 2 and stride 1 (overlapping windows), inputs with ties (small
        integers) and a constant input.
    raise_on_fail, verbose : bool
        As in :func:`check_relu_backward`.

    Returns
    -------
    bool
        True when every case matches :class:`minicam.MaxPool2d`'s backward.

    Notes
    -----
    The reference sends each window's gradient to the window's *first*
    maximum in row-major order; overlapping windows add their gradients.
    """
    seed = check_int(seed, "seed", minimum=0)
    rng = np.random.default_rng(seed)
    specs = [
        # (shape, kernel_size, stride, ties)
        ((2, 3, 4, 6), 2, 2, False),
        ((1, 2, 7, 5), 2, 2, False),
        ((2, 2, 7, 7), 3, 2, False),
        ((2, 2, 6, 5), 2, 1, False),
        ((2, 3, 6, 6), 2, 2, True),
        ((1, 2, 7, 6), 3, 2, True),
        ((1, 1, 4, 6), 2, 2, "constant"),
    ]
    cases = []
    for shape, k, s, ties in specs:
        if ties == "constant":
            x = np.full(shape, 0.5)
            what = "a constant input (every window is one big tie)"
        elif ties:
            x = rng.integers(0, 3, size=shape).astype(np.float64)
            what = "ties (values in {0, 1, 2})"
        else:
            x = rng.standard_normal(shape)
            what = "distinct values"
        layer = MaxPool2d(k, stride=s)
        out = layer.forward(x)
        dout = rng.standard_normal(out.shape)
        dx = layer.backward(dout)
        cases.append(Case(f"x {shape} with {what}, kernel_size={k}, stride={s}",
                           {"dout": dout, "x": x, "kernel_size": k, "stride": s},
                           {"dx": dx}, _maxpool_context(x, k, s)))
    hints = [
        "each window sends its whole gradient to ONE position: its first maximum in row-major "
        "order (np.argmax of the flattened window), even when several entries tie",
        "with stride < kernel_size the windows overlap: add (+=), do not overwrite (=)",
        "window (i, j) starts at row i*stride, column j*stride; leftover rows/columns get 0",
    ]
    return run_cases("check_maxpool_backward", student_fn, cases, hints, raise_on_fail, verbose)


# --------------------------------------------------------------------------
# Convolution
# --------------------------------------------------------------------------

def _conv_cases(rng):
    for n, c, h, w, f, k, s, p in CONV_CASES:
        x = rng.standard_normal((n, c, h, w))
        W = rng.standard_normal((f, c, k, k))
        b = rng.standard_normal(f)
        label = f"x {x.shape}, W {W.shape}, stride={s}, padding={p}"
        yield label, x, W, b, s, p


def check_conv_forward(student_fn, seed=0, raise_on_fail=False, verbose=True):
    """Check a convolution forward pass (cross-correlation with zero padding).

    Parameters
    ----------
    student_fn : callable
        ``student_fn(x, W, b, stride, padding) -> out``, called with keywords
        (the signature of :func:`minicam.functional.conv2d_forward_naive`).
        ``x``: (N, C, H, W); ``W``: (F, C, K, K); ``b``: (F,);
        ``out``: (N, F, H_out, W_out), ``H_out = (H + 2*padding - K) // stride + 1``.
    seed, raise_on_fail, verbose
        As in :func:`check_relu_backward`.

    Returns
    -------
    bool
        True when every case matches :class:`minicam.Conv2d`'s forward.
    """
    seed = check_int(seed, "seed", minimum=0)
    cases = []
    for label, x, W, b, s, p in _conv_cases(np.random.default_rng(seed)):
        out, _ = F.conv2d_forward(x, W, b, s, p)
        cases.append(Case(label, {"x": x, "W": W, "b": b, "stride": s, "padding": p}, {"out": out}))
    hints = [
        "cross-correlation, no kernel flip: out[n,f,i,j] = b[f] + sum_{c,p,q} W[f,c,p,q] * x_pad[n,c,i*s+p,j*s+q]",
        "pad with zeros on every side BEFORE sliding the window; window (i, j) starts at (i*stride, j*stride)",
        "H_out = (H + 2*padding - K) // stride + 1 (leftover rows/columns are dropped)",
    ]
    return run_cases("check_conv_forward", student_fn, cases, hints, raise_on_fail, verbose)


def check_conv_backward(student_fn, seed=0, raise_on_fail=False, verbose=True):
    """Check a convolution backward pass: ``dx``, ``dW`` and ``db``.

    Parameters
    ----------
    student_fn : callable
        ``student_fn(dout, x, W, stride, padding) -> (dx, dW, db)``, called with
        keywords (the signature of :func:`minicam.functional.conv2d_backward_naive`).
        ``dout``: (N, F, H_out, W_out); ``x``: (N, C, H, W); ``W``: (F, C, K, K).
        Returns ``dx`` (N, C, H, W), ``dW`` (F, C, K, K), ``db`` (F,).
    seed, raise_on_fail, verbose
        As in :func:`check_relu_backward`.

    Returns
    -------
    bool
        True when every case matches :class:`minicam.Conv2d`'s backward.
    """
    seed = check_int(seed, "seed", minimum=0)
    rng = np.random.default_rng(seed)
    cases = []
    for label, x, W, b, s, p in _conv_cases(rng):
        out, cols = F.conv2d_forward(x, W, b, s, p)
        dout = rng.standard_normal(out.shape)
        dx, dW, db = F.conv2d_backward(dout, cols, x.shape, W, s, p)
        cases.append(Case(label, {"dout": dout, "x": x, "W": W, "stride": s, "padding": p},
                           {"dx": dx, "dW": dW, "db": db}))
    hints = [
        "each output out[n,f,i,j] read the window x_pad[n, :, i*s:i*s+K, j*s:j*s+K]: send dout[n,f,i,j] "
        "back to that window times W[f] (for dx) and add window * dout[n,f,i,j] to dW[f]",
        "dx is the gradient of the UNPADDED x: accumulate into a padded array, then crop the padding",
        "db[f] sums dout over the batch and every position (a sum, not a mean)",
        "dW[f, c] pairs output channel f with input channel c: no transpose",
    ]
    return run_cases("check_conv_backward", student_fn, cases, hints, raise_on_fail, verbose)
