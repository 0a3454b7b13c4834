"""Grad-CAM at every layer: resolution against semantics (Selvaraju et al. 2017, Sec. 6 / Fig. 16's layer ablation).

Early layers give sharp maps of edges and colours, whatever the class; the
last one a coarse map of the class's object. :func:`layer_sweep` draws the
same image and class at every feature-map layer, each on its own colour bar
(raw units), and below each its map at the layer's own resolution.
"""

import numpy as np

from ..explain._core import check_input, resolve_class_idx, resolve_layer, untouched
from ..explain.cams import grad_cam
from ..layers import ReLU
from .figures import TITLE_SIZE, clean_axes, draw_image, figure, overlay

__all__ = ["sweep_layers", "sweep_maps", "layer_sweep"]


def sweep_layers(model, input_shape):
    """The ReLU layers whose output is 4-D (``relu1 .. relu5`` in :func:`minicam.zoo.gap_net`), in order.

    Parameters
    ----------
    model : Sequential
    input_shape : tuple
        The input's shape (N, C, H, W).
    """
    shapes = model.output_shapes(tuple(input_shape))
    return [name for name, shape in shapes if len(shape) == 4 and isinstance(model[name], ReLU)]


def sweep_maps(model, x, class_idx=None, layers=None, relu=True):
    """Grad-CAM of the same class at each layer.

    Parameters
    ----------
    model : Sequential
    x : ndarray, shape (N, C, H, W)
    class_idx : int, sequence of N ints, or None
        Fixed once on the clean forward (``None``: the predicted class), so
        every layer explains the same class.
    layers : sequence of str, optional
        Each must output a 4-D map. Default: :func:`sweep_layers`.
    relu : bool

    Returns
    -------
    dict of str -> ndarray, shape (N, h_l, w_l)
        In layer order, each at its layer's resolution.
    """
    shapes = check_input(model, x, image=True)
    layers = sweep_layers(model, x.shape) if layers is None else list(layers)
    if not layers:
        raise ValueError("layers must name at least one layer with a 4-D output, got none")
    layers = [resolve_layer(model, shapes, name) for name in layers]
    with untouched(model):
        idx = resolve_class_idx(class_idx, model.forward(x))
    return {name: grad_cam(model, x, idx, layer=name, relu=relu) for name in layers}


def layer_sweep(model, image, class_idx=None, layers=None, class_names=None, relu=True, mask=None, panel=1.8):
    """One figure: an image and its Grad-CAM at every layer, with colour bars.

    Parameters
    ----------
    model : Sequential
    image : ndarray, shape (C, H, W)
        One image in [0, 1].
    class_idx : int or None
        ``None``: the predicted class.
    layers : sequence of str, optional
        Default: every ReLU with a 4-D output (:func:`sweep_layers`).
    class_names : list of str, optional
        For the title.
    relu : bool
        Grad-CAM's ReLU (``False`` draws signed maps on a diverging scale).
    mask : ndarray of bool, shape (H, W), optional
        The object's pixels, outlined on the image panel.
    panel : float
        Inches per panel.

    Returns
    -------
    matplotlib.figure.Figure
        Top row: the image, then each layer's map upsampled (bilinear) over
        it, titled with the layer and its resolution. Bottom row: each map at
        its own resolution (nearest), so the cells are visible. Every map
        panel has a colour bar in the map's raw units.
    """
    if not isinstance(image, np.ndarray) or image.ndim != 3:
        raise ValueError(f"image must be one image (C, H, W), got "
                         f"{image.shape if isinstance(image, np.ndarray) else type(image).__name__}")
    x = image[None]
    maps = sweep_maps(model, x, class_idx, layers, relu=relu)
    with untouched(model):
        scores = model.forward(x)[0]
    c = int(scores.argmax()) if class_idx is None else int(class_idx)
    label = class_names[c] if class_names is not None else f"class {c}"
    fig, axes = figure(2, len(maps) + 1, panel=panel, extra_height=0.3)
    draw_image(axes[0, 0], image)
    if mask is not None:
        from .annotations import draw_mask_outline

        draw_mask_outline(axes[0, 0], mask)
    axes[0, 0].set_title("input", fontsize=TITLE_SIZE)
    clean_axes(axes[0, 0])
    axes[1, 0].axis("off")
    for j, (name, m) in enumerate(maps.items(), start=1):
        h, w = m.shape[1:]
        overlay(image, m[0], ax=axes[0, j], title=f"{name} ({h}x{w})")
        # its own colour bar: the cells' raw range (the bilinear map above can only shrink it)
        overlay(np.zeros((h, w)), m[0], alpha=1.0, ax=axes[1, j], interpolation="nearest", colorbar=True,
                title=f"{name}, raw cells")
    fig.suptitle(f"Grad-CAM of {label} (logit {scores[c]:.2f}) at each layer", fontsize=TITLE_SIZE + 1)
    return fig
