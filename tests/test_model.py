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


# ---------------------------------------------------------------------------
# Nested containers and residual blocks
# ---------------------------------------------------------------------------


def basic_block(cin, cout, stride, rng):
    """torchvision's BasicBlock in minicam: conv-bn-relu-conv-bn, + (projected) input, relu."""
    body = [
        ("conv1", mc.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False, rng=rng)), ("bn1", mc.BatchNorm2d(cout)),
        ("relu1", mc.ReLU()), ("conv2", mc.Conv2d(cout, cout, 3, padding=1, bias=False, rng=rng)),
        ("bn2", mc.BatchNorm2d(cout)),
    ]
    shortcut = None
    if stride != 1 or cin != cout:
        shortcut = mc.Sequential([("0", mc.Conv2d(cin, cout, 1, stride=stride, bias=False, rng=rng)),
                                  ("1", mc.BatchNorm2d(cout))])
    return mc.Residual(body, shortcut, after=[("relu2", mc.ReLU())], shortcut_name="downsample")


def tiny_resnet(seed=0):
    rng = np.random.default_rng(seed)
    model = mc.Sequential([
        ("conv1", mc.Conv2d(3, 4, 3, padding=1, rng=rng)), ("relu", mc.ReLU()),
        ("layer1", mc.Sequential([("0", basic_block(4, 4, 1, rng)), ("1", basic_block(4, 6, 2, rng))])),
        ("avgpool", mc.AdaptiveAvgPool2d(1)), ("flatten", mc.Flatten()), ("fc", mc.Linear(6, 3, rng=rng)),
    ])
    for _, layer in model.named_layers():  # random BatchNorm statistics: eval mode is a real affine map
        if isinstance(layer, mc.BatchNorm2d):
            layer.buffers["running_mean"] = rng.standard_normal(layer.num_features)
            layer.buffers["running_var"] = rng.uniform(0.5, 2.0, layer.num_features)
            layer.params["gamma"] = rng.uniform(0.5, 1.5, layer.num_features)
    return model.eval()


def test_gradients_add_where_the_path_forks_hand_example():
    # y = relu(w*x) + x on one number: dy/dx = w*[w x > 0] + 1 -- the 1 is the shortcut's.
    lin = mc.Linear(1, 1, rng=0)
    lin.params["W"] = np.array([[3.0]])
    lin.params["b"] = np.array([0.0])
    block = mc.Residual([("fc", lin), ("relu", mc.ReLU())])
    x = np.array([[2.0]])
    assert block.forward(x)[0, 0] == 3.0 * 2.0 + 2.0
    assert block.backward(np.array([[1.0]]))[0, 0] == 3.0 + 1.0
    assert block.forward(np.array([[-2.0]]))[0, 0] == -2.0  # the body is off: only the shortcut remains
    assert block.backward(np.array([[1.0]]))[0, 0] == 1.0


def test_nested_names_outputs_parameters_and_lookup():
    model = tiny_resnet()
    assert model.names == ["conv1", "relu", "layer1", "avgpool", "flatten", "fc"]
    assert model["layer1"].names == ["0", "1"]
    assert model["layer1.1"].names == ["conv1", "bn1", "relu1", "conv2", "bn2", "downsample", "relu2"]
    assert isinstance(model["layer1.1.downsample.0"], mc.Conv2d) and "layer1.0.downsample" not in model
    keys = [k for k, _ in model.named_parameters()]
    assert "layer1.1.downsample.1.gamma" in keys and "layer1.0.conv1.b" not in keys
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 6))
    model.forward(x)
    for name in ("layer1", "layer1.0", "layer1.1.relu1", "layer1.1.downsample", "layer1.1.downsample.1"):
        assert name in model.outputs
    np.testing.assert_array_equal(model.outputs["layer1"], model.outputs["layer1.1"])
    np.testing.assert_array_equal(model.outputs["layer1.1"], model.outputs["layer1.1.relu2"])
    shapes = dict(model.output_shapes(x.shape))
    assert {name: out.shape for name, out in model.outputs.items()} == shapes
    with pytest.raises(ValueError, match=r"names inside blocks are dotted paths.*got 'layer1.2.conv1'"):
        model["layer1.2.conv1"]
    text = model.summary(x.shape, file=False)
    assert "layer1.1.downsample.0" in text and "Residual" in text
    shown = repr(model["layer1.1"])  # says where the addition happens
    assert shown.index("body:") < shown.index("(conv2)") < shown.index("(downsample)") < shown.index(
        "body + shortcut, then:") < shown.index("(relu2)")
    assert "shortcut: identity" in repr(model["layer1.0"])


def numeric_grad(f, x, dout, h=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        plus = np.sum(f(x) * dout)
        x[i] = old - h
        minus = np.sum(f(x) * dout)
        x[i] = old
        g[i] = (plus - minus) / (2 * h)
    return g


@pytest.mark.parametrize("stop_at", [None, "layer1", "layer1.1", "layer1.1.relu1", "layer1.1.conv1", "layer1.1.downsample",
                                     "layer1.1.downsample.0", "layer1.0.bn2", "relu"])
def test_backward_to_any_node_matches_central_differences(stop_at):
    model = tiny_resnet()
    x = np.random.default_rng(2).standard_normal((2, 3, 6, 6))
    out = model.forward(x)
    dout = np.random.default_rng(3).standard_normal(out.shape)
    grad = model.backward(dout, stop_at=stop_at)
    if stop_at is None:
        want = numeric_grad(model.forward, x.copy(), dout)
    else:
        # A container's output is its last layer's output: perturb that layer's output in place of
        # the container's (a Residual's last child is its last `after` layer).
        name = stop_at
        while isinstance(model[name], (mc.Sequential, mc.Residual)):
            name = f"{name}.{model[name].names[-1]}"
        layer = model[name]

        def run(a):  # the model with that layer's output replaced by a
            layer._forward = lambda inp: a.copy()
            try:
                return model.forward(x)
            finally:
                del layer._forward

        want = numeric_grad(run, model.outputs[name].copy(), dout)
    assert grad.shape == want.shape
    assert mc.gradcheck.rel_error(grad, want) < 1e-7


def test_whole_nested_model_gradcheck():
    model = tiny_resnet().train()
    x = np.random.default_rng(4).standard_normal((3, 3, 6, 5))
    errors = mc.gradcheck.check_model(model, x, np.array([0, 2, 1]))
    assert max(errors.values()) < mc.gradcheck.MODEL_TOL, errors
    assert set(errors) - {"x"} == {k for k, _ in model.named_parameters()}


def test_param_grads_false_skips_parameter_gradients_only():
    model = tiny_resnet()
    x = np.random.default_rng(5).standard_normal((2, 3, 6, 6))
    dout = np.random.default_rng(6).standard_normal(model.forward(x).shape)
    full = model.backward(dout, relu_mode="guided")
    for layer, key in model.parameters():
        layer.grads[key] = np.full_like(layer.grads[key], 7.0)
    lean = model.backward(dout, relu_mode="guided", param_grads=False)
    np.testing.assert_array_equal(lean, full)
    for name, g in model.named_gradients():
        if isinstance(model[name.rpartition(".")[0]], (mc.Conv2d, mc.Linear)):
            assert (g == 7.0).all(), name  # left as they were
    np.testing.assert_array_equal(model.backward(dout, stop_at="layer1.1.conv2", param_grads=False),
                                  model.backward(dout, stop_at="layer1.1.conv2"))
    with pytest.raises(TypeError, match="param_grads must be True or False, got 1"):
        model.backward(dout, param_grads=1)


def test_residual_refuses_what_cannot_be_added_or_named():
    with pytest.raises(ValueError, match=r"body outputs shape \(1, 4, 3, 3\) but the shortcut outputs \(1, 2, 3, 3\)"):
        mc.Residual([mc.Conv2d(2, 4, 1, rng=0)]).forward(np.ones((1, 2, 3, 3)))
    with pytest.raises(ValueError, match="must be unique.*'relu'"):
        mc.Residual([("relu", mc.ReLU())], after=[("relu", mc.ReLU())])
    with pytest.raises(TypeError, match="shortcut must be None"):
        mc.Residual([mc.ReLU()], shortcut="identity")
    relu = mc.ReLU()
    with pytest.raises(ValueError, match="same Layer object appears twice"):
        mc.Sequential([("a", mc.Sequential([("r", relu)])), ("b", relu)])
    with pytest.raises(ValueError, match="identifiers like 'conv1' or integers like '0', got 'a.b'"):
        mc.Sequential([("a.b", mc.ReLU())])


def test_cam_and_default_layer_on_nested_models():
    model = tiny_resnet()
    x = np.random.default_rng(7).standard_normal((2, 3, 8, 8))
    assert mc.explain.last_feature_layer(model, model.output_shapes(x.shape)) == "layer1"
    h, w = dict(model.output_shapes(x.shape))["layer1"][2:]
    cam = mc.cam(model, x, 1)  # AdaptiveAvgPool2d(1) -> Flatten -> Linear is a GAP head
    np.testing.assert_allclose(mc.grad_cam(model, x, 1, relu=False), cam / (h * w), rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="inside a residual block"):
        mc.cam(model, x, 1, layer="layer1.1.relu1")
    vgg_like = mc.Sequential([
        ("features", mc.Sequential([mc.Conv2d(3, 4, 3, padding=1, rng=0), mc.ReLU(), mc.MaxPool2d(2)])),
        ("avgpool", mc.AdaptiveAvgPool2d(2)), ("flatten", mc.Flatten()), ("fc", mc.Linear(16, 2, rng=1)),
    ])
    # the last ReLU, not features' max-pool nor the adaptive pool
    assert mc.explain.last_feature_layer(vgg_like, vgg_like.output_shapes((1, 3, 8, 8))) == "features.relu1"


def test_too_small_input_says_the_smallest_size():
    model = mc.Sequential([mc.Conv2d(1, 2, 5, rng=0), mc.MaxPool2d(2), mc.Conv2d(2, 2, 3, rng=0)])
    assert model.smallest_input_size((1, 1, 64, 64)) == 10
    with pytest.raises(ValueError, match="input of 9x12 pixels is too small for this model: the smallest it accepts is 10x10"):
        model.forward(np.zeros((1, 1, 9, 12)))


def test_forward_cache_false_or_from_a_layer_keeps_only_what_the_backward_needs():
    model = tiny_resnet()
    x = np.random.default_rng(8).standard_normal((2, 3, 8, 8))
    full = model.forward(x)
    kept = {k: v.copy() for k, v in model.outputs.items()}
    dout = np.random.default_rng(9).standard_normal(full.shape)
    dA = model.backward(dout, stop_at="layer1.1")
    lean = model.forward(x, cache=False)
    np.testing.assert_allclose(lean, full, rtol=1e-13, atol=1e-14)  # eval BatchNorm rounds in another order
    assert model.outputs.keys() == kept.keys()
    assert all(model[name]._cache is None for name, _ in model.named_layers())
    with pytest.raises(mc.StateError, match="kept no cache"):
        model.backward(dout)
    model.forward(x, cache="layer1.1")
    np.testing.assert_allclose(model.backward(dout, stop_at="layer1.1"), dA, rtol=1e-13, atol=1e-14)
    assert model["layer1.1.conv1"]._cache is None and model["fc"]._cache is not None
    with pytest.raises(mc.StateError, match="kept no cache"):
        model.backward(dout, stop_at="layer1.0")
    with pytest.raises(TypeError, match="cache must be True, False or a layer name, got 1"):
        model.forward(x, cache=1)
    with pytest.raises(ValueError, match="cache must name a layer of the model"):
        model.forward(x, cache="layer9")
