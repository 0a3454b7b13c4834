"""minicam.datasets.biased_shapes: the shapes of shapes(), a corner cue whose colour follows the class."""

import numpy as np
import pytest

import minicam as mc
from minicam.datasets import CUE_COLORS, BiasedDataset, biased_shapes


@pytest.fixture(scope="module")
def pair():
    return biased_shapes(200, 5, bias=1.0), biased_shapes(200, 5, bias=0.0)


def test_objects_are_those_of_shapes(pair):
    ref = mc.datasets.shapes(200, seed=5)
    for ds in pair:
        assert isinstance(ds, BiasedDataset)
        assert np.array_equal(ds.labels, ref.labels) and np.array_equal(ds.masks, ref.masks)
        assert np.array_equal(ds.boxes, ref.boxes)
        assert ds.images.shape == ref.images.shape and 0 <= ds.images.min() and ds.images.max() <= 1


def test_bias_sets_how_often_the_cue_names_the_class(pair):
    full, none = pair
    assert full.cue_agrees.all()
    assert 0.15 < none.cue_agrees.mean() < 0.35  # 1/4 by chance
    half = biased_shapes(400, 6, bias=0.5)
    assert 0.5 < half.cue_agrees.mean() < 0.75  # 0.5 + 0.5 / 4 = 0.625
    # same stream: only the cue's colours differ between biases
    assert np.array_equal(full.cue_masks, none.cue_masks)


def test_cue_is_a_corner_square_of_its_colour_apart_from_the_object(pair):
    ds, _ = pair
    clean = biased_shapes(200, 5, bias=1.0, noise=0.0)
    for i in range(20):
        rows, cols = np.nonzero(ds.cue_masks[i])
        assert ds.cue_masks[i].sum() == 25 and rows.min() in (0, 27) and cols.min() in (0, 27)
        assert not (ds.cue_masks[i] & ds.masks[i]).any()
        x0, y0, x1, y1 = ds.boxes[i]
        assert not ds.cue_masks[i, y0:y1, x0:x1].any()
        np.testing.assert_array_equal(clean.images[i][:, ds.cue_masks[i]].T[0], CUE_COLORS[ds.cue_labels[i]])


def test_subset_keeps_the_cue(pair):
    ds, _ = pair
    sub = ds[3:7]
    assert isinstance(sub, BiasedDataset) and np.array_equal(sub.cue_masks, ds.cue_masks[3:7])
    assert np.array_equal(ds.subset(np.arange(200) < 2).cue_labels, ds.cue_labels[:2])


def test_by_name_and_dtype():
    ds = mc.datasets.load_dataset("biased_shapes", 3, seed=0, bias=0.3, dtype=np.float32)
    assert ds.images.dtype == np.float32 and ds.bias == 0.3


@pytest.mark.parametrize("bias", [-0.1, 1.5, float("nan")])
def test_bias_out_of_range_is_refused(bias):
    with pytest.raises(ValueError, match="bias"):
        biased_shapes(2, 0, bias=bias)


def test_bad_cue_size_is_refused():
    with pytest.raises(ValueError, match="cue_size"):
        biased_shapes(2, 0, cue_size=16)
    with pytest.raises(TypeError, match="bias"):
        biased_shapes(2, 0, bias="high")
