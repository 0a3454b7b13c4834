"""Datasets with ground truth for localization: where the object *is*.

Three generators, each deterministic in its seed, each returning a
:class:`Dataset` with images, labels, tight bounding boxes and pixel masks,
so that an explanation map can be scored against the truth
(``minicam.metrics``):

- :func:`shapes` -- one filled shape (circle, square, triangle, cross) per
  RGB image, on a smooth coloured background with pixel noise and small
  distractors (dots and short strokes) that belong to no class.
- :func:`scenes` -- two shapes of *different* classes per image, never
  touching, each with its own box and mask: for class discrimination and
  counterfactual explanations.
- :func:`biased_shapes` -- :func:`shapes` plus a coloured corner mark whose
  colour follows the class with probability ``bias`` (the dataset-bias study);
  the mark's pixels are returned too (``cue_masks``).
- :func:`cluttered_digits` -- a real handwritten 8x8 UCI digit, scaled up and
  placed at random on a noisy grayscale canvas among fragments of other
  digits. A fixed 20% of the 1797 handwritten digits never appear in the
  ``"train"`` split.

Conventions
-----------
- ``images`` are ``(n, C, H, W)`` in ``[0, 1]`` (NCHW, like the rest of minicam).
- ``boxes`` are ``(x0, y0, x1, y1)`` in pixels with ``x1``/``y1`` exclusive, so
  ``masks[i, y0:y1, x0:x1]`` is the box. A box is the *tight* box of its mask.
- Shapes are rasterised from their analytic geometry: pixel ``(i, j)`` (row,
  column) has its centre at ``(x, y) = (j + 0.5, i + 0.5)`` and belongs to the
  shape when that centre lies inside it. No anti-aliasing, so the mask is
  exactly the set of pixels painted in the object's colour (before noise).
- No global random state: ``seed`` is an int or a ``numpy.random.Generator``.
  Everything is drawn image by image from one stream, so the first ``k``
  images of ``shapes(n, seed=s)`` are ``shapes(k, seed=s)`` for ``k <= n``.

The default arguments give the distribution the bundled models were trained
on: ``shapes(500, seed=123)`` is fresh held-out data for ``shapes-gap``.
"""

from .base import DISTRACTOR_MARGIN, Dataset
from .biased import CUE_COLOR_NAMES, CUE_COLORS, BiasedDataset, biased_shapes
from .catalog import DATASETS, load_dataset
from .digits import (
    DIGIT_CLASSES,
    DIGIT_MASK_THRESHOLD,
    DIGITS_SPLIT_KEY,
    DIGITS_TEST_FRACTION,
    cluttered_digits,
    digit_split_indices,
    load_uci_digits,
)
from .synthetic import COLOR_MARGIN, SCENE_MIN_GAP, SHAPE_CLASSES, scenes, shapes


__all__ = [
    "Dataset",
    "shapes",
    "scenes",
    "biased_shapes",
    "BiasedDataset",
    "CUE_COLORS",
    "CUE_COLOR_NAMES",
    "cluttered_digits",
    "load_dataset",
    "DATASETS",
    "load_uci_digits",
    "digit_split_indices",
    "SHAPE_CLASSES",
    "DIGIT_CLASSES",
    "SCENE_MIN_GAP",
    "DISTRACTOR_MARGIN",
    "DIGITS_TEST_FRACTION",
    "DIGITS_SPLIT_KEY",
    "DIGIT_MASK_THRESHOLD",
    "COLOR_MARGIN",
]
