"""Tests for minicam.datasets: determinism, fields, and that boxes and masks
really mark the drawn objects."""

import numpy as np
import pytest

from minicam._resources import bundled_file
from minicam.datasets import digits as digits_module
from minicam.datasets import synthetic as shapes_module
from minicam.datasets import (
    COLOR_MARGIN,
    DIGIT_MASK_THRESHOLD,
    DIGITS_TEST_FRACTION,
    DISTRACTOR_MARGIN,
    SCENE_MIN_GAP,
    SHAPE_CLASSES,
    Dataset,
    cluttered_digits,
    digit_split_indices,
    load_dataset,
    load_uci_digits,
    scenes,
    shapes,
)

GENERATORS = {
    "shapes": lambda n, seed, **kw: shapes(n, seed, **kw),
    "scenes": lambda n, seed, **kw: scenes(n, seed, **kw),
    "digits": lambda n, seed, **kw: cluttered_digits(n, seed, **kw),
    "digits-test": lambda n, seed, **kw: cluttered_digits(n, seed, split="test", **kw),
}


def tight_box(mask):
    """(x0, y0, x1, y1) of a 2-D bool mask, written independently of the module."""
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])


def ring(mask):
    """Pixels 4-adjacent to ``mask`` but not in it."""
    grown = mask.copy()
    grown[1:] |= mask[:-1]
    grown[:-1] |= mask[1:]
    grown[:, 1:] |= mask[:, :-1]
    grown[:, :-1] |= mask[:, 1:]
    return grown & ~mask


def as_objects(ds):
    """Masks (N, H, W), boxes (N, 4) and labels (N,) with one row per object."""
    h, w = ds.masks.shape[-2:]
    return ds.masks.reshape(-1, h, w), ds.boxes.reshape(-1, 4), ds.labels.reshape(-1)


# ---------------------------------------------------------------- determinism


@pytest.mark.parametrize("name", list(GENERATORS))
def test_same_seed_same_arrays_other_seed_other_arrays(name):
    make = GENERATORS[name]
    a, b, c = make(6, 7), make(6, 7), make(6, 8)
    for field in ("images", "labels", "boxes", "masks"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.images, c.images)
    assert not np.array_equal(a.masks, c.masks)


@pytest.mark.parametrize("name", list(GENERATORS))
def test_generator_seed_matches_int_seed_and_is_advanced(name):
    make = GENERATORS[name]
    rng = np.random.default_rng(5)
    first, second = make(4, rng), make(4, rng)
    np.testing.assert_array_equal(first.images, make(4, 5).images)
    assert not np.array_equal(first.images, second.images)


@pytest.mark.parametrize("name", list(GENERATORS))
def test_fewer_images_are_a_prefix_of_more(name):
    make = GENERATORS[name]
    small, large = make(3, 11), make(7, 11)
    np.testing.assert_array_equal(small.images, large.images[:3])
    np.testing.assert_array_equal(small.boxes, large.boxes[:3])


# ---------------------------------------------------------------- fields


@pytest.mark.parametrize(
    "name, channels, size, per_image, n_classes",
    [
        ("shapes", 3, 32, (), 4),
        ("scenes", 3, 48, (2,), 4),
        ("digits", 1, 32, (), 10),
        ("digits-test", 1, 32, (), 10),
    ],
)
def test_fields_have_documented_shapes_dtypes_and_ranges(name, channels, size, per_image, n_classes):
    n = 10
    ds = GENERATORS[name](n, 0)
    assert isinstance(ds, Dataset) and len(ds) == n
    assert ds.images.shape == (n, channels, size, size) and ds.images.dtype == np.float64
    assert ds.images.min() >= 0.0 and ds.images.max() <= 1.0 and np.isfinite(ds.images).all()
    assert ds.labels.shape == (n, *per_image) and ds.labels.dtype == np.int64
    assert ds.labels.min() >= 0 and ds.labels.max() < n_classes
    assert isinstance(ds.class_names, list) and len(ds.class_names) == n_classes == ds.num_classes
    assert all(isinstance(c, str) for c in ds.class_names)
    assert ds.boxes.shape == (n, *per_image, 4) and np.issubdtype(ds.boxes.dtype, np.integer)
    assert ds.masks.shape == (n, *per_image, size, size) and ds.masks.dtype == bool
    x0, y0, x1, y1 = np.moveaxis(ds.boxes, -1, 0)
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x1 <= size).all() and (y1 <= size).all()
    assert (x1 > x0).all() and (y1 > y0).all()


def test_class_names():
    assert shapes(2).class_names == ["circle", "square", "triangle", "cross"]
    assert scenes(2).class_names == list(SHAPE_CLASSES)
    assert cluttered_digits(2).class_names == [str(d) for d in range(10)]


@pytest.mark.parametrize("name", ["shapes", "scenes", "digits"])
def test_float32_images(name):
    ds64 = GENERATORS[name](3, 2)
    ds32 = GENERATORS[name](3, 2, dtype=np.float32)
    assert ds32.images.dtype == np.float32
    np.testing.assert_allclose(ds32.images, ds64.images, atol=1e-6)
    np.testing.assert_array_equal(ds32.masks, ds64.masks)


def test_every_shape_class_is_drawn():
    assert set(shapes(60, 0).labels) == set(range(len(SHAPE_CLASSES)))


def test_other_sizes():
    ds = shapes(3, 0, size=40, object_size=12)
    assert ds.images.shape == (3, 3, 40, 40)
    dg = cluttered_digits(3, 0, size=28, scale=3)
    assert dg.images.shape == (3, 1, 28, 28)
    # A digit of 8 * 3 = 24 px has a box of at most 24 px.
    assert (dg.boxes[:, 2:] - dg.boxes[:, :2]).max() <= 24


# ---------------------------------------------------------------- boxes and masks


@pytest.mark.parametrize("name", list(GENERATORS))
def test_box_is_tight_box_of_mask(name):
    masks, boxes, _ = as_objects(GENERATORS[name](20, 3))
    for mask, box in zip(masks, boxes):
        np.testing.assert_array_equal(box, tight_box(mask))


@pytest.mark.parametrize("make, n", [(shapes, 400), (scenes, 100)])
def test_mask_is_exactly_the_pixels_painted_in_the_object_colour(make, n):
    # Many images: an object colour too close to its background is rare
    # (about 1 in 50 without the COLOR_MARGIN check), and must never happen.
    ds = make(n, 4, noise=0.0)
    h, w = ds.masks.shape[-2:]
    images = np.repeat(ds.images, ds.labels[0].size, axis=0)  # one image per object
    for image, mask in zip(images, ds.masks.reshape(-1, h, w)):
        inside = image[:, mask]  # (3, pixels)
        color = inside[:, :1]
        # Every mask pixel has the one object colour ...
        np.testing.assert_array_equal(inside, np.broadcast_to(color, inside.shape))
        # ... and every pixel next to the mask is far from it: a mask off by
        # one pixel would put object-coloured pixels in the ring. (The margin
        # holds for the background under the object; the smooth background
        # changes by a few hundredths from there to the ring.)
        outside = image[:, ring(mask)]
        assert np.sqrt(((outside - color) ** 2).sum(axis=0)).min() > COLOR_MARGIN - 0.05


def test_noise_changes_pixels_only():
    clean, noisy = shapes(20, 6, noise=0.0), shapes(20, 6, noise=0.05)
    np.testing.assert_array_equal(clean.masks, noisy.masks)
    np.testing.assert_array_equal(clean.labels, noisy.labels)
    diff = noisy.images - clean.images
    assert 0.02 < diff.std() < 0.06
    assert np.abs(diff).max() < 0.05 * 6


def _sharp_edges_away_from_objects(ds, threshold=0.2):
    """Per image: does any pixel pair far from every object differ by > threshold?"""
    found = []
    for image, boxes in zip(ds.images, ds.boxes.reshape(len(ds), -1, 4)):
        jump = np.zeros(image.shape[1:], dtype=bool)
        jump[:, 1:] |= np.abs(np.diff(image, axis=2)).max(axis=0) > threshold
        jump[1:, :] |= np.abs(np.diff(image, axis=1)).max(axis=0) > threshold
        for x0, y0, x1, y1 in boxes:
            jump[max(y0 - 1, 0) : y1 + 1, max(x0 - 1, 0) : x1 + 1] = False
        found.append(jump.any())
    return np.array(found)


def test_clutter_is_there_and_away_from_objects():
    # A smooth background has no sharp edges: they come from distractors only.
    assert not _sharp_edges_away_from_objects(shapes(30, 9, noise=0.0, n_distractors=0)).any()
    assert _sharp_edges_away_from_objects(shapes(30, 9, noise=0.0)).mean() > 0.9
    assert _sharp_edges_away_from_objects(scenes(10, 9, noise=0.0)).mean() > 0.9
    # Distractors keep DISTRACTOR_MARGIN px from the object box: around the
    # object, up to that margin, there is smooth background only.
    ds = shapes(30, 10, noise=0.0, n_distractors=(5, 5))
    m = DISTRACTOR_MARGIN
    for image, mask, (x0, y0, x1, y1) in zip(ds.images, ds.masks, ds.boxes):
        near = np.zeros_like(mask)
        near[max(y0 - m, 0) : y1 + m, max(x0 - m, 0) : x1 + m] = True
        background = near & ~mask & ~ring(mask)
        both_x = background[:, 1:] & background[:, :-1]
        both_y = background[1:] & background[:-1]
        assert np.abs(np.diff(image, axis=2)).max(axis=0)[both_x].max() < 0.2
        assert np.abs(np.diff(image, axis=1)).max(axis=0)[both_y].max() < 0.2


def test_object_sizes_follow_object_size():
    small = shapes(30, 1, object_size=(10, 10), noise=0.0)
    large = shapes(30, 1, object_size=(18, 18), noise=0.0)
    assert small.masks.sum(axis=(1, 2)).mean() < 0.5 * large.masks.sum(axis=(1, 2)).mean()
    for ds, s in ((small, 10), (large, 18)):
        extent = np.maximum(ds.boxes[:, 2] - ds.boxes[:, 0], ds.boxes[:, 3] - ds.boxes[:, 1])
        # No shape is wider than its circumcircle (at most 1.2 s, the triangle).
        assert extent.max() <= int(1.2 * s) + 1
        assert extent.min() >= 0.7 * s


# ---------------------------------------------------------------- shape geometry


def test_templates_match_their_geometry():
    offset = np.array([0.3, 0.3])  # keeps pixel centres off the edges
    square = shapes_module._shape_template("square", 10.0, 0.0, offset)  # side 8
    assert square.shape == (8, 8) and square.all()
    cross = shapes_module._shape_template("cross", 10.0, 0.0, offset)  # arms 11 x 4
    assert cross.shape == (11, 11) and cross.sum() == 2 * 11 * 4 - 4 * 4
    assert not cross[:3, :3].any() and cross[3:7, :].all() and cross[:, 3:7].all()
    triangle = shapes_module._shape_template("triangle", 10.0, 0.0, offset)
    rows = triangle.sum(axis=1)
    assert rows[-1] == triangle.shape[1] and rows[0] <= 2  # apex up, base down
    assert (np.diff(rows) >= 0).all()
    circle = shapes_module._shape_template("circle", 16.0, 0.0, np.array([0.5, 0.5]))  # centred
    assert abs(circle.sum() - np.pi * 8**2) < 2 * np.pi * 8 * 0.5
    np.testing.assert_array_equal(circle, circle[::-1])
    np.testing.assert_array_equal(circle, circle.T)
    # Rotating a square by a quarter turn gives the same square.
    quarter = shapes_module._shape_template("square", 10.0, np.pi / 2, offset)
    np.testing.assert_array_equal(quarter, square)


# ---------------------------------------------------------------- scenes


def test_scenes_two_classes_disjoint_and_apart():
    sc = scenes(60, 12)
    assert (sc.labels[:, 0] != sc.labels[:, 1]).all()
    assert not (sc.masks[:, 0] & sc.masks[:, 1]).any()
    assert sc.masks.any(axis=(2, 3)).all()
    a, b = sc.boxes[:, 0], sc.boxes[:, 1]
    gap_x = np.maximum(b[:, 0] - a[:, 2], a[:, 0] - b[:, 2])
    gap_y = np.maximum(b[:, 1] - a[:, 3], a[:, 1] - b[:, 3])
    assert (np.maximum(gap_x, gap_y) >= SCENE_MIN_GAP).all()
    # Objects are not always in the same order or arrangement.
    assert len({tuple(p) for p in sc.labels}) > 6
    assert (gap_x >= SCENE_MIN_GAP).any() and (gap_y >= SCENE_MIN_GAP).any()


def test_scenes_fit_the_largest_objects_in_the_smallest_allowed_size():
    sc = scenes(20, 0, object_size=(18, 18), size=48)
    assert (sc.labels[:, 0] != sc.labels[:, 1]).all()


# ---------------------------------------------------------------- digits


def test_uci_digits_file():
    images, labels = load_uci_digits()
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8
    assert labels.shape == (1797,) and labels.dtype == np.int64
    assert images.min() == 0 and images.max() == 16
    # The UCI test set's class counts.
    np.testing.assert_array_equal(np.bincount(labels), [178, 182, 177, 183, 181, 182, 181, 179, 174, 180])
    assert not images.flags.writeable and not labels.flags.writeable
    with np.load(bundled_file(digits_module.DIGITS_FILE), allow_pickle=False) as npz:
        assert set(npz.files) == {"images", "labels"}


def test_digit_split_is_fixed_disjoint_and_stratified():
    train, test = digit_split_indices("train"), digit_split_indices("test")
    _, labels = load_uci_digits()
    assert np.intersect1d(train, test).size == 0
    np.testing.assert_array_equal(np.union1d(train, test), np.arange(1797))
    assert abs(test.size / 1797 - DIGITS_TEST_FRACTION) < 0.005
    for c in range(10):
        share = np.mean(labels[test] == c) / np.mean(labels == c)
        assert 0.9 < share < 1.1  # each class keeps its share in the test split
    assert set(labels[train]) == set(labels[test]) == set(range(10))
    # Fixed regardless of any seed: recomputing gives the same rows, and a
    # hash of them guards against the split silently moving.
    np.testing.assert_array_equal(test, digit_split_indices("test"))
    assert test.size == 359 and int(test.sum()) == 313034


@pytest.mark.parametrize("split", ["train", "test"])
def test_digits_come_only_from_their_split(split):
    dg = cluttered_digits(300, 13, split=split)
    pool = digit_split_indices(split)
    assert np.isin(dg.source_index, pool).all()
    np.testing.assert_array_equal(dg.labels, load_uci_digits()[1][dg.source_index])
    assert set(dg.labels) == set(range(10))


def _upsample2_bilinear(image):
    """8x8 -> 16x16, half-pixel centres, edge clamped: out[2k] = 3/4 x[k] + 1/4 x[k-1]."""
    def along_rows(a):
        prev = np.concatenate([a[:1], a[:-1]])
        nxt = np.concatenate([a[1:], a[-1:]])
        out = np.empty((2 * a.shape[0],) + a.shape[1:])
        out[0::2], out[1::2] = 0.75 * a + 0.25 * prev, 0.75 * a + 0.25 * nxt
        return out
    return along_rows(along_rows(image).T).T


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_digit_mask_is_the_thresholded_source_digit(interpolation):
    dg = cluttered_digits(30, 14, scale=2, interpolation=interpolation)
    images, _ = load_uci_digits()
    for mask, (x0, y0, x1, y1), row in zip(dg.masks, dg.boxes, dg.source_index):
        ink = images[row] / 16.0
        up = np.kron(ink, np.ones((2, 2))) if interpolation == "nearest" else _upsample2_bilinear(ink)
        expected = up > DIGIT_MASK_THRESHOLD * up.max()
        ex0, ey0, ex1, ey1 = tight_box(expected)
        np.testing.assert_array_equal(mask[y0:y1, x0:x1], expected[ey0:ey1, ex0:ex1])
        assert mask.sum() == expected.sum()  # nothing outside the box


def test_digit_is_bright_on_dark():
    dg = cluttered_digits(30, 15, noise=0.0, n_distractors=0)
    for image, mask in zip(dg.images[:, 0], dg.masks):
        assert image[mask].mean() > image[~mask].mean() + 0.15
        assert image[mask].max() >= 0.7


def test_digit_scale_choices():
    dg = cluttered_digits(40, 16, size=32, scale=(2, 3), n_distractors=0)
    heights = dg.boxes[:, 3] - dg.boxes[:, 1]
    assert heights.max() > 16 and heights.min() <= 16  # both scales drawn


# ---------------------------------------------------------------- registry


def test_load_dataset_by_name():
    np.testing.assert_array_equal(load_dataset("shapes", 3, seed=1).images, shapes(3, 1).images)
    np.testing.assert_array_equal(load_dataset("digits", 3, 1, split="test").images,
                                  cluttered_digits(3, 1, split="test").images)
    assert load_dataset("cluttered_digits", 2).name == "cluttered_digits"
    assert load_dataset("scenes", 2).labels.shape == (2, 2)
    with pytest.raises(ValueError, match="name must be one of .*'digits'.*got 'mnist'"):
        load_dataset("mnist", 3)
    with pytest.raises(TypeError):
        load_dataset("shapes", 3, colour="red")


# ---------------------------------------------------------------- Dataset


def test_dataset_len_repr_and_subset():
    ds = cluttered_digits(6, 0)
    text = repr(ds)
    assert "n=6" in text and "(6, 1, 32, 32)" in text and "'9'" in text and "source_index" in text
    part = ds[1:4]
    assert len(part) == 3 and isinstance(part, Dataset)
    np.testing.assert_array_equal(part.images, ds.images[1:4])
    np.testing.assert_array_equal(part.source_index, ds.source_index[1:4])
    picked = ds.subset([5, 0])
    np.testing.assert_array_equal(picked.labels, ds.labels[[5, 0]])
    chosen = ds[np.arange(6) % 2 == 0]
    np.testing.assert_array_equal(chosen.boxes, ds.boxes[::2])
    sc = scenes(4, 0)[[3]]
    assert sc.masks.shape == (1, 2, 48, 48)
    with pytest.raises(TypeError, match="slice"):
        ds[2]
    with pytest.raises(IndexError, match="idx"):
        ds.subset([6])
    with pytest.raises(ValueError, match="boolean idx"):
        ds[np.ones(3, dtype=bool)]


def test_dataset_is_frozen_and_validated():
    ds = shapes(2)
    with pytest.raises(AttributeError):
        ds.images = ds.images * 0
    with pytest.raises(ValueError, match="masks"):
        Dataset(ds.images, ds.labels, ds.class_names, ds.boxes, ds.masks[:, :5])
    with pytest.raises(ValueError, match="labels"):
        Dataset(ds.images, ds.labels + 10, ds.class_names, ds.boxes, ds.masks)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("make", [shapes, scenes, cluttered_digits])
def test_bad_n_and_seed(make):
    with pytest.raises(TypeError, match=r"n must be an int.*'3'"):
        make("3")
    with pytest.raises(TypeError, match=r"n must be an int.*2\.0"):
        make(2.0)
    with pytest.raises(TypeError, match="n must be an int"):
        make(True)
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        make(0)
    with pytest.raises(ValueError, match="n must be >= 1, got -4"):
        make(-4)
    with pytest.raises(TypeError, match="seed"):
        make(2, seed="abc")
    with pytest.raises(TypeError, match="seed.*None"):
        make(2, seed=None)
    with pytest.raises(ValueError, match="seed"):
        make(2, seed=-1)
    with pytest.raises(TypeError, match="dtype"):
        make(2, dtype=np.int32)
    with pytest.raises(ValueError, match="noise"):
        make(2, noise=-0.1)
    with pytest.raises(ValueError, match="n_distractors"):
        make(2, n_distractors=(3, 1))
    with pytest.raises(TypeError, match="n_distractors"):
        make(2, n_distractors=1.5)
    with pytest.raises(TypeError):
        make(2, sise=32)  # keyword typo


def test_size_too_small():
    with pytest.raises(ValueError, match=r"size must be at least 22 .* got 20"):
        shapes(2, size=20)
    with pytest.raises(ValueError, match=r"size must be at least 46 .* got 40"):
        scenes(2, size=40)
    with pytest.raises(ValueError, match=r"size must be at least 24 .* got 20"):
        cluttered_digits(2, size=20, scale=3)
    with pytest.raises(TypeError, match="size must be an int"):
        shapes(2, size=32.0)


def test_bad_shape_and_digit_options():
    with pytest.raises(ValueError, match="object_size"):
        shapes(2, object_size=(18, 10))
    with pytest.raises(ValueError, match="object_size"):
        shapes(2, object_size=(2, 8))
    with pytest.raises(ValueError, match="object_size"):
        scenes(2, object_size=(8, 10, 12))
    with pytest.raises(ValueError, match=r"split must be one of \['train', 'test'\], got 'val'"):
        cluttered_digits(2, split="val")
    with pytest.raises(ValueError, match="split"):
        digit_split_indices("TEST")
    with pytest.raises(ValueError, match="scale must be >= 1, got 0"):
        cluttered_digits(2, scale=0)
    with pytest.raises(ValueError, match="scale"):
        cluttered_digits(2, scale=())
    with pytest.raises(ValueError, match="interpolation.*'cubic'"):
        cluttered_digits(2, interpolation="cubic")
