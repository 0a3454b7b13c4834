"""The dataset container and the drawing/placement helpers every generator shares.

- :class:`Dataset`: images, labels, boxes and masks, with the conventions of
  :mod:`minicam.datasets` (NCHW in [0, 1]; boxes ``(x0, y0, x1, y1)`` with
  x1/y1 exclusive, the tight box of the mask).
- Argument checks of the generators (``n``, ``seed``, ranges, sizes).
- Placement: free positions at a margin from existing boxes, a mask's box.
- Backgrounds: a smooth random field (bilinear interpolation of a coarse grid).
"""

import numbers
from dataclasses import dataclass

import numpy as np

from .._validate import check_float, check_int

__all__ = [
    "Dataset",
    "DISTRACTOR_MARGIN",
    "check_n",
    "check_seed",
    "check_range",
    "check_size",
    "crop_to_content",
    "mask_box",
    "free_positions",
    "pick_position",
    "interp_matrix",
    "smooth_field",
]

# Minimum number of pixels between a distractor's box and an object's box:
# distractors must not change an object's outline.
DISTRACTOR_MARGIN = 2

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


def check_n(n):
    return check_int(n, "n", minimum=1)


def check_seed(seed):
    # Data must be reproducible: unlike layer initialisers, None is refused.
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int >= 0 or a numpy.random.Generator, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    return np.random.default_rng(int(seed))


def check_range(value, name, minimum, integer):
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


def check_size(size, needed, what):
    size = check_int(size, "size", minimum=1)
    if size < needed:
        raise ValueError(f"size must be at least {needed} to fit {what}, got {size!r}")
    return size



# --------------------------------------------------------------------------
# Placement and backgrounds
# --------------------------------------------------------------------------


def crop_to_content(mask):
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def mask_box(mask):
    """Tight ``(x0, y0, x1, y1)`` box of a non-empty 2-D bool mask, x1/y1 exclusive."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.int64)


def free_positions(h, w, size, boxes, gap):
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


def pick_position(rng, free):
    """A uniformly random True cell ``(x0, y0)`` of ``free``, or None."""
    candidates = np.flatnonzero(free)
    if candidates.size == 0:
        return None
    y0, x0 = np.unravel_index(candidates[rng.integers(candidates.size)], free.shape)
    return int(x0), int(y0)


def interp_matrix(n_in, n_out, mode):
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


def smooth_field(rng, size, channels, amplitude, grid=3):
    """Low-frequency random field, shape (channels, size, size), in [-amplitude, amplitude]."""
    interp = interp_matrix(grid, size, "bilinear")
    control = rng.uniform(-amplitude, amplitude, size=(channels, grid, grid))
    return interp @ control @ interp.T  # (channels, size, size)


