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

import importlib.resources
import numbers
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from minicam._validate import check_float, check_float_dtype, check_int

__all__ = [
    "Dataset",
    "shapes",
    "scenes",
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

SHAPE_CLASSES = ("circle", "square", "triangle", "cross")
DIGIT_CLASSES = tuple(str(d) for d in range(10))

# Minimum number of background pixel rows or columns between the boxes of the
# two objects of a scene: the objects never touch, so each mask is one object.
SCENE_MIN_GAP = 2
# Minimum number of pixels between a distractor's box and an object's box:
# distractors must not change an object's outline.
DISTRACTOR_MARGIN = 2
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

# Held-out share of the handwritten digits, per class; which digits is fixed
# by a hash of their index under this key (not by NumPy's generator, whose
# streams may change between versions: the split must never move, or test
# digits would leak into the bundled model's training).
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_KEY = 1998
DIGITS_FILE = "uci_digits.npz"
_N_UCI_DIGITS = 1797
# A placed digit's mask: its (upsampled) ink above this fraction of its maximum.
DIGIT_MASK_THRESHOLD = 0.25
_DIGIT_SPLITS = ("train", "test")


# --------------------------------------------------------------------------
# The dataset container
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """Images with labels, boxes and masks.

    Attributes
    ----------
    images : ndarray, shape (n, C, H, W), float64 (or float32)
        Pixel values in [0, 1].
    labels : ndarray of int64, shape (n,) or (n, K)
        Class indices into ``class_names``; ``(n, K)`` for K objects per image.
    class_names : list of str
        Name of each class, ``class_names[label]``.
    boxes : ndarray of int64, shape (n, 4) or (n, K, 4)
        ``(x0, y0, x1, y1)``, x1/y1 exclusive: the tight box of the mask.
    masks : ndarray of bool, shape (n, H, W) or (n, K, H, W)
        The object's pixels.
    source_index : ndarray of int64, shape (n,), or None
        For digits: the row of each sample's handwritten digit in
        ``data/uci_digits.npz``. None for the synthetic datasets.
    name : str
        The generator that made the dataset.

    Notes
    -----
    Fields cannot be reassigned, but the arrays are ordinary (writable)
    arrays: minicam never writes into them.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: list
    boxes: np.ndarray
    masks: np.ndarray
    source_index: np.ndarray = None
    name: str = "dataset"

    def __post_init__(self):
        images, labels, boxes, masks = self.images, self.labels, self.boxes, self.masks
        for field, value in (("images", images), ("labels", labels), ("boxes", boxes), ("masks", masks)):
            if not isinstance(value, np.ndarray):
                raise TypeError(f"Dataset.{field} must be a numpy.ndarray, got {type(value).__name__}")
        if images.ndim != 4:
            raise ValueError(f"Dataset.images must be 4-D (n, C, H, W), got shape {images.shape}")
        n, _, height, width = images.shape
        if labels.ndim not in (1, 2) or labels.shape[0] != n:
            raise ValueError(f"Dataset.labels must have shape ({n},) or ({n}, K), got {labels.shape}")
        per_object = labels.shape[1:]  # () for one object per image, (K,) for K
        if boxes.shape != (n, *per_object, 4):
            raise ValueError(f"Dataset.boxes must have shape {(n, *per_object, 4)}, got {boxes.shape}")
        if masks.shape != (n, *per_object, height, width):
            raise ValueError(
                f"Dataset.masks must have shape {(n, *per_object, height, width)}, got {masks.shape}"
            )
        if self.source_index is not None and (
            not isinstance(self.source_index, np.ndarray) or self.source_index.shape != (n,)
        ):
            raise ValueError(f"Dataset.source_index must be None or an ndarray of shape ({n},)")
        if labels.size and (labels.min() < 0 or labels.max() >= len(self.class_names)):
            raise ValueError(
                f"Dataset.labels must be in [0, {len(self.class_names)}) (one per class name), "
                f"got values in [{labels.min()}, {labels.max()}]"
            )

    def __len__(self):
        return self.images.shape[0]

    @property
    def num_classes(self):
        """Number of classes, ``len(class_names)``."""
        return len(self.class_names)

    @property
    def image_shape(self):
        """``(C, H, W)`` of one image."""
        return self.images.shape[1:]

    def subset(self, idx):
        """A new Dataset with the samples ``idx`` (copies, in that order).

        Parameters
        ----------
        idx : slice, sequence of int, or bool array of shape (n,)
            Which samples; negative ints count from the end.
        """
        n = len(self)
        if isinstance(idx, slice):
            idx = np.arange(n)[idx]
        idx = np.asarray(idx)
        if idx.dtype == bool:
            if idx.shape != (n,):
                raise ValueError(f"a boolean idx must have shape ({n},), got {idx.shape}")
            idx = np.flatnonzero(idx)
        elif idx.size == 0:
            idx = idx.astype(np.int64)
        elif not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"idx must be a slice, integers or a boolean mask, got dtype {idx.dtype}")
        if idx.ndim != 1:
            raise ValueError(f"idx must be 1-D, got shape {idx.shape}")
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(
                f"idx must be in [-{n}, {n}) for a dataset of {n} samples, got {idx.min()}..{idx.max()}"
            )
        return Dataset(
            images=self.images[idx],
            labels=self.labels[idx],
            class_names=list(self.class_names),
            boxes=self.boxes[idx],
            masks=self.masks[idx],
            source_index=None if self.source_index is None else self.source_index[idx],
            name=self.name,
        )

    def __getitem__(self, key):
        if isinstance(key, numbers.Integral) and not isinstance(key, bool):
            raise TypeError(
                f"index a Dataset with a slice or an index array (e.g. ds[{key}:{key}+1] or "
                f"ds.subset([{key}])), which keep the batch axis; got the int {key!r}"
            )
        return self.subset(key)

    def __repr__(self):
        lines = [
            f"Dataset({self.name!r}, n={len(self)},",
            f"  images={self.images.shape} {self.images.dtype}, labels={self.labels.shape},",
            f"  boxes={self.boxes.shape}, masks={self.masks.shape},",
        ]
        if self.source_index is not None:
            lines.append(f"  source_index={self.source_index.shape},")
        lines.append(f"  class_names={list(self.class_names)})")
        return "\n".join(lines)


# --------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------


def _check_n(n):
    return check_int(n, "n", minimum=1)


def _check_seed(seed):
    # Data must be reproducible: unlike layer initialisers, None is refused.
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int >= 0 or a numpy.random.Generator, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    return np.random.default_rng(int(seed))


def _check_range(value, name, minimum, integer):
    """``value`` as a ``(low, high)`` pair with ``minimum <= low <= high``."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be a number or a (low, high) pair, got {value!r}")
        low, high = value
    else:
        low = high = value
    check = (lambda v: check_int(v, name)) if integer else (lambda v: check_float(v, name))
    low, high = check(low), check(high)
    if not minimum <= low <= high:
        raise ValueError(f"{name} must satisfy {minimum} <= low <= high, got {value!r}")
    return low, high


def _check_size(size, needed, what):
    size = check_int(size, "size", minimum=1)
    if size < needed:
        raise ValueError(f"size must be at least {needed} to fit {what}, got {size!r}")
    return size


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
    return _crop_to_content(inside)


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
    return _crop_to_content(inside)


def _crop_to_content(mask):
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _mask_box(mask):
    """Tight ``(x0, y0, x1, y1)`` box of a non-empty 2-D bool mask, x1/y1 exclusive."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.int64)


def _free_positions(h, w, size, boxes, gap):
    """Where an ``(h, w)`` box may go without coming within ``gap`` px of ``boxes``.

    Returns
    -------
    free : ndarray of bool, shape (size - h + 1, size - w + 1)
        ``free[y0, x0]``: the box with top-left corner ``(x0, y0)`` is at least
        ``gap`` background rows or columns away from every box in ``boxes``.
    """
    y0 = np.arange(size - h + 1)[:, None]
    x0 = np.arange(size - w + 1)[None, :]
    free = np.ones((size - h + 1, size - w + 1), dtype=bool)
    for bx0, by0, bx1, by1 in boxes:
        # Two boxes are apart when one lies wholly to one side of the other.
        free &= (x0 >= bx1 + gap) | (x0 + w + gap <= bx0) | (y0 >= by1 + gap) | (y0 + h + gap <= by0)
    return free


def _pick_position(rng, free):
    """A uniformly random True cell ``(x0, y0)`` of ``free``, or None."""
    candidates = np.flatnonzero(free)
    if candidates.size == 0:
        return None
    y0, x0 = np.unravel_index(candidates[rng.integers(candidates.size)], free.shape)
    return int(x0), int(y0)


def _interp_matrix(n_in, n_out, mode):
    """Resampling matrix ``R``, shape (n_out, n_in): ``out = R @ signal``.

    ``"bilinear"`` uses half-pixel centres with edge clamping
    (``align_corners=False`` in PyTorch); ``"nearest"`` takes source index
    ``floor(dst * n_in / n_out)``. These are the rules of ``minicam.upsample``.
    """
    matrix = np.zeros((n_out, n_in))
    rows = np.arange(n_out)
    if mode == "nearest":
        matrix[rows, (rows * n_in) // n_out] = 1.0
        return matrix
    src = np.clip((rows + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, n_in - 1)
    frac = src - i0
    np.add.at(matrix, (rows, i0), 1 - frac)
    np.add.at(matrix, (rows, i1), frac)
    return matrix


def _smooth_field(rng, size, channels, amplitude, grid=3):
    """Low-frequency random field, shape (channels, size, size), in [-amplitude, amplitude]."""
    interp = _interp_matrix(grid, size, "bilinear")
    control = rng.uniform(-amplitude, amplitude, size=(channels, grid, grid))
    return interp @ control @ interp.T  # (channels, size, size)


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
    return np.clip(base + tint + _smooth_field(rng, size, 3, 0.15), 0.0, 1.0)


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
        free = _free_positions(h, w, size, boxes, SCENE_MIN_GAP)
        if k + 1 < len(templates):
            nh, nw = templates[k + 1].shape
            free &= _room_for_next(h, w, nh, nw, size)
        position = _pick_position(rng, free)
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
        position = _pick_position(rng, _free_positions(h, w, size, boxes, DISTRACTOR_MARGIN))
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
    n = _check_n(n)
    rng = _check_seed(seed)
    object_size = _check_range(object_size, "object_size", _MIN_OBJECT_SIZE, integer=False)
    noise = check_float(noise, "noise", low=0.0, high=1.0)
    n_distractors = _check_range(n_distractors, "n_distractors", 0, integer=True)
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
    size = _check_size(size, needed, f"an object of object_size up to {object_size[1]:g} px")

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
    size = _check_size(
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


# --------------------------------------------------------------------------
# Handwritten digits
# --------------------------------------------------------------------------


def _digits_resource():
    """Where ``uci_digits.npz`` is: the installed ``minicam.data``, else ``<repo>/data``."""
    try:
        resource = importlib.resources.files("minicam.data") / DIGITS_FILE
        if resource.is_file():
            return resource
    except (ImportError, TypeError, ValueError, OSError):
        pass  # a source checkout has no minicam.data package
    path = Path(__file__).resolve().parent.parent / "data" / DIGITS_FILE
    if path.is_file():
        return path
    raise FileNotFoundError(
        f"{DIGITS_FILE} not found: looked in the installed package minicam.data and in {path.parent}"
    )


@lru_cache(maxsize=1)
def load_uci_digits():
    """The 1797 handwritten 8x8 UCI digits bundled in ``data/uci_digits.npz``.

    Returns
    -------
    images : ndarray of uint8, shape (1797, 8, 8)
        Ink counts 0..16 (each pixel counts the on-pixels of a 4x4 block of
        the original 32x32 bitmap).
    labels : ndarray of int64, shape (1797,)
        The digit, 0..9.

    Notes
    -----
    Loaded without pickle and checked; the arrays are read-only because they
    are cached and shared.
    """
    with _digits_resource().open("rb") as f, np.load(f, allow_pickle=False) as npz:
        images, labels = npz["images"], npz["labels"]
    if images.shape != (_N_UCI_DIGITS, 8, 8) or labels.shape != (_N_UCI_DIGITS,):
        raise ValueError(
            f"{DIGITS_FILE} is corrupt: expected images (1797, 8, 8) and labels (1797,), "
            f"got {images.shape} and {labels.shape}"
        )
    if images.min() < 0 or images.max() > 16 or labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{DIGITS_FILE} is corrupt: expected images in 0..16 and labels in 0..9")
    images, labels = images.astype(np.uint8), labels.astype(np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def _splitmix64(x):
    """A fixed integer hash (SplitMix64), for a split that never changes."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _check_split(split):
    if not isinstance(split, str) or split not in _DIGIT_SPLITS:
        raise ValueError(f"split must be one of {list(_DIGIT_SPLITS)}, got {split!r}")
    return split


def digit_split_indices(split):
    """Rows of ``uci_digits.npz`` in the ``"train"`` or ``"test"`` split.

    Within each class, the digits are ordered by a fixed hash of their row
    index (keyed by ``DIGITS_SPLIT_KEY``) and the first
    ``round(DIGITS_TEST_FRACTION * class_count)`` are held out for ``"test"``:
    359 of the 1797, every class in both splits. The split depends on no
    seed and no NumPy version.

    Parameters
    ----------
    split : {"train", "test"}

    Returns
    -------
    ndarray of int64, shape (1438,) for train or (359,) for test
        Sorted row indices.

    Notes
    -----
    The file records no writer, so a held-out digit is unseen handwriting of
    a possibly seen writer (the 1797 digits come from 13 writers).
    """
    split = _check_split(split)
    _, labels = load_uci_digits()
    rows = np.arange(labels.size)
    keys = _splitmix64(rows ^ DIGITS_SPLIT_KEY)
    test = np.zeros(labels.size, dtype=bool)
    for c in range(10):
        members = rows[labels == c]
        held_out = int(round(DIGITS_TEST_FRACTION * members.size))
        test[members[np.argsort(keys[members], kind="stable")[:held_out]]] = True
    return np.flatnonzero(test if split == "test" else ~test).astype(np.int64)


def _check_scales(scale):
    values = scale if isinstance(scale, (tuple, list)) else (scale,)
    if len(values) == 0:
        raise ValueError(f"scale must be an int or a non-empty sequence of ints, got {scale!r}")
    return tuple(check_int(v, "scale", minimum=1) for v in values)


def cluttered_digits(
    n,
    seed=0,
    split="train",
    *,
    size=32,
    scale=2,
    interpolation="bilinear",
    noise=0.05,
    n_distractors=(2, 4),
    dtype=np.float64,
):
    """Real handwritten digits placed on a larger, noisy, cluttered canvas.

    Each image holds one UCI 8x8 digit, upsampled by ``scale`` (8x8 -> 16x16 by
    default) and placed at a random position, bright ink on a dark smooth
    background with Gaussian noise, next to a few dimmer fragments (3x3 to
    5x5 crops, upsampled alike) of *other* digits of the same split.

    Parameters
    ----------
    n : int
        Number of images, >= 1.
    seed : int or numpy.random.Generator
        Same seed, same arrays. A Generator is advanced.
    split : {"train", "test"}
        Which handwritten digits to draw from: ``"test"`` uses only the fixed
        held-out 20% (:func:`digit_split_indices`), so accuracy on it is on
        handwriting no ``"train"`` image contains. Fragments come from the
        same split.
    size : int
        Canvas height and width, at least ``8 * max(scale)``.
    scale : int or sequence of int
        Upsampling factor of the 8x8 digit, or factors to draw from uniformly.
    interpolation : {"bilinear", "nearest"}
        Upsampling rule (half-pixel centres, as ``minicam.upsample``).
    noise : float
        Standard deviation of the Gaussian pixel noise.
    n_distractors : int or (int, int)
        Range of the number of fragments per image (inclusive).
    dtype : float64 or float32
        dtype of ``images``.

    Returns
    -------
    Dataset
        ``images`` (n, 1, size, size) in [0, 1]; ``labels`` (n,) int64;
        ``class_names`` ``["0", ..., "9"]``; ``boxes`` (n, 4) int64;
        ``masks`` (n, size, size) bool; ``source_index`` (n,) int64, the row
        of each digit in ``data/uci_digits.npz``.

    Notes
    -----
    The mask is the placed digit's upsampled ink above
    ``DIGIT_MASK_THRESHOLD`` (0.25) of its maximum; the box is its tight box.
    Fragments stay ``DISTRACTOR_MARGIN`` px away from that box.
    """
    n = _check_n(n)
    rng = _check_seed(seed)
    split = _check_split(split)
    scales = _check_scales(scale)
    if interpolation not in ("bilinear", "nearest"):
        raise ValueError(f"interpolation must be 'bilinear' or 'nearest', got {interpolation!r}")
    noise = check_float(noise, "noise", low=0.0, high=1.0)
    n_distractors = _check_range(n_distractors, "n_distractors", 0, integer=True)
    dtype = check_float_dtype(dtype)
    size = _check_size(size, 8 * max(scales), f"a digit upsampled by scale {max(scales)} (8 * scale px)")

    digits, digit_labels = load_uci_digits()
    pool = digit_split_indices(split)
    ink = digits.astype(np.float64) / 16.0
    interp = {(k, m): _interp_matrix(k, k * m, interpolation) for m in scales for k in (3, 4, 5, 8)}

    images = np.empty((n, 1, size, size))
    labels = np.empty(n, dtype=np.int64)
    boxes = np.empty((n, 4), dtype=np.int64)
    masks = np.zeros((n, size, size), dtype=bool)
    source = np.empty(n, dtype=np.int64)
    for i in range(n):
        source[i] = pool[rng.integers(pool.size)]
        labels[i] = digit_labels[source[i]]
        m = scales[rng.integers(len(scales))]
        up = interp[8, m]
        alpha = up @ ink[source[i]] @ up.T  # (8m, 8m) ink coverage in [0, 1]
        side = 8 * m
        x0, y0 = int(rng.integers(size - side + 1)), int(rng.integers(size - side + 1))
        masks[i, y0 : y0 + side, x0 : x0 + side] = alpha > DIGIT_MASK_THRESHOLD * alpha.max()
        boxes[i] = _mask_box(masks[i])

        # Dark, smooth background and bright ink, as in MNIST; the contrast
        # of full ink is at least 0.75 - (0.25 + 0.1) = 0.4 before noise.
        background = rng.uniform(0.0, 0.25)
        canvas = np.clip(background + _smooth_field(rng, size, 1, 0.1)[0], 0.0, 1.0)
        brightness = rng.uniform(0.75, 1.0)
        for _ in range(rng.integers(n_distractors[0], n_distractors[1] + 1)):
            k = int(rng.integers(3, 6))
            # A crop with some ink: most 8x8 digits have empty borders.
            for _attempt in range(5):
                other = pool[rng.integers(pool.size)]
                r0, c0 = rng.integers(0, 8 - k + 1, size=2)
                crop = ink[other, r0 : r0 + k, c0 : c0 + k]
                if crop.max() >= 0.5:
                    break
            # Dimmer than the digit: clutter that looks like handwriting but
            # never outshines the object.
            a = rng.uniform(0.3, 0.6) * (interp[k, m] @ crop @ interp[k, m].T)  # (k m, k m)
            position = _pick_position(rng, _free_positions(k * m, k * m, size, [boxes[i]], DISTRACTOR_MARGIN))
            if position is None:
                continue
            fx, fy = position
            region = canvas[fy : fy + k * m, fx : fx + k * m]
            canvas[fy : fy + k * m, fx : fx + k * m] = region * (1 - a) + brightness * a
        region = canvas[y0 : y0 + side, x0 : x0 + side]
        canvas[y0 : y0 + side, x0 : x0 + side] = region * (1 - alpha) + brightness * alpha
        images[i, 0] = np.clip(canvas + noise * rng.standard_normal(canvas.shape), 0.0, 1.0)
    return Dataset(
        images.astype(dtype, copy=False),
        labels,
        list(DIGIT_CLASSES),
        boxes,
        masks,
        source_index=source,
        name="cluttered_digits",
    )


# --------------------------------------------------------------------------
# By name (for the command line)
# --------------------------------------------------------------------------

DATASETS = {
    "shapes": shapes,
    "scenes": scenes,
    "digits": cluttered_digits,
    "cluttered_digits": cluttered_digits,
}


def load_dataset(name, n, seed=0, **kwargs):
    """Generate the dataset registered under ``name`` in ``DATASETS``.

    Parameters
    ----------
    name : str
        ``"shapes"``, ``"scenes"`` or ``"digits"`` (alias ``"cluttered_digits"``).
    n : int
        Number of images.
    seed : int or numpy.random.Generator
    **kwargs
        Passed on to the generator (e.g. ``split="test"`` for digits); an
        unknown keyword raises TypeError.

    Returns
    -------
    Dataset
    """
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"name must be one of {sorted(DATASETS)}, got {name!r}")
    return DATASETS[name](n, seed, **kwargs)
