"""Softmax, log-softmax and the softmax cross-entropy loss, stable for large logits."""

import numpy as np

from ._validate import check_float_array

__all__ = ["softmax", "log_softmax", "softmax_cross_entropy", "check_labels", "triplet_loss"]


def log_softmax(scores):
    """Row-wise log-softmax by the log-sum-exp trick.

    Parameters
    ----------
    scores : ndarray, shape (N, M)

    Returns
    -------
    ndarray, shape (N, M)

    Notes
    -----
    .. math:: \\log p_c = s_c - m - \\log \\sum_j e^{s_j - m}, \\quad m = \\max_j s_j

    Subtracting the row maximum keeps every exponent <= 0, so no overflow for
    logits like 1000 and no ``log(0)`` for the winning class.
    """
    check_float_array(scores, "scores", ndim=2)
    if scores.shape[1] == 0:
        raise ValueError(f"scores must hold at least one class (M >= 1) per row, got shape {scores.shape}")
    shifted = scores - scores.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(scores):
    """Row-wise softmax, ``exp(log_softmax(scores))``.

    Parameters
    ----------
    scores : ndarray, shape (N, M)

    Returns
    -------
    ndarray, shape (N, M); each row sums to 1.
    """
    return np.exp(log_softmax(scores))


def check_labels(y, n, num_classes, name="y"):
    """Validate integer class labels: shape (n,), values in [0, num_classes)."""
    if not isinstance(y, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of int class labels, got {type(y).__name__}")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{name} must have an integer dtype, got dtype {y.dtype}")
    if y.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match the scores, got {y.shape}")
    if n and (y.min() < 0 or y.max() >= num_classes):
        bad = y[(y < 0) | (y >= num_classes)][0]
        raise ValueError(f"{name} must hold class labels in [0, {num_classes}), got {int(bad)}")
    return y


def softmax_cross_entropy(scores, y):
    """Mean cross-entropy of the softmax of ``scores`` and its gradient.

    Parameters
    ----------
    scores : ndarray, shape (N, M)
        Logits.
    y : ndarray of int, shape (N,)
        Class labels in ``[0, M)``.

    Returns
    -------
    loss : float
        :math:`-\\frac{1}{N}\\sum_n \\log p_{n, y_n}`.
    dscores : ndarray, shape (N, M)
        :math:`(p - \\mathrm{onehot}(y)) / N`.
    """
    logp = log_softmax(scores)
    n, m = scores.shape
    if n == 0:
        # the mean over no samples is NaN: an empty batch is a bug upstream (an empty split, a bad slice)
        raise ValueError(f"scores must hold at least one sample (N >= 1) for a mean loss, got shape {scores.shape}")
    check_labels(y, n, m)
    rows = np.arange(n)
    loss = float(-logp[rows, y].mean())
    dscores = np.exp(logp)
    dscores[rows, y] -= 1.0
    return loss, dscores / n


def triplet_loss(anchor, positive, negative, margin=0.2):
    """Mean triplet loss with a margin and its gradients (FaceNet, Schroff et al. 2015, eq. 1-3).

    Parameters
    ----------
    anchor, positive, negative : ndarray, shape (T, D)
        Embeddings of ``T`` triplets: the positive shares the anchor's
        identity (label), the negative does not. Meant for L2-normalised
        embeddings (:class:`minicam.layers.L2Normalize`), where squared
        distances lie in [0, 4] and a margin of 0.2 (the paper's) is on scale.
    margin : float >= 0

    Returns
    -------
    loss : float
        :math:`\\frac{1}{T}\\sum_t [\\|a_t - p_t\\|^2 - \\|a_t - n_t\\|^2 + \\alpha]_+`.
    grads : tuple of 3 ndarrays, shape (T, D) each
        ``(danchor, dpositive, dnegative)``.

    Notes
    -----
    For a triplet with a positive hinge (an *active* triplet),

    .. math:: \\frac{\\partial}{\\partial a} = 2 (n - p), \\quad
              \\frac{\\partial}{\\partial p} = -2 (a - p), \\quad
              \\frac{\\partial}{\\partial n} = 2 (a - n),

    each divided by ``T``; an inactive triplet contributes nothing
    (the hinge's derivative at exactly 0 is taken as 0, like ReLU'(0)).
    """
    check_float_array(anchor, "anchor", ndim=2)
    for name, arr in (("positive", positive), ("negative", negative)):
        check_float_array(arr, name, ndim=2)
        if arr.shape != anchor.shape:
            raise ValueError(f"{name} must have the anchor's shape {anchor.shape}, got {arr.shape}")
    if anchor.shape[0] == 0:
        raise ValueError(f"triplet_loss needs at least one triplet, got anchor of shape {anchor.shape}")
    if isinstance(margin, bool) or not np.isscalar(margin) or not np.isfinite(margin) or margin < 0:
        raise ValueError(f"margin must be a finite number >= 0, got {margin!r}")
    t = anchor.shape[0]
    d_ap = ((anchor - positive) ** 2).sum(axis=1)  # (T,)
    d_an = ((anchor - negative) ** 2).sum(axis=1)
    hinge = d_ap - d_an + margin
    active = (hinge > 0)[:, None] * (2.0 / t)  # (T, 1)
    loss = float(np.maximum(hinge, 0).mean())
    danchor = active * (negative - positive)
    dpositive = active * (positive - anchor)
    dnegative = active * (anchor - negative)
    return loss, (danchor, dpositive, dnegative)
