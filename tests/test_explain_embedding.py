"""Explaining an embedding network: one pair, M references averaged, top-k channels (Chen et al. 2020)."""

import numpy as np
import pytest

import minicam as mc
from minicam import zoo
from minicam.explain import embedding as xe
from minicam.explain.targets import CosineSimilarity


@pytest.fixture(scope="module")
def net():
    # A small untrained embedding network, float64, eval mode (BatchNorm on running statistics).
    return zoo.embed_net(dim=5, widths=(4, 6, 8), rng=0).eval()


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    return rng.random((3, 3, 12, 10)), rng.random((7, 3, 12, 10))  # queries, reference images


def test_one_pair_is_grad_cam_of_the_similarity(net, data):
    x, xr = data
    refs = net.forward(xr)
    maps, w = xe.pair_cam(net, x, refs[:3], return_weights=True)
    expected = mc.grad_cam(net, x, target=mc.similarity_target(refs[:3]))
    np.testing.assert_array_equal(maps, expected)
    # pair_weights (one forward, a backward per reference) gives the same weights.
    _, pw = xe.pair_weights(net, x, refs[:3][:, None, :])
    np.testing.assert_allclose(pw[:, 0], w, rtol=0, atol=1e-15)
    # and cam_from_weights on the query's own maps gives the same map, with a forward only.
    _, A = xe.feature_maps(net, x)
    np.testing.assert_allclose(xe.cam_from_weights(A, w), maps, rtol=0, atol=1e-15)


def test_a_query_paired_with_itself_has_zero_weights(net, data):
    # cos(f, f) = 1 is the maximum: its gradient, and so every Grad-CAM weight, is 0.
    x, _ = data
    own = net.forward(x)
    _, w = xe.pair_cam(net, x, own, return_weights=True)
    assert np.abs(w).max() < 1e-15


def test_averaged_grad_cam_weights_are_those_of_the_mean_similarity(net, data):
    # Grad-CAM weights are linear in the gradient and backward is linear in its
    # upstream gradient (one forward), so averaging the weights over M pairs is
    # Grad-CAM of the mean similarity. Not so for Grad-CAM++ (nonlinear in dA).
    x, xr = data
    refs = net.forward(xr)
    targets = [CosineSimilarity(r) for r in refs]

    def mean_similarity(scores):
        parts = [t(scores) for t in targets]
        return sum(v for v, _ in parts) / len(parts), sum(d for _, d in parts) / len(parts)

    _, expected = mc.grad_cam(net, x, target=mean_similarity, return_weights=True)
    avg = xe.average_weights(xe.pair_weights(net, x, refs)[1])
    np.testing.assert_allclose(avg, expected, rtol=0, atol=1e-14 * np.abs(expected).max())
    _, pp = mc.grad_cam_plus_plus(net, x, target=mean_similarity, return_weights=True)
    avg_pp = xe.average_weights(xe.pair_weights(net, x, refs, base="grad-cam++")[1])
    assert np.abs(avg_pp - pp).max() > 1e-6 * np.abs(pp).max()


def test_shared_and_per_query_references_agree(net, data):
    x, xr = data
    refs = net.forward(xr)
    _, shared = xe.pair_weights(net, x, refs)
    _, per_query = xe.pair_weights(net, x, np.broadcast_to(refs, (3,) + refs.shape).copy())
    np.testing.assert_array_equal(shared, per_query)
    assert shared.shape == (3, 7, 8)


def test_top_k_by_hand():
    w = np.array([[0.1, -2.0, 0.5, 0.3], [1.0, 1.0, 0.0, -1.0]])
    np.testing.assert_array_equal(xe.top_k(w, 2), [[0.0, 0.0, 0.5, 0.3], [1.0, 1.0, 0.0, 0.0]])
    np.testing.assert_array_equal(xe.top_k(w, 4), w)
    assert xe.default_k(64) == 16 and xe.default_k(3) == 1
    with pytest.raises(ValueError, match="k must be at most the 4 channels of the layer, got k=5"):
        xe.top_k(w, 5)


def test_embedding_cam_chains_the_steps(net, data):
    x, xr = data
    refs = net.forward(xr)
    maps, w = xe.embedding_cam(net, x, refs, k=3, return_weights=True)
    assert maps.shape == (3, 3, 2)  # 12x10 input, two 2x2 pools
    assert ((w != 0).sum(axis=1) <= 3).all()
    _, A = xe.feature_maps(net, x)
    np.testing.assert_array_equal(maps, xe.cam_from_weights(A, w))
    assert (maps >= 0).all()


def test_bad_input_is_named(net, data):
    x, xr = data
    refs = net.forward(xr)
    with pytest.raises(ValueError, match=r"references must be embeddings of the model's output size D=5, got shape \(7, 4\)"):
        xe.pair_weights(net, x, refs[:, :4])
    with pytest.raises(ValueError, match="references contains NaN"):
        xe.pair_weights(net, x, np.full((2, 5), np.nan))
    with pytest.raises(ValueError, match=r"one set per query \(N=3\)"):
        xe.pair_weights(net, x, np.ones((2, 4, 5)))
    with pytest.raises(ValueError, match="base must be one of"):
        xe.embedding_cam(net, x, refs, base="score-cam")
    with pytest.raises(ValueError, match="zero embedding"):
        xe.pair_weights(net, x, np.zeros((1, 5)))
    classifier = zoo.gap_net(widths=(4, 4), rng=0).eval()
    with pytest.raises(ValueError, match="references must be embeddings of the model's output size D=4"):
        xe.pair_weights(classifier, x, refs)
