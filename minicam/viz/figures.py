"""Figure primitives: a map over its image, signed gradients, boxes, masks and peaks.

Matplotlib is imported inside the functions. What is done to a map before it
is drawn (upsampling, the min-max colour scale, the symmetric signed scale,
percentile clipping) is stated in :mod:`minicam.viz` and in each function's
docstring, and every map panel can carry a colour bar in the map's raw units.
"""

import numpy as np

from .._validate import check_float, check_float_array
from ..explain.postprocess import check_interpolation, normalize, upsample

__all__ = [
    "DEFAULT_CMAP",
    "SIGNED_CMAP",
    "DPI",
    "TITLE_SIZE",
    "GUIDED_PERCENTILE",
    "PRESETS",
    "figure",
    "save",
    "draw_image",
    "clean_axes",
    "to_display_image",
    "prepare_map",
    "signed_scale",
    "signed_to_rgb",
    "overlay",
    "show_signed",
]

# A value range check with room for float rounding in generated images.
_RANGE_TOL = 1e-6

DEFAULT_CMAP = "inferno"
"""Colormap of unsigned maps (Grad-CAM after its ReLU, saliency magnitude):
perceptually uniform, so equal steps in value look like equal steps in
colour, and dark-to-bright reads as low-to-high in grey print too. ``jet``
(still accepted by name) has bright bands near cyan and yellow that look like
edges the map does not have."""

SIGNED_CMAP = "RdBu_r"
"""Diverging colormap of signed maps (CAM, Grad-CAM with ``relu=False``,
saliency, guided backprop): blue < 0 < red, white at exactly 0 (the scale is
always symmetric, ``-m .. +m``)."""

DPI = 100
"""Resolution of the Figures made here (and of the ``"screen"`` preset)."""

TITLE_SIZE = 9
"""Font size of panel titles, in points (the smallest readable on a slide)."""

GUIDED_PERCENTILE = 99.0
"""Percentile of ``|g|`` at which the explanation grid clips guided backprop
and Guided Grad-CAM: a few very large gradients would otherwise set the scale
and leave every other pixel faint, near grey."""

PRESETS = {
    "screen": {"width": None, "dpi": 100},
    "slide": {"width": 12.0, "dpi": 160},
    "paper": {"width": 6.5, "dpi": 300},
}
"""Export presets of :func:`save`: the width in inches at which the picture
will be placed (None: as drawn) and its resolution there. ``"slide"`` is
1920 pixels wide (a 16:9 slide at 160 dpi, nearly full width); ``"paper"``
is a one-column text width at print resolution (1950 pixels)."""


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

    fig = Figure(figsize=(panel * ncols, panel * nrows + extra_height), layout="constrained", dpi=DPI)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def save(fig, path, preset="screen", dpi=None):
    """Save a Figure with an export preset, scaled as a whole; the Figure is left as it was.

    The picture is scaled uniformly -- layout, fonts and line widths in
    proportion, nothing re-flowed, so nothing that fits on screen collides
    on a slide -- to be ``width`` inches wide at ``dpi`` pixels per inch
    (:data:`PRESETS`). Text then has the size ``points * width / drawn
    width``: to keep 9 pt titles at 9 pt on paper, draw the figure at the
    preset's width (e.g. ``figure(..., panel=width / ncols)``). Vector
    formats (``.pdf``, ``.svg``) keep the drawn size; they scale losslessly.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or os.PathLike
        The format follows the suffix (``.png``, ``.pdf``, ``.svg``, ...).
    preset : {"screen", "slide", "paper"}
        ``"screen"``: as drawn, 100 dpi; ``"slide"``: 1920 pixels wide
        (12 in at 160 dpi); ``"paper"``: 1950 pixels wide (6.5 in at 300 dpi).
    dpi : int in [100, 600], optional
        Overrides the preset's resolution.

    Returns
    -------
    str
        The path written.
    """
    import os

    from matplotlib.figure import Figure

    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    settings = PRESETS[preset]
    if dpi is None:
        dpi = settings["dpi"]
    elif isinstance(dpi, bool) or not isinstance(dpi, (int, np.integer)) or not 100 <= dpi <= 600:
        raise ValueError(f"dpi must be an int in [100, 600], got {dpi!r}")
    width = settings["width"]
    scale = 1.0 if width is None else width / float(fig.get_size_inches()[0])
    fig.savefig(os.fspath(path), dpi=dpi * scale)
    return os.fspath(path)


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


def _check_percentile(percentile):
    if percentile is None:
        return None
    return check_float(percentile, "percentile", low=50.0, high=100.0)


def signed_scale(grad, percentile=None):
    """The half-width ``s`` of the symmetric scale ``-s .. +s`` of a signed map.

    Parameters
    ----------
    grad : ndarray, any shape
    percentile : float in [50, 100], optional
        None: ``s = max|g|`` (nothing clipped). A number ``q``: ``s`` is the
        q-th percentile of ``|g|`` over the whole map (all channels), and
        values beyond ``±s`` are clipped when drawn. Falls back to
        ``max|g|`` when that percentile is 0 (a mostly-zero map).

    Returns
    -------
    float
        ``s > 0``; 1.0 for an all-zero map.
    """
    percentile = _check_percentile(percentile)
    a = np.abs(grad)
    top = float(a.max()) if a.size else 0.0
    if top == 0.0:
        return 1.0
    if percentile is None:
        return top
    s = float(np.percentile(a, percentile))
    return s if s > 0.0 else top


def signed_to_rgb(grad, percentile=None):
    """Map signed values to [0, 1] with 0 at mid grey: ``0.5 + g / (2 s)``.

    One scale per image, shared by its channels, symmetric around zero. By
    default ``s = max|g|``: the largest value of either sign just reaches 0 or
    1 and nothing is clipped. With ``percentile=q``, ``s`` is the q-th
    percentile of ``|g|`` and the result is clipped to [0, 1] (see
    :func:`signed_scale`), so a few extreme gradients no longer leave the
    rest of the map faint.

    Parameters
    ----------
    grad : ndarray, shape (C, H, W) or (H, W)
        Signed map (saliency, guided backprop, deconvnet, Guided Grad-CAM).
    percentile : float in [50, 100], optional

    Returns
    -------
    ndarray, shape (H, W, C) or (H, W)
        Values in [0, 1]; exactly 0.5 where ``grad`` is 0 (everywhere, for an
        all-zero map).
    """
    check_float_array(grad, "grad", ndim=(2, 3))
    s = signed_scale(grad, percentile)
    out = np.clip(0.5 + grad / (2.0 * s), 0.0, 1.0)
    return np.transpose(out, (1, 2, 0)) if grad.ndim == 3 else out


# --------------------------------------------------------------------------
# Single panels
# --------------------------------------------------------------------------


def _fmt_tick(value, span=None):
    if value == 0:
        return "0"
    if span and abs(value) < 1e-3 * span:  # an end a hair off 0: its order of magnitude is enough
        return f"{value:.0e}"
    return f"{value:.3g}"


def _raw_ticks(lo, hi, must=(), count=4):
    """Ticks in raw units on [lo, hi]: ``must`` first (ends, 0), then round numbers, none crowding another."""
    from matplotlib.ticker import MaxNLocator

    span = hi - lo
    ticks = []
    for t in list(must) + [float(v) for v in MaxNLocator(count).tick_values(lo, hi)]:
        if lo - 1e-12 * span <= t <= hi + 1e-12 * span and all(abs(t - u) >= 0.14 * span for u in ticks):
            ticks.append(float(t))
    return sorted(ticks)


def _colorbar(fig, mappable, ax, ticks, label=None, extend="neither"):
    cb = fig.colorbar(mappable, ax=ax, fraction=0.046, pad=0.03, extend=extend)
    cb.set_ticks(ticks)
    span = (max(ticks) - min(ticks)) if len(ticks) > 1 else None
    cb.set_ticklabels([_fmt_tick(t, span) for t in ticks])
    cb.ax.tick_params(labelsize=7, length=2, pad=1)
    if label:
        cb.set_label(label, fontsize=7, labelpad=1)
    return cb


def _check_cmap(cmap):
    if cmap is None:
        return None
    if not isinstance(cmap, str):
        raise TypeError(f"cmap must be a colormap name (str) or None, got {type(cmap).__name__}")
    import matplotlib

    if cmap not in matplotlib.colormaps:
        raise ValueError(f"cmap must be a matplotlib colormap name, got {cmap!r}")
    return cmap


def draw_image(ax, image):
    """Draw an image in minicam's layout (see :func:`to_display_image`) into ``ax``, pixel for pixel."""
    shown = to_display_image(image)
    if shown.ndim == 2:
        ax.imshow(shown, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(shown, interpolation="nearest")


def _grey(image):
    """Luminance (ITU-R BT.601) of an image in minicam's layout: (H, W) in [0, 1]."""
    shown = to_display_image(image)
    return shown if shown.ndim == 2 else shown @ np.array([0.299, 0.587, 0.114])


def overlay(image, cam, alpha=0.5, cmap=None, ax=None, interpolation="bilinear", colorbar=True, title=None,
            signed=None, base="grey"):
    """Draw a map over its image, with a colour bar in the map's raw units.

    The map is upsampled to the image size if smaller (:func:`minicam.upsample`)
    and drawn in its raw values; only the colour scale differs by kind:

    - **unsigned** (no negative value, e.g. Grad-CAM after its ReLU): the
      colours run from the map's minimum to its maximum -- the picture of
      min-max normalisation (:func:`prepare_map`) -- in a perceptually
      uniform colormap (:data:`DEFAULT_CMAP`);
    - **signed** (some value < 0, e.g. CAM or Grad-CAM with ``relu=False``):
      a symmetric scale ``-m .. +m`` with ``m = max|map|`` in a diverging
      colormap (:data:`SIGNED_CMAP`), white at exactly 0. A signed map is
      never min-max scaled: that would paint its most negative value as
      "cold" and anything above it as "hot", background included.

    The colour bar is labelled in raw units: the raw minimum and maximum,
    0 when inside, and round numbers in between.

    Parameters
    ----------
    image : ndarray, shape (C, H, W) with C in {1, 3}, or (H, W)
        Values in [0, 1].
    cam : ndarray, shape (h, w), h <= H and w <= W
        Raw map, any sign.
    alpha : float in [0, 1]
        Opacity of the map (0: image only, 1: map only).
    cmap : str, optional
        Matplotlib colormap name (``"jet"`` works); default
        :data:`DEFAULT_CMAP` or, for a signed map, :data:`SIGNED_CMAP`.
    ax : matplotlib Axes, optional
        Where to draw; a new Figure is made if None.
    interpolation : {"bilinear", "nearest"}
        Upsampling rule when the map is smaller than the image.
    colorbar : bool
        Add a colour bar (raw units).
    title : str, optional
    signed : bool, optional
        Force the signed (True) or unsigned (False) scale; default: signed
        when the map has a negative value.
    base : {"grey", "colour"}
        How the image is drawn under the map. Grey (its luminance) by
        default, so the map's colours are not mixed with the image's: a red
        map over a blue object would read as purple, a "cold" colour.

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding ``ax``.
    """
    to_display_image(image)  # check before making a figure
    alpha = check_float(alpha, "alpha", low=0.0, high=1.0)
    cmap = _check_cmap(cmap)
    if signed is not None and not isinstance(signed, bool):
        raise TypeError(f"signed must be True, False or None, got {signed!r}")
    if base not in ("grey", "colour"):
        raise ValueError(f"base must be 'grey' or 'colour', got {base!r}")
    shown, (lo, hi) = prepare_map(cam, _image_hw(image), interpolation)
    H, W = _image_hw(image)
    up = cam if cam.shape == (H, W) else upsample(cam[None], (H, W), interpolation=interpolation)[0]  # (H, W)
    if signed is None:
        signed = lo < 0.0
    fig, ax = _check_ax(ax)
    if base == "grey":
        ax.imshow(_grey(image), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        draw_image(ax, image)
    if signed:
        m = max(abs(lo), abs(hi)) or 1.0
        im = ax.imshow(up, cmap=cmap or SIGNED_CMAP, alpha=alpha, vmin=-m, vmax=m, interpolation="nearest")
        ticks, label = _raw_ticks(-m, m, must=(0.0, lo, hi)), "raw, signed (0 = white)"
    elif lo < hi:
        im = ax.imshow(up, cmap=cmap or DEFAULT_CMAP, alpha=alpha, vmin=lo, vmax=hi, interpolation="nearest")
        ticks, label = _raw_ticks(lo, hi, must=(lo, hi, 0.0)), "raw (colours min to max)"
    else:  # flat: nothing to scale
        im = ax.imshow(shown, cmap=cmap or DEFAULT_CMAP, alpha=alpha, vmin=0.0, vmax=1.0, interpolation="nearest")
        ticks, label = [0.0], None
    if lo == hi:
        ax.text(
            0.5, 0.5, f"flat map\n(all = {lo:.3g})", transform=ax.transAxes,
            ha="center", va="center", fontsize=8, color="white",
            bbox=dict(facecolor="black", alpha=0.6, linewidth=0),
        )
    if colorbar:
        cb = _colorbar(fig, im, ax, ticks, label=label)
        if lo == hi:
            cb.set_ticklabels([_fmt_tick(lo)])
    if title is not None:
        ax.set_title(title, fontsize=TITLE_SIZE)
    clean_axes(ax)
    return fig


def show_signed(grad, ax=None, cmap=SIGNED_CMAP, colorbar=True, title=None, percentile=None):
    """Draw a signed map centred at 0 on a symmetric scale ``-s .. +s``.

    Three channels are drawn as colour, ``0.5 + g / (2 s)`` per image
    (:func:`signed_to_rgb`): mid grey is 0, a channel's brightness above or
    below grey is its sign; the colour bar (grey, black = ``-s``, white =
    ``+s``) gives each channel's raw value. One channel is drawn with the
    diverging ``cmap`` from ``-s`` (blue) to ``+s`` (red), white at 0.

    ``s = max|g|`` by default (nothing clipped). With ``percentile=q``,
    ``s`` is the q-th percentile of ``|g|`` and larger values are clipped
    (the colour bar's ends are then arrows, and its label names ``q``): use
    it for guided backprop and Guided Grad-CAM, whose few largest values
    would otherwise leave the rest of the map faint
    (:data:`GUIDED_PERCENTILE`).

    Parameters
    ----------
    grad : ndarray, shape (3, H, W), (1, H, W) or (H, W)
        Saliency, guided backprop, deconvnet or Guided Grad-CAM of one image.
    ax : matplotlib Axes, optional
    cmap : str
        Diverging colormap for one channel.
    colorbar : bool
        A colour bar in raw units.
    title : str, optional
    percentile : float in [50, 100], optional
        Clip at this percentile of ``|g|`` (e.g. 99); None: at ``max|g|``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    check_float_array(grad, "grad", ndim=(2, 3))
    if grad.ndim == 3 and grad.shape[0] not in (1, 3):
        raise ValueError(f"grad must have 1 or 3 channels in (C, H, W) layout, got shape {grad.shape}")
    cmap = _check_cmap(cmap) or SIGNED_CMAP
    s = signed_scale(grad, percentile)
    clipped = percentile is not None and float(np.abs(grad).max()) > s
    fig, ax = _check_ax(ax)
    if grad.ndim == 3 and grad.shape[0] == 3:
        ax.imshow(signed_to_rgb(grad, percentile), vmin=0.0, vmax=1.0, interpolation="nearest")
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        mappable = ScalarMappable(norm=Normalize(-s, s), cmap="gray")
        label = "each channel, grey = 0"
    else:
        g = grad[0] if grad.ndim == 3 else grad
        mappable = ax.imshow(g, cmap=cmap, vmin=-s, vmax=s, interpolation="nearest")
        label = "raw, signed (0 = white)"
    if colorbar:
        if percentile is not None:
            zero = "grey" if grad.ndim == 3 and grad.shape[0] == 3 else "white"
            label = f"{zero} = 0, clip at p{percentile:g} |g|"
        _colorbar(fig, mappable, ax, [-s, 0.0, s], label=label, extend="both" if clipped else "neither")
    if title is not None:
        ax.set_title(title, fontsize=TITLE_SIZE)
    clean_axes(ax)
    return fig
