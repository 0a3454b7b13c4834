"""The explanation grid: one row per image, image | CAM | Grad-CAM | guided backprop | Guided Grad-CAM | counterfactual.

The maps come from :mod:`minicam.explain`, computed once per batch, under the
same conventions as every method: the default layer, whether CAM applies,
the class per row and the guard that leaves the model as it was found are
the rules of :mod:`minicam.explain._core`, not copies of them.
"""

import numpy as np

from .._validate import check_float_array, check_int
from ..explain._core import (
    cam_applies,
    check_input,
    require_sequential,
    resolve_class_idx,
    resolve_layer,
    untouched,
)
from ..explain.cams import cam, grad_cam
from ..explain.gradients import guided_backprop, guided_grad_cam
from ..explain.postprocess import check_interpolation
from ..losses import softmax
from .annotations import draw_boxes, mark_peak
from .figures import (
    GUIDED_PERCENTILE,
    TITLE_SIZE,
    clean_axes,
    draw_image,
    figure,
    overlay,
    show_signed,
    to_display_image,
)

__all__ = ["COLUMNS", "explain_batch", "explanation_row", "explanation_grid"]

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
    columns = _check_columns(columns)
    check_interpolation(interpolation)
    require_sequential(model)
    shapes = check_input(model, images, image=True)
    for i in range(images.shape[0]):
        to_display_image(images[i], name="image" if images.shape[0] == 1 else f"images[{i}]")
    layer = resolve_layer(model, shapes, layer)
    with untouched(model):  # the class scores, without changing the model (BatchNorm statistics, caches)
        scores = model.forward(images)
    if scores.ndim != 2:
        raise ValueError(f"the model's output must be class scores (N, M), got shape {scores.shape}")
    predicted = np.argmax(scores, axis=1)
    c = resolve_class_idx(class_idx, scores)
    out = {"scores": scores.copy(), "predicted": predicted, "class_idx": c, "layer": layer}
    if "grad-cam" in columns:
        out["grad-cam"] = grad_cam(model, images, c, layer=layer)
    if "counterfactual" in columns:
        out["counterfactual"] = grad_cam(model, images, c, layer=layer, counterfactual=True)
    if "cam" in columns:
        out["cam"] = cam(model, images, c, layer=layer) if cam_applies(model, layer) else None
    if "guided-backprop" in columns:
        out["guided-backprop"] = guided_backprop(model, images, c)
    if "guided-grad-cam" in columns:
        out["guided-grad-cam"] = guided_grad_cam(model, images, c, layer=layer, interpolation=interpolation)
    return out


def _draw_row(axes, image, computed, i, columns, class_names, boxes, box_labels, interpolation, alpha, cmap,
              show_peak, colorbar, label=None):
    """Draw row ``i`` of :func:`explain_batch`'s results; return that row's maps."""
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

    explained = _class_name(class_names, class_idx)
    for ax, col in zip(axes, columns):
        clean_axes(ax)
        if col == "image":
            draw_image(ax, image)
            pred = _class_name(class_names, predicted)
            title = f"pred: {pred} (p={probs[predicted]:.2f})\nlogit {scores[predicted]:.2f}"
            if label is not None:
                title = f"true: {_class_name(class_names, label)}\n" + title
            if class_idx != predicted:
                title += f"\nexplaining: {explained} (p={probs[class_idx]:.2f})"
            ax.set_title(title, fontsize=TITLE_SIZE)
        elif col in ("cam", "grad-cam", "counterfactual"):
            raw = row[col]
            col_title = _COLUMN_TITLES[col]
            if raw is None:
                draw_image(ax, image)
                ax.imshow(np.zeros((H, W)), cmap="gray", alpha=0.7, vmin=0, vmax=1)
                ax.text(0.5, 0.5, "n/a: no GAP→Linear\nhead after\n" + repr(layer), transform=ax.transAxes,
                        ha="center", va="center", fontsize=8, color="white")
                ax.set_title(col_title, fontsize=TITLE_SIZE)
                continue
            sub = {"cam": "signed", "grad-cam": "ReLU", "counterfactual": "ReLU of −α"}[col]
            overlay(image, raw, alpha=alpha, cmap=cmap, ax=ax, interpolation=interpolation, colorbar=colorbar,
                    title=f"{col_title} → {explained}\n{sub}, {raw.shape[0]}×{raw.shape[1]} up")
            if show_peak:
                row["peaks"][col] = mark_peak(ax, raw, (H, W), interpolation=interpolation)
        else:
            col_title = _COLUMN_TITLES[col]
            show_signed(row[col], ax=ax, colorbar=colorbar, title=f"{col_title}\n→ {explained} (signed)",
                        percentile=GUIDED_PERCENTILE)
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
    cmap=None,
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
        As in :func:`overlay` (``cmap=None``: a perceptually uniform colormap
        for the ReLU maps, a diverging one centred at 0 for signed CAM).
    show_peak : bool
        Mark the maximum of each upsampled CAM/Grad-CAM map with ``+``.
    colorbar : bool
        A colour bar in raw units on every map panel. Guided backprop and
        Guided Grad-CAM are drawn on a symmetric scale clipped at the
        99th percentile of ``|g|`` (:data:`minicam.viz.figures.GUIDED_PERCENTILE`).
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
    cmap=None,
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
    fig, axes = figure(n, len(columns), panel=panel, extra_height=0.3 if suptitle else 0.0)
    fig.minicam_maps = [
        _draw_row(
            axes[i], images[i], computed, i, columns, class_names, None if boxes is None else boxes[i],
            None if box_labels is None else box_labels[i], interpolation, alpha, cmap, show_peak, colorbar,
            None if labels is None else labels[i],
        )
        for i in range(n)
    ]
    if suptitle:
        fig.suptitle(suptitle, fontsize=TITLE_SIZE + 1)
    return fig
