"""Explaining an embedding network: one pair, M references averaged, top-k channels (Chen et al. 2020)."""

import numpy as np
import pytest

import minicam as mc
from minicam import embedding_db, zoo
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


# -- the weight database (minicam.embedding_db) -----------------------------------------------


def test_kmeans_finds_separated_clusters_and_is_seeded():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    X = np.concatenate([c + 0.1 * rng.standard_normal((20, 2)) for c in centres])
    found, assignment, inertia = embedding_db.kmeans(X, 3, rng=1)
    # Every true cluster is one found cluster.
    for i in range(3):
        assert len(set(assignment[20 * i : 20 * (i + 1)])) == 1
    assert len(set(assignment)) == 3 and inertia < 60 * 0.1**2 * 2 * 2
    again = embedding_db.kmeans(X, 3, rng=1)
    np.testing.assert_array_equal(again[0], found)
    # Duplicated points: more clusters than distinct points still runs.
    c, a, _ = embedding_db.kmeans(np.ones((4, 2)), 3, rng=0)
    assert c.shape == (3, 2) and np.all(c == 1.0)


def test_kmeans_bad_input():
    with pytest.raises(ValueError, match=r"n_clusters must be at most the number of points \(4\), got n_clusters=5"):
        embedding_db.kmeans(np.zeros((4, 2)), 5)
    with pytest.raises(ValueError, match="X contains NaN"):
        embedding_db.kmeans(np.full((4, 2), np.nan), 2)


@pytest.fixture(scope="module")
def database(net):
    images = np.random.default_rng(3).random((24, 3, 12, 10))
    return embedding_db.build_database(net, images, n_clusters=4, n_references=5, k=3, rng=0), images


def test_database_stores_cluster_means_of_averaged_weights(net, database):
    db, images = database
    keys = net.forward(images)
    np.testing.assert_allclose(db.keys, keys, rtol=0, atol=1e-15)
    nn = mc.embedding.cosine_neighbours(keys, keys, 5, exclude_self=True)
    _, w = xe.pair_weights(net, images, keys[nn])
    np.testing.assert_allclose(db.key_weights, w.mean(axis=1), rtol=0, atol=1e-15)
    assignment = db.cluster_of(keys)
    for c in range(4):
        np.testing.assert_allclose(db.cluster_weights[c], db.key_weights[assignment == c].mean(axis=0), atol=1e-14)
        assert set(db.top_channels[c]) == set(np.argsort(-db.cluster_weights[c])[:3])


def test_database_explains_without_a_backward_pass(net, database, monkeypatch):
    db, images = database
    x = np.random.default_rng(4).random((5, 3, 12, 10))
    expected = xe.cam_from_weights(xe.feature_maps(net, x)[1], db.weights_for(net.forward(x), "cluster"))

    def no_backward(*args, **kwargs):
        raise AssertionError("the database ran a backward pass")

    monkeypatch.setattr(mc.Sequential, "backward", no_backward)
    for variant in embedding_db.VARIANTS:
        maps = db.explain(net, x, variant)
        assert maps.shape == (5, 3, 2) and (maps >= 0).all()
    np.testing.assert_array_equal(db.explain(net, x, "cluster"), expected)
    # A test image that is a training image borrows its own weights in the nearest variant.
    own = db.weights_for(db.keys[:3], "nearest", k=False)
    np.testing.assert_array_equal(own, db.key_weights[:3])
    with pytest.raises(AssertionError, match="ran a backward pass"):
        xe.pair_cam(net, x, db.keys[:5])  # the guard bites


def test_database_save_load_round_trip_and_bad_files(database, tmp_path):
    db, _ = database
    path = tmp_path / "db.npz"
    embedding_db.save_database(db, path)
    again = embedding_db.load_database(path)
    for key in ("centres", "cluster_weights", "top_channels", "keys", "key_weights"):
        np.testing.assert_array_equal(getattr(again, key), getattr(db, key))
    assert (again.layer, again.base, again.k) == (db.layer, db.base, db.k)

    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.npz' is not a valid weight database"):
        embedding_db.load_database(tmp_path / "empty.npz")
    np.savez(tmp_path / "other.npz", centres=np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"other.npz' is not a valid weight database: arrays: missing \['base'"):
        embedding_db.load_database(tmp_path / "other.npz")
    arrays = {key: getattr(db, key) for key in ("centres", "cluster_weights", "keys", "key_weights")}
    good = dict(arrays, top_channels=db.top_channels, layer=np.array(db.layer), base=np.array(db.base),
                format=np.array("minicam-weight-database-1"))
    bad = dict(good, keys=np.where(np.arange(db.keys.size).reshape(db.keys.shape) == 0, np.nan, db.keys))
    np.savez(tmp_path / "nan.npz", **bad)
    with pytest.raises(ValueError, match="nan.npz' is not a valid weight database: array 'keys' contains NaN"):
        embedding_db.load_database(tmp_path / "nan.npz")
    np.savez(tmp_path / "shape.npz", **dict(good, key_weights=db.key_weights[:, :2]))
    with pytest.raises(ValueError, match="shape.npz' is not a valid weight database: keys must be"):
        embedding_db.load_database(tmp_path / "shape.npz")
    np.savez(tmp_path / "pickle.npz", **dict(good, layer=np.array([{"a": 1}], dtype=object)))
    with pytest.raises(ValueError, match="pickle.npz' is not a valid weight database"):
        embedding_db.load_database(tmp_path / "pickle.npz")
    with pytest.raises(FileNotFoundError):
        embedding_db.load_database(tmp_path / "missing.npz")


def test_database_bad_input(net, database):
    db, images = database
    with pytest.raises(ValueError, match=r"embeddings must have the database's size D=5, got shape \(2, 3\)"):
        db.weights_for(np.ones((2, 3)))
    with pytest.raises(ValueError, match="variant must be one of"):
        db.weights_for(db.keys[:2], "centroid")
    with pytest.raises(ValueError, match=r"n_clusters must be at most the number of images \(24\), got n_clusters=25"):
        embedding_db.build_database(net, images, n_clusters=25, n_references=2)
    with pytest.raises(ValueError, match="n_references must be at most the 23 other images, got n_references=24"):
        embedding_db.build_database(net, images, n_clusters=2, n_references=24)
    with pytest.raises(ValueError, match="k must be at most the 8 channels of layer 'relu3', got k=9"):
        embedding_db.build_database(net, images, n_clusters=2, n_references=2, k=9)
    with pytest.raises(ValueError, match="embeddings contains NaN"):
        db.weights_for(np.full((1, 5), np.nan))


# -- the explain command for shapes-embed (minicam.embedding_demo) -------------------------------------


@pytest.fixture(scope="module")
def shape_png(tmp_path_factory):
    Image = pytest.importorskip("PIL.Image")
    ds = mc.datasets.shapes(1, seed=99)
    path = tmp_path_factory.mktemp("img") / "cross.png"
    Image.fromarray(np.round(ds.images[0].transpose(1, 2, 0) * 255).astype(np.uint8)).save(path)
    return path


def test_cli_explains_an_embedding_with_the_database_and_without_a_backward_pass(shape_png, tmp_path, capsys,
                                                                                 monkeypatch):
    from minicam.__main__ import main

    def no_backward(*args, **kwargs):
        raise AssertionError("backward pass called")

    with monkeypatch.context() as m:
        m.setattr(mc.Sequential, "backward", no_backward)
        assert main(["explain", str(shape_png), "--model", "shapes-embed", "--method", "embedding-db",
                     "--out", str(tmp_path / "db.png")]) == 0
    text = capsys.readouterr().out
    assert "nearest gallery shapes" in text and "cross" in text and (tmp_path / "db.png").stat().st_size > 0
    assert main(["explain", str(shape_png), "--model", "shapes-embed", "--method", "embedding-grad-cam",
                 "--out", str(tmp_path / "gc.png")]) == 0
    assert (tmp_path / "gc.png").stat().st_size > 0


@pytest.mark.parametrize("args, words", [
    (["--model", "shapes-embed", "--method", "grad-cam"], "shapes-embed is an embedding network (no class scores)"),
    (["--model", "shapes-gap", "--method", "embedding-db"], "shapes-gap is a classifier"),
    (["--model", "shapes-embed", "--method", "embedding-db", "--class", "1"], "has no classes to explain, got class 1"),
    (["--model", "shapes-embed", "--method", "embedding-db", "--layer", "relu3"], "holds weights of layer 'relu5'"),
])
def test_cli_embedding_errors_exit_2(shape_png, tmp_path, capsys, args, words):
    from minicam.__main__ import main

    assert main(["explain", str(shape_png), *args, "--out", str(tmp_path / "never.png")]) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "never.png").exists()


def test_bundled_database_is_what_its_command_builds(tmp_path):
    from minicam import embedding_demo

    bundled = embedding_demo.bundled_database()
    rebuilt = embedding_demo.build_bundled_database(tmp_path / "db.npz")
    for key in ("centres", "cluster_weights", "keys", "key_weights"):
        np.testing.assert_allclose(getattr(bundled, key), getattr(rebuilt, key), rtol=1e-9, atol=1e-12, err_msg=key)
    np.testing.assert_array_equal(bundled.top_channels, rebuilt.top_channels)
