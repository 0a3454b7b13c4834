"""Figures: a map over its image, signed gradients, the explanation grid.

Matplotlib is imported inside the functions, so ``import minicam`` needs only
NumPy. Every function draws into the Axes it is given (``ax=...``) or into a
new :class:`matplotlib.figure.Figure` made without ``pyplot``: nothing is shown,
no global figure is left open, any backend (Agg included) works. Save with
``fig.savefig("out.png")``; in Jupyter a returned Figure displays as the cell's
value.

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

import numpy as np

from ._validate import check_float, check_float_array, check_int

__all__ = [
    "COLUMNS",
    "to_display_image",
    "prepare_map",
    "signed_to_rgb",
    "overlay",
    "show_signed",
    "draw_boxes",
    "draw_mask_outline",
    "mark_peak",
    "has_gap_linear_head",
    "explain_batch",
    "explanation_row",
    "explanation_grid",
]

# Columns of the explanation grid, in the order of Selvaraju et al. (Fig. 1).
COLUMNS = ("image", "cam", "grad-cam", "guided-backprop", "guided-grad-cam", "counterfactual")

_COLUMN_TITLES = {
    "image": "image",
    "cam": "CAM",
    "grad-cam": "Grad-CAM",
    "guided-backprop": "guided backprop",
    "guided-grad-cam": "Guided Grad-CAM",
    "counterfactual": "counterfactual",
}

# A value range check with room for float rounding in generated images.
_RANGE_TOL = 1e-6

_INTERPOLATIONS = ("bilinear", "nearest")


def _figure(nrows, ncols, panel=2.0, extra_height=0.0):
    """A pyplot-free Figure and its (nrows, ncols) Axes array."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(panel * ncols, panel * nrows + extra_height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _new_ax():
    fig, axes = _figure(1, 1, panel=3.2)
    return fig, axes[0, 0]


def _check_ax(ax):
    if ax is None:
        return _new_ax()
    from matplotlib.axes import Axes

    if not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}")
    return ax.figure, ax


def _clean(ax):
    ax.set_xticks([])
    ax.set_yticks([])


# --------------------------------------------------------------------------
# Arrays to pixels
# --------------------------------------------------------------------------


def to_display_image(image, name="image"):
    """An image in minicam's layout as an array ``imshow`` draws.

    Parameters
    ----------
    image : ndarray, shape (C, H, W) with C in {1, 3}, or (H, W)
        Values in [0, 1] (the range of minicam's datasets and of
        :func:`minicam.io.load_image`).
    name : str
        Argument name for error messages.

    Returns
    -------
    ndarray, shape (H, W, 3) for an RGB image or (H, W) for a grey one
        Clipped to [0, 1] only to remove float rounding (values further than
        1e-6 outside raise).

    Raises
    ------
    TypeError, ValueError
        Not a float array, wrong rank, channel count not 1 or 3, values outside [0, 1].
    """
    check_float_array(image, name, ndim=(2, 3))
    if image.ndim == 3:
        if image.shape[0] not in (1, 3):
            raise ValueError(
                f"{name} must have 1 or 3 channels in (C, H, W) layout, got shape {image.shape} "
                f"({image.shape[0]} channels; an (H, W, C) image must be transposed first)"
            )
        image = image[0] if image.shape[0] == 1 else np.transpose(image, (1, 2, 0))  # (H, W, 3)
    lo, hi = float(image.min()), float(image.max())
    if lo < -_RANGE_TOL or hi > 1 + _RANGE_TOL:
        raise ValueError(f"{name} values must be in [0, 1], got range [{lo:.4g}, {hi:.4g}]")
    return np.clip(image, 0.0, 1.0)


def _image_hw(image):
    return image.shape[-2:]


def _check_interpolation(interpolation):
    if interpolation not in _INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {_INTERPOLATIONS}, got {interpolation!r}")
    return interpolation


def prepare_map(cam, size, interpolation="bilinear"):
    """Upsample a map to ``size`` and min-max normalize it, the two display steps.

    Parameters
    ----------
    cam : ndarray, shape (h, w)
        A raw map (CAM, Grad-CAM, ...), any sign.
    size : (int, int)
        Target ``(H, W)``; ``h <= H`` and ``w <= W``.
    interpolation : {"bilinear", "nearest"}
        Passed to :func:`minicam.upsample` (used only when the map is smaller).

    Returns
    -------
    shown : ndarray, shape (H, W)
        ``normalize(upsample(cam))``: in [0, 1]; all zeros for a flat map.
    raw_range : (float, float)
        Minimum and maximum of the upsampled map before normalization.

    Raises
    ------
    ValueError
        ``cam`` not 2-D, or larger than ``size`` along an axis.
    """
    from . import normalize, upsample

    check_float_array(cam, "cam", ndim=2)
    _check_interpolation(interpolation)
    H, W = size
    h, w = cam.shape
    if h > H or w > W:
        raise ValueError(f"cam of shape {cam.shape} is larger than the image ({H}, {W}); expected h <= H and w <= W")
    up = cam if (h, w) == (H, W) else upsample(cam[None], (H, W), interpolation=interpolation)[0]  # (H, W)
    shown = normalize(up[None])[0]
    return shown, (float(up.min()), float(up.max()))


def signed_to_rgb(grad):
    """Map signed values to [0, 1] with 0 at mid grey: ``0.5 + g / (2 max|g|)``.

    One scale per image, shared by its channels, symmetric around zero, so the
    largest value of either sign just reaches 0 or 1 and nothing is clipped.

    Parameters
    ----------
    grad : ndarray, shape (C, H, W) or (H, W)
        Signed map (saliency, guided backprop, deconvnet, Guided Grad-CAM).

    Returns
    -------
    ndarray, shape (H, W, C) or (H, W)
        Values in [0, 1]; exactly 0.5 where ``grad`` is 0 (everywhere, for an
        all-zero map).
    """
    check_float_array(grad, "grad", ndim=(2, 3))
    scale = float(np.abs(grad).max())
    out = np.full(grad.shape, 0.5) if scale == 0.0 else 0.5 + grad / (2.0 * scale)
    return np.transpose(out, (1, 2, 0)) if grad.ndim == 3 else out


# --------------------------------------------------------------------------
# Single panels
# --------------------------------------------------------------------------


def _colorbar(fig, mappable, ax, ticks=None, ticklabels=None, label=None):
    cb = fig.colorbar(mappable, ax=ax, fraction=0.046, pad=0.03)
    if ticks is not None:
        cb.set_ticks(ticks)
        cb.set_ticklabels(ticklabels)
    cb.ax.tick_params(labelsize=6, length=2)
    if label:
        cb.set_label(label, fontsize=6)
    return cb


def _draw_image(ax, image):
    shown = to_display_image(image)
    if shown.ndim == 2:
        ax.imshow(shown, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(shown, interpolation="nearest")


def overlay(image, cam, alpha=0.5, cmap="jet", ax=None, interpolation="bilinear", colorbar=True, title=None):
    """Draw a map over its image.

    The map is upsampled to the image size if smaller (:func:`minicam.upsample`)
    and min-max normalized (:func:`minicam.normalize`) for display: see
    :func:`prepare_map`. The colorbar runs from the normalized 0 to 1, its end
    ticks labelled with the raw minimum and maximum.

    Parameters
    ----------
    image : ndarray, shape (C, H, W) with C in {1, 3}, or (H, W)
        Values in [0, 1].
    cam : ndarray, shape (h, w), h <= H and w <= W
        Raw map, any sign.
    alpha : float in [0, 1]
        Opacity of the map (0: image only, 1: map only).
    cmap : str
        Matplotlib colormap of the map.
    ax : matplotlib Axes, optional
        Where to draw; a new Figure is made if None.
    interpolation : {"bilinear", "nearest"}
        Upsampling rule when the map is smaller than the image.
    colorbar : bool
        Add a colorbar.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding ``ax``.
    """
    to_display_image(image)  # check before making a figure
    alpha = check_float(alpha, "alpha", low=0.0, high=1.0)
    if not isinstance(cmap, str):
        raise TypeError(f"cmap must be a colormap name (str), got {type(cmap).__name__}")
    import matplotlib

    if cmap not in matplotlib.colormaps:
        raise ValueError(f"cmap must be a matplotlib colormap name, got {cmap!r}")
    shown, (lo, hi) = prepare_map(cam, _image_hw(image), interpolation)
    fig, ax = _check_ax(ax)
    _draw_image(ax, image)
    im = ax.imshow(shown, cmap=cmap, alpha=alpha, vmin=0.0, vmax=1.0, interpolation="nearest")
    if lo == hi:
        ax.text(
            0.5, 0.5, f"flat map\n(all = {lo:.3g})", transform=ax.transAxes,
            ha="center", va="center", fontsize=7, color="white",
            bbox=dict(facecolor="black", alpha=0.6, linewidth=0),
        )
    if colorbar:
        _colorbar(fig, im, ax, ticks=[0.0, 1.0], ticklabels=[f"{lo:.2g}", f"{hi:.2g}"], label="min-max normalized")
    if title is not None:
        ax.set_title(title, fontsize=8)
    _clean(ax)
    return fig


def show_signed(grad, ax=None, cmap="RdBu_r", colorbar=True, title=None):
    """Draw a signed map centred at 0 on a symmetric scale, nothing clipped.

    Three channels are drawn as colour, ``0.5 + g / (2 max|g|)`` per image
    (:func:`signed_to_rgb`): mid grey is 0, a channel's brightness above or
    below grey is its sign. One channel is drawn with the diverging ``cmap``
    from ``-max|g|`` (blue) to ``+max|g|`` (red), white at 0.

    Parameters
    ----------
    grad : ndarray, shape (3, H, W), (1, H, W) or (H, W)
        Saliency, guided backprop, deconvnet or Guided Grad-CAM of one image.
    ax : matplotlib Axes, optional
    cmap : str
        Diverging colormap for one channel.
    colorbar : bool
        For one channel: a colorbar in raw units. For three: a note of the
        scale ``max|g|`` under the panel.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    check_float_array(grad, "grad", ndim=(2, 3))
    if grad.ndim == 3 and grad.shape[0] not in (1, 3):
        raise ValueError(f"grad must have 1 or 3 channels in (C, H, W) layout, got shape {grad.shape}")
    fig, ax = _check_ax(ax)
    scale = float(np.abs(grad).max())
    if grad.ndim == 3 and grad.shape[0] == 3:
        ax.imshow(signed_to_rgb(grad), vmin=0.0, vmax=1.0, interpolation="nearest")
        if colorbar:
            ax.set_xlabel(f"grey = 0, scale ±{scale:.2g}", fontsize=6, labelpad=1)
    else:
        g = grad[0] if grad.ndim == 3 else grad
        m = scale if scale > 0 else 1.0
        im = ax.imshow(g, cmap=cmap, vmin=-m, vmax=m, interpolation="nearest")
        if colorbar:
            _colorbar(fig, im, ax, ticks=[-m, 0.0, m], ticklabels=[f"{-m:.2g}", "0", f"{m:.2g}"])
    if title is not None:
        ax.set_title(title, fontsize=8)
    _clean(ax)
    return fig


# --------------------------------------------------------------------------
# Annotations
# --------------------------------------------------------------------------


def draw_boxes(ax, boxes, labels=None, colors=None, linewidth=1.5):
    """Draw bounding boxes ``(x0, y0, x1, y1)`` (pixels, x1/y1 exclusive).

    Pixel ``(i, j)`` covers ``[j - 0.5, j + 0.5] x [i - 0.5, i + 0.5]`` in
    ``imshow`` coordinates, so a box's outline runs along pixel edges:
    from ``x0 - 0.5`` to ``x1 - 0.5``.

    Parameters
    ----------
    ax : matplotlib Axes
    boxes : array-like, shape (4,) or (K, 4)
    labels : sequence of K str, optional
        Written above each box's top-left corner.
    colors : sequence of K colours, optional
        Default: white, cyan, magenta, yellow, ...
    linewidth : float

    Returns
    -------
    list of matplotlib.patches.Rectangle
    """
    from matplotlib.patches import Rectangle

    boxes = np.asarray(boxes)
    if boxes.ndim == 1:
        boxes = boxes[None]
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (4,) or (K, 4) as (x0, y0, x1, y1), got shape {boxes.shape}")
    if not np.issubdtype(boxes.dtype, np.number) or np.any((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])):
        raise ValueError(f"boxes must be numbers with x1 > x0 and y1 > y0, got {boxes.tolist()}")
    k = len(boxes)
    if labels is not None and len(labels) != k:
        raise ValueError(f"labels must have one entry per box ({k}), got {len(labels)}")
    if colors is None:
        colors = ["white", "cyan", "magenta", "yellow", "lime"]
    patches = []
    for i, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        color = colors[i % len(colors)]
        rect = Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=color, linewidth=linewidth)
        ax.add_patch(rect)
        patches.append(rect)
        if labels is not None:
            ax.text(x0 - 0.5, y0 - 1.0, labels[i], color=color, fontsize=6, va="bottom", ha="left",
                    bbox=dict(facecolor="black", alpha=0.5, linewidth=0, pad=0.5))
    return patches


def draw_mask_outline(ax, mask, color="white", linewidth=1.0):
    """Outline a boolean mask (H, W) along pixel edges."""
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.dtype != bool:
        raise ValueError(f"mask must be a 2-D bool array (H, W), got {mask.dtype} of shape {mask.shape}")
    H, W = mask.shape
    # Contour a 2x-upsampled mask at 0.5 so the line follows pixel edges.
    big = np.kron(mask.astype(float), np.ones((2, 2)))
    big = np.pad(big, 1)
    ys = (np.arange(2 * H + 2) - 1) / 2.0 - 0.25
    xs = (np.arange(2 * W + 2) - 1) / 2.0 - 0.25
    return ax.contour(xs, ys, big, levels=[0.5], colors=[color], linewidths=linewidth)


def mark_peak(ax, cam, size=None, color="white", interpolation="bilinear"):
    """Mark the maximum of a map (upsampled to ``size`` first) with a ``+``.

    Parameters
    ----------
    ax : matplotlib Axes
    cam : ndarray, shape (h, w)
    size : (int, int), optional
        Upsample to this size before taking the argmax (the image size).

    Returns
    -------
    (int, int)
        ``(row, col)`` of the first maximum in row-major order.
    """
    check_float_array(cam, "cam", ndim=2)
    up = cam if size is None else prepare_map(cam, size, interpolation)[0]
    row, col = np.unravel_index(int(np.argmax(up)), up.shape)
    ax.plot([col], [row], marker="+", color=color, markersize=9, markeredgewidth=1.8)
    ax.plot([col], [row], marker="+", color="black", markersize=9, markeredgewidth=0.6)
    return int(row), int(col)


# --------------------------------------------------------------------------
# The explanation grid
# --------------------------------------------------------------------------


def has_gap_linear_head(model, layer):
    """True if the layers after ``layer`` are global average pooling then one Linear.

    That is the head CAM (Zhou et al. 2016) needs: the class score is then
    ``y^c = sum_k w_k^c mean_ij A^k_ij + b^c``, which makes ``sum_k w_k^c A^k``
    the map. Dropout (an identity at inference) is skipped.
    """
    from .layers import Dropout, GlobalAvgPool2d, Linear

    names = model.names
    if layer not in names:
        raise ValueError(f"layer must name a layer of the model, one of {names}, got {layer!r}")
    after = [l for l in model.layers[names.index(layer) + 1:] if not isinstance(l, Dropout)]
    return len(after) == 2 and isinstance(after[0], GlobalAvgPool2d) and isinstance(after[1], Linear)


def _default_layer(model, x):
    """The last layer whose output is 4-D (DESIGN: the map that feeds the head)."""
    last = None
    for name, shape in model.output_shapes(x.shape):
        if len(shape) == 4:
            last = name
    if last is None:
        raise ValueError("the model has no layer with a 4-D output (N, C, h, w): CAM methods need a feature map")
    return last


def _class_name(class_names, k):
    return class_names[k] if class_names is not None else f"class {k}"


def _check_columns(columns):
    if isinstance(columns, str):
        raise TypeError(f"columns must be a sequence of column names, got the string {columns!r}")
    columns = tuple(columns)
    bad = [c for c in columns if c not in COLUMNS]
    if bad or not columns:
        raise ValueError(f"columns must be a non-empty selection of {COLUMNS}, got {list(columns)}")
    return columns


def _check_class_idx(class_idx, n, M):
    """None, an int or a sequence of n ints, each in [0, M) -> list of n (int or None)."""
    if class_idx is None:
        return [None] * n
    if isinstance(class_idx, (str, bytes, float)) or isinstance(class_idx, bool) or not (
        isinstance(class_idx, (int, np.integer)) or hasattr(class_idx, "__len__")
    ):
        raise TypeError(f"class_idx must be None, an int or a sequence of {n} ints, got {class_idx!r}")
    per_row = [class_idx] * n if isinstance(class_idx, (int, np.integer)) else list(np.ravel(class_idx))
    if len(per_row) != n:
        raise ValueError(f"class_idx must have one entry per image ({n}), got {len(per_row)}")
    out = []
    for c in per_row:
        c = check_int(c, "class_idx", minimum=0)
        if c >= M:
            raise ValueError(f"class_idx must be in [0, {M}) for a model with {M} classes, got {c}")
        out.append(c)
    return out


def explain_batch(model, images, class_idx=None, layer=None, columns=COLUMNS, interpolation="bilinear"):
    """Compute, in one batch, every map the grid's ``columns`` need.

    Each method is called once on the whole batch with one class per sample
    (minicam's methods are batch-correct), so a grid of N rows costs about
    one explanation of N images.

    Parameters
    ----------
    model : minicam.Sequential
    images : ndarray, shape (N, C, H, W)
    class_idx : None, int or sequence of N ints
        None: each image's predicted class.
    layer : str, optional
        Default: the last 4-D output.
    columns : sequence of str
        A selection of :data:`COLUMNS`.
    interpolation : {"bilinear", "nearest"}
        Upsampling inside Guided Grad-CAM.

    Returns
    -------
    dict
        ``"scores"`` (N, M), ``"predicted"`` (N,), ``"class_idx"`` (N,),
        ``"layer"``, and per map column its raw maps: ``"cam"``,
        ``"grad-cam"``, ``"counterfactual"`` (N, h, w) (``"cam"`` is None
        without a GAP -> Linear head after ``layer``), ``"guided-backprop"``,
        ``"guided-grad-cam"`` (N, C, H, W).
    """
    from . import cam, grad_cam, guided_backprop, guided_grad_cam

    columns = _check_columns(columns)
    _check_interpolation(interpolation)
    if not (hasattr(model, "forward") and hasattr(model, "output_shapes")):
        raise TypeError(f"model must be a minicam.Sequential, got {type(model).__name__}")
    check_float_array(images, "images", ndim=4)
    for i in range(images.shape[0]):
        to_display_image(images[i], name="image" if images.shape[0] == 1 else f"images[{i}]")
    scores = model.forward(images)
    if scores.ndim != 2:
        raise ValueError(f"the model's output must be class scores (N, M), got shape {scores.shape}")
    predicted = np.argmax(scores, axis=1)
    per_row = _check_class_idx(class_idx, images.shape[0], scores.shape[1])
    c = np.array([p if k is None else k for k, p in zip(per_row, predicted)], dtype=np.int64)
    if layer is None:
        layer = _default_layer(model, images)
    elif not isinstance(layer, str) or layer not in model.names:
        raise ValueError(f"layer must name a layer of the model, one of {model.names}, got {layer!r}")
    out = {"scores": scores.copy(), "predicted": predicted, "class_idx": c, "layer": layer}
    if "grad-cam" in columns:
        out["grad-cam"] = grad_cam(model, images, c, layer=layer)
    if "counterfactual" in columns:
        out["counterfactual"] = grad_cam(model, images, c, layer=layer, counterfactual=True)
    if "cam" in columns:
        out["cam"] = cam(model, images, c, layer=layer) if has_gap_linear_head(model, layer) else None
    if "guided-backprop" in columns:
        out["guided-backprop"] = guided_backprop(model, images, c)
    if "guided-grad-cam" in columns:
        out["guided-grad-cam"] = guided_grad_cam(model, images, c, layer=layer, interpolation=interpolation)
    return out


def _draw_row(axes, image, computed, i, columns, class_names, boxes, box_labels, interpolation, alpha, cmap,
              show_peak, colorbar, label=None):
    """Draw row ``i`` of :func:`explain_batch`'s results; return that row's maps."""
    from .losses import softmax

    scores = computed["scores"][i]
    M = scores.shape[0]
    if class_names is not None and len(class_names) != M:
        raise ValueError(f"class_names must have one name per class ({M}), got {len(class_names)}")
    predicted, class_idx, layer = int(computed["predicted"][i]), int(computed["class_idx"][i]), computed["layer"]
    probs = softmax(scores[None])[0]
    H, W = image.shape[1:]
    row = {"scores": scores, "predicted": predicted, "class_idx": class_idx, "layer": layer, "peaks": {}}
    for col in columns:
        if col != "image":
            row[col] = None if computed[col] is None else computed[col][i]

    target = _class_name(class_names, class_idx)
    for ax, col in zip(axes, columns):
        _clean(ax)
        if col == "image":
            _draw_image(ax, image)
            pred = _class_name(class_names, predicted)
            title = f"pred: {pred}\nlogit {scores[predicted]:.2f}, p={probs[predicted]:.2f}"
            if label is not None:
                title = f"true: {_class_name(class_names, label)}, " + title
            if class_idx != predicted:
                title += f"\nexplaining: {target} (p={probs[class_idx]:.2f})"
            ax.set_title(title, fontsize=7)
        elif col in ("cam", "grad-cam", "counterfactual"):
            raw = row[col]
            label = {"cam": "CAM", "grad-cam": "Grad-CAM", "counterfactual": "counterfactual"}[col]
            if raw is None:
                _draw_image(ax, image)
                ax.imshow(np.zeros((H, W)), cmap="gray", alpha=0.7, vmin=0, vmax=1)
                ax.text(0.5, 0.5, "n/a: no GAP→Linear\nhead after\n" + repr(layer), transform=ax.transAxes,
                        ha="center", va="center", fontsize=7, color="white")
                ax.set_title(f"{label}", fontsize=7)
                continue
            sub = {"cam": "signed", "grad-cam": "ReLU", "counterfactual": "ReLU of −α"}[col]
            overlay(image, raw, alpha=alpha, cmap=cmap, ax=ax, interpolation=interpolation, colorbar=colorbar,
                    title=f"{label} → {target}\n{sub}, {raw.shape[0]}×{raw.shape[1]} up")
            if show_peak:
                row["peaks"][col] = mark_peak(ax, raw, (H, W), interpolation=interpolation)
        else:
            label = _COLUMN_TITLES[col]
            show_signed(row[col], ax=ax, colorbar=colorbar, title=f"{label}\n→ {target} (signed)")
        if boxes is not None and col not in ("guided-backprop", "guided-grad-cam"):
            draw_boxes(ax, boxes, labels=box_labels if col == "image" else None)
    return row


def explanation_row(
    axes,
    model,
    image,
    class_idx=None,
    class_names=None,
    layer=None,
    columns=COLUMNS,
    boxes=None,
    box_labels=None,
    interpolation="bilinear",
    alpha=0.5,
    cmap="jet",
    show_peak=False,
    colorbar=True,
    label=None,
):
    """Explain one image and draw one row: image | CAM | Grad-CAM | ... .

    Parameters
    ----------
    axes : sequence of matplotlib Axes, one per column
    model : minicam.Sequential
        A classifier whose last output is the class scores (N, M).
    image : ndarray, shape (C, H, W)
        One input of the model, values in [0, 1].
    class_idx : int, optional
        Class explained; default the predicted class.
    class_names : sequence of str, optional
    layer : str, optional
        Feature map for CAM and Grad-CAM; default the last 4-D output.
    columns : sequence of str
        A selection of :data:`COLUMNS`, in the order drawn.
    boxes : array-like, shape (4,) or (K, 4), optional
        Ground-truth boxes drawn on the image and the map panels.
    box_labels : sequence of K str, optional
    interpolation : {"bilinear", "nearest"}
        Upsampling of CAM/Grad-CAM maps for display and inside Guided Grad-CAM.
    alpha, cmap
        As in :func:`overlay`.
    show_peak : bool
        Mark the maximum of each upsampled CAM/Grad-CAM map with ``+``.
    colorbar : bool
    label : int, optional
        The image's true class, shown next to the prediction.

    Returns
    -------
    dict
        The raw maps of this image (``"cam"`` (h, w) is None without a
        GAP -> Linear head; ``"grad-cam"``, ``"counterfactual"`` (h, w);
        ``"guided-backprop"``, ``"guided-grad-cam"`` (C, H, W)),
        ``"scores"`` (M,), ``"predicted"``, ``"class_idx"``, ``"layer"``,
        ``"peaks"`` {column: (row, col)} when ``show_peak``.
    """
    columns = _check_columns(columns)
    axes = list(np.ravel(axes)) if isinstance(axes, np.ndarray) else list(axes)
    if len(axes) != len(columns):
        raise ValueError(f"axes must hold one Axes per column ({len(columns)}), got {len(axes)}")
    check_float_array(image, "image", ndim=3)
    computed = explain_batch(model, image[None], class_idx, layer=layer, columns=columns, interpolation=interpolation)
    if label is not None:
        label = check_int(label, "label", minimum=0)
    return _draw_row(axes, image, computed, 0, columns, class_names, boxes, box_labels, interpolation, alpha, cmap,
                     show_peak, colorbar, label)


def explanation_grid(
    model,
    images,
    class_idx=None,
    class_names=None,
    layer=None,
    columns=COLUMNS,
    boxes=None,
    box_labels=None,
    interpolation="bilinear",
    alpha=0.5,
    cmap="jet",
    show_peak=False,
    colorbar=True,
    panel=2.0,
    suptitle=None,
    labels=None,
):
    """A figure with one row per image: image | CAM | Grad-CAM | guided backprop | Guided Grad-CAM | counterfactual.

    Parameters
    ----------
    model : minicam.Sequential
        A classifier; CAM shows "n/a" unless a GAP -> Linear head follows ``layer``.
    images : ndarray, shape (N, C, H, W) or (C, H, W)
        Values in [0, 1].
    class_idx : None, int or sequence of N ints
        Class explained in each row; None: each image's predicted class.
    class_names : sequence of M str, optional
    layer : str, optional
        Feature map of CAM/Grad-CAM (default: the last 4-D output).
    columns : sequence of str
        Which of :data:`COLUMNS` to draw.
    boxes : array-like, shape (N, 4) or (N, K, 4), optional
        Ground-truth boxes per image.
    box_labels : sequence of N sequences of K str, optional
    interpolation, alpha, cmap, show_peak, colorbar
        As in :func:`explanation_row`.
    panel : float
        Size of one panel in inches.
    suptitle : str, optional
    labels : array-like of N ints, optional
        True class of each image, shown next to the prediction.

    Returns
    -------
    matplotlib.figure.Figure
        With ``fig.minicam_maps``: the list of each row's dict, as
        :func:`explanation_row` returns.
    """
    check_float_array(images, "images", ndim=(3, 4))
    if images.ndim == 3:
        images = images[None]
    n = images.shape[0]
    if boxes is not None:
        boxes = np.asarray(boxes)
        if boxes.ndim not in (2, 3) or boxes.shape[0] != n or boxes.shape[-1] != 4:
            raise ValueError(f"boxes must have shape (N, 4) or (N, K, 4) with N={n}, got shape {boxes.shape}")
    if box_labels is not None and len(box_labels) != n:
        raise ValueError(f"box_labels must have one entry per image ({n}), got {len(box_labels)}")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (n,):
            raise ValueError(f"labels must have shape ({n},), one true class per image, got shape {labels.shape}")
        labels = [check_int(v, "labels", minimum=0) for v in labels.tolist()]
    columns = _check_columns(columns)
    computed = explain_batch(model, images, class_idx, layer=layer, columns=columns, interpolation=interpolation)
    fig, axes = _figure(n, len(columns), panel=panel, extra_height=0.3 if suptitle else 0.0)
    fig.minicam_maps = [
        _draw_row(
            axes[i], images[i], computed, i, columns, class_names, None if boxes is None else boxes[i],
            None if box_labels is None else box_labels[i], interpolation, alpha, cmap, show_peak, colorbar,
            None if labels is None else labels[i],
        )
        for i in range(n)
    ]
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    return fig
