"""Pooling: max (with -inf padding), average and adaptive average; naive loops and strided-view kernels."""

import numpy as np

from . import padding as P
from .padding import output_size, unpad2d, windows

__all__ = [
    "check_max_pool_padding",
    "max_pool2d_forward_naive",
    "max_pool2d_backward_naive",
    "max_pool2d",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
    "adaptive_windows",
    "adaptive_avg_pool2d_forward_naive",
    "adaptive_avg_pool2d_backward_naive",
    "adaptive_avg_pool2d_forward",
    "adaptive_avg_pool2d_backward",
]


# ----------------------------------------------------------------------------
# Pooling
# ----------------------------------------------------------------------------


def check_max_pool_padding(kernel_size, padding):
    """Refuse a max-pool padding larger than ``kernel_size // 2`` (PyTorch's rule).

    With ``padding <= kernel_size // 2`` every window holds at least one
    input, so the ``-inf`` border never becomes an output (nor receives a
    gradient).

    Returns
    -------
    int
        ``padding``.

    Raises
    ------
    ValueError
        Naming the argument, its value and the limit.
    """
    if padding > kernel_size // 2:
        raise ValueError(
            f"padding must be <= kernel_size // 2 = {kernel_size // 2} for kernel_size={kernel_size} "
            f"(PyTorch's rule: a window must not lie mostly in the padding), got padding={padding}"
        )
    return padding


def max_pool2d_forward_naive(x, kernel_size, stride, padding=0):
    """Max pooling by explicit loops (floor mode).

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
        Finite values.
    kernel_size, stride : int
    padding : int, default 0
        Rows/columns of ``-inf`` added on every side, at most
        ``kernel_size // 2``.

    Returns
    -------
    out : ndarray, shape (N, C, H_out, W_out)
        ``H_out = (H + 2*padding - kernel_size) // stride + 1`` (same for W).

    Notes
    -----
    The border is ``-inf``, not zero: a padded position never wins a max, so
    a window at the edge is the max of its inputs only (zero padding would
    turn a window of negative values into 0).
    """
    n, c, h, w = x.shape
    k = kernel_size
    check_max_pool_padding(k, padding)
    h_out = output_size(h, k, stride, padding)
    w_out = output_size(w, k, stride, padding)
    xp = P.pad2d(x, padding, value=-np.inf)
    out = np.zeros((n, c, h_out, w_out), dtype=x.dtype)
    for s in range(n):
        for ch in range(c):
            for i in range(h_out):
                for j in range(w_out):
                    out[s, ch, i, j] = xp[s, ch, i * stride : i * stride + k, j * stride : j * stride + k].max()
    return out


def max_pool2d_backward_naive(dout, x, kernel_size, stride, padding=0):
    """Gradient of max pooling by explicit loops.

    Each window's upstream gradient goes to its *first* maximum in row-major
    order (``np.argmax`` semantics), so ties are resolved deterministically.
    Padded positions are ``-inf`` and never receive a gradient.

    Parameters
    ----------
    dout : ndarray, shape (N, C, H_out, W_out)
    x : ndarray, shape (N, C, H, W)
    kernel_size, stride, padding : int
        As in :func:`max_pool2d_forward_naive`.

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
    """
    k = kernel_size
    check_max_pool_padding(k, padding)
    _, _, h_out, w_out = dout.shape
    xp = P.pad2d(x, padding, value=-np.inf)
    dxp = np.zeros_like(xp)
    for s in range(xp.shape[0]):
        for ch in range(xp.shape[1]):
            for i in range(h_out):
                for j in range(w_out):
                    window = xp[s, ch, i * stride : i * stride + k, j * stride : j * stride + k]
                    p, q = np.unravel_index(np.argmax(window), window.shape)
                    dxp[s, ch, i * stride + p, j * stride + q] += dout[s, ch, i, j]
    return unpad2d(dxp, padding)


def _offset_views(x, kernel_size, stride, h_out, w_out):
    """The ``K*K`` strided views of ``x``, one per offset ``(p, q)`` inside the window.

    ``views[p * K + q][n, c, i, j] = x[n, c, i*stride + p, j*stride + q]``:
    element ``(p, q)`` of every window at once, in row-major order of the
    offsets. Views, not copies. When ``kernel_size == stride`` they are the
    ``(p, q)`` slices of ``x`` reshaped to ``(N, C, H_out, K, W_out, K)``
    (rows/columns past the last window dropped: floor mode).
    """
    k = kernel_size
    return [
        x[:, :, p : p + stride * h_out : stride, q : q + stride * w_out : stride] for p in range(k) for q in range(k)
    ]


def _running_max(x, kernel_size, stride, padding):
    k = kernel_size
    check_max_pool_padding(k, padding)
    h_out = output_size(x.shape[2], k, stride, padding)
    w_out = output_size(x.shape[3], k, stride, padding)
    views = _offset_views(P.pad2d(x, padding, value=-np.inf), k, stride, h_out, w_out)
    out = views[0].copy()
    for v in views[1:]:
        np.maximum(out, v, out=out)
    return out, views


def max_pool2d(x, kernel_size, stride, padding=0):
    """The output of :func:`max_pool2d_forward` alone, without the argmax a backward needs."""
    return _running_max(x, kernel_size, stride, padding)[0]


def max_pool2d_forward(x, kernel_size, stride, padding=0):
    """Vectorized max pooling (floor mode).

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
        Finite values.
    kernel_size, stride : int
    padding : int, default 0
        ``-inf`` rows/columns on every side, at most ``kernel_size // 2``
        (see :func:`max_pool2d_forward_naive`).

    Returns
    -------
    out : ndarray, shape (N, C, H_out, W_out)
        ``H_out = (H + 2*padding - kernel_size) // stride + 1`` (same for W).
    argmax : ndarray of uint8 (intp for windows of more than 255), shape (N, C, H_out, W_out)
        Flat index ``p * KW + q`` of the first maximum inside each window
        of the padded input (never a padded position).

    Notes
    -----
    ``out`` is the running ``np.maximum`` of the ``K*K`` offset views (no
    window is copied). The first maximum's index is the number of offsets,
    in row-major order, before the first one equal to ``out``: a running
    "no maximum yet" mask, added up. Without padding the views are views of
    ``x`` itself; with padding, of one ``-inf``-bordered copy.
    """
    out, views = _running_max(x, kernel_size, stride, padding)
    k = kernel_size
    argmax = np.zeros(out.shape, dtype=np.uint8 if k * k <= 256 else np.intp)
    before_first_max = np.ones(out.shape, dtype=bool)
    for v in views[:-1]:
        before_first_max &= v != out
        argmax += before_first_max
    return out, argmax


def max_pool2d_backward(dout, argmax, x_shape, kernel_size, stride, padding=0):
    """Vectorized gradient of max pooling from the stored argmax.

    Parameters
    ----------
    dout : ndarray, shape (N, C, H_out, W_out)
    argmax : ndarray of int, shape (N, C, H_out, W_out)
        As returned by :func:`max_pool2d_forward`.
    x_shape : tuple (N, C, H, W)
    kernel_size, stride, padding : int
        As given to :func:`max_pool2d_forward`.

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
        (A view into a padded buffer when ``padding > 0``.)
    """
    k = kernel_size
    n, c, h, w = x_shape
    _, _, h_out, w_out = dout.shape
    dx = np.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=dout.dtype)
    slabs = _offset_views(dx, k, stride, h_out, w_out)
    # For each offset (p, q), route the windows whose first maximum sits there.
    for index, slab in enumerate(slabs):
        if stride >= k:  # windows do not overlap: each slab element belongs to one window
            np.multiply(dout, argmax == index, out=slab)
        else:  # overlapping windows accumulate
            slab += dout * (argmax == index)
    dx += 0.0  # dout * False is -0.0 where dout < 0: make every zero +0.0, as in the naive loop
    return unpad2d(dx, padding)


def avg_pool2d_forward(x, kernel_size, stride):
    """Vectorized average pooling (floor mode, no padding).

    Returns
    -------
    out : ndarray, shape (N, C, H_out, W_out)
    """
    k = kernel_size
    output_size(x.shape[2], k, stride)
    output_size(x.shape[3], k, stride)
    return windows(x, k, stride).mean(axis=(-2, -1))


def avg_pool2d_backward(dout, x_shape, kernel_size, stride):
    """Gradient of average pooling: each window shares its gradient equally.

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
    """
    k = kernel_size
    _, _, h_out, w_out = dout.shape
    dx = np.zeros(x_shape, dtype=dout.dtype)
    share = dout / (k * k)
    for p in range(k):
        for q in range(k):
            dx[:, :, p : p + stride * h_out : stride, q : q + stride * w_out : stride] += share
    return dx


# ----------------------------------------------------------------------------
# Adaptive average pooling
# ----------------------------------------------------------------------------


def adaptive_windows(size, out_size):
    """PyTorch's adaptive pooling windows along one axis.

    Parameters
    ----------
    size : int
        Input length along the axis (``n_in``).
    out_size : int
        Number of outputs along the axis (``n_out``); may exceed ``size``.

    Returns
    -------
    list of (start, stop), length ``out_size``
        Output ``i`` averages input positions ``start <= r < stop``.

    Notes
    -----
    .. math:: start_i = \\lfloor i\\, n_{in} / n_{out} \\rfloor, \\qquad
              stop_i = \\lceil (i + 1)\\, n_{in} / n_{out} \\rceil

    computed in integer arithmetic. The windows cover the input; they have
    different lengths when ``n_out`` does not divide ``n_in``, and
    neighbours overlap when the division leaves a fraction (5 -> 3 gives
    [0, 2), [1, 4), [3, 5)). With ``n_out > n_in`` consecutive outputs
    repeat an input (2 -> 5 gives [0, 1), [0, 1), [0, 2), [1, 2), [1, 2)).
    When ``n_out`` divides ``n_in`` they are the windows of an ordinary
    pool with kernel = stride = ``n_in // n_out``.

    Examples
    --------
    >>> adaptive_windows(5, 3)
    [(0, 2), (1, 4), (3, 5)]
    """
    return [((i * size) // out_size, -((-(i + 1) * size) // out_size)) for i in range(out_size)]


def adaptive_avg_pool2d_forward_naive(x, output_size):
    """Adaptive average pooling by explicit loops (the definition, for reading).

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    output_size : (int, int)
        ``(H_out, W_out)``; either may be larger than ``H`` / ``W``.

    Returns
    -------
    out : ndarray, shape (N, C, H_out, W_out)

    Notes
    -----
    .. math:: out[n, c, i, j] = \\frac{1}{|R_i|\\,|C_j|} \\sum_{r \\in R_i} \\sum_{q \\in C_j} x[n, c, r, q]

    with ``R_i = [floor(i H / H_out), ceil((i + 1) H / H_out))`` and ``C_j``
    likewise over ``W`` (:func:`adaptive_windows`): the window size is not
    a hyper-parameter, it follows from the input size, which is how one
    classifier head serves several input sizes (VGG's and AlexNet's
    ``AdaptiveAvgPool2d((7, 7))`` / ``((6, 6))``, ResNet's ``(1, 1)``).
    """
    n, c, h, w = x.shape
    h_out, w_out = output_size
    out = np.zeros((n, c, h_out, w_out), dtype=x.dtype)
    for s in range(n):
        for ch in range(c):
            for i in range(h_out):
                r0, r1 = (i * h) // h_out, -((-(i + 1) * h) // h_out)
                for j in range(w_out):
                    c0, c1 = (j * w) // w_out, -((-(j + 1) * w) // w_out)
                    out[s, ch, i, j] = x[s, ch, r0:r1, c0:c1].sum() / ((r1 - r0) * (c1 - c0))
    return out


def adaptive_avg_pool2d_backward_naive(dout, x_shape):
    """Gradient of :func:`adaptive_avg_pool2d_forward_naive` by explicit loops.

    Parameters
    ----------
    dout : ndarray, shape (N, C, H_out, W_out)
    x_shape : tuple (N, C, H, W)

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)

    Notes
    -----
    Output ``(i, j)`` is the mean of its window, so each of the window's
    ``|R_i| |C_j|`` inputs receives ``dout[n, c, i, j] / (|R_i| |C_j|)``.
    Windows may overlap (and repeat inputs when the output is larger than
    the input): contributions add up.
    """
    n, c, h, w = x_shape
    _, _, h_out, w_out = dout.shape
    dx = np.zeros(x_shape, dtype=dout.dtype)
    for s in range(n):
        for ch in range(c):
            for i in range(h_out):
                r0, r1 = (i * h) // h_out, -((-(i + 1) * h) // h_out)
                for j in range(w_out):
                    c0, c1 = (j * w) // w_out, -((-(j + 1) * w) // w_out)
                    dx[s, ch, r0:r1, c0:c1] += dout[s, ch, i, j] / ((r1 - r0) * (c1 - c0))
    return dx


def adaptive_avg_pool2d_forward(x, output_size):
    """Adaptive average pooling, one vectorized mean per output cell.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    output_size : (int, int)
        ``(H_out, W_out)``.

    Returns
    -------
    out : ndarray, shape (N, C, H_out, W_out)

    Notes
    -----
    A loop over the ``H_out * W_out`` cells (49 at most in AlexNet, VGG and
    ResNet), each a sum over its window for every sample and channel at
    once, divided by the window's area as PyTorch's kernel does.
    """
    n, c, h, w = x.shape
    h_out, w_out = output_size
    out = np.empty((n, c, h_out, w_out), dtype=x.dtype)
    for i, (r0, r1) in enumerate(adaptive_windows(h, h_out)):
        for j, (c0, c1) in enumerate(adaptive_windows(w, w_out)):
            out[:, :, i, j] = x[:, :, r0:r1, c0:c1].sum(axis=(2, 3)) / ((r1 - r0) * (c1 - c0))
    return out


def adaptive_avg_pool2d_backward(dout, x_shape):
    """Gradient of :func:`adaptive_avg_pool2d_forward`: each cell shares its gradient equally over its window.

    Parameters
    ----------
    dout : ndarray, shape (N, C, H_out, W_out)
    x_shape : tuple (N, C, H, W)

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
        Overlapping windows accumulate.
    """
    _, _, h, w = x_shape
    _, _, h_out, w_out = dout.shape
    dx = np.zeros(x_shape, dtype=dout.dtype)
    for i, (r0, r1) in enumerate(adaptive_windows(h, h_out)):
        for j, (c0, c1) in enumerate(adaptive_windows(w, w_out)):
            dx[:, :, r0:r1, c0:c1] += (dout[:, :, i, j] / ((r1 - r0) * (c1 - c0)))[:, :, None, None]
    return dx
