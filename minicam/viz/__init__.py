"""Figures: a map over its image, signed gradients, the explanation grid.

Matplotlib is imported inside the functions, so ``import minicam`` needs only
NumPy. Every function draws into the Axes it is given (``ax=...``) or into a
new :class:`matplotlib.figure.Figure` made without ``pyplot``: nothing is shown,
no global figure is left open, any backend (Agg included) works. Save with
``fig.savefig("out.png")`` or ``viz.save(fig, "out.png", preset="slide")``; in Jupyter a returned Figure displays as the cell's
value.

Four rooms:

- :mod:`minicam.viz.figures`, the primitives: :func:`figure`,
  :func:`draw_image`, :func:`overlay`, :func:`show_signed`, :func:`save`;
- :mod:`minicam.viz.annotations`: boxes, mask outlines, the peak of a map;
- :mod:`minicam.viz.grid`, the explanation grid built on them and on the
  methods of :mod:`minicam.explain`;
- :mod:`minicam.viz.layers`, Grad-CAM of one image and class at every layer
  (:func:`layer_sweep`).

What is done to a map before it is drawn is stated, never hidden, and every
map panel can carry a colour bar in the map's **raw** units:

- a Grad-CAM or CAM map (h, w) smaller than the image is *upsampled* with
  :func:`minicam.upsample` (bilinear by default). An unsigned map (no value
  < 0, e.g. after Grad-CAM's ReLU) is coloured from its minimum to its
  maximum -- the picture of :func:`minicam.normalize` -- in a perceptually
  uniform colormap (``inferno``; ``jet`` still works by name); a signed map
  (CAM, Grad-CAM with ``relu=False``) is coloured on a symmetric scale
  ``-max|m| .. +max|m|`` in a diverging colormap, white at 0, never min-max
  scaled;
- a gradient-like map (saliency, guided backprop, Guided Grad-CAM) is centred
  at 0 with a symmetric scale: ``0.5 + g / (2 s)`` per image, zero mid grey
  (:func:`signed_to_rgb`), with ``s = max|g|`` (nothing clipped) or, with
  ``percentile=q``, the q-th percentile of ``|g|`` and larger values clipped
  (the grid uses the 99th for guided backprop and Guided Grad-CAM). A
  one-channel map is drawn with a diverging colormap from ``-s`` to ``+s``.

Figures are made at 100 dpi with titles of at least 9 pt; :func:`save`
exports one with a size and resolution preset (``"screen"``, ``"slide"``,
``"paper"``).
"""

from .annotations import draw_boxes, draw_mask_outline, mark_peak
from .figures import (
    DEFAULT_CMAP,
    GUIDED_PERCENTILE,
    PRESETS,
    SIGNED_CMAP,
    clean_axes,
    draw_image,
    figure,
    overlay,
    prepare_map,
    save,
    show_signed,
    signed_scale,
    signed_to_rgb,
    to_display_image,
)
from .grid import COLUMNS, explain_batch, explanation_grid, explanation_row
from .layers import layer_sweep, sweep_layers, sweep_maps

__all__ = [
    "COLUMNS",
    "DEFAULT_CMAP",
    "GUIDED_PERCENTILE",
    "PRESETS",
    "SIGNED_CMAP",
    "clean_axes",
    "draw_boxes",
    "draw_image",
    "draw_mask_outline",
    "explain_batch",
    "explanation_grid",
    "explanation_row",
    "figure",
    "layer_sweep",
    "mark_peak",
    "overlay",
    "prepare_map",
    "save",
    "show_signed",
    "signed_scale",
    "signed_to_rgb",
    "sweep_layers",
    "sweep_maps",
    "to_display_image",
]
