"""Shared by every metric: image-sized maps from a method, and the checks of maps, masks, boxes and fractions."""

import numbers

import numpy as np

from .._validate import check_float_array
from ..explain.postprocess import upsample

__all__ = ["check_fraction", "check_maps", "check_masks", "check_box", "image_maps", "explain_maps"]


def check_fraction(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in (0, 1], got {value!r} ({type(value).__name__})")
    if not 0.0 < float(value) <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")
    return float(value)


def check_maps(maps, name="maps"):
    """A batch of image-sized maps (N, H, W), N >= 1."""
    check_float_array(maps, name)
    if maps.ndim != 3:
        raise ValueError(
            f"{name} must be image-sized maps (N, H, W); upsample a method's (N, h, w) maps first "
            f"(minicam.metrics.image_maps), got shape {maps.shape}"
        )
    if maps.shape[0] < 1:
        raise ValueError(f"{name} must hold at least one map, got shape {maps.shape} (an empty batch)")
    return maps


def check_masks(masks, maps, name="masks"):
    if not isinstance(masks, np.ndarray) or masks.dtype != bool:
        got = f"dtype {masks.dtype}" if isinstance(masks, np.ndarray) else type(masks).__name__
        raise TypeError(f"{name} must be a boolean ndarray (N, H, W), got {got}")
    if masks.shape != maps.shape:
        raise ValueError(f"{name} must have the shape of maps {maps.shape}, got {masks.shape}")
    empty = np.flatnonzero(~masks.reshape(len(masks), -1).any(axis=1))
    if empty.size:
        raise ValueError(f"{name}[{int(empty[0])}] is empty: every image needs an object (at least one True pixel)")
    return masks


def check_box(box, height, width, name="box"):
    """``(x0, y0, x1, y1)`` as ints, inside a (height, width) image with x1 > x0 and y1 > y0."""
    arr = np.asarray(box)
    if arr.shape != (4,) or arr.dtype.kind not in "iuf" or (arr.dtype.kind == "f" and not np.all(arr == np.round(arr))):
        raise ValueError(f"{name} must be 4 integers (x0, y0, x1, y1), got {box!r}")
    x0, y0, x1, y1 = (int(v) for v in arr)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"{name} must have x1 > x0 and y1 > y0 (x1/y1 exclusive), got {(x0, y0, x1, y1)}")
    if height is not None and (x0 < 0 or y0 < 0 or x1 > width or y1 > height):
        raise ValueError(f"{name} must lie inside the {height}x{width} image (0 <= x0 < x1 <= {width}, "
                         f"0 <= y0 < y1 <= {height}), got {(x0, y0, x1, y1)}")
    return x0, y0, x1, y1


def image_maps(maps, size, reduce="max-abs", name="maps"):
    """A method's output as one image-sized map per sample, (N, H, W).

    Parameters
    ----------
    maps : ndarray, shape (N, h, w) or (N, C, H, W)
        A CAM-style map at its layer's resolution, or an input-space map.
    size : (int, int)
        The image's (H, W).
    reduce : {"max-abs", "sum"}
        How an input-space map loses its channels: ``max_c |g_c|`` (the
        saliency display of Simonyan et al. 2014, :func:`saliency_map`) or
        the signed ``sum_c g_c``.

    Returns
    -------
    ndarray, shape (N, H, W)
        (N, h, w) maps are upsampled bilinearly (:func:`upsample`), their sign kept.
    """
    if reduce not in ("max-abs", "sum"):
        raise ValueError(f"reduce must be 'max-abs' or 'sum', got {reduce!r}")
    check_float_array(maps, name, ndim=(3, 4))
    size = tuple(size)
    if maps.ndim == 4:
        if maps.shape[2:] != size:
            raise ValueError(f"{name} of shape {maps.shape} is 4-D, so it must be an input map (N, C, {size[0]}, "
                             f"{size[1]}) of the image's size {size}")
        return np.abs(maps).max(axis=1) if reduce == "max-abs" else maps.sum(axis=1)
    return maps if maps.shape[1:] == size else upsample(maps, size, "bilinear")


def explain_maps(model, method, x, class_idx, reduce="max-abs"):
    """Call ``method(model, x, class_idx)``, check what it returns, and make it image-sized.

    Returns
    -------
    ndarray, shape (N, H, W)
        See :func:`image_maps`. A method returning anything but (N, h, w) or
        (N, C, H, W) floats raises, naming the method and the shape received.
    """
    if not callable(method):
        raise TypeError(f"method must be a callable method(model, x, class_idx) like minicam.grad_cam, "
                        f"got {type(method).__name__}")
    out = method(model, x, class_idx)
    label = getattr(method, "__name__", repr(method))
    if not isinstance(out, np.ndarray) or out.ndim not in (3, 4) or out.shape[0] != x.shape[0]:
        got = f"shape {out.shape}" if isinstance(out, np.ndarray) else type(out).__name__
        raise ValueError(f"method {label} must return maps (N, h, w) or (N, C, H, W) with N = {x.shape[0]} "
                         f"for x of shape {x.shape}, got {got}")
    return image_maps(out, x.shape[2:], reduce=reduce, name=f"the maps of method {label}")


# -- localization: the 15% rule (CAM Sec. 4.1; Grad-CAM Sec. 4.1) ---------------
