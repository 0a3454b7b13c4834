"""Convolution: im2col/col2im, unfold/fold, the naive loops and the fast matrix-product kernels."""

import numpy as np

from . import padding as P
from .padding import output_size, unpad2d, windows

__all__ = [
    "BLOCK_BYTES",
    "im2col",
    "col2im",
    "conv2d_forward_naive",
    "conv2d_backward_naive",
    "unfold",
    "fold",
    "fold_wide",
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

#: Bytes of unfolded input the fast kernels handle at a time. They unfold,
#: multiply and fold a block of a few samples, so that the block is still in
#: the core's cache when the matrix product reads it, instead of sending a
#: batch-sized unfolded array through main memory. 2 MiB (the L2 of one core on
#: the development machine) measured best among 256 KiB to 4 MiB; batch-64
#: convolutions at 8-64 px run 10-30% faster than unblocked, 3-channel inputs
#: the same. A block holds at least one sample, so one large image is one
#: block. Results do not depend on it beyond the order of the sum over samples
#: in ``dW``; benchmarks/README.md has the measurements.
BLOCK_BYTES = 1 << 21


def _blocks(n, sample_bytes):
    """Slices of the batch axis, each holding about :data:`BLOCK_BYTES` of unfolded input."""
    step = max(1, min(n, BLOCK_BYTES // max(1, sample_bytes)))
    return [slice(start, min(start + step, n)) for start in range(0, n, step)]


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


def unfold(x, kernel_size, stride=1, padding=0, out=None):
    """Unfold every receptive field, sample by sample (PyTorch's ``unfold`` layout).

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    kernel_size, stride, padding : int
    out : ndarray, optional
        Where to write the result: C-contiguous, of the result's shape and
        ``x``'s dtype (the convolution fills its cached array block by block
        this way). By default a new array.

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
    shape = (n, c * k * k, h_out * w_out)
    if out is None:
        out = np.empty(shape, dtype=x.dtype)
    elif out.shape != shape or out.dtype != x.dtype or not out.flags.c_contiguous:
        raise ValueError(
            f"unfold: out must be a C-contiguous {x.dtype} array of shape {shape}, got {out.dtype} {out.shape}"
            + ("" if out.flags.c_contiguous else " (not C-contiguous)")
        )
    cols = out.reshape(n, c, k, k, h_out, w_out)  # a view: the copies below fill out
    for p in range(k):
        for q in range(k):
            cols[:, :, p, q] = xp[:, :, p : p + stride * h_out : stride, q : q + stride * w_out : stride]
    return out


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


def conv2d_forward(x, W, b, stride=1, padding=0, keep_cols=True):
    """Cross-correlation as a matrix product over the unfolded input.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    W : ndarray, shape (F, C, KH, KW)
    b : ndarray, shape (F,), or None
        ``None``: no bias, nothing added.
    stride, padding : int
    keep_cols : bool, default True
        ``False``: a pass that no backward will follow (inference) keeps no
        unfolded input; ``cols`` is then ``None``.

    Returns
    -------
    out : ndarray, shape (N, F, H_out, W_out)
    cols : ndarray, shape (N, C * KH * KW, H_out * W_out), or None
        The unfolded input (:func:`unfold`), returned so that backward need
        not rebuild it. A new array: it shares no memory with ``x``.

    Notes
    -----
    ``out[n] = W_mat @ cols[n] + b`` with ``W_mat = W.reshape(F, -1)``: one
    BLAS product per sample (``np.matmul`` over the stacked samples), whose
    result is already in NCHW order. (One product over the whole batch
    needs a channel-major ``cols`` and a transpose of ``out`` and ``dout``;
    measured, it was no faster and much slower on 3-channel inputs.) The
    samples go in blocks of about :data:`BLOCK_BYTES` of unfolded input:
    each block is unfolded and at once multiplied, while it is in cache.
    """
    n, c, h, w = x.shape
    f, _, k, _ = W.shape
    h_out = output_size(h, k, stride, padding)
    w_out = output_size(w, k, stride, padding)
    W_mat = W.reshape(f, -1)
    out = np.empty((n, f, h_out * w_out), dtype=np.result_type(x, W))
    cols = np.empty((n, c * k * k, h_out * w_out), dtype=x.dtype) if keep_cols else None
    for blk in _blocks(n, c * k * k * h_out * w_out * x.itemsize):
        block = unfold(x[blk], k, stride, padding, out=None if cols is None else cols[blk])
        np.matmul(W_mat, block, out=out[blk])  # (n_blk, F, Ho*Wo)
        if b is not None:
            out[blk] += b[:, None]  # while the block's output is in cache
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
    and ``dx = fold(dcols)``. ``dW_mat`` is computed as its transpose,
    ``sum_n cols[n] @ dout[n].T``: the same numbers, and OpenBLAS runs that
    orientation of these thin products 10-30% faster (measured in
    benchmarks/README.md). ``dx`` goes block by block
    (:func:`conv2d_backward_input`); ``dW`` does not: ``cols`` comes from
    memory either way, and one product over the batch measured 3-13%
    faster than one per block.
    """
    n, f = dout.shape[:2]
    dout_mat = dout.reshape(n, f, -1)  # (N, F, Ho*Wo)
    dW_t = np.matmul(cols, dout_mat.transpose(0, 2, 1)).sum(axis=0)  # (C*KH*KW, F)
    db = np.einsum("nfp->f", dout_mat)
    return conv2d_backward_input(dout, x_shape, W, stride, padding), dW_t.T.reshape(W.shape), db


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
        ``fold(W_mat.T @ dout[n])``, block by block.
    """
    n, f = dout.shape[:2]
    dout_mat = dout.reshape(n, f, -1)
    dx = np.empty(x_shape, dtype=np.result_type(W, dout))
    for blk in _blocks(n, W[0].size * dout_mat.shape[2] * dx.itemsize):
        dx[blk] = _fold_product(dout_mat[blk], x_shape, W, stride, padding)
    return dx


def fold_wide(cols, x_shape, kernel_size, padding=0):
    """:func:`fold` for stride 1 over "wide rows": each kernel offset is one contiguous run.

    Parameters
    ----------
    cols : ndarray, shape (N, C * K * K, L)
        ``L = H_out * Wp - (K - 1)`` with ``Wp = W + 2 * padding``: column
        ``t = i * Wp + j`` holds output position ``(i, j)`` for every ``j`` in
        ``[0, Wp)``, i.e. on the padded width. Columns ``j >= W_out`` belong
        to no output (a window there would wrap onto the next row) and must
        hold zeros.
    x_shape : tuple (N, C, H, W)
    kernel_size, padding : int

    Returns
    -------
    ndarray, shape (N, C, H, W)
        The same numbers as :func:`fold` of the ``j < W_out`` columns (stride 1).

    Notes
    -----
    In the flattened padded image a window at ``(i, j)`` reads
    ``x_pad_flat[t + p * Wp + q]``: offset ``(p, q)`` of every window is the
    run ``x_pad_flat[p*Wp + q : p*Wp + q + L]``, so the adjoint is ``K*K``
    adds of one contiguous run per (sample, channel). :func:`fold` adds
    ``H_out`` runs of ``W_out`` numbers instead; on 8-16 pixel wide maps
    NumPy's cost per run, not the arithmetic, is most of its time.
    """
    n, c, h, w = x_shape
    k = kernel_size
    hp, wp = h + 2 * padding, w + 2 * padding
    length = (hp - k + 1) * wp - (k - 1)
    if cols.shape != (n, c * k * k, length):
        raise ValueError(f"fold_wide: cols must have shape {(n, c * k * k, length)} for x_shape {tuple(x_shape)}, "
                         f"kernel {k}, padding {padding}; got {cols.shape}")
    cols5 = cols.reshape(n, c, k, k, length)
    out = np.zeros((n, c, hp * wp), dtype=cols.dtype)
    for p in range(k):
        for q in range(k):
            start = p * wp + q
            out[:, :, start : start + length] += cols5[:, :, p, q]
    return unpad2d(out.reshape(n, c, hp, wp), padding)


def _fold_product(dout_mat, x_shape, W, stride, padding):
    """``fold(W_mat.T @ dout_mat[n])`` for a block of samples: their part of ``dx``.

    For stride 1, ``dout`` is first written onto the padded width (zeros in
    the ``2 * padding`` extra columns), so that the product comes out in
    :func:`fold_wide`'s layout: a few percent more arithmetic, and a fold of
    long runs (measured in benchmarks/README.md).
    """
    n, f = dout_mat.shape[:2]
    k = W.shape[2]
    _, c, h, w = x_shape
    W_t = W.reshape(f, -1).T  # (C*K*K, F)
    if stride != 1:
        return fold(np.matmul(W_t, dout_mat), (n, c, h, w), k, stride, padding)
    wp = w + 2 * padding
    h_out, w_out = h + 2 * padding - k + 1, wp - k + 1
    wide = np.zeros((n, f, h_out, wp), dtype=dout_mat.dtype)
    wide[:, :, :, :w_out] = dout_mat.reshape(n, f, h_out, w_out)
    length = h_out * wp - (k - 1)  # the last row's wrapped columns are never needed
    dcols = np.matmul(W_t, wide.reshape(n, f, h_out * wp)[:, :, :length])  # (n_blk, C*K*K, L)
    return fold_wide(dcols, (n, c, h, w), k, padding)
