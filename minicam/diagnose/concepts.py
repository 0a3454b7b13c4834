"""Textual explanations: channels named by what they respond to, and a sentence from Grad-CAM's weights.

Selvaraju et al. 2017, Sec. 7 ("Textual explanations with Grad-CAM") name
the last convolutional layer's neurons with Network Dissection (Bau et al.
2017) and explain a decision by the most important neurons and their names.
minicam's data carries its own ground truth (each object's class and mask),
so the dissection needs no annotated dataset:

1. :func:`channel_concepts`: for each channel ``k`` of ``layer``, threshold
   its activation at the ``quantile`` of its values over a dataset (Bau et al.
   use the top 0.5%; the maps here are 8x8, so the default is the top 10%),
   upsample the thresholded region bilinearly to the image size, and score
   its IoU with every concept's pixels: the object masks of each class, and
   the ``background`` (every pixel off the object). The channel's name is
   the concept with the highest IoU.
2. :func:`explain_text`: rank the channels by their Grad-CAM contribution
   ``alpha_k * mean_ij(A^k_ij)`` to the explained class (these contributions
   sum to the mean of the signed Grad-CAM map) and write the top ``k`` for and
   against it, with their names and IoUs.
"""

import functools
import numbers
from dataclasses import dataclass

import numpy as np

from .._validate import check_float, check_int
from ..datasets.base import Dataset
from ..datasets.catalog import load_dataset
from ..explain._core import check_input, layer_gradients, resolve_layer, untouched
from ..explain.cams import grad_cam_weights
from ..explain.postprocess import upsample
from ..zoo import PRETRAINED, pretrained

__all__ = ["ConceptTable", "channel_concepts", "channel_contributions", "explain_text", "pretrained_concepts"]

BACKGROUND = "background"


@dataclass(frozen=True, eq=False)
class ConceptTable:
    """What each channel of a layer responds to.

    Attributes
    ----------
    layer : str
        The layer whose output channels were dissected.
    concepts : list of str
        Concept names (the classes, then ``"background"``).
    iou : ndarray, shape (K, len(concepts))
        IoU of each channel's thresholded map with each concept, over the dataset.
    """

    layer: str
    concepts: list
    iou: np.ndarray

    @property
    def names(self):
        """The best concept of each channel, ``list`` of K str."""
        return [self.concepts[j] for j in self.iou.argmax(axis=1)]

    @property
    def best_iou(self):
        """ndarray, shape (K,): the IoU of each channel's name."""
        return self.iou.max(axis=1)

    def __len__(self):
        return self.iou.shape[0]


def channel_concepts(model, ds, layer=None, quantile=0.9, batch_size=100):
    """Name each channel of ``layer`` by the concept its strongest activations overlap most (IoU).

    Parameters
    ----------
    model : Sequential
        Left untouched.
    ds : Dataset
        Single-object images with ``labels`` (n,) and ``masks`` (n, H, W).
    layer : str, optional
        Default: the last layer with a 4-D output.
    quantile : float in (0, 1)
        Each channel's threshold ``T_k`` is this quantile of its activations
        over all images and positions (at the layer's resolution).
    batch_size : int

    Returns
    -------
    ConceptTable

    Notes
    -----
    ``IoU_{k,c} = sum_n |M_k^n and L_c^n| / sum_n |M_k^n or L_c^n|`` with
    ``M_k^n = upsample(A_k^n) > T_k`` (bilinear) and ``L_c^n`` the object's
    mask when image ``n`` is of class ``c`` (empty otherwise), or the pixels
    off the object for ``"background"`` (Bau et al. 2017, Sec. 2.2).
    """
    if not isinstance(ds, Dataset) or ds.labels.ndim != 1:
        raise TypeError(f"ds must be a single-object minicam Dataset (labels (n,), masks (n, H, W)), got {ds!r}")
    quantile = check_float(quantile, "quantile", low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    shapes = check_input(model, ds.images[:1], image=True)
    layer = resolve_layer(model, shapes, layer)
    with untouched(model):
        A = np.concatenate([_forward_to(model, ds.images[i:i + batch_size], layer)
                            for i in range(0, len(ds), batch_size)])  # (n, K, h, w)
    n, K = A.shape[:2]
    size = ds.images.shape[2:]
    thresholds = np.quantile(A.transpose(1, 0, 2, 3).reshape(K, -1), quantile, axis=1)  # (K,)
    concepts = list(ds.class_names) + [BACKGROUND]
    inter = np.zeros((K, len(concepts)))
    union = np.zeros((K, len(concepts)))
    for i in range(0, n, batch_size):
        up = upsample(A[i:i + batch_size].reshape(-1, *A.shape[2:]), size).reshape(-1, K, *size)
        active = up > thresholds[None, :, None, None]  # (b, K, H, W)
        masks, labels = ds.masks[i:i + batch_size], ds.labels[i:i + batch_size]
        active_px = active.sum(axis=(2, 3))  # (b, K)
        for c in range(len(concepts)):
            region = ~masks if c == len(concepts) - 1 else masks & (labels == c)[:, None, None]  # (b, H, W)
            both = np.einsum("bkhw,bhw->k", active, region, dtype=np.float64)  # bool einsum would be a logical OR
            inter[:, c] += both
            union[:, c] += active_px.sum(axis=0) + region.sum() - both
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return ConceptTable(layer, concepts, iou)


def _forward_to(model, x, layer):
    model.forward(x)
    return model.outputs[layer].copy()


@functools.lru_cache(maxsize=8)
def pretrained_concepts(name, n=200, seed=7):
    """The :class:`ConceptTable` of bundled model ``name`` on ``n`` fresh images of its dataset (cached).

    The images come from the model's dataset with seed ``seed`` (7: neither
    the training stream nor the held-out ``seed=123``); the result is kept in
    memory, so the command line computes it once per process.
    """
    spec = PRETRAINED[name] if isinstance(name, str) and name in PRETRAINED else None
    if spec is None:
        raise ValueError(f"name must be one of the bundled models {sorted(PRETRAINED)}, got {name!r}")
    ds = load_dataset(spec["dataset"], n, seed=seed, **spec["dataset_kwargs"])
    return channel_concepts(pretrained(name), ds)


def channel_contributions(model, x, class_idx=None, layer=None, score="logit"):
    """Each channel's Grad-CAM contribution ``alpha_k * mean_ij(A^k_ij)``, per sample.

    Parameters
    ----------
    model : Sequential
    x : ndarray, shape (N, C, H, W)
    class_idx : int, sequence of N ints, or None
    layer : str, optional
    score : {"logit", "softmax", "log_softmax"}

    Returns
    -------
    ndarray, shape (N, K)
        Summed over ``k``: the mean of the signed Grad-CAM map (``relu=False``),
        which on a GAP -> Linear head is ``(y^c - b^c) / (h w)`` (Grad-CAM Sec. 3.1).
    """
    A, dA = layer_gradients(model, x, class_idx, layer, score)
    return grad_cam_weights(dA) * A.mean(axis=(2, 3))


def _check_table(concepts, K, layer):
    if not isinstance(concepts, ConceptTable):
        raise TypeError(f"concepts must be a ConceptTable from channel_concepts, got {type(concepts).__name__}")
    if len(concepts) != K:
        raise ValueError(f"concepts must name the {K} channels of layer {layer!r}, got a table of {len(concepts)} "
                         f"channels (of layer {concepts.layer!r})")
    return concepts


def explain_text(model, x, class_idx=None, concepts=None, k=3, layer=None, class_names=None):
    """A sentence naming the channels that argue for and against a class, and the table behind it.

    Parameters
    ----------
    model : Sequential
    x : ndarray, shape (1, C, H, W) or (C, H, W)
        One image.
    class_idx : int or None
        The class explained; ``None`` is the predicted class.
    concepts : ConceptTable
        From :func:`channel_concepts` on the same ``layer`` (one row per channel).
    k : int, 1 <= k <= K
        Channels listed on each side.
    layer : str, optional
        Default: ``concepts.layer``.
    class_names : list of str, optional
        Default: the concepts' names minus ``"background"``.

    Returns
    -------
    sentence : str
        E.g. ``"predicted triangle (logit 6.10): for: channel 12 (triangle, IoU 0.41) +0.83, ...;
        against: channel 7 (circle, IoU 0.30) -0.21"``.
    table : list of dict
        One row per listed channel: ``side`` ("for"/"against"), ``channel``,
        ``contribution`` (``alpha_k mean(A^k)``), ``alpha``, ``concept``, ``iou``.
    """
    if not isinstance(concepts, ConceptTable):
        raise TypeError(f"concepts must be a ConceptTable from channel_concepts, got {type(concepts).__name__}")
    if isinstance(x, np.ndarray) and x.ndim == 3:
        x = x[None]
    shapes = check_input(model, x, image=True)
    if x.shape[0] != 1:
        raise ValueError(f"x must be one image, (C, H, W) or (1, C, H, W), got shape {x.shape}")
    layer = resolve_layer(model, shapes, concepts.layer if layer is None else layer)
    K = dict(shapes)[layer][1]
    _check_table(concepts, K, layer)
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"k must be an int, got {k!r}")
    if not 1 <= k <= K:
        raise ValueError(f"k must be in [1, {K}] (the channels of layer {layer!r}), got {k}")
    if class_idx is not None and (isinstance(class_idx, bool) or not isinstance(class_idx, numbers.Integral)):
        raise TypeError(f"class_idx must be an int or None for one image, got {class_idx!r}")
    with untouched(model):
        scores = model.forward(x)[0]
    c = int(scores.argmax()) if class_idx is None else int(class_idx)
    A, dA = layer_gradients(model, x, c, layer)
    alpha = grad_cam_weights(dA)[0]
    contrib = alpha * A[0].mean(axis=(1, 2))  # (K,)
    names = class_names if class_names is not None else [n for n in concepts.concepts if n != BACKGROUND]
    order = np.argsort(-contrib, kind="stable")
    sides = (("for", [j for j in order[:k] if contrib[j] > 0]), ("against", [j for j in order[::-1][:k] if contrib[j] < 0]))
    table = []
    for side, chans in sides:
        for j in chans:
            table.append({"side": side, "channel": int(j), "contribution": float(contrib[j]), "alpha": float(alpha[j]),
                          "concept": concepts.names[j], "iou": float(concepts.best_iou[j])})

    def listing(side):
        rows = [r for r in table if r["side"] == side]
        return ", ".join(f"channel {r['channel']} ({r['concept']}, IoU {r['iou']:.2f}) {r['contribution']:+.3f}"
                         for r in rows) or "none"

    verb = "predicted" if class_idx is None or c == int(scores.argmax()) else "explaining"
    label = names[c] if c < len(names) else str(c)
    sentence = f"{verb} {label} (logit {scores[c]:.2f}): for: {listing('for')}; against: {listing('against')}"
    return sentence, table
