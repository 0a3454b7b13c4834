"""The CAM family: channel weights (or per-position weights) times feature maps.

Each method is a short function for its weights, from its paper's equation,
plugged into one shared combination step:

- channel weights ``w (N, K)``:  :func:`combine` gives ``sum_k w_k A^k``;
- per-position weights ``W (N, K, h, w)``: :func:`combine_elementwise` gives
  ``sum_k W^k * A^k``;

followed by an optional ReLU. ``A`` is the output of ``layer`` (default: the
last layer with a 4-D output) and the gradients are those of the explained
score (``class_idx`` + ``score``, or a ``target``) with respect to ``A``, from
one forward and one backward pass. Maps are returned raw, at the layer's
resolution (N, h, w): resize with :func:`minicam.upsample`, scale with
:func:`minicam.normalize`.
"""

import numpy as np

from .._validate import check_int
from ..layers import Dropout, GlobalAvgPool2d, Linear
from ._core import (
    check_input,
    check_model,
    check_target_args,
    forward_target,
    resolve_class_idx,
    resolve_layer,
    resolve_target,
    untouched,
)
from .postprocess import normalize, upsample
from .targets import evaluate_target

__all__ = [
    "combine",
    "combine_elementwise",
    "cam",
    "grad_cam",
    "grad_cam_plus_plus",
    "hires_cam",
    "xgrad_cam",
    "layer_cam",
    "score_cam",
    "eigen_cam",
    "grad_cam_weights",
    "grad_cam_plus_plus_weights",
    "xgrad_cam_weights",
]


# -- the shared combination step ---------------------------------------------


def combine(weights, A):
    """``sum_k weights[n, k] * A[n, k]``: channel weights (N, K) times maps (N, K, h, w) -> (N, h, w)."""
    return np.einsum("nk,nkhw->nhw", weights, A)


def combine_elementwise(weights, A):
    """``sum_k weights[n, k] * A[n, k]`` with per-position weights (N, K, h, w) -> (N, h, w)."""
    return (weights * A).sum(axis=1)


def _relu(maps, relu):
    return np.maximum(maps, np.zeros((), dtype=maps.dtype)) if relu else maps


def _gradient_pass(model, x, class_idx, layer, score, target):
    """Checks, then one forward and one backward pass to ``layer``: (A, dA)."""
    check_target_args(class_idx, score, target)
    shapes = check_input(model, x)
    layer = resolve_layer(model, shapes, layer)
    with untouched(model):
        _, _, _, dscores = forward_target(model, x, class_idx, score, target)
        A = model.outputs[layer]
        dA = model.backward(dscores, stop_at=layer)
    return A, dA


# -- channel-weight functions (one per paper) ----------------------------------


def grad_cam_weights(dA):
    """Grad-CAM weights, Selvaraju et al. 2017, eq. 1: ``alpha_k = (1/Z) sum_ij dy^c/dA^k_ij``.

    Parameters
    ----------
    dA : ndarray, shape (N, K, h, w)

    Returns
    -------
    ndarray, shape (N, K)
    """
    return dA.mean(axis=(2, 3))


def grad_cam_plus_plus_weights(A, dA):
    """Grad-CAM++ weights for an exponential output, Chattopadhay et al. 2018 (arXiv:1710.11063).

    Parameters
    ----------
    A, dA : ndarray, shape (N, K, h, w)
        Feature maps and the gradient ``g = dS^c/dA`` of the score ``S^c``.

    Returns
    -------
    ndarray, shape (N, K)

    Notes
    -----
    The paper's weights are ``w_k = sum_ij alpha^k_ij relu(dY^c/dA^k_ij)``
    with ``alpha`` from second and third derivatives of the output ``Y^c``.
    For ``Y^c = exp(S^c)`` and a score ``S^c`` that is piecewise linear in
    ``A`` (ReLU, max-pool, linear layers: its own higher derivatives vanish),
    ``d^n Y / dA^n = exp(S) g^n`` and ``alpha`` has the closed form of the
    paper's eq. 19:

    .. math:: \\alpha^k_{ij} = \\frac{g_{ij}^2}{2 g_{ij}^2 + \\sum_{ab} A^k_{ab}\\, g_{ij}^3}

    This function computes exactly that, and
    ``w_k = sum_ij alpha^k_ij relu(g_ij)``. Two choices:

    - ``relu(dY/dA) = exp(S^c) relu(g)``: the factor ``exp(S^c) > 0`` is
      the same for every channel and position of a sample, so it is dropped
      (as in the authors' and pytorch-grad-cam's code); it would only scale
      the sample's map, and overflow for large scores.
    - where the denominator is exactly 0 (``g_ij = 0``, or
      ``g_ij = -2 / sum_ab A^k_ab``), ``alpha_ij = 0``: at ``g = 0`` the
      numerator vanishes too and ``relu(g) = 0``; no epsilon is added
      anywhere else, so ``alpha`` is exact. (pytorch-grad-cam adds 1e-6 to
      the denominator.)

    On a GAP -> Linear head, ``g = w^c_k / Z`` at every position, so
    ``w_k = relu(w^c_k) / (2 + w^c_k * mean(A^k))``.
    """
    g2 = dA * dA
    denom = 2 * g2 + A.sum(axis=(2, 3), keepdims=True) * g2 * dA
    alpha = np.divide(g2, denom, out=np.zeros_like(g2), where=denom != 0)
    return (alpha * np.maximum(dA, 0)).sum(axis=(2, 3))


def xgrad_cam_weights(A, dA):
    """XGrad-CAM weights, Fu et al. 2020 ("Axiom-based Grad-CAM", BMVC): activation-weighted gradient sum.

    .. math:: \\alpha_k = \\sum_{ij} \\frac{A^k_{ij}}{\\sum_{ab} A^k_{ab}}\\,
              \\frac{\\partial y^c}{\\partial A^k_{ij}}

    Parameters
    ----------
    A, dA : ndarray, shape (N, K, h, w)

    Returns
    -------
    ndarray, shape (N, K)
        A channel whose activations sum to exactly 0 gets weight 0 (for a
        dead, all-zero channel the weight does not matter: its map is 0;
        pytorch-grad-cam adds 1e-7 to the denominator instead).
    """
    total = A.sum(axis=(2, 3))
    num = (A * dA).sum(axis=(2, 3))
    return np.divide(num, total, out=np.zeros_like(num), where=total != 0)


# -- methods -------------------------------------------------------------------


def _cam_head(model, layer):
    """The (GlobalAvgPool2d, Linear) after ``layer``, or a ValueError saying why CAM does not apply."""
    items = model.items()
    after = items[[n for n, _ in items].index(layer) + 1 :]
    kept = []
    for name, lay in after:
        if isinstance(lay, Dropout) and (not lay.training or lay.p == 0.0):
            continue  # the identity in eval mode
        kept.append((name, lay))
    if len(kept) == 2 and isinstance(kept[0][1], GlobalAvgPool2d) and isinstance(kept[1][1], Linear):
        return kept[1][1]
    desc = " -> ".join(f"{n} ({type(lay).__name__}{', training' if isinstance(lay, Dropout) else ''})" for n, lay in after)
    raise ValueError(
        f"cam needs a GAP -> Linear head right after layer {layer!r}: the remaining layers must be "
        "GlobalAvgPool2d then Linear, the last layer (Dropout in eval mode is allowed between them), because CAM "
        f"reads its channel weights w^c_k from that Linear. After {layer!r} this model has: {desc or 'nothing'}. "
        "Grad-CAM works on any head: use grad_cam (on a GAP -> Linear head its signed map equals CAM / (h*w))."
    )


def cam(model, x, class_idx=None, layer=None):
    """Class Activation Mapping (Zhou et al. 2016, "Learning Deep Features for Discriminative Localization", Sec. 2).

    Parameters
    ----------
    model : Sequential
        Must end in ``GlobalAvgPool2d -> Linear`` right after ``layer``
        (Dropout in eval mode, the identity, may sit in between).
    x : ndarray, shape (N, C, H, W)
    class_idx : int, sequence of N ints, or None
        ``None``: the predicted class of each sample.
    layer : str, optional
        Its output is ``A``; default the last layer with a 4-D output.

    Returns
    -------
    ndarray, shape (N, h, w)
        Signed map ``M_c = sum_k w^c_k A^k``.

    Notes
    -----
    With ``W`` (M, K) and ``b`` the final Linear's parameters, the class score
    is ``y^c = sum_k w^c_k mean_ij(A^k_ij) + b^c``, so ``mean_ij M_c = y^c - b^c``:
    the map spreads the logit (minus the bias) over the positions. No ReLU
    and no bias, as in the paper. Raises ValueError (explaining why) for any
    other head; :func:`grad_cam` works on every head.
    """
    shapes = check_input(model, x)
    layer = resolve_layer(model, shapes, layer)
    fc = _cam_head(model, layer)
    with untouched(model):
        scores = model.forward(x)
        A = model.outputs[layer]
    idx = resolve_class_idx(class_idx, scores)
    W = fc.params["W"].astype(A.dtype, copy=False)
    return combine(W[idx], A)


def grad_cam(model, x, class_idx=None, layer=None, relu=True, counterfactual=False, score="logit",
             return_weights=False, target=None):
    """Grad-CAM (Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks", eqs. 1-2).

    Parameters
    ----------
    model : Sequential
        Any head (GAP, flatten + fully connected, ...).
    x : ndarray, shape (N, C, H, W)
    class_idx : int, sequence of N ints, or None
        ``None``: the predicted class of each sample.
    layer : str, optional
        Its output is ``A`` (4-D); default the last layer with a 4-D output.
    relu : bool, default True
        Apply the paper's ReLU; ``False`` returns the signed map.
    counterfactual : bool, default False
        Negate the gradients (the paper's "counterfactual explanations":
        regions whose removal would raise the score).
    score : {"logit", "softmax", "log_softmax"}
        What is differentiated (the paper uses the logit).
    return_weights : bool, default False
        Also return the channel weights, e.g. to list the top-k channels
        behind a decision (``np.argsort(-alpha, axis=1)[:, :k]``).
    target : callable, optional
        ``target(scores) -> (value (N,), dscores)`` instead of ``class_idx``
        and ``score``, e.g. :func:`minicam.similarity_target`.

    Returns
    -------
    maps : ndarray, shape (N, h, w)
    alpha : ndarray, shape (N, K)
        Only with ``return_weights=True``: the weights used (negated when
        ``counterfactual``).

    Notes
    -----
    .. math:: \\alpha^c_k = \\frac{1}{Z}\\sum_{ij} \\frac{\\partial y^c}{\\partial A^k_{ij}}, \\qquad
              L^c = \\mathrm{ReLU}\\Big(\\sum_k \\alpha^c_k A^k\\Big)

    and the counterfactual map uses ``-alpha``. On a GAP -> Linear head
    ``dy^c/dA^k_ij = w^c_k / Z`` (Z = h*w), so the signed map equals
    ``cam / Z`` and sums to ``y^c - b^c``.
    """
    A, dA = _gradient_pass(model, x, class_idx, layer, score, target)
    alpha = grad_cam_weights(dA)
    if counterfactual:
        alpha = -alpha
    maps = _relu(combine(alpha, A), relu)
    return (maps, alpha) if return_weights else maps


def grad_cam_plus_plus(model, x, class_idx=None, layer=None, relu=True, score="logit", return_weights=False,
                       target=None):
    """Grad-CAM++ (Chattopadhay et al. 2018, WACV; arXiv:1710.11063, closed form of eq. 19).

    Parameters and returns as :func:`grad_cam`. The weights are
    :func:`grad_cam_plus_plus_weights` (the closed form for an exponential
    output ``Y^c = exp(S^c)``, with ``S^c`` the chosen ``score``), and the map
    is ``ReLU(sum_k w_k A^k)``.

    Notes
    -----
    The closed form assumes ``S^c`` piecewise linear in ``A``: exact for
    ``score="logit"`` on ReLU / max-pool / linear layers. For ``"softmax"``
    or ``"log_softmax"`` the same formula is applied to that score's
    gradient (an approximation, as in other implementations).
    """
    A, dA = _gradient_pass(model, x, class_idx, layer, score, target)
    w = grad_cam_plus_plus_weights(A, dA)
    maps = _relu(combine(w, A), relu)
    return (maps, w) if return_weights else maps


def hires_cam(model, x, class_idx=None, layer=None, relu=True, score="logit", target=None):
    """HiResCAM (Draelos & Carin 2020, "Use HiResCAM instead of Grad-CAM for faithful explanations", arXiv:2011.08891).

    .. math:: \\tilde A^c = \\sum_k \\frac{\\partial y^c}{\\partial A^k} \\odot A^k

    Each position keeps its own gradient instead of Grad-CAM's average, so the
    map sums exactly to the first-order contribution ``sum_kij g A`` of the
    layer. On a GAP -> Linear head the gradient is constant per channel and
    HiResCAM equals Grad-CAM (= CAM / (h*w)). Parameters and returns as
    :func:`grad_cam` (no channel weights: the weights are per position).
    ``relu=True`` applies the same final ReLU as Grad-CAM.
    """
    A, dA = _gradient_pass(model, x, class_idx, layer, score, target)
    return _relu(combine_elementwise(dA, A), relu)


def xgrad_cam(model, x, class_idx=None, layer=None, relu=True, score="logit", return_weights=False, target=None):
    """XGrad-CAM (Fu et al. 2020, "Axiom-based Grad-CAM", BMVC): weights derived from the sensitivity and conservation axioms.

    Weights :func:`xgrad_cam_weights`, map ``ReLU(sum_k alpha_k A^k)``.
    Parameters and returns as :func:`grad_cam`. On a GAP -> Linear head the
    gradient is constant per channel, so the weights equal Grad-CAM's (for
    every channel whose activations do not sum to 0) and so do the maps.
    """
    A, dA = _gradient_pass(model, x, class_idx, layer, score, target)
    alpha = xgrad_cam_weights(A, dA)
    maps = _relu(combine(alpha, A), relu)
    return (maps, alpha) if return_weights else maps


def layer_cam(model, x, class_idx=None, layer=None, relu=True, score="logit", target=None):
    """LayerCAM (Jiang et al. 2021, "LayerCAM: Exploring Hierarchical Class Activation Maps", IEEE TIP).

    .. math:: w^{kc}_{ij} = \\mathrm{ReLU}\\Big(\\frac{\\partial y^c}{\\partial A^k_{ij}}\\Big), \\qquad
              M^c = \\mathrm{ReLU}\\Big(\\sum_k w^{kc} \\odot A^k\\Big)

    Per-position positive gradients, so it also works on early layers.
    Parameters and returns as :func:`grad_cam`. On a GAP -> Linear head it
    is ``ReLU(sum_k relu(w^c_k) A^k) / (h*w)``.
    """
    A, dA = _gradient_pass(model, x, class_idx, layer, score, target)
    return _relu(combine_elementwise(np.maximum(dA, 0), A), relu)


def score_cam(model, x, class_idx=None, layer=None, relu=True, score="softmax", subtract_baseline=True,
              batch_size=64, return_weights=False, target=None):
    """Score-CAM (Wang et al. 2020, "Score-CAM", CVPR Workshops: channel-wise increase of confidence). Gradient-free.

    Parameters
    ----------
    model : Sequential
    x : ndarray, shape (N, C, H, W)
    class_idx, layer, relu, target
        As :func:`grad_cam`.
    score : {"softmax", "logit", "log_softmax"}, default "softmax"
        The paper scores masked images by the softmax probability of class c.
    subtract_baseline : bool, default True
        Weight each channel by the *increase* of the score over the baseline
        image ``X_b = 0`` (the paper's channel-wise increase of confidence).
        ``False`` uses the raw score of the masked image, as the authors' code
        does; the two differ by a constant added to every weight.
    batch_size : int, default 64
        Bound on the images per forward pass (at least N: every sample's
        masked copy for one channel goes in the same pass).
    return_weights : bool
        Also return the weights (N, K).

    Returns
    -------
    maps : ndarray, shape (N, h, w)
    weights : ndarray, shape (N, K), with ``return_weights=True``

    Notes
    -----
    For each channel k: ``H^k = s(Up(A^k))``, the map bilinearly upsampled to
    (H, W) and min-max normalised to [0, 1] (:func:`minicam.upsample`,
    :func:`minicam.normalize`: a flat map masks everything out);
    ``alpha_k = f^c(x * H^k) - f^c(X_b)``, with ``X_b = 0``, the image a
    zero mask gives; ``L = ReLU(sum_k alpha_k A^k)``. ``K + 2`` forward passes
    of N images (clean, baseline, one per channel), in chunks of channels.
    In training mode, Dropout draws new masks on every pass.
    """
    check_target_args(class_idx, score, target, default_score="softmax")
    shapes = check_input(model, x, image=True)
    layer = resolve_layer(model, shapes, layer)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    n, _, height, width = x.shape
    with untouched(model):
        scores = model.forward(x)
        A = model.outputs[layer]
        tgt = resolve_target(scores, class_idx, score, target)
        k = A.shape[1]
        masks = normalize(upsample(A.reshape(n * k, *A.shape[2:]), (height, width), "bilinear"))
        masks = masks.reshape(n, k, height, width)
        base = evaluate_target(tgt, model.forward(np.zeros_like(x)))[0] if subtract_baseline else 0.0
        weights = np.empty((n, k), dtype=scores.dtype)
        chunk = max(1, batch_size // n)
        for k0 in range(0, k, chunk):
            m = masks[:, k0 : k0 + chunk].transpose(1, 0, 2, 3)[:, :, None]  # (kc, N, 1, H, W)
            kc = m.shape[0]
            out = model.forward((x[None] * m).reshape(kc * n, *x.shape[1:]))
            out = out.reshape(kc, n, *out.shape[1:])
            for j in range(kc):
                weights[:, k0 + j] = evaluate_target(tgt, out[j])[0] - base
    maps = _relu(combine(weights, A), relu)
    return (maps, weights) if return_weights else maps


def eigen_cam(model, x, layer=None, center=False):
    """Eigen-CAM (Muhammad & Yeasin 2020, "Eigen-CAM", IJCNN): first principal component. Class-agnostic, gradient-free.

    Parameters
    ----------
    model : Sequential
    x : ndarray, shape (N, C, H, W)
    layer : str, optional
        As :func:`grad_cam`.
    center : bool, default False
        Subtract each channel's spatial mean before the SVD (a PCA in the
        strict sense; what pytorch-grad-cam's ``get_2d_projection`` does).
        The paper projects the raw activations.

    Returns
    -------
    ndarray, shape (N, h, w)
        Signed projection; no ReLU.

    Notes
    -----
    Per sample, with ``O`` the (h*w, K) matrix of activations (one row per
    position) and ``O = U S V^T`` its SVD, the map is ``O v_1`` (the
    projection of every position on the first right singular vector),
    reshaped to (h, w). ``v_1`` is defined up to sign; the sign is fixed so
    that ``sum_k v_1k > 0`` (if that sum is 0: so that its largest-magnitude
    component, the first such, is positive). For non-negative activations
    (after a ReLU) ``v_1`` is non-negative (Perron-Frobenius), so the map is
    then >= 0. A rank-1 activation ``A^k_ij = u_k m_ij`` with ``sum(u) > 0``
    gives exactly ``||u|| m``.
    """
    shapes = check_input(model, x)
    layer = resolve_layer(model, shapes, layer)
    with untouched(model):
        model.forward(x)
        A = model.outputs[layer]
    n, k, h, w = A.shape
    O = A.reshape(n, k, h * w).transpose(0, 2, 1)  # (N, h*w, K)
    if center:
        O = O - O.mean(axis=1, keepdims=True)
    _, _, vt = np.linalg.svd(O, full_matrices=False)
    v = vt[:, 0, :]  # (N, K)
    total = v.sum(axis=1)
    biggest = v[np.arange(n), np.abs(v).argmax(axis=1)]
    sign = np.where(total != 0, np.sign(total), np.sign(biggest))
    sign = np.where(sign == 0, 1.0, sign).astype(A.dtype)
    return np.einsum("npk,nk->np", O, v * sign[:, None]).reshape(n, h, w)
