"""Gradient-free CAMs: Score-CAM (weights from forward passes on masked inputs)
and Eigen-CAM (class-agnostic principal component of the feature maps).

Same conventions as :mod:`minicam.explain.cams`: ``A`` is the output of
``layer``, maps are returned raw at the layer's resolution, combined by the
shared :func:`~minicam.explain.cams.combine` step.
"""

import numpy as np

from .._validate import check_bool, check_int
from ._core import (
    check_input,
    check_target_args,
    resolve_layer,
    resolve_target,
    untouched,
)
from .cams import combine
from .postprocess import normalize, relu as relu_map, upsample
from .targets import evaluate_stacked, evaluate_target

__all__ = ["score_cam", "eigen_cam"]


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
    relu = check_bool(relu, "relu")
    subtract_baseline = check_bool(subtract_baseline, "subtract_baseline")
    return_weights = check_bool(return_weights, "return_weights")
    n, _, height, width = x.shape
    with untouched(model):
        scores = model.forward(x, cache=False)
        A = model.outputs[layer]
        tgt = resolve_target(scores, class_idx, score, target)
        k = A.shape[1]
        masks = normalize(upsample(A.reshape(n * k, *A.shape[2:]), (height, width), "bilinear"))
        masks = masks.reshape(n, k, height, width)
        base = evaluate_target(tgt, model.forward(np.zeros_like(x), cache=False))[0] if subtract_baseline else 0.0
        weights = np.empty((n, k), dtype=scores.dtype)
        chunk = max(1, batch_size // n)
        for k0 in range(0, k, chunk):
            m = masks[:, k0 : k0 + chunk].transpose(1, 0, 2, 3)[:, :, None]  # (kc, N, 1, H, W)
            kc = m.shape[0]
            out = model.forward((x[None] * m).reshape(kc * n, *x.shape[1:]), cache=False)
            weights[:, k0 : k0 + kc] = (evaluate_stacked(tgt, out.reshape(kc, n, *out.shape[1:])) - base).T
    maps = combine(weights, A)
    if relu:
        maps = relu_map(maps)
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
    center = check_bool(center, "center")
    with untouched(model):
        model.forward(x, cache=False)
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
