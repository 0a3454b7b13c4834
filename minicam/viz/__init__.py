"""Figures: a map over its image, signed gradients, the explanation grid.

Matplotlib is imported inside the functions, so ``import minicam`` needs only
NumPy. Every function draws into the Axes it is given (``ax=...``) or into a
new :class:`matplotlib.figure.Figure` made without ``pyplot``: nothing is shown,
no global figure is left open, any backend (Agg included) works. Save with
``fig.savefig("out.png")``; in Jupyter a returned Figure displays as the cell's
value.

Two rooms:

- :mod:`minicam.viz.figures`, the primitives: :func:`figure`,
  :func:`draw_image`, :func:`overlay`, :func:`show_signed`, boxes, mask
  outlines and peaks;
- :mod:`minicam.viz.grid`, the explanation grid built on them and on the
  methods of :mod:`minicam.explain`.

What is done to a map before it is drawn is stated, never hidden:

- a Grad-CAM or CAM map (h, w) smaller than the image is *upsampled* with
  :func:`minicam.upsample` (bilinear by default) and *min-max normalized* with
  :func:`minicam.normalize`; the colorbar's end ticks give the raw minimum and
  maximum, so the normalization can be undone by eye;
- a signed map (saliency, guided backprop, Guided Grad-CAM) is centred at 0
  with a symmetric scale: ``0.5 + g / (2 max|g|)`` per image, so zero is mid
  grey, and nothing is clipped (:func:`signed_to_rgb`). A one-channel map is
  drawn with a diverging colormap from ``-max|g|`` to ``+max|g|``.
"""

from .figures import (
    clean_axes,
    draw_boxes,
    draw_image,
    draw_mask_outline,
    figure,
    mark_peak,
    overlay,
    prepare_map,
    show_signed,
    signed_to_rgb,
    to_display_image,
)
from .grid import COLUMNS, explain_batch, explanation_grid, explanation_row

__all__ = [
    "COLUMNS",
    "clean_axes",
    "draw_boxes",
    "draw_image",
    "draw_mask_outline",
    "explain_batch",
    "explanation_grid",
    "explanation_row",
    "figure",
    "mark_peak",
    "overlay",
    "prepare_map",
    "show_signed",
    "signed_to_rgb",
    "to_display_image",
]
