"""The gradient-based CAM family: channel weights (or per-position weights) times feature maps.

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

from .._validate import check_bool
from ._core import (
    cam_head,
    check_input,
    layer_gradients,
    resolve_class_idx,
    resolve_layer,
    untouched,
)
from .postprocess import relu as relu_map

__all__ = [
    "weighted_cam",
    "combine",
    "combine_elementwise",
    "cam",
    "grad_cam",
    "grad_cam_plus_plus",
    "hires_cam",
    "xgrad_cam",
    "layer_cam",
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


def weighted_cam(weight_fn, model, x, class_idx=None, layer=None, relu=True, score="logit", return_weights=False,
                 target=None):
    """The skeleton every gradient-based CAM shares: gradients -> weights -> combine -> ReLU.

    Parameters
    ----------
    weight_fn : callable ``(A, dA) -> weights``
        The method's own piece: channel weights (N, K) or per-position
        weights (N, K, h, w) from the feature maps ``A`` and the gradient
        ``dA`` of the explained score (both (N, K, h, w)).
    model, x, class_idx, layer, score, target
        As :func:`grad_cam`.
    relu : bool
        Apply the final ReLU.
    return_weights : bool
        Also return what ``weight_fn`` returned.

    Returns
    -------
    maps : ndarray, shape (N, h, w)
    weights : ndarray, shape (N, K) or (N, K, h, w), with ``return_weights=True``
    """
    relu = check_bool(relu, "relu")
    return_weights = check_bool(return_weights, "return_weights")
    A, dA = layer_gradients(model, x, class_idx, layer, score, target)
    weights = weight_fn(A, dA)
    maps = combine(weights, A) if weights.ndim == 2 else combine_elementwise(weights, A)
    if relu:
        maps = relu_map(maps)
    return (maps, weights) if return_weights else maps


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
    - where the denominator is exactly 0, ``alpha_ij = 0``. That is
      ``g_ij = 0`` (the numerator vanishes too, and ``relu(g) = 0``) or
      ``g_ij = -2 / sum_ab A^k_ab``: a negative ``g``, so ``relu(g) = 0``,
      when the channel sums to a positive number (as after a ReLU); on a
      signed layer, a pole of the paper's alpha, hit with probability 0.
      No epsilon is added anywhere else, so ``alpha`` is exact
      (pytorch-grad-cam adds 1e-6 to every denominator).

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
    fc = cam_head(model, layer)
    with untouched(model):
        scores = model.forward(x, cache=False)  # CAM runs no backward
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
    sign = -1.0 if check_bool(counterfactual, "counterfactual") else 1.0
    return weighted_cam(lambda A, dA: sign * grad_cam_weights(dA), model, x, class_idx, layer, relu, score,
                        return_weights, target)


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
    return weighted_cam(grad_cam_plus_plus_weights, model, x, class_idx, layer, relu, score, return_weights, target)


def hires_cam(model, x, class_idx=None, layer=None, relu=True, score="logit", return_weights=False, target=None):
    """HiResCAM (Draelos & Carin 2020, "Use HiResCAM instead of Grad-CAM for faithful explanations", arXiv:2011.08891).

    .. math:: \\tilde A^c = \\sum_k \\frac{\\partial y^c}{\\partial A^k} \\odot A^k

    Each position keeps its own gradient instead of Grad-CAM's average, so the
    map sums exactly to the first-order contribution ``sum_kij g A`` of the
    layer. On a GAP -> Linear head the gradient is constant per channel and
    HiResCAM equals Grad-CAM (= CAM / (h*w)). Parameters and returns as
    :func:`grad_cam`; the weights it returns are per position (N, K, h, w):
    the gradient itself. ``relu=True`` applies the same final ReLU as Grad-CAM.
    """
    return weighted_cam(lambda A, dA: dA, model, x, class_idx, layer, relu, score, return_weights, target)


def xgrad_cam(model, x, class_idx=None, layer=None, relu=True, score="logit", return_weights=False, target=None):
    """XGrad-CAM (Fu et al. 2020, "Axiom-based Grad-CAM", BMVC): weights derived from the sensitivity and conservation axioms.

    Weights :func:`xgrad_cam_weights`, map ``ReLU(sum_k alpha_k A^k)``.
    Parameters and returns as :func:`grad_cam`. On a GAP -> Linear head the
    gradient is constant per channel, so the weights equal Grad-CAM's (for
    every channel whose activations do not sum to 0) and so do the maps.
    """
    return weighted_cam(xgrad_cam_weights, model, x, class_idx, layer, relu, score, return_weights, target)


def layer_cam(model, x, class_idx=None, layer=None, relu=True, score="logit", return_weights=False, target=None):
    """LayerCAM (Jiang et al. 2021, "LayerCAM: Exploring Hierarchical Class Activation Maps", IEEE TIP).

    .. math:: w^{kc}_{ij} = \\mathrm{ReLU}\\Big(\\frac{\\partial y^c}{\\partial A^k_{ij}}\\Big), \\qquad
              M^c = \\mathrm{ReLU}\\Big(\\sum_k w^{kc} \\odot A^k\\Big)

    Per-position positive gradients, so it also works on early layers.
    Parameters and returns as :func:`grad_cam` (the weights per position,
    (N, K, h, w)). On a GAP -> Linear head it is
    ``ReLU(sum_k relu(w^c_k) A^k) / (h*w)``.
    """
    return weighted_cam(lambda A, dA: relu_map(dA), model, x, class_idx, layer, relu, score, return_weights, target)
