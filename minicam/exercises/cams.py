"""Checkers for the CAM exercises: Grad-CAM's channel weights, the full map, the counterfactual, Guided Grad-CAM."""

import copy

import numpy as np

from .._validate import check_int
from ..explain import combine, grad_cam, guided_backprop, guided_grad_cam, layer_gradients, normalize, saliency, upsample
from ..layers import Conv2d, Flatten, GlobalAvgPool2d, Linear, MaxPool2d, ReLU
from ..model import Sequential
from .report import Case, run_cases

__all__ = ["check_grad_cam_weights", "check_grad_cam", "check_counterfactual", "check_guided_grad_cam"]


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
        cases.append(Case(f"{what}, x {x.shape}, layer={layer!r}, class_idx={class_idx.tolist()}",
                           {"model": model, "x": x, "class_idx": class_idx, "layer": layer},
                           {"alpha": alpha}))
    hints = [
        "differentiate the class score y^c (the logit): upstream gradient = one-hot rows, "
        "one per sample, at class_idx[n]; then model.backward(onehot, stop_at=layer)",
        "alpha averages the gradient over the h*w positions of each map (a mean, not a sum): shape (N, K)",
        "alpha equals the last Linear layer's weights / Z only for the LAST map of a GAP network",
    ]
    return run_cases("check_grad_cam_weights", student_fn, cases, hints, raise_on_fail, verbose)


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
        cases.append(Case(label, kwargs, {"L": L}, mistakes=mistakes))
    hints = [
        "alpha[n, k] = mean over (i, j) of dA[n, k, i, j], dA = d y^{class_idx[n]} / d A: dA.mean(axis=(2, 3)), shape (N, K)",
        "the weighted sum runs over channels: sum_k alpha[n, k] * A[n, k] -> (N, h, w) "
        "(np.einsum('nk,nkij->nij', alpha, A))",
        "then the ReLU, on the sum; return the raw (h, w) map: no normalising, no upsampling",
    ]
    return run_cases("check_grad_cam", student_fn, cases, hints, raise_on_fail, verbose)


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
        cases.append(Case(label, kwargs, {"L_cf": L_cf}, mistakes=mistakes))
    hints = [
        "negate the weights, not the gradient's sign convention elsewhere: L_cf = ReLU(sum_k (-alpha_k) A^k)",
        "equivalently ReLU(-S) with S the signed Grad-CAM map: S = L - L_cf, and the two never overlap",
        "alpha is the Grad-CAM weight of class_idx: the mean of dA over positions",
    ]
    return run_cases("check_counterfactual", student_fn, cases, hints, raise_on_fail, verbose)


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
        cases.append(Case(label, kwargs, {"ggc": ggc}, mistakes=mistakes))
    hints = [
        "upsample the (N, h, w) Grad-CAM map to the input's (H, W) first -- mc.upsample(L, (H, W)), bilinear -- "
        "then multiply: an (h, w) map does not broadcast against (H, W)",
        "broadcast over the colour channels: L_up[:, None] * guided, shapes (N, 1, H, W) * (N, C, H, W)",
        "guided backprop: one backward pass with relu_mode='guided' from the one-hot rows at class_idx",
    ]
    return run_cases("check_guided_grad_cam", student_fn, cases, hints, raise_on_fail, verbose)
