"""Convolution: im2col/col2im, unfold/fold, the naive loops and the fast matrix-product kernels."""

import numpy as np

from . import padding as P
from .padding import output_size, unpad2d, windows

__all__ = [
    "im2col",
    "col2im",
    "conv2d_forward_naive",
    "conv2d_backward_naive",
    "unfold",
    "fold",
    "conv2d_forward",
    "conv2d_backward",
    "conv2d_backward_input",
]


def im2col(x, kernel_size, stride=1, padding=0):
    """Unfold every receptive field of ``x`` into one row of a matrix.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    kernel_size, stride, padding : int

    Returns
    -------
    cols : ndarray, shape (N * H_out * W_out, C * KH * KW)
        Row ``(n * H_out + i) * W_out + j`` holds the window at output
        position ``(i, j)`` of sample ``n``, flattened in ``(C, KH, KW)``
        order, the order of a flattened conv weight ``W.reshape(F, -1)``.
    """
    win = windows(P.pad2d(x, padding), kernel_size, stride)  # (N, C, Ho, Wo, KH, KW)
    n, c, h_out, w_out, kh, kw = win.shape
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(n * h_out * w_out, c * kh * kw)


def col2im(cols, x_shape, kernel_size, stride=1, padding=0):
    """Adjoint of :func:`im2col`: add every row back onto its window.

    Overlapping windows accumulate, which is exactly what the gradient of
    :func:`im2col` needs.

    Parameters
    ----------
    cols : ndarray, shape (N * H_out * W_out, C * KH * KW)
    x_shape : tuple (N, C, H, W)
        Shape of the unpadded input.
    kernel_size, stride, padding : int

    Returns
    -------
    ndarray, shape (N, C, H, W)
        :func:`fold` of the same numbers in its per-sample layout: one
        adjoint, written once.
    """
    n = x_shape[0]
    per_sample = cols.reshape(n, -1, cols.shape[1]).transpose(0, 2, 1)  # (N, C*KH*KW, H_out*W_out)
    return fold(per_sample, x_shape, kernel_size, stride, padding)


# ----------------------------------------------------------------------------
# Convolution
# ----------------------------------------------------------------------------


def conv2d_forward_naive(x, W, b, stride=1, padding=0):
    """Cross-correlation by explicit loops (the definition, for reading).

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    W : ndarray, shape (F, C, KH, KW)
    b : ndarray, shape (F,), or None
        ``None``: no bias (``b_f = 0``).
    stride, padding : int

    Returns
    -------
    out : ndarray, shape (N, F, H_out, W_out)

    Notes
    -----
    .. math:: out[n, f, i, j] = b_f + \\sum_{c, p, q} W[f, c, p, q]\\,
              x_{pad}[n, c, i s + p, j s + q]
    """
    n, _, h, w = x.shape
    f, _, kh, kw = W.shape
    h_out = output_size(h, kh, stride, padding)
    w_out = output_size(w, kw, stride, padding)
    xp = P.pad2d(x, padding)
    out = np.zeros((n, f, h_out, w_out), dtype=x.dtype)
    for s in range(n):
        for k in range(f):
            for i in range(h_out):
                for j in range(w_out):
                    window = xp[s, :, i * stride : i * stride + kh, j * stride : j * stride + kw]
                    out[s, k, i, j] = np.sum(window * W[k]) + (0.0 if b is None else b[k])
    return out


def conv2d_backward_naive(dout, x, W, stride=1, padding=0):
    """Gradients of :func:`conv2d_forward_naive` by explicit loops.

    Parameters
    ----------
    dout : ndarray, shape (N, F, H_out, W_out)
    x : ndarray, shape (N, C, H, W)
    W : ndarray, shape (F, C, KH, KW)

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
    dW : ndarray, shape (F, C, KH, KW)
    db : ndarray, shape (F,)

    Notes
    -----
    Each output ``out[n, f, i, j]`` touched one window of ``x_pad``; its
    upstream gradient flows back to that window weighted by ``W[f]`` and to
    ``W[f]`` weighted by that window.
    """
    n, _, h, w = x.shape
    f, _, kh, kw = W.shape
    _, _, h_out, w_out = dout.shape
    xp = P.pad2d(x, padding)
    dxp = np.zeros_like(xp)
    dW = np.zeros_like(W)
    db = np.zeros(f, dtype=W.dtype)
    for s in range(n):
        for k in range(f):
            for i in range(h_out):
                for j in range(w_out):
                    g = dout[s, k, i, j]
                    rows = slice(i * stride, i * stride + kh)
                    cols = slice(j * stride, j * stride + kw)
                    dxp[s, :, rows, cols] += g * W[k]
                    dW[k] += g * xp[s, :, rows, cols]
                    db[k] += g
    return unpad2d(dxp, padding), dW, db


def unfold(x, kernel_size, stride=1, padding=0):
    """Unfold every receptive field, sample by sample (PyTorch's ``unfold`` layout).

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    kernel_size, stride, padding : int

    Returns
    -------
    cols : ndarray, shape (N, C * KH * KW, H_out * W_out)
        ``cols[n, (c * KH + p) * KW + q, i * W_out + j] = x_pad[n, c, i*stride + p, j*stride + q]``:
        column ``(i, j)`` of sample ``n`` is its window at output ``(i, j)``,
        flattened in ``(C, KH, KW)`` order, the order of ``W.reshape(F, -1)``.

    Notes
    -----
    Built by ``KH * KW`` slab copies, one per kernel offset ``(p, q)``: the
    offset's strided view of ``x_pad`` (every window's ``(p, q)`` element)
    goes to rows ``(c, p, q)`` of every sample at once. Compared with
    :func:`im2col` (one row per window), this layout needs no transpose
    before or after the matrix product: ``W_mat @ cols[n]`` is already
    sample ``n``'s output in NCHW order.
    """
    k = kernel_size
    n, c, h, w = x.shape
    h_out = output_size(h, k, stride, padding)
    w_out = output_size(w, k, stride, padding)
    xp = P.pad2d(x, padding)
    cols = np.empty((n, c, k, k, h_out, w_out), dtype=x.dtype)
    for p in range(k):
        for q in range(k):
            cols[:, :, p, q] = xp[:, :, p : p + stride * h_out : stride, q : q + stride * w_out : stride]
    return cols.reshape(n, c * k * k, h_out * w_out)


def fold(cols, x_shape, kernel_size, stride=1, padding=0):
    """Adjoint of :func:`unfold`: add every column back onto its window.

    Parameters
    ----------
    cols : ndarray, shape (N, C * KH * KW, H_out * W_out)
    x_shape : tuple (N, C, H, W)
        Shape of the unpadded input.
    kernel_size, stride, padding : int

    Returns
    -------
    ndarray, shape (N, C, H, W)
        Where windows overlap, their contributions add up, which is exactly
        the gradient of :func:`unfold`. (A view into a padded buffer when
        ``padding > 0``.)
    """
    n, c, h, w = x_shape
    k = kernel_size
    h_out = output_size(h, k, stride, padding)
    w_out = output_size(w, k, stride, padding)
    cols6 = cols.reshape(n, c, k, k, h_out, w_out)
    out = np.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)
    # One strided add of a whole slab per kernel offset (KH*KW adds), never
    # one per output position, and no scatter (np.add.at).
    for p in range(k):
        for q in range(k):
            out[:, :, p : p + stride * h_out : stride, q : q + stride * w_out : stride] += cols6[:, :, p, q]
    return unpad2d(out, padding)


def conv2d_forward(x, W, b, stride=1, padding=0):
    """Cross-correlation as a matrix product over the unfolded input.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    W : ndarray, shape (F, C, KH, KW)
    b : ndarray, shape (F,), or None
        ``None``: no bias, nothing added.
    stride, padding : int

    Returns
    -------
    out : ndarray, shape (N, F, H_out, W_out)
    cols : ndarray, shape (N, C * KH * KW, H_out * W_out)
        The unfolded input (:func:`unfold`), returned so that backward need
        not rebuild it. A new array: it shares no memory with ``x``.

    Notes
    -----
    ``out[n] = W_mat @ cols[n] + b`` with ``W_mat = W.reshape(F, -1)``: one
    BLAS product per sample (``np.matmul`` over the stacked samples), whose
    result is already in NCHW order. (One product over the whole batch
    needs a channel-major ``cols`` and a transpose of ``out`` and ``dout``;
    measured, it was no faster and much slower on 3-channel inputs.)
    """
    n, _, h, w = x.shape
    f, _, kh, _ = W.shape
    h_out = output_size(h, kh, stride, padding)
    w_out = output_size(w, kh, stride, padding)
    cols = unfold(x, kh, stride, padding)
    out = np.matmul(W.reshape(f, -1), cols)  # (N, F, Ho*Wo)
    if b is not None:
        out += b[:, None]
    return out.reshape(n, f, h_out, w_out), cols


def conv2d_backward(dout, cols, x_shape, W, stride=1, padding=0):
    """Gradients of :func:`conv2d_forward` from its unfolded input.

    Parameters
    ----------
    dout : ndarray, shape (N, F, H_out, W_out)
    cols : ndarray, shape (N, C * KH * KW, H_out * W_out)
        As returned by :func:`conv2d_forward`.
    x_shape : tuple (N, C, H, W)
    W : ndarray, shape (F, C, KH, KW)

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
    dW : ndarray, shape (F, C, KH, KW)
    db : ndarray, shape (F,)
        Also when the forward had no bias (a layer without one discards it).

    Notes
    -----
    With ``out[n] = W_mat @ cols[n] + b``: ``dW_mat = sum_n dout[n] @ cols[n].T``,
    ``db = sum_{n,i,j} dout[n, :, i, j]``, ``dcols[n] = W_mat.T @ dout[n]``
    and ``dx = fold(dcols)``.
    """
    n, f = dout.shape[:2]
    dout_mat = dout.reshape(n, f, -1)  # (N, F, Ho*Wo)
    dW = np.matmul(dout_mat, cols.transpose(0, 2, 1)).sum(axis=0).reshape(W.shape)
    db = np.einsum("nfp->f", dout_mat)
    return conv2d_backward_input(dout, x_shape, W, stride, padding), dW, db


def conv2d_backward_input(dout, x_shape, W, stride=1, padding=0):
    """Only ``dx`` of :func:`conv2d_backward` (an explanation needs no ``dW``, ``db``).

    Parameters
    ----------
    dout : ndarray, shape (N, F, H_out, W_out)
    x_shape : tuple (N, C, H, W)
    W : ndarray, shape (F, C, KH, KW)

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
        ``fold(W_mat.T @ dout[n])``.
    """
    n, f = dout.shape[:2]
    dcols = np.matmul(W.reshape(f, -1).T, dout.reshape(n, f, -1))  # (N, C*KH*KW, Ho*Wo)
    return fold(dcols, x_shape, W.shape[2], stride, padding)
