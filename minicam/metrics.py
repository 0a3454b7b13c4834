"""Measuring explanations: identities, where a map points, and (to come) the papers' metrics.

NumPy only. Each function is short and states the paper it follows.

- :func:`identity_error`: Grad-CAM before its ReLU against CAM / (h w) on a
  GAP -> Linear network (Selvaraju et al. 2017, Sec. 3.1).
- :func:`peak_object`, :func:`pointing_rate`: which object a map's maximum
  falls on (the pointing game of Zhang et al. 2016).
"""

import numpy as np

from .explain.cams import cam, grad_cam
from .explain.postprocess import upsample

__all__ = ["IDENTITY_TOL", "identity_error", "peak_object", "pointing_rate"]

# The identity holds to rounding (~1e-16 relative) in float64; anything near
# this limit is a bug, not noise.
IDENTITY_TOL = 1e-10


def identity_error(model, x, layer=None):
    """Largest ``|GradCAM_signed - CAM / (h w)|`` over the images and every class.

    Selvaraju et al. (2017), Sec. 3.1: on a network ending in global average
    pooling and one linear layer, ``dy^c/dA^k_ij = w_k^c / (h w)`` at every
    position, so ``alpha_k^c = w_k^c / (h w)`` and the signed Grad-CAM map is
    the CAM map divided by ``h w``.

    Parameters
    ----------
    model : minicam.Sequential
        A GAP -> Linear network.
    x : ndarray, shape (N, C, H, W)
    layer : str, optional
        Default: the last 4-D output.

    Returns
    -------
    error : float
        Max absolute difference over N images x M classes x h x w positions.
    scale : float
        Max ``|CAM / (h w)|`` over the same, to read the error against.
    map_shape : (int, int)
        ``(h, w)``.
    """
    num_classes = model.forward(x).shape[1]
    error = scale = 0.0
    for c in range(num_classes):
        signed = grad_cam(model, x, c, layer=layer, relu=False)  # (N, h, w)
        reference = cam(model, x, c, layer=layer) / (signed.shape[1] * signed.shape[2])
        error = max(error, float(np.abs(signed - reference).max()))
        scale = max(scale, float(np.abs(reference).max()))
    return error, scale, signed.shape[1:]


def peak_object(cam_up, masks, boxes):
    """Which object the maximum of an image-sized map falls on.

    Parameters
    ----------
    cam_up : ndarray, shape (H, W)
        A map upsampled to the image size.
    masks : ndarray of bool, shape (K, H, W)
    boxes : ndarray, shape (K, 4)
        ``(x0, y0, x1, y1)``, x1/y1 exclusive.

    Returns
    -------
    k : int or None
        Index of the object hit (mask first, then box), None for neither or
        for a flat map (no peak).
    where : {"mask", "box", "neither", "flat"}
    peak : (int, int)
        ``(row, col)`` of the first maximum in row-major order.
    """
    row, col = np.unravel_index(int(np.argmax(cam_up)), cam_up.shape)
    if cam_up.max() == cam_up.min():
        return None, "flat", (int(row), int(col))
    for k in range(len(masks)):
        if masks[k][row, col]:
            return k, "mask", (int(row), int(col))
    for k, (x0, y0, x1, y1) in enumerate(np.asarray(boxes).tolist()):
        if x0 <= col < x1 and y0 <= row < y1:
            return k, "box", (int(row), int(col))
    return None, "neither", (int(row), int(col))


def pointing_rate(model, scenes, layer=None, interpolation="bilinear"):
    """Share of objects whose class's Grad-CAM peaks inside the object's box.

    For every scene ``i`` and object ``k``, Grad-CAM for class
    ``labels[i, k]`` is upsampled to the image size; a hit is its maximum
    inside ``boxes[i, k]`` (the pointing game of Zhang et al. 2016, with the
    box as the target). A flat map is a miss.

    Parameters
    ----------
    model : minicam.Sequential
    scenes : Dataset with ``labels`` (n, K), ``boxes`` (n, K, 4), ``masks`` (n, K, H, W)

    Returns
    -------
    dict
        ``"box"``: share of hits in the box; ``"mask"``: share in the mask;
        ``"objects"``: number of objects.
    """
    n, K = scenes.labels.shape
    H, W = scenes.images.shape[2:]
    in_box = in_mask = 0
    for k in range(K):
        maps = upsample(grad_cam(model, scenes.images, scenes.labels[:, k], layer=layer), (H, W), interpolation=interpolation)
        for i in range(n):
            flat = maps[i].max() == maps[i].min()
            row, col = np.unravel_index(int(np.argmax(maps[i])), (H, W))
            x0, y0, x1, y1 = scenes.boxes[i, k]
            in_box += (not flat) and x0 <= col < x1 and y0 <= row < y1
            in_mask += (not flat) and bool(scenes.masks[i, k, row, col])
    total = n * K
    return {"box": in_box / total, "mask": in_mask / total, "objects": total}
