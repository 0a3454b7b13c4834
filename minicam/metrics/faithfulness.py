"""Does the map follow the model? Rank correlation with occlusion (Grad-CAM Sec. 5.3), deletion/insertion
(Petsiuk et al. 2018, RISE), Average Drop and Increase in Confidence (Grad-CAM++ Sec. 5.2)."""

import numbers

import numpy as np

from .._validate import check_float_array, check_int
from ..explain._core import check_input, resolve_class_idx, untouched
from ..explain.perturbation import occlusion
from ..explain.postprocess import normalize
from ..losses import softmax
from .maps import check_maps, explain_maps

__all__ = ["rank_correlation", "faithfulness", "deletion_insertion", "average_drop", "increase_in_confidence"]


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
    check_maps(reference, "reference")
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
            p = softmax(model.forward(x[s : s + batch_size], cache=False))
            out[s : s + batch_size] = p[np.arange(p.shape[0]), class_idx[s : s + batch_size]]
    return out


def _check_x_maps(model, x, maps, class_idx):
    shapes = check_input(model, x, image=True)
    check_maps(maps)
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
