"""Shapes with a spurious cue: a coloured corner mark whose colour follows the class.

The dataset-bias study of Selvaraju et al. 2017 (Sec. 6.3) in miniature: a
model trained where a cue that is *not* the object predicts the label learns
the cue, scores well on data with the same bias and poorly once the cue is
decorrelated, and its Grad-CAM shows where it looks. Here the cue is a small
square in a corner of the image; its colour is ``CUE_COLORS[label]`` with
probability ``bias`` and otherwise drawn uniformly from all four.

=====================  ===========================================================
``bias``               ``P(cue colour = the class's colour)``
=====================  ===========================================================
1.0                    1: the cue alone gives the label
0.0                    1/4: the cue is independent of the label (decorrelated)
b                      ``b + (1 - b) / 4``
=====================  ===========================================================
"""

from dataclasses import dataclass

import numpy as np

from .._validate import check_float, check_int
from .base import Dataset, check_seed
from .synthetic import SHAPE_CLASSES, shapes

__all__ = ["BiasedDataset", "biased_shapes", "CUE_COLORS", "CUE_COLOR_NAMES"]

# One colour per class (circle, square, triangle, cross), far apart in RGB.
CUE_COLORS = np.array([[1.0, 0.1, 0.1], [0.1, 0.85, 0.1], [0.15, 0.3, 1.0], [1.0, 0.9, 0.1]])
CUE_COLOR_NAMES = ("red", "green", "blue", "yellow")


@dataclass(frozen=True, eq=False, repr=False)
class BiasedDataset(Dataset):
    """A :class:`Dataset` of single shapes with a corner cue.

    Extra attributes
    ----------------
    cue_masks : ndarray of bool, shape (n, H, W)
        The cue's pixels (a ``cue_size`` square in a corner); never overlaps the object's box.
    cue_labels : ndarray of int64, shape (n,)
        The class whose colour the cue has (``CUE_COLORS[cue_labels[i]]``).
    bias : float
        The ``bias`` the data was drawn with.
    """

    cue_masks: np.ndarray = None
    cue_labels: np.ndarray = None
    bias: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        n, _, height, width = self.images.shape
        if not isinstance(self.cue_masks, np.ndarray) or self.cue_masks.shape != (n, height, width):
            raise ValueError(f"BiasedDataset.cue_masks must have shape {(n, height, width)}")
        if not isinstance(self.cue_labels, np.ndarray) or self.cue_labels.shape != (n,):
            raise ValueError(f"BiasedDataset.cue_labels must have shape ({n},)")

    def subset(self, idx):
        """A new BiasedDataset with the samples ``idx`` (see :meth:`Dataset.subset`)."""
        base = Dataset.subset(self, idx)
        picked = np.arange(len(self))[idx] if isinstance(idx, slice) else np.asarray(idx)
        if picked.dtype == bool:
            picked = np.flatnonzero(picked)
        return BiasedDataset(base.images, base.labels, base.class_names, base.boxes, base.masks, name=self.name,
                             cue_masks=self.cue_masks[picked], cue_labels=self.cue_labels[picked], bias=self.bias)

    @property
    def cue_agrees(self):
        """ndarray of bool, shape (n,): the cue has the colour of the true class."""
        return self.cue_labels == self.labels


def _corner_boxes(size, cue_size):
    """The four corner squares ``(x0, y0, x1, y1)``: top-left, top-right, bottom-left, bottom-right."""
    far = size - cue_size
    return [(0, 0, cue_size, cue_size), (far, 0, size, cue_size), (0, far, cue_size, size), (far, far, size, size)]


def _apart(a, b, gap):
    """Boxes ``a`` and ``b`` are at least ``gap`` px apart along x or along y."""
    return a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]


def biased_shapes(n, seed=0, *, bias=1.0, cue_size=5, noise=0.04, dtype=np.float64, **shape_kwargs):
    """Single shapes (as :func:`shapes`) plus a corner mark whose colour follows the class with probability ``bias``.

    Parameters
    ----------
    n : int
        Number of images, >= 1.
    seed : int or numpy.random.Generator
        The objects, labels, boxes and masks are those of ``shapes(n, seed)``
        (same seed, same shapes); the cue and the pixel noise are drawn after them.
    bias : float in [0, 1]
        Strength of the spurious correlation: with probability ``bias`` the
        cue has the colour of the class, otherwise a colour drawn uniformly
        from the four (so ``bias=0`` decorrelates it: it agrees 1/4 of the
        time, by chance).
    cue_size : int >= 2
        Side of the square mark in pixels.
    noise : float
        Gaussian pixel noise, added after the cue is painted (as in :func:`shapes`).
    dtype : float64 or float32
    **shape_kwargs
        ``size``, ``object_size``, ``n_distractors`` of :func:`shapes`.

    Returns
    -------
    BiasedDataset
        ``images`` (n, 3, H, W), ``labels``, ``boxes``, ``masks`` as
        :func:`shapes`; ``cue_masks`` (n, H, W) bool, ``cue_labels`` (n,),
        ``bias``.

    Notes
    -----
    The corner is drawn uniformly among those whose square keeps 1 px from
    the object's box (one always exists for the default sizes: an object is
    at most 22 px wide in a 32 px image), so the cue never touches the
    object and the two regions are disjoint.
    """
    bias = check_float(bias, "bias", low=0.0, high=1.0)
    cue_size = check_int(cue_size, "cue_size", minimum=2)
    noise = check_float(noise, "noise", low=0.0, high=1.0)
    rng = check_seed(seed)
    # noise 0 here: shapes draws (and discards) its noise, so the objects match shapes(n, seed)
    clean = shapes(n, rng, noise=0.0, **shape_kwargs)
    size = clean.images.shape[-1]
    if 2 * cue_size >= size:
        raise ValueError(f"cue_size must be less than half the image size {size}, got {cue_size}")
    images = clean.images.copy()
    cue_masks = np.zeros((n, size, size), dtype=bool)
    cue_labels = np.empty(n, dtype=np.int64)
    corners = _corner_boxes(size, cue_size)
    k = len(SHAPE_CLASSES)
    for i in range(n):
        free = [c for c in corners if _apart(c, clean.boxes[i], 1)]
        if not free:
            raise RuntimeError(f"image {i}: no corner leaves room for a {cue_size} px cue; reduce cue_size")
        x0, y0, x1, y1 = free[rng.integers(len(free))]
        follows = rng.random() < bias
        other = rng.integers(k)  # drawn either way: the stream does not depend on bias
        cue_labels[i] = clean.labels[i] if follows else other
        cue_masks[i, y0:y1, x0:x1] = True
        images[i][:, cue_masks[i]] = CUE_COLORS[cue_labels[i]][:, None]
    images = np.clip(images + noise * rng.standard_normal(images.shape), 0.0, 1.0)
    return BiasedDataset(images.astype(dtype, copy=False), clean.labels, list(clean.class_names), clean.boxes,
                         clean.masks, name="biased_shapes", cue_masks=cue_masks, cue_labels=cue_labels, bias=bias)
