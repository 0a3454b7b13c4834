"""Where a map points: the 15% box (Zhou et al. 2016), IoU and localization accuracy, the pointing game
(Zhang et al. 2016), energy in the mask (Score-CAM), class discrimination on two-object scenes."""


import numpy as np

from .._validate import check_float, check_float_array
from ..explain.cams import grad_cam
from ..explain.postprocess import upsample
from .faithfulness import rank_correlation
from .maps import check_box, check_fraction, check_maps, check_masks, explain_maps

__all__ = ["peak_object", "pointing_rate", "label_components", "box_from_map", "iou", "localization", "pointing_game", "energy_in_mask", "class_discrimination"]


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
    threshold = check_fraction(threshold, "threshold")
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
    ax0, ay0, ax1, ay1 = check_box(box_a, None, None, "box_a")
    bx0, by0, bx1, by1 = check_box(box_b, None, None, "box_b")
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
    check_maps(maps)
    threshold = check_fraction(threshold, "threshold")
    iou_threshold = check_fraction(iou_threshold, "iou_threshold")
    boxes = np.asarray(boxes)
    if boxes.shape != (maps.shape[0], 4):
        raise ValueError(f"boxes must have shape (N, 4) = {(maps.shape[0], 4)} to match maps {maps.shape}, "
                         f"got {boxes.shape}")
    H, W = maps.shape[1:]
    true = [check_box(b, H, W, f"boxes[{i}]") for i, b in enumerate(boxes)]
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
    check_maps(maps)
    check_masks(masks, maps)
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
    check_maps(maps)
    check_masks(masks, maps)
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
