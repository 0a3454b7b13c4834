"""Cluttered handwritten digits: real UCI 8x8 digits placed on a noisy canvas.

:func:`cluttered_digits` scales a handwritten digit up and places it at
random on a noisy grayscale canvas among fragments of other digits. A fixed
20% of the 1797 handwritten digits (:func:`digit_split_indices`) never appear
in the ``"train"`` split.
"""

from functools import lru_cache

import numpy as np

from .._resources import bundled_file
from .._validate import check_float, check_float_dtype, check_int
from .base import (
    DISTRACTOR_MARGIN,
    Dataset,
    check_n,
    check_range,
    check_seed,
    check_size,
    free_positions,
    interp_matrix,
    mask_box,
    pick_position,
    smooth_field,
)

__all__ = [
    "cluttered_digits",
    "load_uci_digits",
    "digit_split_indices",
    "DIGIT_CLASSES",
    "DIGITS_TEST_FRACTION",
    "DIGITS_SPLIT_KEY",
    "DIGIT_MASK_THRESHOLD",
]

DIGIT_CLASSES = tuple(str(d) for d in range(10))

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
    with bundled_file(DIGITS_FILE).open("rb") as f, np.load(f, allow_pickle=False) as npz:
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
    n = check_n(n)
    rng = check_seed(seed)
    split = _check_split(split)
    scales = _check_scales(scale)
    if interpolation not in ("bilinear", "nearest"):
        raise ValueError(f"interpolation must be 'bilinear' or 'nearest', got {interpolation!r}")
    noise = check_float(noise, "noise", low=0.0, high=1.0)
    n_distractors = check_range(n_distractors, "n_distractors", 0, integer=True)
    dtype = check_float_dtype(dtype)
    size = check_size(size, 8 * max(scales), f"a digit upsampled by scale {max(scales)} (8 * scale px)")

    digits, digit_labels = load_uci_digits()
    pool = digit_split_indices(split)
    ink = digits.astype(np.float64) / 16.0
    interp = {(k, m): interp_matrix(k, k * m, interpolation) for m in scales for k in (3, 4, 5, 8)}

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
        boxes[i] = mask_box(masks[i])

        # Dark, smooth background and bright ink, as in MNIST; the contrast
        # of full ink is at least 0.75 - (0.25 + 0.1) = 0.4 before noise.
        background = rng.uniform(0.0, 0.25)
        canvas = np.clip(background + smooth_field(rng, size, 1, 0.1)[0], 0.0, 1.0)
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
            position = pick_position(rng, free_positions(k * m, k * m, size, [boxes[i]], DISTRACTOR_MARGIN))
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
