"""Output sizes, padding and sliding windows: what every window kernel starts from."""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "output_size",
    "pad2d",
    "unpad2d",
    "windows",
]


def output_size(size, kernel_size, stride=1, padding=0):
    """Number of window positions along one axis.

    Parameters
    ----------
    size : int
        Input length along the axis (before padding).
    kernel_size, stride, padding : int

    Returns
    -------
    int
        ``(size + 2 * padding - kernel_size) // stride + 1``.

    Raises
    ------
    ValueError
        When the kernel does not fit in the padded input.
    """
    padded = size + 2 * padding
    if kernel_size > padded:
        raise ValueError(
            f"kernel_size {kernel_size} is larger than the padded input "
            f"({size} + 2*{padding} = {padded})"
        )
    return (padded - kernel_size) // stride + 1


def pad2d(x, padding, value=0.0):
    """Pad the two spatial axes of an NCHW array with a constant (zeros by default).

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    padding : int
    value : float
        What the border holds: 0 for convolution, ``-inf`` for max pooling.

    Returns
    -------
    ndarray, shape (N, C, H + 2*padding, W + 2*padding)
        A new array, except for ``padding == 0``, where ``x`` itself is
        returned (callers only read it).
    """
    if padding == 0:
        return x
    p = padding
    n, c, h, w = x.shape
    shape = (n, c, h + 2 * p, w + 2 * p)
    # np.pad is ~3x slower
    out = np.zeros(shape, dtype=x.dtype) if value == 0 else np.full(shape, value, dtype=x.dtype)
    out[:, :, p : p + h, p : p + w] = x
    return out


def unpad2d(x, padding):
    """Inverse of :func:`pad2d`: drop ``padding`` rows/columns on each side."""
    if padding == 0:
        return x
    p = padding
    return x[:, :, p:-p, p:-p]


def windows(x, kernel_size, stride):
    """Read-only view of every (kernel_size x kernel_size) window.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
        Already padded.
    kernel_size, stride : int

    Returns
    -------
    ndarray, shape (N, C, H_out, W_out, KH, KW)
        A strided view (no copy); ``[n, c, i, j]`` is the window whose top-left
        corner is ``(i * stride, j * stride)``.
    """
    k = kernel_size
    h_out = (x.shape[2] - k) // stride + 1
    w_out = (x.shape[3] - k) // stride + 1
    view = sliding_window_view(x, (k, k), axis=(2, 3))
    return view[:, :, : (h_out - 1) * stride + 1 : stride, : (w_out - 1) * stride + 1 : stride]
