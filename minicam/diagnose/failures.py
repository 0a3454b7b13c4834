"""Failure modes: what Grad-CAM shows on the images a model gets wrong (Selvaraju et al. 2017, Sec. 6.1).

For each misclassified image, three maps: Grad-CAM of the **predicted**
class (what made the model say it), of the **true** class (what evidence it
saw for the right answer) and the **counterfactual** of the predicted class
(``ReLU(sum_k -alpha_k A^k)``, what argued against it). The paper reads such
maps by eye and finds that "seemingly unreasonable predictions have
reasonable explanations"; here the question is measured with the ground-truth
masks: does the wrong prediction's map sit on the object (the model looked at
the right thing and named it wrongly) or off it (on clutter or background)?
"""

import numpy as np

from ..datasets.base import Dataset
from ..explain.cams import grad_cam
from ..explain.postprocess import upsample
from ..metrics.localization import energy_in_mask, pointing_game
from ..train import predict

__all__ = ["misclassified", "failure_maps", "failure_summary"]


def _check_dataset(ds):
    if not isinstance(ds, Dataset):
        raise TypeError(f"ds must be a minicam Dataset (images, labels, masks), got {type(ds).__name__}")
    if ds.labels.ndim != 1:
        raise ValueError(f"ds must hold one object per image (labels (n,)), got labels of shape {ds.labels.shape}")
    return ds


def misclassified(model, ds):
    """Indices of the images the model gets wrong, and its predictions on all images.

    Parameters
    ----------
    model : Sequential
    ds : Dataset
        Single-object data: ``images`` (n, C, H, W), ``labels`` (n,).

    Returns
    -------
    wrong : ndarray of int64, shape (n_wrong,)
        Indices with ``pred != labels``, in order.
    pred : ndarray of int64, shape (n,)
    """
    _check_dataset(ds)
    pred = predict(model, ds.images)
    return np.flatnonzero(pred != ds.labels), pred


def failure_maps(model, images, predicted, true, layer=None):
    """Grad-CAM of the predicted class, of the true class, and the predicted class's counterfactual.

    Parameters
    ----------
    model : Sequential
    images : ndarray, shape (N, C, H, W)
    predicted, true : ndarray of int, shape (N,)
    layer : str, optional
        Default: the last layer with a 4-D output.

    Returns
    -------
    dict of ndarray, each shape (N, H, W)
        ``"predicted"``, ``"true"``, ``"counterfactual"``: raw maps (ReLU
        applied, not normalized) upsampled bilinearly to the image size.
    """
    size = images.shape[2:]
    return {
        "predicted": upsample(grad_cam(model, images, predicted, layer=layer), size),
        "true": upsample(grad_cam(model, images, true, layer=layer), size),
        "counterfactual": upsample(grad_cam(model, images, predicted, layer=layer, counterfactual=True), size),
    }


def _where(maps, masks):
    hits, _ = pointing_game(maps, masks)
    energy, _ = energy_in_mask(maps, masks)
    flat = maps.reshape(len(maps), -1)
    blank = flat.max(axis=1) == flat.min(axis=1)
    return hits, energy, blank


def failure_summary(model, ds, layer=None):
    """Where Grad-CAM looks on the wrong predictions, next to the right ones, measured with the masks.

    Parameters
    ----------
    model : Sequential
    ds : Dataset
        Single-object held-out data with masks (e.g. ``shapes(1000, seed=123)``).
    layer : str, optional

    Returns
    -------
    dict
        ``"wrong"`` (indices), ``"pred"`` (n,), ``"maps"`` (see
        :func:`failure_maps`, for the wrong images only) and ``"table"``: one
        dict per group, ``"wrong: predicted class"``, ``"wrong: true class"``,
        ``"wrong: counterfactual"``, ``"right: predicted class"`` (the
        baseline), each with ``n``, ``pointing`` (share of maps whose peak is
        on the object), ``energy`` (mean share of the map's mass on the
        object), ``off_object`` (share whose peak is off it) and ``blank``
        (share of all-zero maps: Grad-CAM's ReLU removed everything).

    Notes
    -----
    The object's mask is the only ground truth; "off the object" is the
    background with its clutter (the dots and strokes of :func:`shapes`).
    Blank maps count as misses in ``pointing`` and have energy 0.
    """
    _check_dataset(ds)
    wrong, pred = misclassified(model, ds)
    right = np.flatnonzero(pred == ds.labels)
    size = ds.images.shape[2:]
    table = []
    maps = {}
    if wrong.size:
        maps = failure_maps(model, ds.images[wrong], pred[wrong], ds.labels[wrong], layer=layer)
        for key, label in (("predicted", "wrong: predicted class"), ("true", "wrong: true class"),
                           ("counterfactual", "wrong: counterfactual")):
            table.append(_row(label, maps[key], ds.masks[wrong]))
    if right.size:
        right_maps = upsample(grad_cam(model, ds.images[right], pred[right], layer=layer), size)
        table.append(_row("right: predicted class", right_maps, ds.masks[right]))
    return {"wrong": wrong, "pred": pred, "maps": maps, "table": table}


def _row(label, maps, masks):
    hits, energy, blank = _where(maps, masks)
    return {"group": label, "n": int(len(maps)), "pointing": float(hits.mean()), "energy": float(energy.mean()),
            "off_object": float((~hits & ~blank).mean()), "blank": float(blank.mean())}
