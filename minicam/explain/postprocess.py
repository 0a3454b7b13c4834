"""Post-processing as named steps: resizing and normalising maps.

The methods return raw maps at the resolution of their layer. Resizing a map
to the input and normalising it for display are separate, explicit calls, so
the differences between libraries (which upsampling, which normalisation, in
which order) can be reproduced instead of guessed.
"""

import numpy as np

from .._validate import check_float_array, check_float_dtype, check_pair

__all__ = ["relu", "upsample", "normalize", "INTERPOLATIONS", "MAX_OUTPUT_PIXELS", "check_interpolation", "check_maps"]

INTERPOLATIONS = ("bilinear", "nearest")
"""The upsampling rules of :func:`upsample` (the ``interpolation=`` argument everywhere)."""

MAX_OUTPUT_PIXELS = 2**26
"""Largest ``H * W`` :func:`upsample` produces (as many pixels as the largest image minicam reads):
a size typed wrong fails at once instead of exhausting memory."""


def check_maps(maps, name="maps", ndim=None):
    """``maps`` if it is a finite float32/float64 ndarray (of ``ndim`` dimensions), else a TypeError/ValueError naming it."""
    check_float_array(maps, name, ndim=ndim)
    check_float_dtype(maps.dtype, f"{name}'s dtype")
    return maps


def relu(maps):
    """The ReLU step of a CAM: ``max(maps, 0)``, a new array in the dtype of ``maps``.

    Grad-CAM (Selvaraju et al. 2017, eq. 2) and its variants keep only the
    positive evidence; CAM and Eigen-CAM are returned signed.
    """
    return np.maximum(maps, np.zeros((), dtype=maps.dtype))


def check_interpolation(interpolation):
    """``interpolation`` if it is one of :data:`INTERPOLATIONS`; else a ValueError naming it."""
    if not isinstance(interpolation, str) or interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    return interpolation


def _bilinear_weights(n_in, n_out, dtype):
    # PyTorch's align_corners=False rule (area_pixel_compute_source_index):
    # half-pixel centres, src = (dst + 0.5) * in / out - 0.5, clamped below
    # at 0; the upper neighbour is clamped at the last pixel. The scale and
    # the source coordinate are computed in the map's dtype, as PyTorch does.
    scale = dtype.type(n_in / n_out)
    src = (np.arange(n_out, dtype=dtype) + dtype.type(0.5)) * scale - dtype.type(0.5)
    src = np.maximum(src, dtype.type(0))
    i0 = np.minimum(src.astype(np.int64), n_in - 1)  # floor, since src >= 0
    i1 = np.minimum(i0 + 1, n_in - 1)
    lam1 = src - i0.astype(dtype)
    return i0, i1, dtype.type(1) - lam1, lam1


def _nearest_index(n_in, n_out):
    # floor(dst * in / out) in exact integer arithmetic.
    return (np.arange(n_out, dtype=np.int64) * n_in) // n_out


def upsample(maps, size, interpolation="bilinear"):
    """Resize maps to ``size`` (usually the input's (H, W)).

    Parameters
    ----------
    maps : ndarray, shape (N, h, w) or (N, C, h, w)
        Float maps; the last two axes are resized.
    size : int or (H, W)
        Output height and width, each >= 1 (an int means a square).
    interpolation : {"bilinear", "nearest"}

    Returns
    -------
    ndarray, shape (N, H, W) or (N, C, H, W), dtype of ``maps``
        A new array; ``maps`` is not modified.

    Notes
    -----
    **bilinear** is PyTorch's ``interpolate(mode="bilinear",
    align_corners=False)`` (also OpenCV's ``INTER_LINEAR``): output pixel
    ``d`` samples the input at

    .. math:: s = \\max\\left(0,\\ (d + 0.5)\\,\\frac{n_{in}}{n_{out}} - 0.5\\right)

    between pixels ``i0 = floor(s)`` and ``i1 = min(i0 + 1, n_in - 1)`` with
    weights ``1 - (s - i0)`` and ``s - i0``, along the width, then the height.
    The same size is the identity; a constant map stays constant.

    **nearest** takes source pixel ``floor(d * n_in / n_out)``, computed
    exactly in integers. PyTorch's legacy ``mode="nearest"`` computes the
    scale ``n_in / n_out`` in float32, which moves a source pixel for some
    size pairs (e.g. 14 -> 46: output pixel 23 reads pixel 23 * 14 / 46 = 7 here, 6 there);
    ``mode="nearest-exact"`` in PyTorch is a different rule (half-pixel centres).
    """
    check_maps(maps, ndim=(3, 4))
    check_interpolation(interpolation)
    out_h, out_w = check_pair(size, "size", minimum=1)
    if out_h * out_w > MAX_OUTPUT_PIXELS:
        raise ValueError(f"size must have at most MAX_OUTPUT_PIXELS = {MAX_OUTPUT_PIXELS} pixels (H * W), "
                         f"got {(out_h, out_w)}")
    in_h, in_w = maps.shape[-2:]
    if maps.shape[0] == 0 or in_h == 0 or in_w == 0:
        raise ValueError(f"maps must have at least one sample and a non-empty (h, w), got shape {maps.shape}")
    if interpolation == "nearest":
        rows = _nearest_index(in_h, out_h)
        cols = _nearest_index(in_w, out_w)
        return maps[..., rows[:, None], cols[None, :]]
    dt = maps.dtype
    r0, r1, wr0, wr1 = _bilinear_weights(in_h, out_h, dt)
    c0, c1, wc0, wc1 = _bilinear_weights(in_w, out_w, dt)
    along_w = maps[..., c0] * wc0 + maps[..., c1] * wc1  # (..., h, W)
    return along_w[..., r0, :] * wr0[:, None] + along_w[..., r1, :] * wr1[:, None]  # (..., H, W)


def normalize(maps):
    """Min-max normalise each sample's map(s) to [0, 1].

    Parameters
    ----------
    maps : ndarray, shape (N, ...)
        E.g. (N, h, w) CAMs or (N, C, H, W) saliency; each sample is scaled
        over all its other axes (all channels together, so their relative
        strengths are kept).

    Returns
    -------
    ndarray, shape of ``maps``
        ``(m - min) / (max - min)`` per sample; a flat sample (including an
        all-zero map, e.g. a Grad-CAM whose signed map is all negative) gives
        zeros, never NaN.
    """
    check_maps(maps)
    if maps.ndim < 2:
        raise ValueError(f"maps must be a batch (N, ...) with at least 2 dimensions, got shape {maps.shape}")
    if maps.shape[0] == 0:
        raise ValueError(f"maps must hold at least one sample (N >= 1), got shape {maps.shape}")
    n = maps.shape[0]
    flat = maps.reshape(n, -1)
    lo = flat.min(axis=1) if flat.shape[1] else np.zeros(n, dtype=maps.dtype)
    hi = flat.max(axis=1) if flat.shape[1] else lo
    shape = (n,) + (1,) * (maps.ndim - 1)
    with np.errstate(over="ignore"):
        span = hi - lo
    if not np.all(np.isfinite(span)):
        # max - min overflows (values near the dtype's limit): scale such samples by their largest
        # magnitude first, which changes nothing else (the result is scale-free)
        big = ~np.isfinite(span)
        scale = np.where(big, np.maximum(np.abs(lo), np.abs(hi)), np.ones((), dtype=maps.dtype))
        maps = maps / scale.reshape(shape)
        lo, span = lo / scale, hi / scale - lo / scale
    # a flat sample has maps - lo == 0 everywhere: dividing by 1 instead of 0 gives zeros
    safe = np.where(span > 0, span, np.ones((), dtype=maps.dtype))
    return (maps - lo.reshape(shape)) / safe.reshape(shape)
