"""Figure primitives: a map over its image, signed gradients, boxes, masks and peaks.

Matplotlib is imported inside the functions. What is done to a map before it
is drawn (upsampling, min-max normalisation, the symmetric signed scale) is
stated in :mod:`minicam.viz` and in each function's docstring.
"""

import numpy as np

from .._validate import check_float, check_float_array
from ..explain.postprocess import check_interpolation, normalize, upsample

__all__ = [
    "figure",
    "draw_image",
    "clean_axes",
    "to_display_image",
    "prepare_map",
    "signed_to_rgb",
    "overlay",
    "show_signed",
    "draw_boxes",
    "draw_mask_outline",
    "mark_peak",
]

# A value range check with room for float rounding in generated images.
_RANGE_TOL = 1e-6


def figure(nrows, ncols, panel=2.0, extra_height=0.0):
    """A pyplot-free Figure and its (nrows, ncols) Axes array.

    Parameters
    ----------
    nrows, ncols : int
    panel : float
        Size of one square panel, in inches.
    extra_height : float
        Inches added at the top (room for a suptitle).

    Returns
    -------
    fig : matplotlib.figure.Figure
        Constrained layout; nothing is shown and no pyplot state is kept.
    axes : ndarray of Axes, shape (nrows, ncols)
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(panel * ncols, panel * nrows + extra_height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _new_ax():
    fig, axes = figure(1, 1, panel=3.2)
    return fig, axes[0, 0]


def _check_ax(ax):
    if ax is None:
        return _new_ax()
    from matplotlib.axes import Axes

    if not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}")
    return ax.figure, ax


def clean_axes(ax):
    """Remove an image panel's ticks."""
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
    check_float_array(cam, "cam", ndim=2)
    check_interpolation(interpolation)
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


def draw_image(ax, image):
    """Draw an image in minicam's layout (see :func:`to_display_image`) into ``ax``, pixel for pixel."""
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
    draw_image(ax, image)
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
    clean_axes(ax)
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
    clean_axes(ax)
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
