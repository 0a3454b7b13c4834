"""Exercise checkers: compare a student's function with minicam's reference.

The notebooks ask students to write a few functions themselves -- a ReLU
backward (three rules), a max-pool backward, a convolution forward and
backward, Grad-CAM's channel weights, the full Grad-CAM map, Guided Grad-CAM
and the counterfactual map. Each ``check_*`` function below runs the student's function
and the library's reference on several random inputs (non-square shapes,
stride 2, padding, overlapping windows, max-pool ties, exact zeros at the
ReLU kink), prints a mine-vs-reference report and returns ``True`` when every
case matches.

A failure report names the case (shapes and hyper-parameters), each output's
shape (yours and the reference's), the norm-wise relative error
(:func:`minicam.gradcheck.rel_error`) and the first differing positions with
both values, then a *diagnosis* when the answer equals a known mistake
(a missing ReLU, a sum instead of a mean, the wrong rule or sign, nearest
instead of bilinear upsampling, ...), followed by the conventions that most
often explain the difference. A function that still raises ``NotImplementedError`` is reported
as "not attempted yet", so a notebook full of stubs still runs top to bottom.

Usage in a notebook::

    def relu_backward(dout, x):
        # TODO: return dx, the gradient with respect to x
        raise NotImplementedError

    mc.exercises.check_relu_backward(relu_backward)

Every checker takes ``seed`` (the random cases; the default is the one the
notebooks use), ``raise_on_fail`` (raise :class:`ExerciseError` with the
report instead of returning ``False``: for grading scripts) and ``verbose``
(print the report; it is also returned by :func:`last_report`).

The student's function receives copies of the inputs; it must not write into
them (a minicam convention), and the report says so when it does.
"""

import copy
import traceback

import numpy as np

from . import functional as F
from ._validate import check_int
from .explain import combine, grad_cam, guided_backprop, guided_grad_cam, layer_gradients, normalize, saliency, upsample
from .gradcheck import CONV_CASES, rel_error
from .layers import RELU_MODES, Conv2d, Flatten, GlobalAvgPool2d, Linear, MaxPool2d, ReLU
from .model import Sequential

__all__ = [
    "ExerciseError",
    "TOL",
    "check_relu_backward",
    "check_maxpool_backward",
    "check_conv_forward",
    "check_conv_backward",
    "check_grad_cam_weights",
    "check_grad_cam",
    "check_guided_grad_cam",
    "check_counterfactual",
    "last_report",
]

TOL = 1e-7
"""Largest accepted norm-wise relative error. A correct float64 answer is
off by rounding only (~1e-15); any real mistake is off by far more."""

_MAX_POSITIONS = 5
_last_report = ""


class ExerciseError(AssertionError):
    """Raised by a checker called with ``raise_on_fail=True`` when the answer is wrong."""


def last_report():
    """The text of the most recent checker's report (also when ``verbose=False``)."""
    return _last_report


# --------------------------------------------------------------------------
# The shared machinery: run cases, compare, report
# --------------------------------------------------------------------------


class _Case:
    """One input set: a label, keyword arguments and the reference outputs."""

    def __init__(self, label, kwargs, expected, context=None, mistakes=()):
        self.label = label
        self.kwargs = kwargs
        self.expected = expected  # dict name -> ndarray, in output order
        self.context = context  # callable(output name, index) -> str, or None
        self.mistakes = mistakes  # (output name, what that mistake gives, diagnosis), tried in order


def _diagnose(case, names, results):
    """The diagnosis of the first known mistake the student's outputs reproduce, or None."""
    mine = dict(zip(names, results))
    for name, wrong, message in case.mistakes:
        try:
            value = np.asarray(mine[name], dtype=np.float64)
        except (TypeError, ValueError):
            return None
        if value.shape == wrong.shape and np.all(np.isfinite(value)) and rel_error(value, wrong) <= TOL:
            return message
    return None


def _fmt(value):
    return f"{value: .6g}"


def _copy_args(kwargs):
    out = {}
    for key, value in kwargs.items():
        if isinstance(value, np.ndarray):
            out[key] = value.copy()
        elif isinstance(value, Sequential):
            out[key] = copy.deepcopy(value)
        else:
            out[key] = value
    return out


def _compare(name, mine, ref, context):
    """Lines describing how ``mine`` differs from ``ref``; empty when they match."""
    lines = []
    if mine is None:
        return [f"  {name}: your function returned None for it -- did you forget a `return`?"]
    try:
        mine = np.asarray(mine, dtype=np.float64)
    except (TypeError, ValueError):
        return [f"  {name}: expected an ndarray of numbers, got {type(mine).__name__}"]
    if mine.shape != ref.shape:
        return [f"  {name}: shape mine {mine.shape} != reference {ref.shape}"]
    if not np.all(np.isfinite(mine)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(mine))[0])
        return [f"  {name}: shape {mine.shape} ok, but it contains NaN or infinity (first at {bad})"]
    err = rel_error(mine, ref)
    if err <= TOL:
        return []
    scale = max(np.abs(ref).max(), np.abs(mine).max())
    differ = np.abs(mine - ref) > TOL * scale
    positions = np.argwhere(differ)
    lines.append(f"  {name}: shape {mine.shape} ok; relative error {err:.2e} (tolerance {TOL:.0e}); "
                 f"{len(positions)} of {ref.size} entries differ")
    lines.append(f"    first differing positions{'':14s}mine     reference")
    for idx in positions[:_MAX_POSITIONS]:
        idx = tuple(int(i) for i in idx)
        extra = f"   ({context(name, idx)})" if context is not None else ""
        lines.append(f"      {str(idx):30s} {_fmt(mine[idx]):>12s} {_fmt(ref[idx]):>12s}{extra}")
    if len(positions) > _MAX_POSITIONS:
        lines.append(f"      ... and {len(positions) - _MAX_POSITIONS} more")
    return lines


def _run(title, student_fn, cases, hints, raise_on_fail, verbose):
    """Run every case; report the first failing one (or the success)."""
    global _last_report
    if not callable(student_fn):
        raise TypeError(f"student_fn must be a function, got {type(student_fn).__name__}")
    raise_on_fail = bool(raise_on_fail)
    outcome, lines = True, []
    worst = 0.0
    for number, case in enumerate(cases, start=1):
        args = _copy_args(case.kwargs)
        try:
            result = student_fn(**args)
        except NotImplementedError:
            outcome = False
            lines = [f"{title}: not attempted yet (your function raises NotImplementedError). "
                     "Write it, run its cell again, then run this check."]
            break
        except Exception as err:  # noqa: BLE001 - any student error is reported, not crashed on
            outcome = False
            lines = [f"{title}: FAILED on case {number} of {len(cases)}: {case.label}",
                     f"  your function raised {type(err).__name__}: {err}"]
            lines += _failure_location(err, student_fn)
            if hints:
                lines.append("  conventions to check:")
                lines += [f"    - {hint}" for hint in hints]
            break
        names = list(case.expected)
        if len(names) == 1:
            results = [result]
        elif isinstance(result, (tuple, list)) and len(result) == len(names):
            results = list(result)
        else:
            outcome = False
            got = f"a {type(result).__name__} of length {len(result)}" if isinstance(result, (tuple, list)) \
                else f"a {type(result).__name__}"
            lines = [f"{title}: FAILED on case {number} of {len(cases)}: {case.label}",
                     f"  expected a tuple ({', '.join(names)}), got {got}"]
            break
        problems = []
        for name, mine in zip(names, results):
            problems += _compare(name, mine, case.expected[name], case.context)
        modified = [key for key, value in case.kwargs.items()
                    if isinstance(value, np.ndarray) and not np.array_equal(args[key], value)]
        if problems or modified:
            outcome = False
            lines = [f"{title}: FAILED on case {number} of {len(cases)}: {case.label}"] + problems
            if modified:
                lines.append(f"  your function wrote into its argument(s) {modified}: "
                             "minicam functions never modify their inputs (work on a copy)")
            diagnosis = _diagnose(case, names, results) if problems else None
            if diagnosis:
                lines.append(f"  diagnosis: {diagnosis}")
            if hints:
                lines.append("  conventions to check:")
                lines += [f"    - {hint}" for hint in hints]
            break
        for name, mine in zip(names, results):
            worst = max(worst, rel_error(np.asarray(mine, dtype=np.float64), case.expected[name]))
    if outcome:
        lines = [f"{title}: PASSED -- all {len(cases)} cases match the reference "
                 f"(largest relative error {worst:.1e})"]
    report = "\n".join(lines)
    _last_report = report
    if verbose:
        print(report)
    if not outcome and raise_on_fail:
        raise ExerciseError(report)
    return outcome


def _failure_location(err, student_fn):
    """The line of the student's code where ``err`` was raised (not NumPy's)."""
    frames = traceback.extract_tb(err.__traceback__)[1:]  # drop the checker's own frame
    code = getattr(student_fn, "__code__", None)
    mine = [f for f in frames if code is not None and f.filename == code.co_filename] or frames
    if not mine:
        return []
    last = mine[-1]
    return [f"  in {last.name}, line {last.lineno}" + (f": {last.line}" if last.line else "")]


def _x_context(x, dout=None):
    """Context for an output shaped like ``x``: the input value there (and dout's)."""

    def context(name, idx):
        text = f"x = {x[idx]:.4g}"
        if dout is not None:
            text += f", dout = {dout[idx]:.4g}"
        return text

    return context


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
        cases.append(_Case(f"x and dout of shape {x.shape}, with exact zeros in both",
                           {"dout": dout, "x": x}, {"dx": dx}, _x_context(x, dout), mistakes))
    hints = {
        "standard": ["dx = dout * [x > 0]; ReLU'(0) = 0: the gradient passes where x > 0 (strictly), not x >= 0",
                     "the sign of dout does not matter: negative gradients pass too"],
        "guided": ["guided: keep dout only where x > 0 AND dout > 0 (both masks, both strict)",
                   "x > 0 comes from the forward pass (ReLU'(0) = 0); dout > 0 drops negative gradients"],
        "deconvnet": ["deconvnet: dx = dout * [dout > 0], the positive part of dout",
                      "the forward input x plays no role in this rule: do not mask with it"],
    }[mode]
    hints.append("the result has the shape of x; multiply dout by a mask, do not replace it")
    return _run(f"check_relu_backward(mode={mode!r})", student_fn, cases, hints, raise_on_fail, verbose)


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
        cases.append(_Case(f"x {shape} with {what}, kernel_size={k}, stride={s}",
                           {"dout": dout, "x": x, "kernel_size": k, "stride": s},
                           {"dx": dx}, _maxpool_context(x, k, s)))
    hints = [
        "each window sends its whole gradient to ONE position: its first maximum in row-major "
        "order (np.argmax of the flattened window), even when several entries tie",
        "with stride < kernel_size the windows overlap: add (+=), do not overwrite (=)",
        "window (i, j) starts at row i*stride, column j*stride; leftover rows/columns get 0",
    ]
    return _run("check_maxpool_backward", student_fn, cases, hints, raise_on_fail, verbose)


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
        cases.append(_Case(label, {"x": x, "W": W, "b": b, "stride": s, "padding": p}, {"out": out}))
    hints = [
        "cross-correlation, no kernel flip: out[n,f,i,j] = b[f] + sum_{c,p,q} W[f,c,p,q] * x_pad[n,c,i*s+p,j*s+q]",
        "pad with zeros on every side BEFORE sliding the window; window (i, j) starts at (i*stride, j*stride)",
        "H_out = (H + 2*padding - K) // stride + 1 (leftover rows/columns are dropped)",
    ]
    return _run("check_conv_forward", student_fn, cases, hints, raise_on_fail, verbose)


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
        cases.append(_Case(label, {"dout": dout, "x": x, "W": W, "stride": s, "padding": p},
                           {"dx": dx, "dW": dW, "db": db}))
    hints = [
        "each output out[n,f,i,j] read the window x_pad[n, :, i*s:i*s+K, j*s:j*s+K]: send dout[n,f,i,j] "
        "back to that window times W[f] (for dx) and add window * dout[n,f,i,j] to dW[f]",
        "dx is the gradient of the UNPADDED x: accumulate into a padded array, then crop the padding",
        "db[f] sums dout over the batch and every position (a sum, not a mean)",
        "dW[f, c] pairs output channel f with input channel c: no transpose",
    ]
    return _run("check_conv_backward", student_fn, cases, hints, raise_on_fail, verbose)


# --------------------------------------------------------------------------
# Grad-CAM channel weights
# --------------------------------------------------------------------------


def _reference_grad_cam_weights(model, x, class_idx, layer):
    """alpha (N, K): the weights :func:`minicam.grad_cam` uses."""
    return grad_cam(model, x, class_idx, layer=layer, return_weights=True)[1]


def _weight_cases(rng):
    gap = Sequential([
        ("conv1", Conv2d(3, 4, 3, padding=1, rng=rng)), ("relu1", ReLU()), ("pool1", MaxPool2d(2)),
        ("conv2", Conv2d(4, 6, 3, padding=1, rng=rng)), ("relu2", ReLU()),
        ("gap", GlobalAvgPool2d()), ("fc", Linear(6, 3, rng=rng)),
    ])
    gap["fc"].params["b"] = rng.standard_normal(3)
    fc = Sequential([
        ("conv1", Conv2d(3, 4, 3, padding=1, rng=rng)), ("relu1", ReLU()), ("pool1", MaxPool2d(2)),
        ("conv2", Conv2d(4, 5, 3, stride=2, padding=1, rng=rng)), ("relu2", ReLU()),
        ("flatten", Flatten()), ("fc1", Linear(5 * 2 * 3, 8, rng=rng)), ("relu3", ReLU()),
        ("fc2", Linear(8, 3, rng=rng)),
    ])
    return [
        ("GAP net", gap, rng.standard_normal((3, 3, 10, 8)), "relu2"),
        ("GAP net", gap, rng.standard_normal((2, 3, 6, 10)), "relu1"),
        ("FC net (conv -> flatten -> linear -> relu -> linear)", fc, rng.standard_normal((3, 3, 8, 12)), "relu2"),
    ]


def check_grad_cam_weights(student_fn, seed=0, raise_on_fail=False, verbose=True):
    """Check Grad-CAM's channel weights (Selvaraju et al. 2017, eq. 1).

    Parameters
    ----------
    student_fn : callable
        ``student_fn(model, x, class_idx, layer) -> alpha``, called with keywords.
        ``model``: a :class:`minicam.Sequential` (a private copy: run its
        ``forward`` and ``backward`` freely); ``x``: (N, C, H, W); ``class_idx``:
        int ndarray of shape (N,), the class explained for each sample (not
        necessarily the predicted one); ``layer``: the name of the layer whose
        output is the feature map A, shape (N, K, h, w). Returns ``alpha``,
        shape (N, K).
    seed, raise_on_fail, verbose
        As in :func:`check_relu_backward`.

    Returns
    -------
    bool

    Notes
    -----
    .. math:: \\alpha_k^c = \\frac{1}{Z} \\sum_{i,j} \\frac{\\partial y^c}{\\partial A^k_{ij}}

    with :math:`y^c` the class score (logit, before softmax) and ``Z = h w``.
    The cases include a layer that is not the last feature map and a network
    with a fully connected head, where ``alpha`` is not the last linear
    layer's weights.
    """
    seed = check_int(seed, "seed", minimum=0)
    rng = np.random.default_rng(seed)
    cases = []
    for what, model, x, layer in _weight_cases(rng):
        n = len(x)
        num_classes = model.forward(x).shape[1]
        # explain a class that is not the prediction: the student must use class_idx
        predicted = model.outputs[model.names[-1]].argmax(axis=1)
        class_idx = (predicted + 1 + rng.integers(0, num_classes - 1, size=n)) % num_classes
        alpha = _reference_grad_cam_weights(copy.deepcopy(model), x, class_idx, layer)
        cases.append(_Case(f"{what}, x {x.shape}, layer={layer!r}, class_idx={class_idx.tolist()}",
                           {"model": model, "x": x, "class_idx": class_idx, "layer": layer},
                           {"alpha": alpha}))
    hints = [
        "differentiate the class score y^c (the logit): upstream gradient = one-hot rows, "
        "one per sample, at class_idx[n]; then model.backward(onehot, stop_at=layer)",
        "alpha averages the gradient over the h*w positions of each map (a mean, not a sum): shape (N, K)",
        "alpha equals the last Linear layer's weights / Z only for the LAST map of a GAP network",
    ]
    return _run("check_grad_cam_weights", student_fn, cases, hints, raise_on_fail, verbose)


# --------------------------------------------------------------------------
# The full maps: Grad-CAM, its counterfactual, Guided Grad-CAM
# --------------------------------------------------------------------------


def _map_cases(seed):
    """Cases of the map checkers: the weight checker's networks, a class that is not the prediction."""
    rng = np.random.default_rng(seed)
    cases = []
    for label, model, x, layer in _weight_cases(rng):
        n = len(x)
        scores = model.forward(x)
        predicted = scores.argmax(axis=1)
        class_idx = (predicted + 1 + rng.integers(0, scores.shape[1] - 1, size=n)) % scores.shape[1]
        ref = copy.deepcopy(model)
        A, dA = layer_gradients(ref, x, class_idx, layer=layer)  # (N, K, h, w) each
        alpha = dA.mean(axis=(2, 3))  # (N, K)
        signed = combine(alpha, A)  # (N, h, w)
        parts = {"model": ref, "x": x, "class_idx": class_idx, "predicted": predicted, "layer": layer, "A": A,
                 "dA": dA, "alpha": alpha, "signed": signed}
        cases.append((f"{label}, x {x.shape}, layer={layer!r}, class_idx={class_idx.tolist()}",
                      {"model": model, "x": x, "class_idx": class_idx, "layer": layer}, parts))
    return cases


def check_grad_cam(student_fn, seed=0, raise_on_fail=False, verbose=True):
    """Check the full Grad-CAM map (Selvaraju et al. 2017, eqs. 1-2), at the layer's resolution.

    Parameters
    ----------
    student_fn : callable
        ``student_fn(model, x, class_idx, layer) -> L``, called with keywords,
        as in :func:`check_grad_cam_weights`. Returns ``L``, shape (N, h, w):
        ``ReLU(sum_k alpha_k A^k)`` with ``A`` the output of ``layer``, raw
        (not normalised, not upsampled).
    seed, raise_on_fail, verbose
        As in :func:`check_relu_backward`.

    Returns
    -------
    bool
    """
    seed = check_int(seed, "seed", minimum=0)
    cases = []
    for label, kwargs, p in _map_cases(seed):
        L = np.maximum(p["signed"], 0.0)
        h, w = L.shape[1:]
        batch_alpha = np.broadcast_to(p["dA"].mean(axis=(0, 2, 3)), p["alpha"].shape)
        mistakes = [
            ("L", p["signed"], "your map is sum_k alpha_k A^k without the ReLU: apply np.maximum(..., 0) to the sum"),
            ("L", combine(np.maximum(p["alpha"], 0), p["A"]),
             "you applied the ReLU to the weights alpha; the paper applies it once, to the weighted sum"),
            ("L", L * h * w, "your map is h*w times too large: alpha is the MEAN of dA over positions, not the sum"),
            ("L", np.maximum(combine(batch_alpha, p["A"]), 0),
             "your weights are the same for every sample: average dA over the positions only, "
             "dA.mean(axis=(2, 3)), not over the batch too"),
            ("L", np.maximum(-p["signed"], 0), "sign error: you negated the weights (that is the counterfactual map)"),
            ("L", normalize(L), "your map is normalised to [0, 1]: return the raw map (normalising is a display step)"),
            ("L", grad_cam(copy.deepcopy(p["model"]), p["x"], p["predicted"], layer=p["layer"]),
             "you explained the predicted class: use class_idx (one class per sample)"),
        ]
        cases.append(_Case(label, kwargs, {"L": L}, mistakes=mistakes))
    hints = [
        "alpha[n, k] = mean over (i, j) of dA[n, k, i, j], dA = d y^{class_idx[n]} / d A: dA.mean(axis=(2, 3)), shape (N, K)",
        "the weighted sum runs over channels: sum_k alpha[n, k] * A[n, k] -> (N, h, w) "
        "(np.einsum('nk,nkij->nij', alpha, A))",
        "then the ReLU, on the sum; return the raw (h, w) map: no normalising, no upsampling",
    ]
    return _run("check_grad_cam", student_fn, cases, hints, raise_on_fail, verbose)


def check_counterfactual(student_fn, seed=0, raise_on_fail=False, verbose=True):
    """Check the counterfactual map ``ReLU(sum_k (-alpha_k) A^k)`` (Selvaraju et al. 2017, Sec. 3.3).

    Parameters
    ----------
    student_fn : callable
        ``student_fn(model, x, class_idx, layer) -> L_cf``, called with
        keywords, as in :func:`check_grad_cam`. Returns ``L_cf``, shape
        (N, h, w): the regions whose features lower the score of
        ``class_idx``, raw.
    seed, raise_on_fail, verbose
        As in :func:`check_relu_backward`.

    Returns
    -------
    bool
    """
    seed = check_int(seed, "seed", minimum=0)
    cases = []
    for label, kwargs, p in _map_cases(seed):
        S = p["signed"]
        L_cf = np.maximum(-S, 0.0)
        mistakes = [
            ("L_cf", np.maximum(S, 0), "sign error: this is the Grad-CAM map itself; the counterfactual uses -alpha"),
            ("L_cf", -np.maximum(S, 0), "you negated after the ReLU: the map is ReLU(-S), not -ReLU(S) (it is >= 0)"),
            ("L_cf", -S, "the ReLU is missing: ReLU(sum_k (-alpha_k) A^k) keeps only the positive part"),
            ("L_cf", combine(np.maximum(-p["alpha"], 0), p["A"]),
             "you applied the ReLU to the negated weights; it applies once, to the weighted sum"),
        ]
        cases.append(_Case(label, kwargs, {"L_cf": L_cf}, mistakes=mistakes))
    hints = [
        "negate the weights, not the gradient's sign convention elsewhere: L_cf = ReLU(sum_k (-alpha_k) A^k)",
        "equivalently ReLU(-S) with S the signed Grad-CAM map: S = L - L_cf, and the two never overlap",
        "alpha is the Grad-CAM weight of class_idx: the mean of dA over positions",
    ]
    return _run("check_counterfactual", student_fn, cases, hints, raise_on_fail, verbose)


def check_guided_grad_cam(student_fn, seed=0, raise_on_fail=False, verbose=True):
    """Check Guided Grad-CAM: ``upsample(Grad-CAM, bilinear) * guided backprop`` (Selvaraju et al. 2017, Sec. 3).

    Parameters
    ----------
    student_fn : callable
        ``student_fn(model, x, class_idx, layer) -> ggc``, called with
        keywords, as in :func:`check_grad_cam`. Returns ``ggc``, shape
        (N, C, H, W): the Grad-CAM map of ``layer``, upsampled to (H, W)
        bilinearly (:func:`minicam.upsample`, the paper's choice), times
        guided backprop (``model.backward(onehot, relu_mode="guided")``),
        broadcast over the C channels.
    seed, raise_on_fail, verbose
        As in :func:`check_relu_backward`.

    Returns
    -------
    bool
    """
    seed = check_int(seed, "seed", minimum=0)
    cases = []
    for label, kwargs, p in _map_cases(seed):
        model, x, c, layer = p["model"], p["x"], p["class_idx"], p["layer"]
        size = x.shape[2:]
        L = np.maximum(p["signed"], 0.0)
        gb = guided_backprop(copy.deepcopy(model), x, c)  # (N, C, H, W)
        ggc = guided_grad_cam(copy.deepcopy(model), x, c, layer=layer)
        mistakes = [
            ("ggc", upsample(L, size, interpolation="nearest")[:, None] * gb,
             "you upsampled with nearest neighbours (captum's default); the paper's Guided Grad-CAM is bilinear: "
             "mc.upsample(L, (H, W)) (interpolation='bilinear')"),
            ("ggc", upsample(normalize(L), size)[:, None] * gb,
             "you normalised the Grad-CAM map before multiplying: the product uses the raw map"),
            ("ggc", upsample(p["signed"], size)[:, None] * gb,
             "the Grad-CAM map is missing its ReLU: multiply guided backprop by ReLU(sum_k alpha_k A^k)"),
            ("ggc", upsample(L, size)[:, None] * saliency(copy.deepcopy(model), x, c),
             "you multiplied by the gradient (standard ReLU rule): Guided Grad-CAM uses guided backprop, "
             "model.backward(onehot, relu_mode='guided')"),
        ]
        cases.append(_Case(label, kwargs, {"ggc": ggc}, mistakes=mistakes))
    hints = [
        "upsample the (N, h, w) Grad-CAM map to the input's (H, W) first -- mc.upsample(L, (H, W)), bilinear -- "
        "then multiply: an (h, w) map does not broadcast against (H, W)",
        "broadcast over the colour channels: L_up[:, None] * guided, shapes (N, 1, H, W) * (N, C, H, W)",
        "guided backprop: one backward pass with relu_mode='guided' from the one-hot rows at class_idx",
    ]
    return _run("check_guided_grad_cam", student_fn, cases, hints, raise_on_fail, verbose)
