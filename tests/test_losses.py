import numpy as np
import pytest

import minicam as mc
from minicam.gradcheck import numerical_gradient, rel_error


def test_uniform_scores_give_log_num_classes():
    loss, _ = mc.softmax_cross_entropy(np.zeros((3, 5)), np.array([0, 1, 4]))
    assert abs(loss - np.log(5)) < 1e-15


def test_hand_example():
    scores = np.array([[np.log(1.0), np.log(3.0)]])  # softmax = [0.25, 0.75]
    loss, dscores = mc.softmax_cross_entropy(scores, np.array([1]))
    assert abs(loss + np.log(0.75)) < 1e-15
    np.testing.assert_allclose(dscores, [[0.25, -0.25]], rtol=1e-14)


def test_stable_for_large_logits():
    scores = np.array([[1000.0, 0.0, -1000.0], [-1e4, 1e4, 0.0]])
    p = mc.softmax(scores)
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    logp = mc.log_softmax(scores)
    assert np.all(np.isfinite(logp))
    assert logp[0, 2] == -2000.0
    loss, d = mc.softmax_cross_entropy(scores, np.array([2, 0]))
    assert np.isfinite(loss) and abs(loss - (2000 + 2e4) / 2) < 1e-9


def test_dscores_matches_finite_differences(rng):
    scores = rng.standard_normal((4, 6))
    y = np.array([0, 5, 2, 2])
    _, dscores = mc.softmax_cross_entropy(scores, y)
    numeric = numerical_gradient(lambda s: mc.softmax_cross_entropy(s, y)[0], scores.copy(), 1.0)
    assert rel_error(dscores, numeric) < 1e-8


def test_inputs_not_modified(rng):
    scores = rng.standard_normal((2, 3))
    before = scores.copy()
    mc.softmax_cross_entropy(scores, np.array([0, 1]))
    np.testing.assert_array_equal(scores, before)


@pytest.mark.parametrize(
    "y,err,match",
    [
        (np.array([0, 3]), ValueError, r"labels in \[0, 3\), got 3"),
        (np.array([0, -1]), ValueError, "got -1"),
        (np.array([0.0, 1.0]), TypeError, "integer dtype"),
        (np.array([0, 1, 2]), ValueError, r"shape \(2,\)"),
        ([0, 1], TypeError, "numpy.ndarray"),
    ],
)
def test_bad_labels(y, err, match):
    with pytest.raises(err, match=match):
        mc.softmax_cross_entropy(np.zeros((2, 3)), y)
