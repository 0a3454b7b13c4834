"""Annotations drawn on an image panel: ground-truth boxes, mask outlines, the peak of a map."""

import numpy as np

from .._validate import check_float_array
from .figures import prepare_map

__all__ = ["draw_boxes", "draw_mask_outline", "mark_peak"]


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
            ax.text(x0 - 0.5, y0 - 1.0, labels[i], color=color, fontsize=7, va="bottom", ha="left",
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
