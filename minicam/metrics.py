"""Measuring explanations: identities, where a map points, and the papers' metrics.

NumPy only. Each function is short and states the paper it follows. Metrics
take **image-sized** maps (N, H, W): upsample a method's (N, h, w) output
first (:func:`image_maps`); functions that take a ``method`` call it as
``method(model, x, class_idx)`` and do this themselves.

- :func:`identity_error`: Grad-CAM before its ReLU against CAM / (h w) on a
  GAP -> Linear network (Selvaraju et al. 2017, Sec. 3.1).
- :func:`peak_object`, :func:`pointing_rate`: which object a map's maximum
  falls on (the pointing game of Zhang et al. 2016).
- Localization (Zhou et al. 2016; Selvaraju et al. 2017): :func:`box_from_map`
  (the 15% rule, largest 8-connected blob), :func:`iou`, :func:`localization`.
- :func:`pointing_game` (with tolerance), :func:`energy_in_mask` (Score-CAM),
  :func:`class_discrimination` (two-object scenes).
- Faithfulness (Grad-CAM Sec. 5.3): :func:`rank_correlation`, :func:`faithfulness`.
- :func:`deletion_insertion` (RISE), :func:`average_drop`,
  :func:`increase_in_confidence` (Grad-CAM++).
- Sanity checks (Adebayo et al. 2018): :func:`cascading_randomization`.
"""

import copy
import numbers

import numpy as np

from ._validate import as_generator, check_float, check_float_array, check_int
from .explain._core import check_input, resolve_class_idx, untouched
from .explain.cams import cam, grad_cam
from .explain.perturbation import occlusion
from .explain.postprocess import normalize, upsample
from .losses import softmax

__all__ = [
    "IDENTITY_TOL", "identity_error", "peak_object", "pointing_rate",
    "image_maps", "explain_maps", "label_components", "box_from_map", "iou", "localization",
    "pointing_game", "energy_in_mask", "class_discrimination", "rank_correlation", "faithfulness",
    "deletion_insertion", "average_drop", "increase_in_confidence", "randomizable_layers",
    "cascading_randomization",
]

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


# ----------------------------------------------------------------------------
# The papers' metrics (issue 11). Maps are image-sized (N, H, W): resize a
# method's (N, h, w) output first (image_maps does, bilinearly).
# ----------------------------------------------------------------------------


def _check_fraction(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in (0, 1], got {value!r} ({type(value).__name__})")
    if not 0.0 < float(value) <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")
    return float(value)


def _check_maps(maps, name="maps"):
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


def _check_masks(masks, maps, name="masks"):
    if not isinstance(masks, np.ndarray) or masks.dtype != bool:
        got = f"dtype {masks.dtype}" if isinstance(masks, np.ndarray) else type(masks).__name__
        raise TypeError(f"{name} must be a boolean ndarray (N, H, W), got {got}")
    if masks.shape != maps.shape:
        raise ValueError(f"{name} must have the shape of maps {maps.shape}, got {masks.shape}")
    empty = np.flatnonzero(~masks.reshape(len(masks), -1).any(axis=1))
    if empty.size:
        raise ValueError(f"{name}[{int(empty[0])}] is empty: every image needs an object (at least one True pixel)")
    return masks


def _check_box(box, height, width, name="box"):
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


def label_components(mask):
    """Label the 8-connected components of a binary image (MATLAB's ``bwlabel(mask, 8)``).

    Parameters
    ----------
    mask : ndarray of bool, shape (H, W)

    Returns
    -------
    labels : ndarray of int, shape (H, W)
        0 on the background, 1..K on the components, numbered in the order
        their first pixel appears in row-major order (``bwlabel`` scans
        columns first: same components, possibly other numbers).
    count : int
        K.

    Notes
    -----
    Each foreground pixel starts with its own index; every pass replaces it
    by the largest index among itself and its 8 neighbours that are
    foreground, until nothing changes. A component then carries one index
    (its largest), reached after at most its geodesic diameter passes.
    """
    H, W = mask.shape
    ids = np.where(mask, np.arange(1, H * W + 1).reshape(H, W), 0)
    while True:
        p = np.pad(ids, 1)
        neighbours = np.max([p[1 + dr : 1 + dr + H, 1 + dc : 1 + dc + W]
                             for dr in (-1, 0, 1) for dc in (-1, 0, 1)], axis=0)
        new = np.where(mask, neighbours, 0)
        if np.array_equal(new, ids):
            break
        ids = new
    values, first = np.unique(ids.ravel(), return_index=True)
    values, first = values[values > 0], first[values > 0]
    order = values[np.argsort(first)]
    relabel = np.zeros(H * W + 1, dtype=np.int64)
    relabel[order] = np.arange(1, len(order) + 1)
    return relabel[ids], len(order)


def box_from_map(m, threshold=0.15):
    """Bounding box of the largest 8-connected blob of ``m >= threshold * max(m)``.

    The weakly supervised localization of Zhou et al. 2016 (CAM, Sec. 4.1: 20% of
    the maximum) as the Grad-CAM paper uses it (Selvaraju et al. 2017, Sec. 4.1:
    "binarize ... with a threshold of 15% of the max intensity ... draw a
    bounding box around the single largest segment").

    Parameters
    ----------
    m : ndarray, shape (H, W)
        One image-sized map.
    threshold : float in (0, 1]
        Share of the map's maximum.

    Returns
    -------
    (x0, y0, x1, y1) or None
        Ints, x1/y1 exclusive (the datasets' convention). A map whose maximum
        is <= 0 (all zero, e.g. a Grad-CAM with nothing positive, or all
        negative) has no evidence anywhere: None. A flat positive map keeps
        every pixel: the whole image. Ties between equally large components go
        to the one met first in row-major order.
    """
    check_float_array(m, "m", ndim=2)
    threshold = _check_fraction(threshold, "threshold")
    top = m.max()
    if top <= 0:
        return None
    labels, _ = label_components(m >= threshold * top)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    rows, cols = np.nonzero(labels == int(np.argmax(sizes)))
    return int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1


def iou(box_a, box_b):
    """Intersection over union of two boxes ``(x0, y0, x1, y1)``, x1/y1 exclusive.

    ``None`` (no box, from :func:`box_from_map`) overlaps nothing: IoU 0.
    """
    if box_a is None or box_b is None:
        return 0.0
    ax0, ay0, ax1, ay1 = _check_box(box_a, None, None, "box_a")
    bx0, by0, bx1, by1 = _check_box(box_b, None, None, "box_b")
    inter = max(0, min(ax1, bx1) - max(ax0, bx0)) * max(0, min(ay1, by1) - max(ay0, by0))
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    return inter / union


def localization(maps, boxes, threshold=0.15, iou_threshold=0.5):
    """Localization accuracy: the share of images whose map's box overlaps the true box.

    Zhou et al. 2016 (Sec. 4.1) and Selvaraju et al. 2017 (Sec. 4.1, Table 1)
    report its complement, the localization error, with the box of
    :func:`box_from_map` and IoU >= 0.5 (the ILSVRC criterion; the papers
    also require the right class among the top 1 or 5, which is left to the
    caller: pass the maps of the class you want scored).

    Parameters
    ----------
    maps : ndarray, shape (N, H, W)
        Image-sized maps (upsample first: :func:`image_maps`).
    boxes : ndarray of int, shape (N, 4)
        True boxes ``(x0, y0, x1, y1)``, x1/y1 exclusive, inside the image.
    threshold : float in (0, 1]
        Of :func:`box_from_map`.
    iou_threshold : float in (0, 1]

    Returns
    -------
    ious : ndarray, shape (N,)
    accuracy : float
        ``mean(ious >= iou_threshold)``; 1 - accuracy is the localization error.
    """
    _check_maps(maps)
    threshold = _check_fraction(threshold, "threshold")
    iou_threshold = _check_fraction(iou_threshold, "iou_threshold")
    boxes = np.asarray(boxes)
    if boxes.shape != (maps.shape[0], 4):
        raise ValueError(f"boxes must have shape (N, 4) = {(maps.shape[0], 4)} to match maps {maps.shape}, "
                         f"got {boxes.shape}")
    H, W = maps.shape[1:]
    true = [_check_box(b, H, W, f"boxes[{i}]") for i, b in enumerate(boxes)]
    ious = np.array([iou(box_from_map(m, threshold), b) for m, b in zip(maps, true)])
    return ious, float(np.mean(ious >= iou_threshold))


# -- pointing game (Zhang et al. 2016) and its energy variant (Score-CAM) ---------


def pointing_game(maps, masks, tolerance=0):
    """Pointing game (Zhang et al. 2016, "Top-down Neural Attention by Excitation Backprop", Sec. 5.1).

    A hit is a map whose maximum lies on the object, or within ``tolerance``
    pixels of it (Euclidean distance to the nearest object pixel). The paper
    uses 15 px on images about 224 px wide: at H px that is ``15 * H / 224``
    (2.1 px at 32). Pass the maps of the **ground-truth** class.

    Parameters
    ----------
    maps : ndarray, shape (N, H, W)
        Image-sized maps.
    masks : ndarray of bool, shape (N, H, W)
        The object's pixels; none may be empty.
    tolerance : float >= 0

    Returns
    -------
    hits : ndarray of bool, shape (N,)
        The peak is the first maximum in row-major order; a flat map (no
        peak) is a miss.
    rate : float
    """
    _check_maps(maps)
    _check_masks(masks, maps)
    tolerance = check_float(tolerance, "tolerance", low=0.0)
    n, H, W = maps.shape
    flat = maps.reshape(n, -1)
    rows, cols = np.unravel_index(flat.argmax(axis=1), (H, W))
    hits = np.zeros(n, dtype=bool)
    for i in range(n):
        if flat[i].max() == flat[i].min():
            continue
        r, c = np.nonzero(masks[i])
        hits[i] = ((r - rows[i]) ** 2 + (c - cols[i]) ** 2).min() <= tolerance**2
    return hits, float(hits.mean())


def energy_in_mask(maps, masks):
    """Share of each map's positive mass inside the object (Score-CAM's energy-based pointing game).

    Wang et al. 2020 (Score-CAM, Sec. 5.2): ``sum(L+ * mask) / sum(L+)`` with
    ``L+ = max(L, 0)``; they use the box, here any boolean region.

    Parameters
    ----------
    maps : ndarray, shape (N, H, W)
    masks : ndarray of bool, shape (N, H, W)

    Returns
    -------
    energy : ndarray, shape (N,)
        In [0, 1]; 0 for a map with no positive value.
    mean : float
    """
    _check_maps(maps)
    _check_masks(masks, maps)
    pos = np.maximum(maps, 0)
    total = pos.sum(axis=(1, 2))
    inside = (pos * masks).sum(axis=(1, 2))
    energy = np.divide(inside, total, out=np.zeros_like(total), where=total > 0)
    return energy, float(energy.mean())


def _check_scenes(scenes):
    for attr in ("images", "labels", "boxes", "masks"):
        if not hasattr(scenes, attr):
            raise TypeError(f"scenes must be a Dataset with images, labels, boxes and masks "
                            f"(minicam.datasets.scenes), got {type(scenes).__name__} without {attr!r}")
    n = scenes.images.shape[0]
    K = scenes.labels.shape[1] if scenes.labels.ndim == 2 else 0
    H, W = scenes.images.shape[2:]
    if n < 1 or K < 2 or scenes.boxes.shape != (n, K, 4) or scenes.masks.shape != (n, K, H, W):
        raise ValueError(f"scenes must hold n >= 1 images with K >= 2 objects each: labels (n, K), boxes (n, K, 4), "
                         f"masks (n, K, H, W); got labels {scenes.labels.shape}, boxes {scenes.boxes.shape}, "
                         f"masks {scenes.masks.shape} for images {scenes.images.shape}")
    return n, K, H, W


def class_discrimination(model, method, scenes, reduce="max-abs"):
    """On multi-object scenes, does the map of each object's class point at *that* object?

    Grad-CAM's claim (Selvaraju et al. 2017, Sec. 3, Fig. 1: "cat" vs "dog")
    that guided backprop and deconvnet lack: for every scene ``i`` and object
    ``k``, explain class ``labels[i, k]``; a hit is the map's peak inside
    ``boxes[i, k]``, a confusion its peak inside another object's box.

    Parameters
    ----------
    model : Sequential
    method : callable
        ``method(model, x, class_idx)`` returning (N, h, w) or (N, C, H, W).
    scenes : Dataset
        ``images`` (n, C, H, W), ``labels`` (n, K), ``boxes`` (n, K, 4),
        ``masks`` (n, K, H, W), e.g. :func:`minicam.datasets.scenes`.
    reduce : {"max-abs", "sum"}
        For input-space maps, see :func:`image_maps`.

    Returns
    -------
    dict
        ``"own"``: share of (scene, object) pairs whose peak is on the
        object's box (a flat map: on neither); ``"other"``: share on another
        object's box; ``"energy_own"``: mean over pairs of the positive mass
        on the object's mask divided by the mass on all K masks (0.5 for a
        class-blind map on two objects of equal size); ``"class_correlation"``:
        mean Spearman rho between the maps of two classes of the same scene
        (1 for a class-blind method; NaN pairs, from flat maps, skipped);
        ``"objects"``: n * K.
    """
    n, K, H, W = _check_scenes(scenes)
    own = other = 0
    energy, per_class = [], []
    for k in range(K):
        maps = explain_maps(model, method, scenes.images, scenes.labels[:, k], reduce=reduce)
        per_class.append(maps)
        pos = np.maximum(maps, 0)
        mass = (pos[:, None] * scenes.masks).sum(axis=(2, 3))  # (n, K)
        total = mass.sum(axis=1)
        energy.append(np.divide(mass[:, k], total, out=np.zeros_like(total), where=total > 0))
        flat = maps.reshape(n, -1)
        rows, cols = np.unravel_index(flat.argmax(axis=1), (H, W))
        for i in range(n):
            if flat[i].max() == flat[i].min():
                continue
            for j in range(K):
                x0, y0, x1, y1 = scenes.boxes[i, j]
                if x0 <= cols[i] < x1 and y0 <= rows[i] < y1:
                    own += j == k
                    other += j != k
                    break
    rho = [rank_correlation(per_class[j][i], per_class[k][i]) for j in range(K) for k in range(j + 1, K) for i in range(n)]
    total = n * K
    return {"own": own / total, "other": other / total, "energy_own": float(np.mean(energy)),
            "class_correlation": float(np.nanmean(rho)) if np.isfinite(rho).any() else float("nan"), "objects": total}


# -- faithfulness: agreement with occlusion (Grad-CAM Sec. 5.3) ---------------------


def _average_ranks(v):
    order = np.argsort(v, kind="stable")
    sv = v[order]
    new = np.r_[True, sv[1:] != sv[:-1]]
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], len(v)]
    ranks = np.empty(len(v))
    ranks[order] = ((starts + ends + 1) / 2.0)[np.cumsum(new) - 1]  # 1-based mean rank of each tie group
    return ranks


def rank_correlation(a, b):
    """Spearman's rank correlation, with average ranks for ties.

    Parameters
    ----------
    a, b : ndarray, same shape, at least 2 elements
        Compared elementwise (e.g. two (H, W) maps).

    Returns
    -------
    float
        The Pearson correlation of the ranks, in [-1, 1]; NaN when either
        input is constant (its ranks have no spread: undefined, as in SciPy).
    """
    check_float_array(a, "a")
    check_float_array(b, "b")
    if a.shape != b.shape or a.size < 2:
        raise ValueError(f"a and b must have the same shape with at least 2 elements, got {a.shape} and {b.shape}")
    ra, rb = _average_ranks(a.ravel()), _average_ranks(b.ravel())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


def faithfulness(model, method, x, class_idx, reference=None, window=4, stride=2, reduce="max-abs"):
    """Rank correlation between a method's map and the occlusion map of the same image and class.

    Selvaraju et al. 2017, Sec. 5.3 ("Faithfulness vs. interpretability"):
    a map is faithful to the model when it ranks the pixels as occluding
    them does (Zeiler & Fergus 2014): they report Spearman's rho over 2510
    validation images.

    Parameters
    ----------
    model : Sequential
    method : callable
        ``method(model, x, class_idx)``.
    x : ndarray, shape (N, C, H, W)
    class_idx : int or sequence of N ints
    reference : ndarray, shape (N, H, W), optional
        Precomputed occlusion maps (share them between methods); default
        ``occlusion(model, x, class_idx, window=window, stride=stride)``.
    window, stride : int
        Of the occlusion, when ``reference`` is None.
    reduce : {"max-abs", "sum"}
        For input-space maps, see :func:`image_maps`.

    Returns
    -------
    rho : ndarray, shape (N,)
        Per image, at the image's resolution (the method's map upsampled
        bilinearly); NaN for a flat map.
    mean : float
        Mean over the images with a defined rho (NaN if none).
    """
    if reference is None:
        reference = occlusion(model, x, class_idx, window=window, stride=stride)
    _check_maps(reference, "reference")
    if reference.shape != (x.shape[0],) + x.shape[2:]:
        raise ValueError(f"reference must have shape (N, H, W) = {(x.shape[0],) + x.shape[2:]} for x "
                         f"{x.shape}, got {reference.shape}")
    maps = explain_maps(model, method, x, class_idx, reduce=reduce)
    rho = np.array([rank_correlation(m, r) for m, r in zip(maps, reference)])
    return rho, (float(np.nanmean(rho)) if np.isfinite(rho).any() else float("nan"))


# -- deletion / insertion (RISE) and Average Drop (Grad-CAM++) ----------------------


def _class_probability(model, x, class_idx, batch_size=256):
    """Softmax probability of ``class_idx[n]`` for every image, batch by batch, the model left as found."""
    out = np.empty(x.shape[0])
    with untouched(model):
        for s in range(0, x.shape[0], batch_size):
            p = softmax(model.forward(x[s : s + batch_size]))
            out[s : s + batch_size] = p[np.arange(p.shape[0]), class_idx[s : s + batch_size]]
    return out


def _check_x_maps(model, x, maps, class_idx):
    shapes = check_input(model, x, image=True)
    _check_maps(maps)
    if maps.shape != (x.shape[0],) + x.shape[2:]:
        raise ValueError(f"maps must have shape (N, H, W) = {(x.shape[0],) + x.shape[2:]} for x {x.shape}, "
                         f"got {maps.shape}")
    if class_idx is None:
        raise ValueError("class_idx must name the explained class(es), got None")
    return resolve_class_idx(class_idx, np.zeros(shapes[-1][1]))  # checks ints in [0, M), one per image


def deletion_insertion(model, x, maps, class_idx, steps=16, baseline=0.0, batch_size=256):
    """Deletion and insertion curves and their areas (Petsiuk et al. 2018, RISE, Sec. 4.2).

    Pixels are taken in decreasing order of the map. **Deletion** replaces
    them, a step at a time, by ``baseline``: the class probability should
    fall fast (low area = good). **Insertion** starts from the baseline and
    puts them back: it should rise fast (high area = good).

    Parameters
    ----------
    model : Sequential
    x : ndarray, shape (N, C, H, W)
    maps : ndarray, shape (N, H, W)
        Image-sized maps; ties are taken in row-major order (a flat map
        deletes the image from the top row down).
    class_idx : int or sequence of N ints
    steps : int >= 1
        Number of steps; step s has removed ``round(s H W / steps)`` pixels.
    baseline : float or ndarray broadcastable to x
        What a removed pixel becomes (all channels). RISE deletes to 0 and
        inserts onto a blurred copy of the image: pass that copy here.
    batch_size : int
        Images per forward pass: N images cost ``2 (steps + 1)`` image
        forwards, in ``2 (steps + 1) N / batch_size`` passes.

    Returns
    -------
    dict
        ``"fractions"`` (steps + 1,): share of pixels removed/inserted;
        ``"deletion"``, ``"insertion"`` (N, steps + 1): softmax probability of
        the class; ``"deletion_auc"``, ``"insertion_auc"`` (N,): trapezoidal
        areas over ``fractions`` in [0, 1].
    """
    idx = _check_x_maps(model, x, maps, class_idx)
    steps = check_int(steps, "steps", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    n, C, H, W = x.shape
    if isinstance(baseline, numbers.Real) and not isinstance(baseline, bool):
        canvas = np.full(x.shape, float(baseline), dtype=x.dtype)
    else:
        check_float_array(baseline, "baseline")
        try:
            canvas = np.broadcast_to(baseline, x.shape).astype(x.dtype)
        except ValueError:
            raise ValueError(f"baseline must be a number or broadcast to x's shape {x.shape}, "
                             f"got shape {baseline.shape}") from None
    order = np.argsort(-maps.reshape(n, -1), axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(H * W)[None].repeat(n, axis=0), axis=1)
    rank = rank.reshape(n, 1, H, W)  # position of each pixel in the order
    counts = np.round(np.linspace(0, H * W, steps + 1)).astype(int)
    deleted = np.stack([np.where(rank < c, canvas, x) for c in counts], axis=1)   # (N, S+1, C, H, W)
    inserted = np.stack([np.where(rank < c, x, canvas) for c in counts], axis=1)
    both = np.concatenate([deleted, inserted], axis=1).reshape(-1, C, H, W)
    prob = _class_probability(model, both, np.repeat(idx, 2 * (steps + 1)), batch_size).reshape(n, 2, steps + 1)
    fractions = counts / (H * W)
    dx = np.diff(fractions)

    def auc(curve):
        return ((curve[:, 1:] + curve[:, :-1]) / 2 * dx).sum(axis=1)

    return {"fractions": fractions, "deletion": prob[:, 0], "insertion": prob[:, 1],
            "deletion_auc": auc(prob[:, 0]), "insertion_auc": auc(prob[:, 1])}


def _masked_confidence(model, x, maps, class_idx):
    # Grad-CAM++ Sec. 5.2: the image "masked" by the explanation map, normalised to [0, 1]
    idx = _check_x_maps(model, x, maps, class_idx)
    masked = x * normalize(maps)[:, None].astype(x.dtype)
    return _class_probability(model, x, idx), _class_probability(model, masked, idx)


def average_drop(model, x, maps, class_idx):
    """Average Drop % (Chattopadhay et al. 2018, Grad-CAM++, Sec. 5.2).

    .. math:: \\text{Average Drop} = \\frac{100}{N} \\sum_i \\frac{\\max(0, Y^c_i - O^c_i)}{Y^c_i}

    ``Y^c_i`` is the model's softmax probability of class c on image i and
    ``O^c_i`` on the image multiplied pixelwise by its map, min-max
    normalised to [0, 1] (:func:`normalize`; a flat map becomes 0 and blanks
    the image). Lower is better; note an all-ones map would score 0.

    Parameters
    ----------
    model : Sequential
    x : ndarray, shape (N, C, H, W)
    maps : ndarray, shape (N, H, W)
        Image-sized maps.
    class_idx : int or sequence of N ints

    Returns
    -------
    drops : ndarray, shape (N,)
        ``max(0, Y - O) / Y``, in [0, 1].
    percent : float
    """
    y, o = _masked_confidence(model, x, maps, class_idx)
    drops = np.maximum(y - o, 0) / y
    return drops, 100.0 * float(drops.mean())


def increase_in_confidence(model, x, maps, class_idx):
    """"% Increase in Confidence" (Chattopadhay et al. 2018, Grad-CAM++, Sec. 5.2).

    .. math:: \\frac{100}{N} \\sum_i \\mathbb{1}[Y^c_i < O^c_i]

    with ``Y``, ``O`` as in :func:`average_drop`. Higher is better.

    Returns
    -------
    increased : ndarray of bool, shape (N,)
    percent : float
    """
    y, o = _masked_confidence(model, x, maps, class_idx)
    increased = y < o
    return increased, 100.0 * float(increased.mean())


# -- sanity checks (Adebayo et al. 2018) ----------------------------------------------


def randomizable_layers(model):
    """Names of the layers with a weight ``params["W"]`` (Conv2d, Linear), from the top down."""
    return [name for name, layer in reversed(model.items()) if "W" in layer.params]


def cascading_randomization(model, method, x, class_idx, rng, layers=None, reduce="sum", return_maps=False):
    """Cascading model-parameter randomization (Adebayo et al. 2018, "Sanity Checks for Saliency Maps", Sec. 3.1).

    On a copy of the model (``model`` is untouched), the weight layers are
    re-initialised one after the other from the top (the logits) down,
    cumulatively; after each, the map of the same images and classes is
    compared with the trained model's by Spearman's rank correlation, of the
    maps and of their absolute values (the paper reports both). A method
    that explains the model should decorrelate as the layers it reads are
    randomised; a map that stays the same does not depend on what the
    model learned.

    Parameters
    ----------
    model : Sequential
    method : callable
        ``method(model, x, class_idx)``.
    x : ndarray, shape (N, C, H, W)
    class_idx : int, sequence of N ints, or None
        Fixed before any randomisation (None: the *trained* model's
        predictions), so every stage explains the same classes.
    rng : int or numpy.random.Generator
        Source of the new weights.
    layers : list of str, optional
        Randomised in this order; default :func:`randomizable_layers`
        (every Conv2d and Linear, top down). Each gets He-normal weights
        (the layers' own initialiser) and zero biases; BatchNorm keeps its
        trained scale, shift and running statistics.
    reduce : {"sum", "max-abs"}
        For input-space maps (N, C, H, W): the signed channel sum by default,
        so that "without absolute values" keeps the sign.
    return_maps : bool
        Also return the maps of every stage.

    Returns
    -------
    dict
        ``"layers"``: the names, in order; ``"spearman"``, ``"spearman_abs"``
        (L,): mean over images of rho(trained, randomised up to that layer),
        signed and absolute; ``"per_image"``, ``"per_image_abs"`` (L, N);
        ``"flat"`` (L,): share of randomised maps that are constant (rho is
        undefined there and counted as 0: a constant map keeps no ranking);
        ``"maps"`` (L + 1, N, H, W) with ``return_maps``: trained first.
    """
    check_input(model, x, image=True)
    gen = as_generator(rng)
    with untouched(model):
        idx = resolve_class_idx(class_idx, model.forward(x))
    if layers is None:
        layers = randomizable_layers(model)
    else:
        bad = [name for name in layers if name not in model or "W" not in model[name].params]
        if bad or not layers:
            raise ValueError(f"layers must name layers with weights, e.g. {randomizable_layers(model)}, got {layers!r}")
    work = copy.deepcopy(model)
    trained = explain_maps(work, method, x, idx, reduce=reduce)
    stages, rho, rho_abs, flat = [trained], [], [], []

    def rhos(a, b):
        r = np.array([rank_correlation(u, v) for u, v in zip(a, b)])
        return np.nan_to_num(r, nan=0.0)

    for name in layers:
        layer = work[name]
        W = layer.params["W"]
        fan_in = int(np.prod(W.shape[1:]))
        layer.params["W"] = (gen.standard_normal(W.shape) * np.sqrt(2.0 / fan_in)).astype(W.dtype)
        if "b" in layer.params:
            layer.params["b"] = np.zeros_like(layer.params["b"])
        m = explain_maps(work, method, x, idx, reduce=reduce)
        stages.append(m)
        rho.append(rhos(trained, m))
        rho_abs.append(rhos(np.abs(trained), np.abs(m)))
        flat.append(float(np.mean(m.reshape(len(m), -1).std(axis=1) == 0)))
    result = {"layers": list(layers), "spearman": np.mean(rho, axis=1), "spearman_abs": np.mean(rho_abs, axis=1),
              "per_image": np.array(rho), "per_image_abs": np.array(rho_abs), "flat": np.array(flat)}
    if return_maps:
        result["maps"] = np.stack(stages)
    return result
