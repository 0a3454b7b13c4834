"""Synthetic shapes and two-object scenes, rasterised from their analytic geometry.

- :func:`shapes`: one filled shape (circle, square, triangle, cross) per RGB
  image, on a smooth coloured background with pixel noise and small
  distractors (dots and short strokes) that belong to no class.
- :func:`scenes`: two shapes of *different* classes per image, never
  touching, each with its own box and mask.
"""

from functools import lru_cache

import numpy as np

from .._validate import check_float, check_float_dtype
from .base import (
    DISTRACTOR_MARGIN,
    Dataset,
    check_n,
    check_range,
    check_seed,
    check_size,
    crop_to_content,
    free_positions,
    pick_position,
    smooth_field,
)

__all__ = ["shapes", "scenes", "SHAPE_CLASSES", "SCENE_MIN_GAP", "COLOR_MARGIN"]

SHAPE_CLASSES = ("circle", "square", "triangle", "cross")

# Minimum number of background pixel rows or columns between the boxes of the
# two objects of a scene: the objects never touch, so each mask is one object.
SCENE_MIN_GAP = 2
# Minimum RGB (Euclidean) distance between an object's colour and every
# background pixel under it, so the object never blends into its background.
COLOR_MARGIN = 0.35
# Colour candidates drawn per object; the first one that clears COLOR_MARGIN
# is used (else the most distant one). A fixed count keeps the random stream
# independent of the background.
_COLOR_CANDIDATES = 8

# Shape geometry, as fractions of the object size ``s`` (``object_size``):
# circle diameter s; square side 0.8 s; equilateral triangle with
# circumradius 0.6 s; cross with arms 1.1 s long (tip to tip) and 0.4 s
# wide. Thick arms on purpose: on thin shapes a coarse Grad-CAM map peaks
# beside the object rather than on it; long enough that the notches between
# the arms stay visible at the smallest size.
_SQUARE_SIDE = 0.8
_TRIANGLE_CIRCUMRADIUS = 0.6
_CROSS_ARM_LENGTH = 1.1
_CROSS_ARM_WIDTH = 0.4
# Radius of the smallest circle around each shape, as a fraction of s: no
# rotation makes a shape wider than twice this.
_CIRCUMRADIUS = {
    "circle": 0.5,
    "square": _SQUARE_SIDE / np.sqrt(2.0),
    "triangle": _TRIANGLE_CIRCUMRADIUS,
    "cross": float(np.hypot(_CROSS_ARM_LENGTH / 2, _CROSS_ARM_WIDTH / 2)),
}
_MIN_OBJECT_SIZE = 4.0


# --------------------------------------------------------------------------
# Rasterisation: analytic geometry sampled at pixel centres
# --------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _patch_grid(patch):
    """Pixel-centre coordinates ``(x, y)``, each ``(patch, patch)`` (cached, read-only)."""
    centres = np.arange(patch) + 0.5
    x, y = np.meshgrid(centres, centres)  # x varies along columns, y along rows
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _shape_template(name, s, theta, offset):
    """Rasterise one shape in its own patch and crop it to its tight box.

    Parameters
    ----------
    name : str
        One of ``SHAPE_CLASSES``.
    s : float
        Object size in pixels (see the geometry constants).
    theta : float
        Rotation in radians (ignored for the circle).
    offset : ndarray, shape (2,)
        Sub-pixel position of the centre in [0, 1)^2, so that shapes are not
        all aligned to the pixel grid in the same way.

    Returns
    -------
    template : ndarray of bool, shape (h, w)
        The shape's pixels, cropped to their tight box (no empty border).
    """
    radius = _CIRCUMRADIUS[name] * s
    # Wide enough that no rotation or offset reaches the patch border.
    patch = int(np.ceil(2 * radius)) + 3
    x, y = _patch_grid(patch)
    cx, cy = patch / 2 + offset[0] - 0.5, patch / 2 + offset[1] - 0.5
    dx, dy = x - cx, y - cy
    # Coordinates in the shape's own frame (rotated by -theta).
    u = dx * np.cos(theta) + dy * np.sin(theta)
    v = -dx * np.sin(theta) + dy * np.cos(theta)
    if name == "circle":
        inside = dx**2 + dy**2 <= (s / 2) ** 2
    elif name == "square":
        half = _SQUARE_SIDE * s / 2
        inside = (np.abs(u) <= half) & (np.abs(v) <= half)
    elif name == "triangle":
        # An equilateral triangle is the intersection of three half-planes whose
        # outward normals are 120 degrees apart, at the inradius R/2.
        inradius = _TRIANGLE_CIRCUMRADIUS * s / 2
        inside = np.ones_like(u, dtype=bool)
        for phi in (np.pi / 2, np.pi / 2 + 2 * np.pi / 3, np.pi / 2 + 4 * np.pi / 3):
            inside &= u * np.cos(phi) + v * np.sin(phi) <= inradius
    elif name == "cross":
        half_len, half_width = _CROSS_ARM_LENGTH * s / 2, _CROSS_ARM_WIDTH * s / 2
        inside = ((np.abs(u) <= half_len) & (np.abs(v) <= half_width)) | (
            (np.abs(u) <= half_width) & (np.abs(v) <= half_len)
        )
    else:  # pragma: no cover - callers pass SHAPE_CLASSES only
        raise ValueError(f"unknown shape {name!r}")
    return crop_to_content(inside)


def _distractor_template(rng):
    """A small dot or a short thin stroke: clutter that is no class.

    Both are much smaller than the smallest object (a dot is at most ~3.4 px
    across, a stroke ~1.5 px thick), so size and outline tell them apart.

    Returns
    -------
    template : ndarray of bool, shape (h, w)
    """
    kind = rng.integers(2)
    offset = rng.random(2)
    if kind == 0:
        radius = rng.uniform(1.0, 1.7)
        patch = 6
        x, y = _patch_grid(patch)
        cx, cy = patch / 2 + offset[0] - 0.5, patch / 2 + offset[1] - 0.5
        inside = (x - cx) ** 2 + (y - cy) ** 2 <= radius**2
    else:
        length = rng.uniform(3.0, 7.0)
        half_width = rng.uniform(0.5, 0.75)
        angle = rng.uniform(0, np.pi)
        patch = int(np.ceil(length + 2 * half_width)) + 3
        x, y = _patch_grid(patch)
        cx, cy = patch / 2 + offset[0] - 0.5, patch / 2 + offset[1] - 0.5
        direction = np.array([np.cos(angle), np.sin(angle)])
        # Distance from each pixel centre to the segment (a capsule).
        t = np.clip((x - cx) * direction[0] + (y - cy) * direction[1], -length / 2, length / 2)
        inside = (x - cx - t * direction[0]) ** 2 + (y - cy - t * direction[1]) ** 2 <= half_width**2
    return crop_to_content(inside)



def _hsv_to_rgb(h, s, v):
    """Vectorised HSV -> RGB; inputs shape (k,) in [0, 1], output shape (k, 3).

    The closed form ``c = v - v s clip(min(t, 4 - t), 0, 1)`` with
    ``t = (n + 6 h) mod 6`` and ``n = 5, 3, 1`` for R, G, B.
    """
    t = (np.array([5.0, 3.0, 1.0]) + 6 * h[:, None]) % 6  # (k, 3)
    return v[:, None] * (1 - s[:, None] * np.clip(np.minimum(t, 4 - t), 0, 1))


def _saturated_colors(rng, k):
    """``k`` random vivid colours, shape (k, 3)."""
    return _hsv_to_rgb(rng.random(k), rng.uniform(0.7, 1.0, k), rng.uniform(0.7, 1.0, k))



# --------------------------------------------------------------------------
# Synthetic shapes and scenes
# --------------------------------------------------------------------------


def _sample_shape(rng, class_idx, object_size):
    s = rng.uniform(*object_size)
    theta = rng.uniform(0, 2 * np.pi)
    offset = rng.random(2)
    return _shape_template(SHAPE_CLASSES[class_idx], s, theta, offset)


def _shape_canvas(rng, size):
    """A smooth, softly tinted background, shape (3, size, size).

    Low saturation by design, so vivid object colours always stand out.
    """
    base = rng.uniform(0.2, 0.8)
    tint = rng.uniform(-0.08, 0.08, size=(3, 1, 1))
    return np.clip(base + tint + smooth_field(rng, size, 3, 0.15), 0.0, 1.0)


def _render_shapes_image(rng, size, templates, n_distractors, noise):
    """Place ``templates`` (one per object), add clutter, paint, add noise.

    Returns
    -------
    image : ndarray, shape (3, size, size)
    masks : ndarray of bool, shape (K, size, size)
    boxes : ndarray of int64, shape (K, 4)
    """
    # Placement: each object uniformly among the positions that keep it
    # SCENE_MIN_GAP px from the objects already placed, and (for all but the
    # last) that leave room for the next one.
    boxes = []
    for k, template in enumerate(templates):
        h, w = template.shape
        free = free_positions(h, w, size, boxes, SCENE_MIN_GAP)
        if k + 1 < len(templates):
            nh, nw = templates[k + 1].shape
            free &= _room_for_next(h, w, nh, nw, size)
        position = pick_position(rng, free)
        if position is None:
            raise RuntimeError(
                f"could not place {len(templates)} objects {SCENE_MIN_GAP} px apart in a "
                f"{size}x{size} image; increase size or reduce object_size"
            )
        x0, y0 = position
        boxes.append((x0, y0, x0 + w, y0 + h))

    masks = np.zeros((len(templates), size, size), dtype=bool)
    for k, (template, (x0, y0, x1, y1)) in enumerate(zip(templates, boxes)):
        masks[k, y0:y1, x0:x1] = template

    image = _shape_canvas(rng, size)
    # Distractors keep DISTRACTOR_MARGIN px from every object box, so they
    # never change an object's outline; they share the objects' colour range,
    # so colour alone never gives an object away.
    for _ in range(rng.integers(n_distractors[0], n_distractors[1] + 1)):
        template = _distractor_template(rng)
        color = _saturated_colors(rng, 1)[0]
        h, w = template.shape
        position = pick_position(rng, free_positions(h, w, size, boxes, DISTRACTOR_MARGIN))
        if position is None:
            continue
        x0, y0 = position
        region = image[:, y0 : y0 + h, x0 : x0 + w]
        region[:, template] = color[:, None]

    for mask in masks:
        candidates = _saturated_colors(rng, _COLOR_CANDIDATES)  # (k, 3)
        under = image[:, mask]  # (3, pixels): background beneath the object
        distance = np.sqrt(((candidates[:, :, None] - under[None]) ** 2).sum(axis=1)).min(axis=1)
        clear = np.flatnonzero(distance >= COLOR_MARGIN)
        color = candidates[clear[0] if clear.size else np.argmax(distance)]
        image[:, mask] = color[:, None]

    # Drawn even when noise == 0, so that noise-free renderings share every
    # other random draw (same objects, colours, clutter) with the noisy ones.
    image = np.clip(image + noise * rng.standard_normal(image.shape), 0.0, 1.0)
    return image, masks, np.array(boxes, dtype=np.int64)


def _room_for_next(h, w, nh, nw, size):
    """Positions of an ``(h, w)`` box that leave room for an ``(nh, nw)`` one.

    The next box fits beside (left/right) or above/below this one, with the
    scene gap, when the leftover width or height on one side is large enough.
    """
    y0 = np.arange(size - h + 1)[:, None]
    x0 = np.arange(size - w + 1)[None, :]
    gap = SCENE_MIN_GAP
    return (
        (x0 >= nw + gap)
        | (size - (x0 + w) >= nw + gap)
        | (y0 >= nh + gap)
        | (size - (y0 + h) >= nh + gap)
    )


def _max_template_width(object_size):
    """Upper bound on a shape template's width or height, in pixels."""
    diameter = 2 * max(_CIRCUMRADIUS.values()) * object_size[1]
    # A span of length d covers at most floor(d) + 1 pixel centres.
    return int(np.floor(diameter)) + 1


def _check_shape_args(n, seed, size, object_size, noise, n_distractors, dtype):
    n = check_n(n)
    rng = check_seed(seed)
    object_size = check_range(object_size, "object_size", _MIN_OBJECT_SIZE, integer=False)
    noise = check_float(noise, "noise", low=0.0, high=1.0)
    n_distractors = check_range(n_distractors, "n_distractors", 0, integer=True)
    dtype = check_float_dtype(dtype)
    return n, rng, object_size, noise, n_distractors, dtype


def shapes(
    n,
    seed=0,
    *,
    size=32,
    object_size=(10.0, 18.0),
    noise=0.04,
    n_distractors=(2, 5),
    dtype=np.float64,
):
    """Single-object images: one filled shape on a cluttered background.

    Each image holds one shape of class ``circle``, ``square``, ``triangle`` or
    ``cross`` (labels 0..3, ``SHAPE_CLASSES``), filled with a vivid random
    colour, at a random position (wholly inside the image), size and rotation,
    on a smooth low-saturation background with Gaussian pixel noise and a few
    distractors (dots, short strokes) in the same colours as the objects.

    Parameters
    ----------
    n : int
        Number of images, >= 1.
    seed : int or numpy.random.Generator
        Same seed, same arrays. A Generator is advanced.
    size : int
        Image height and width in pixels.
    object_size : float or (float, float)
        Range of the object size ``s`` in pixels, drawn uniformly, at least 4:
        a circle's diameter is s, a square's side 0.8 s, a triangle's
        circumradius 0.6 s, a cross's arms 1.1 s long and 0.4 s wide.
    noise : float
        Standard deviation of the Gaussian pixel noise (before clipping to [0, 1]).
    n_distractors : int or (int, int)
        Range of the number of distractors per image (inclusive). A distractor
        that finds no free spot is left out.
    dtype : float64 or float32
        dtype of ``images``.

    Returns
    -------
    Dataset
        ``images`` (n, 3, size, size) in [0, 1]; ``labels`` (n,) int64;
        ``boxes`` (n, 4) int64 ``(x0, y0, x1, y1)``, x1/y1 exclusive;
        ``masks`` (n, size, size) bool; ``class_names`` ``SHAPE_CLASSES``.

    Raises
    ------
    TypeError
        ``n`` is not an int, ``seed`` not an int or Generator, a bad dtype.
    ValueError
        ``n <= 0``, ``size`` too small for ``object_size``, bad ranges.

    Notes
    -----
    The mask is exactly the set of pixels painted in the object's colour
    (before noise): pixel ``(i, j)`` is inside when its centre
    ``(j + 0.5, i + 0.5)`` lies inside the shape. The object's colour is at
    least ``COLOR_MARGIN`` (RGB distance) from the background beneath it, and
    distractors stay ``DISTRACTOR_MARGIN`` px away from the object's box.
    """
    n, rng, object_size, noise, n_distractors, dtype = _check_shape_args(
        n, seed, size, object_size, noise, n_distractors, dtype
    )
    needed = _max_template_width(object_size)
    size = check_size(size, needed, f"an object of object_size up to {object_size[1]:g} px")

    images = np.empty((n, 3, size, size))
    labels = np.empty(n, dtype=np.int64)
    boxes = np.empty((n, 4), dtype=np.int64)
    masks = np.empty((n, size, size), dtype=bool)
    for i in range(n):
        labels[i] = rng.integers(len(SHAPE_CLASSES))
        template = _sample_shape(rng, labels[i], object_size)
        images[i], object_masks, object_boxes = _render_shapes_image(
            rng, size, [template], n_distractors, noise
        )
        masks[i], boxes[i] = object_masks[0], object_boxes[0]
    return Dataset(images.astype(dtype, copy=False), labels, list(SHAPE_CLASSES), boxes, masks, name="shapes")


def scenes(
    n,
    seed=0,
    *,
    size=48,
    object_size=(10.0, 18.0),
    noise=0.04,
    n_distractors=(2, 5),
    dtype=np.float64,
):
    """Two-object images: two shapes of different classes that never touch.

    Same drawing as :func:`shapes` (same object sizes, so a model trained on
    ``shapes`` sees familiar objects), with two objects per image whose
    classes are drawn without replacement. Their boxes are at least
    ``SCENE_MIN_GAP`` (= 2) background pixels apart along x or y, so their
    masks are disjoint and each mask is one whole object.

    Parameters
    ----------
    n : int
        Number of images, >= 1.
    seed : int or numpy.random.Generator
        Same seed, same arrays. A Generator is advanced.
    size : int
        Image height and width; at least two of the largest objects side by
        side plus the gap.
    object_size, noise, n_distractors, dtype
        As in :func:`shapes`.

    Returns
    -------
    Dataset
        ``images`` (n, 3, size, size); ``labels`` (n, 2) int64, two different
        classes; ``boxes`` (n, 2, 4) int64; ``masks`` (n, 2, size, size) bool,
        ``masks[i, k]`` the pixels of object ``labels[i, k]``.

    Notes
    -----
    Placement samples exactly rather than by trial and error: the first object
    goes uniformly among the positions that leave room for the second, the
    second uniformly among the positions at least ``SCENE_MIN_GAP`` px from
    the first. The size check makes such positions always exist; a
    RuntimeError says so if they ever do not.
    """
    n, rng, object_size, noise, n_distractors, dtype = _check_shape_args(
        n, seed, size, object_size, noise, n_distractors, dtype
    )
    width = _max_template_width(object_size)
    size = check_size(
        size,
        2 * width + SCENE_MIN_GAP,
        f"two objects of object_size up to {object_size[1]:g} px {SCENE_MIN_GAP} px apart",
    )

    images = np.empty((n, 3, size, size))
    labels = np.empty((n, 2), dtype=np.int64)
    boxes = np.empty((n, 2, 4), dtype=np.int64)
    masks = np.empty((n, 2, size, size), dtype=bool)
    for i in range(n):
        labels[i] = rng.choice(len(SHAPE_CLASSES), size=2, replace=False)
        templates = [_sample_shape(rng, c, object_size) for c in labels[i]]
        images[i], masks[i], boxes[i] = _render_shapes_image(rng, size, templates, n_distractors, noise)
    return Dataset(images.astype(dtype, copy=False), labels, list(SHAPE_CLASSES), boxes, masks, name="scenes")
