"""Sequential: naming, forward caching, backward to any layer, ReLU modes, state."""

import numpy as np
import pytest

import minicam as mc


def small_net(seed=0):
    rng = np.random.default_rng(seed)
    return mc.Sequential([
        mc.Conv2d(3, 4, 3, padding=1, rng=rng), mc.ReLU(), mc.MaxPool2d(2),
        mc.Conv2d(4, 6, 3, padding=1, rng=rng), mc.ReLU(), mc.GlobalAvgPool2d(), mc.Linear(6, 3, rng=rng),
    ])


def test_auto_naming_and_lookup():
    model = small_net()
    assert model.names == ["conv1", "relu1", "pool1", "conv2", "relu2", "gap1", "fc1"]
    assert isinstance(model["conv2"], mc.Conv2d)
    assert "relu2" in model and "conv9" not in model
    assert len(model) == 7
    assert "(conv1): Conv2d(in_channels=3" in repr(model)


def test_explicit_names():
    model = mc.Sequential([("features", mc.Conv2d(1, 2, 3, rng=0)), ("act", mc.ReLU())])
    assert model.names == ["features", "act"]


def test_forward_keeps_every_output(rng):
    model = small_net()
    x = rng.standard_normal((2, 3, 8, 6))
    scores = model.forward(x)
    assert list(model.outputs) == model.names
    assert model.outputs["conv2"].shape == (2, 6, 4, 3)
    np.testing.assert_array_equal(model.outputs["fc1"], scores)
    # Each output is that layer applied to the previous one.
    np.testing.assert_array_equal(model.outputs["relu2"], np.maximum(model.outputs["conv2"], 0))


def test_backward_stop_at_equals_manual_chain(rng):
    model = small_net()
    x = rng.standard_normal((2, 3, 8, 6))
    scores = model.forward(x)
    dscores = rng.standard_normal(scores.shape)
    dA = model.backward(dscores, stop_at="relu2")
    # by hand: fc1 then gap1
    d_gap = dscores @ model["fc1"].params["W"]
    manual = np.broadcast_to(d_gap[:, :, None, None] / (4 * 3), (2, 6, 4, 3))
    np.testing.assert_allclose(dA, manual, rtol=1e-14)
    assert model.backward(dscores, stop_at="fc1").shape == scores.shape
    dx = model.backward(dscores)
    assert dx.shape == x.shape


def test_guided_mode_reaches_every_relu(rng):
    model = small_net()
    x = rng.standard_normal((1, 3, 8, 6))
    scores = model.forward(x)
    d = np.zeros_like(scores)
    d[0, 1] = 1.0
    # Walk the chain by hand with the guided rule at every ReLU.
    g = d
    for name in reversed(model.names):
        layer = model[name]
        g = layer.backward(g, mode="guided") if isinstance(layer, mc.ReLU) else layer.backward(g)
    np.testing.assert_array_equal(model.backward(d, relu_mode="guided"), g)
    assert not np.allclose(model.backward(d, relu_mode="standard"), g)


def test_one_forward_serves_several_backwards(rng):
    model = small_net()
    x = rng.standard_normal((2, 3, 8, 6))
    scores = model.forward(x)
    d = rng.standard_normal(scores.shape)
    first = model.backward(d)
    model.backward(d, relu_mode="deconvnet")
    np.testing.assert_array_equal(model.backward(d), first)


def test_train_eval_switch():
    model = mc.Sequential([mc.Linear(4, 4, rng=0), mc.Dropout(0.5, rng=0)])
    assert model.training
    model.eval()
    assert not model.training and not model["dropout1"].training
    x = np.ones((3, 4))
    np.testing.assert_array_equal(model.forward(x), model["fc1"].forward(x))


def test_summary_lists_shapes_and_params():
    model = small_net()
    text = model.summary((1, 3, 8, 6), file=False)
    assert "(1, 6, 4, 3)" in text
    assert "fc1" in text and "Linear" in text
    n = 4 * 3 * 9 + 4 + 6 * 4 * 9 + 6 + 6 * 3 + 3
    assert model.num_params == n
    assert f"total trainable parameters: {n:,}" in text


def test_state_dict_round_trip():
    a, b = small_net(0), small_net(1)
    b.load_state_dict(a.state_dict())
    for (ka, va), (kb, vb) in zip(a.named_parameters(), b.named_parameters()):
        assert ka == kb
        np.testing.assert_array_equal(va, vb)
    state = a.state_dict()
    state["conv1.W"][...] = 0  # a copy: the model is unaffected
    assert np.any(a["conv1"].params["W"] != 0)


def test_load_state_dict_refuses_mismatch():
    model = small_net()
    state = model.state_dict()
    del state["fc1.b"]
    with pytest.raises(ValueError, match=r"missing \['fc1.b'\]"):
        model.load_state_dict(state)
    state = model.state_dict()
    state["fc1.W"] = np.zeros((3, 7))
    with pytest.raises(ValueError, match=r"state\['fc1.W'\] must have shape \(3, 6\), got \(3, 7\)"):
        model.load_state_dict(state)


def test_float32_model(rng):
    model = small_net().astype(np.float32)
    out = model.forward(rng.standard_normal((2, 3, 8, 6)).astype(np.float32))
    assert out.dtype == np.float32
    assert model.backward(np.ones_like(out)).dtype == np.float32


def test_mlp_on_vectors(rng):
    model = mc.Sequential([mc.Linear(5, 8, rng=0), mc.ReLU(), mc.Linear(8, 2, rng=1)])
    out = model.forward(rng.standard_normal((4, 5)))
    assert out.shape == (4, 2)
    assert model.backward(np.ones_like(out), relu_mode="guided").shape == (4, 5)


# -- bad input ---------------------------------------------------------------


def test_unknown_stop_at_is_refused(rng):
    model = small_net()
    model.forward(rng.standard_normal((1, 3, 8, 6)))
    with pytest.raises(ValueError, match=r"stop_at must name a layer of the model, one of \[.*\], got 'conv7'"):
        model.backward(np.ones((1, 3)), stop_at="conv7")


def test_unknown_relu_mode_is_refused(rng):
    model = small_net()
    model.forward(rng.standard_normal((1, 3, 8, 6)))
    with pytest.raises(ValueError, match="relu_mode must be one of"):
        model.backward(np.ones((1, 3)), relu_mode="Guided")


def test_backward_before_forward():
    with pytest.raises(mc.StateError, match="before forward"):
        small_net().backward(np.ones((1, 3)))


def test_dscores_shape_is_checked(rng):
    model = small_net()
    model.forward(rng.standard_normal((2, 3, 8, 6)))
    with pytest.raises(ValueError, match=r"dscores must have the shape of the model's output \(2, 3\), got \(3,\)"):
        model.backward(np.ones(3))


def test_forward_error_names_the_layer():
    with pytest.raises(ValueError, match="layer 'conv1' .*expects 3 input channels, got 1"):
        small_net().forward(np.zeros((1, 1, 8, 8)))


def test_getitem_unknown_name():
    with pytest.raises(ValueError, match="got 'conv3'"):
        small_net()["conv3"]
    with pytest.raises(TypeError, match="looked up by name"):
        small_net()[0]


@pytest.mark.parametrize(
    "layers,err,match",
    [
        ([], ValueError, "must not be empty"),
        ([("a", mc.ReLU()), ("a", mc.ReLU())], ValueError, r"duplicates \['a'\]"),
        ([("bad name", mc.ReLU())], ValueError, "identifiers"),
        ([mc.ReLU(), "relu"], TypeError, r"layers\[1\] must be a Layer"),
        ("conv", TypeError, "must be a list"),
    ],
)
def test_constructor_refuses_bad_layers(layers, err, match):
    with pytest.raises(err, match=match):
        mc.Sequential(layers)


def test_same_layer_object_twice_is_refused():
    relu = mc.ReLU()
    with pytest.raises(ValueError, match="appears twice"):
        mc.Sequential([relu, relu])
