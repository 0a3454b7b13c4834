"""Perturbation maps: occlusion sensitivity (Zeiler & Fergus 2014)."""

import math
import numbers

import numpy as np

from .._validate import check_float, check_float_array, check_int, check_pair
from ._core import check_input, check_target_args, forward_target, untouched
from .targets import evaluate_stacked

__all__ = ["occlusion"]


def _starts(size, window, stride):
    # captum's count of window positions: ceil((size - window) / stride) + 1;
    # the last window may stick out past the edge and is cut there.
    return [i * stride for i in range(math.ceil((size - window) / stride) + 1)]


def occlusion(model, x, class_idx=None, window=3, stride=1, baseline=0.0, score="logit", batch_size=64,
              target=None):
    """Occlusion sensitivity (Zeiler & Fergus 2014, Sec. 4.2), with captum's ``Occlusion`` averaging.

    Parameters
    ----------
    model : Sequential
    x : ndarray, shape (N, C, H, W)
    class_idx : int, sequence of N ints, or None
        ``None``: the predicted class of each (unoccluded) sample.
    window : int or (kh, kw)
        Size of the occluding patch; it covers all C channels.
    stride : int or (sh, sw)
        At most the window size (along an axis the window spans entirely,
        any stride: there is one position), so every pixel is covered.
    baseline : float or ndarray broadcastable to ``x``
        Value written into the patch.
    score : {"logit", "softmax", "log_softmax"}
    batch_size : int, default 64
        Bound on the images per forward pass (at least N: every sample's copy
        for one window position goes in the same pass).
    target : callable, optional
        ``target(scores) -> (value (N,), dscores)`` instead of ``class_idx``/``score``.

    Returns
    -------
    ndarray, shape (N, H, W)
        For each pixel, the mean over the windows covering it of the score
        drop ``f(x) - f(x with the window replaced by baseline)``.

    Notes
    -----
    This is captum's ``Occlusion.attribute(x, sliding_window_shapes=(C, kh, kw),
    strides=(C, sh, sw), baselines=baseline, target=c)`` (which returns the
    same map repeated over the C channels): window top-left corners at
    ``i * sh`` for ``i = 0 .. ceil((H - kh) / sh)`` (likewise for columns), the
    last window cut at the edge, so every pixel is covered at least once;
    each window's score drop is added to every pixel it covers and each
    pixel's total is divided by the number of windows covering it.
    """
    check_target_args(class_idx, score, target)
    check_input(model, x, image=True)
    n, _, height, width = x.shape
    kh, kw = check_pair(window, "window")
    sh, sw = check_pair(stride, "stride")
    if kh > height or kw > width:
        raise ValueError(f"window must fit in the image ({height}, {width}), got {(kh, kw)}")
    if (sh > kh and kh < height) or (sw > kw and kw < width):
        # as captum: a stride longer than the window would skip pixels (no window covers them)
        raise ValueError(f"stride must not exceed window {(kh, kw)} where the window is smaller than the image, "
                         f"got {(sh, sw)}")
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    if isinstance(baseline, numbers.Real) and not isinstance(baseline, bool):
        # checked here, not as part of the occluded x: a NaN baseline is the caller's baseline, not x
        baseline = np.asarray(check_float(baseline, "baseline"), dtype=x.dtype)
    else:
        if not isinstance(baseline, np.ndarray):
            raise TypeError(f"baseline must be a real number or a float ndarray broadcastable to x, got {baseline!r} "
                            f"({type(baseline).__name__})")
        check_float_array(baseline, "baseline")
        try:
            fits = np.broadcast_shapes(baseline.shape, x.shape) == x.shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"baseline must be a number or broadcast to x's shape {x.shape}, got shape {baseline.shape}")
    filled = np.broadcast_to(baseline, x.shape).astype(x.dtype, copy=False)
    windows = [(r, c) for r in _starts(height, kh, sh) for c in _starts(width, kw, sw)]

    total = np.zeros((n, height, width), dtype=x.dtype)
    count = np.zeros((height, width), dtype=x.dtype)
    chunk = max(1, batch_size // n)
    with untouched(model):
        _, tgt, value, _ = forward_target(model, x, class_idx, score, target, cache=False)
        for w0 in range(0, len(windows), chunk):
            part = windows[w0 : w0 + chunk]
            batch = np.broadcast_to(x, (len(part),) + x.shape).copy()  # (P, N, C, H, W)
            for p, (r, c) in enumerate(part):
                batch[p, :, :, r : r + kh, c : c + kw] = filled[:, :, r : r + kh, c : c + kw]
            out = model.forward(batch.reshape(len(part) * n, *x.shape[1:]), cache=False)
            drops = value - evaluate_stacked(tgt, out.reshape(len(part), n, *out.shape[1:]))  # (P, N)
            for p, (r, c) in enumerate(part):
                total[:, r : r + kh, c : c + kw] += drops[p][:, None, None]
                count[r : r + kh, c : c + kw] += 1
    return total / count
