"""fit / evaluate / predict / confusion_matrix: sanity checks of training, determinism, bad input."""

import io as _io

import numpy as np
import pytest

import minicam as mc
from minicam import datasets, optim, train, zoo


@pytest.fixture(scope="module")
def small_shapes():
    return datasets.shapes(20, seed=11)


@pytest.mark.parametrize("make", [zoo.gap_net, zoo.fc_net], ids=["gap_net", "fc_net"])
def test_overfits_a_small_subset(small_shapes, make):
    # The classic sanity check: a network that cannot memorise 20 images has
    # a bug. Full batches, so that BatchNorm's running statistics (used in
    # eval mode) converge to the statistics of the batch it trains on.
    model = make(rng=0)
    hist = train.fit(model, small_shapes, 40, 20, optim.Adam(model, lr=3e-3), rng=0, verbose=False)
    assert hist["loss"][-1] < 0.01
    assert max(hist["loss"][10:]) < 0.5 * hist["loss"][0]  # falls, and stays down
    assert hist["accuracy"][-1] == 1.0
    res = train.evaluate(model, small_shapes.images, small_shapes.labels)
    assert res["accuracy"] == 1.0  # also in eval mode, with the final weights
    assert res["loss"] < 0.05


@pytest.mark.parametrize(
    "make, data, num_classes",
    [
        (zoo.gap_net, "shapes", 4),
        (zoo.fc_net, "shapes", 4),
        (lambda rng: zoo.gap_net(1, 10, rng=rng), "digits", 10),
    ],
    ids=["gap_net-shapes", "fc_net-shapes", "gap_net-digits"],
)
def test_initial_loss_is_near_log_num_classes(make, data, num_classes):
    # Fresh weights know nothing: the softmax is near uniform and the loss of
    # the first training step (training mode: BatchNorm on batch statistics)
    # is near log(M). Its excess over log(M) depends on the seed (the initial
    # scores carry a class offset shared by all images), so check the mean
    # over five seeds, and that no seed is far off.
    excess = []
    for seed in range(5):
        ds = datasets.load_dataset(data, 100, seed=100 + seed)
        model = make(rng=seed)
        assert model.training
        loss, _ = mc.softmax_cross_entropy(model.forward(ds.images), ds.labels)
        excess.append(loss - np.log(num_classes))
    assert abs(np.mean(excess)) < 0.3, excess
    assert max(abs(e) for e in excess) < 0.5, excess


def short_fit(seed, shuffle_seed, dtype=np.float64):
    data = datasets.shapes(24, seed=5)
    model = zoo.gap_net(widths=(4, 8), rng=seed, dtype=dtype)
    train.fit(model, data, 2, 8, optim.SGD(model, lr=0.05, momentum=0.9), rng=shuffle_seed, verbose=False)
    return model.state_dict()


def test_same_seeds_give_identical_weights():
    a, b = short_fit(1, 2), short_fit(1, 2)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    # ... and the shuffle matters (so the check above is not vacuous).
    c = short_fit(1, 3)
    assert any(not np.array_equal(a[k], c[k]) for k in a)


def test_float32_model_trains_in_float32():
    state = short_fit(1, 2, dtype=np.float32)
    assert all(v.dtype == np.float32 for v in state.values())


def test_fit_history_progress_and_modes(small_shapes):
    model = zoo.gap_net(widths=(4, 8), rng=0).eval()
    X, y = small_shapes.images, small_shapes.labels
    X0, y0 = X.copy(), y.copy()
    out = _io.StringIO()
    hist = train.fit(model, (X, y), 3, 7, optim.Adam(model), rng=0, val_data=small_shapes, file=out)
    assert sorted(hist) == ["accuracy", "elapsed", "epoch", "loss", "lr", "val_accuracy", "val_loss"]
    assert hist["epoch"] == [1, 2, 3]
    assert all(len(v) == 3 for v in hist.values())
    assert hist["elapsed"] == sorted(hist["elapsed"]) and hist["elapsed"][0] > 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("epoch 1/3  lr 1.00e-03  loss ") and "accuracy" in lines[0] and "val_accuracy" in lines[0]
    assert lines[-1].endswith(" s")
    assert not model.training  # the mode it had before fit
    np.testing.assert_array_equal(X, X0)  # inputs untouched
    np.testing.assert_array_equal(y, y0)
    # The last recorded val figures are an evaluation of the final weights.
    res = train.evaluate(model, X, y)
    assert res["accuracy"] == hist["val_accuracy"][-1]
    assert res["loss"] == pytest.approx(hist["val_loss"][-1], rel=1e-12)


def test_verbose_false_prints_nothing(small_shapes, capsys):
    model = zoo.gap_net(widths=(4,), rng=0)
    train.fit(model, small_shapes, 1, 8, optim.SGD(model, lr=0.01), rng=0, verbose=False)
    assert capsys.readouterr().out == ""


def test_evaluate_and_predict_agree_with_forward(small_shapes):
    model = zoo.fc_net(widths=(4, 8), hidden=8, rng=2).eval()
    model["conv1"].train()  # a mixed state, to check that each layer gets its own mode back
    modes = [layer.training for layer in model.layers]
    X, y = small_shapes.images, small_shapes.labels
    scores = model.forward(X)
    pred = train.predict(model, X, batch_size=3)
    np.testing.assert_array_equal(pred, np.argmax(scores, axis=1))
    np.testing.assert_allclose(train.predict_scores(model, X, batch_size=7), scores, rtol=1e-12, atol=1e-12)
    res = train.evaluate(model, X, y, batch_size=6)
    assert res["n"] == 20
    assert res["accuracy"] == np.mean(pred == y)
    assert res["loss"] == pytest.approx(mc.softmax_cross_entropy(scores, y)[0], rel=1e-12)
    assert [layer.training for layer in model.layers] == modes


def test_evaluate_runs_in_eval_mode():
    # With Dropout(p=0.9) a training-mode forward would be random; eval is deterministic.
    model = mc.Sequential([mc.Flatten(), mc.Dropout(0.9, rng=0), mc.Linear(12, 3, rng=0)])
    X = np.random.default_rng(0).random((5, 3, 2, 2))
    model.train()
    a = train.predict_scores(model, X)
    b = train.predict_scores(model, X)
    np.testing.assert_array_equal(a, b)
    assert model.training


def test_confusion_matrix_by_hand():
    y_true = np.array([0, 0, 1, 2, 2, 2])
    y_pred = np.array([0, 1, 1, 2, 0, 2])
    cm = train.confusion_matrix(y_true, y_pred, 3)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    text = train.format_confusion_matrix(cm, ["cat", "dog", "bird"])
    lines = text.splitlines()
    assert lines[0].split()[-4:] == ["cat", "dog", "bird", "recall"]
    assert lines[3].split() == ["bird", "1", "0", "2", "66.7%"]
    with pytest.raises(ValueError, match="y_pred"):
        train.confusion_matrix(y_true, np.array([0, 1, 1, 2, 0, 3]), 3)
    with pytest.raises(ValueError, match="class_names"):
        train.format_confusion_matrix(cm, ["a", "b"])


# ----------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------


@pytest.fixture
def setup():
    model = zoo.gap_net(widths=(4,), num_classes=3, rng=0)
    X = np.random.default_rng(0).random((6, 3, 8, 8))
    y = np.array([0, 1, 2, 0, 1, 2])
    return model, X, y, optim.SGD(model, lr=0.1)


def test_batch_size_zero(setup):
    model, X, y, opt = setup
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        train.fit(model, (X, y), 1, 0, opt, rng=0)
    with pytest.raises(ValueError, match="batch_size"):
        train.evaluate(model, X, y, batch_size=0)


def test_labels_out_of_range(setup):
    model, X, y, opt = setup
    bad = y.copy()
    bad[2] = 3
    with pytest.raises(ValueError, match=r"y must hold class labels in \[0, 3\), got 3"):
        train.fit(model, (X, bad), 1, 2, opt, rng=0)
    with pytest.raises(ValueError, match="got -1"):
        train.evaluate(model, X, y - 1)
    with pytest.raises(TypeError, match="integer dtype"):
        train.fit(model, (X, y.astype(float)), 1, 2, opt, rng=0)


def test_length_and_shape_mismatches(setup):
    model, X, y, opt = setup
    with pytest.raises(ValueError, match="same length, got 6 images and 5 labels"):
        train.fit(model, (X, y[:5]), 1, 2, opt, rng=0)
    with pytest.raises(ValueError, match="does not fit the model.*4 input channels|expects 3 input channels"):
        train.fit(model, (X[:, :2], y), 1, 2, opt, rng=0)
    with pytest.raises(ValueError, match="4-D"):
        train.evaluate(model, X[0], y)
    with pytest.raises(ValueError, match="one class label per image"):
        train.fit(model, (X, np.stack([y, y], axis=1)), 1, 2, opt, rng=0)
    with pytest.raises(ValueError, match="at least one image"):
        train.fit(model, (X[:0], y[:0]), 1, 2, opt, rng=0)


def test_other_bad_arguments(setup):
    model, X, y, opt = setup
    with pytest.raises(ValueError, match="epochs"):
        train.fit(model, (X, y), 0, 2, opt, rng=0)
    other = zoo.gap_net(widths=(4,), num_classes=3, rng=1)
    with pytest.raises(ValueError, match="optimizer must be .* built on this model"):
        train.fit(model, (X, y), 1, 2, optim.SGD(other, lr=0.1), rng=0)
    with pytest.raises(TypeError, match="data"):
        train.fit(model, X, 1, 2, opt, rng=0)
    with pytest.raises(TypeError, match="rng"):
        train.fit(model, (X, y), 1, 2, opt, rng="seed")
    with pytest.raises(TypeError, match="model"):
        train.evaluate("model", X, y)
    with pytest.raises(TypeError, match="X"):
        train.predict(model, X.astype(np.int64))
