"""Every layer x configuration x shape: gradients checked, rules hold, bad input refused."""

import numpy as np
import pytest

import minicam as mc
from minicam import gradcheck as gc
from parity_support import Differences, numpy_of, require

CASES = gc.layer_cases(seed=0)


@pytest.mark.parametrize("label,layer,x", CASES, ids=[c[0] for c in CASES])
def test_layer_backward_matches_finite_differences(label, layer, x):
    errors = gc.check_layer(layer, x, rng=7)
    expected_keys = {"x"} | set(layer.params)
    assert set(errors) == expected_keys
    for quantity, err in errors.items():
        assert err < gc.LAYER_TOL, f"{label}: d{quantity} relative error {err:.2e}"


@pytest.mark.parametrize("label,layer,x", CASES, ids=[c[0] for c in CASES])
def test_layer_never_writes_into_its_arguments(label, layer, x, rng):
    x_before = x.copy()
    out = layer.forward(x)
    out_before = out.copy()
    dout = rng.standard_normal(out.shape)
    dout_before = dout.copy()
    if isinstance(layer, mc.ReLU):
        for mode in mc.layers.RELU_MODES:
            layer.backward(dout, mode=mode)
    else:
        layer.backward(dout)
        layer.backward(dout)  # the cache survives backward
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(dout, dout_before)
    np.testing.assert_array_equal(out, out_before)


@pytest.mark.parametrize("label,layer,x", CASES, ids=[c[0] for c in CASES])
def test_layer_keeps_float32(label, layer, x, rng):
    out = layer.forward(x.astype(np.float32))
    assert out.dtype == np.float32
    dx = layer.backward(rng.standard_normal(out.shape).astype(np.float32))
    assert dx.dtype == np.float32
    for key, g in layer.grads.items():
        assert g.dtype == layer.params[key].dtype


def test_relu_modes_hand_example():
    relu = mc.ReLU()
    x = np.array([[-2.0, -1.0, 0.0, 1.0, 2.0]])
    np.testing.assert_array_equal(relu.forward(x), [[0.0, 0.0, 0.0, 1.0, 2.0]])
    dout = np.array([[1.0, -1.0, 1.0, -1.0, 1.0]])
    # standard: gradient passes where x > 0 (ReLU'(0) = 0)
    np.testing.assert_array_equal(relu.backward(dout), [[0.0, 0.0, 0.0, -1.0, 1.0]])
    # guided: where x > 0 AND dout > 0
    np.testing.assert_array_equal(relu.backward(dout, mode="guided"), [[0.0, 0.0, 0.0, 0.0, 1.0]])
    # deconvnet: where dout > 0, whatever x was
    np.testing.assert_array_equal(relu.backward(dout, mode="deconvnet"), [[1.0, 0.0, 1.0, 0.0, 1.0]])


def test_relu_rule_errors_are_zero(rng):
    x = gc.kink_free_input((2, 3, 4, 5), rng)
    errors = gc.relu_rule_errors(x, rng.standard_normal(x.shape))
    assert errors == {"standard": 0.0, "guided": 0.0, "deconvnet": 0.0}


def test_relu_output_has_no_negative_zero():
    out = mc.ReLU().forward(np.array([-1.0, -0.0, 2.0]))
    assert not np.any(np.signbit(out))


def test_conv_he_init_is_seeded_and_scaled():
    a = mc.Conv2d(16, 32, 3, rng=5)
    b = mc.Conv2d(16, 32, 3, rng=5)
    c = mc.Conv2d(16, 32, 3, rng=6)
    np.testing.assert_array_equal(a.params["W"], b.params["W"])
    assert not np.array_equal(a.params["W"], c.params["W"])
    np.testing.assert_array_equal(a.params["b"], 0.0)
    # std sqrt(2 / fan_in) with fan_in = 16 * 9 = 144, estimated from 4608 draws
    assert abs(a.params["W"].std() / np.sqrt(2 / 144) - 1) < 0.05
    lin = mc.Linear(200, 100, rng=np.random.default_rng(0))
    assert abs(lin.params["W"].std() / np.sqrt(2 / 200) - 1) < 0.05
    assert mc.Conv2d(1, 1, 1, dtype=np.float32).params["W"].dtype == np.float32


def test_conv_output_shape_formula():
    conv = mc.Conv2d(3, 8, 3, stride=2, padding=1, rng=0)
    out = conv.forward(np.zeros((2, 3, 9, 6)))
    assert out.shape == (2, 8, 5, 3) == conv.output_shape((2, 3, 9, 6))


def test_linear_uses_pytorch_layout(rng):
    lin = mc.Linear(3, 2, rng=0)
    x = rng.standard_normal((4, 3))
    np.testing.assert_allclose(lin.forward(x), x @ lin.params["W"].T + lin.params["b"])
    assert lin.params["W"].shape == (2, 3)


def test_flatten_is_channel_major():
    x = np.arange(24, dtype=np.float64).reshape(2, 3, 2, 2)
    out = mc.Flatten().forward(x)
    np.testing.assert_array_equal(out[0], np.arange(12))


def test_global_avg_pool_gradient_is_uniform():
    gap = mc.GlobalAvgPool2d()
    gap.forward(np.zeros((1, 2, 3, 4)))
    dx = gap.backward(np.array([[12.0, 24.0]]))
    np.testing.assert_array_equal(dx[0, 0], np.ones((3, 4)))
    np.testing.assert_array_equal(dx[0, 1], np.full((3, 4), 2.0))


def test_dropout_train_and_eval(rng):
    x = np.ones((200, 50))
    drop = mc.Dropout(0.3, rng=0)
    out = drop.forward(x)
    kept = out != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(out[kept], 1 / 0.7)  # inverted dropout keeps the expectation
    np.testing.assert_array_equal(drop.backward(x) != 0, kept)  # gradient uses the same mask
    drop.eval()
    np.testing.assert_array_equal(drop.forward(x), x)
    a = mc.Dropout(0.5, rng=3).forward(x)
    b = mc.Dropout(0.5, rng=3).forward(x)
    np.testing.assert_array_equal(a, b)


def test_batchnorm_training_statistics(rng):
    bn = mc.BatchNorm2d(3, momentum=0.1)
    x = 3.0 + 2.0 * rng.standard_normal((8, 3, 4, 5))
    out = bn.forward(x)
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0.0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=(0, 2, 3)), 1.0, rtol=1e-4)  # eps = 1e-5 shrinks it slightly
    m = 8 * 4 * 5
    np.testing.assert_allclose(bn.buffers["running_mean"], 0.1 * x.mean(axis=(0, 2, 3)))
    np.testing.assert_allclose(bn.buffers["running_var"], 0.9 + 0.1 * x.var(axis=(0, 2, 3)) * m / (m - 1))


def test_batchnorm_eval_uses_running_statistics(rng):
    bn = mc.BatchNorm2d(2)
    bn.buffers["running_mean"] = np.array([1.0, -1.0])
    bn.buffers["running_var"] = np.array([4.0, 0.25])
    bn.params["gamma"] = np.array([2.0, 1.0])
    bn.params["beta"] = np.array([0.0, 1.0])
    bn.eval()
    x = rng.standard_normal((3, 2, 2, 2))
    out = bn.forward(x)
    want0 = 2.0 * (x[:, 0] - 1.0) / np.sqrt(4.0 + 1e-5)
    want1 = (x[:, 1] + 1.0) / np.sqrt(0.25 + 1e-5) + 1.0
    np.testing.assert_allclose(out[:, 0], want0, rtol=1e-13)
    np.testing.assert_allclose(out[:, 1], want1, rtol=1e-13)
    before = {k: v.copy() for k, v in bn.buffers.items()}
    bn.forward(x)
    for k in before:
        np.testing.assert_array_equal(bn.buffers[k], before[k])


def test_repr_shows_hyperparameters_and_shapes():
    r = repr(mc.Conv2d(3, 8, 5, stride=2, padding=1, rng=0))
    assert "in_channels=3" in r and "kernel_size=5" in r and "stride=2" in r and "(8, 3, 5, 5)" in r
    assert "p=0.25" in repr(mc.Dropout(0.25, rng=0))
    assert "(10, 4)" in repr(mc.Linear(4, 10, rng=0))


# -- bad input ---------------------------------------------------------------


@pytest.mark.parametrize(
    "make,x,err,match",
    [
        (lambda: mc.Conv2d(3, 4, 3, rng=0), np.zeros((3, 5, 5)), ValueError, "x must be 4-D"),
        (lambda: mc.Conv2d(3, 4, 3, rng=0), np.zeros((1, 2, 5, 5)), ValueError, "expects 3 input channels, got 2"),
        (lambda: mc.Conv2d(3, 4, 3, rng=0), np.zeros((1, 3, 5, 5), dtype=int), TypeError, "floating-point dtype"),
        (lambda: mc.Conv2d(3, 4, 3, rng=0), np.zeros((1, 3, 5, 5), dtype=object), TypeError, "floating-point dtype"),
        (lambda: mc.Conv2d(3, 4, 3, rng=0), [[1.0]], TypeError, "numpy.ndarray"),
        (lambda: mc.Conv2d(1, 1, 7, padding=1, rng=0), np.zeros((1, 1, 4, 4)), ValueError, "kernel_size 7 is larger"),
        (lambda: mc.MaxPool2d(3), np.zeros((1, 1, 2, 5)), ValueError, "kernel_size 3 is larger"),
        (lambda: mc.Linear(4, 2, rng=0), np.zeros((2, 5)), ValueError, "expects 4 input features, got 5"),
        (lambda: mc.Linear(4, 2, rng=0), np.zeros((2, 4, 1)), ValueError, "x must be 2-D"),
        (lambda: mc.BatchNorm2d(3), np.zeros((2, 4, 3, 3)), ValueError, "expects 3 channels, got 4"),
        (lambda: mc.GlobalAvgPool2d(), np.zeros((2, 4)), ValueError, "x must be 4-D"),
        (lambda: mc.ReLU(), np.array([1.0, np.nan]), ValueError, "NaN"),
    ],
)
def test_forward_refuses_bad_input(make, x, err, match):
    with pytest.raises(err, match=match):
        make().forward(x)


@pytest.mark.parametrize(
    "make,err,match",
    [
        (lambda: mc.Conv2d(0, 4, 3), ValueError, "in_channels must be >= 1, got 0"),
        (lambda: mc.Conv2d(3, 4, 2.5), TypeError, "kernel_size must be an int"),
        (lambda: mc.Conv2d(3, 4, 3, stride=0), ValueError, "stride must be >= 1"),
        (lambda: mc.Conv2d(3, 4, 3, padding=-1), ValueError, "padding must be >= 0"),
        (lambda: mc.Conv2d(3, 4, 3, dtype=np.int32), TypeError, "dtype must be float32 or float64"),
        (lambda: mc.Conv2d(3, 4, 3, rng="seed"), TypeError, "rng must be None, an int seed"),
        (lambda: mc.Linear(4, True), TypeError, "out_features must be an int"),
        (lambda: mc.MaxPool2d(0), ValueError, "kernel_size must be >= 1"),
        (lambda: mc.Dropout(1.0), ValueError, r"p must be in \[0.0, 1.0\)"),
        (lambda: mc.Dropout(-0.1), ValueError, "p must be in"),
        (lambda: mc.BatchNorm2d(3, eps=0), ValueError, r"eps must be > 0\.0, got 0\.0"),
    ],
)
def test_constructors_refuse_bad_arguments(make, err, match):
    with pytest.raises(err, match=match):
        make()


@pytest.mark.parametrize("label,layer,x", CASES, ids=[c[0] for c in CASES])
def test_backward_before_forward_is_refused(label, layer, x):
    import copy

    fresh = copy.deepcopy(layer)
    fresh._cache = None
    with pytest.raises(mc.StateError, match="backward called before forward"):
        fresh.backward(np.zeros(fresh.output_shape(x.shape)))
    with pytest.raises(ValueError):  # StateError is also a ValueError
        fresh.backward(np.zeros(fresh.output_shape(x.shape)))


@pytest.mark.parametrize("label,layer,x", CASES, ids=[c[0] for c in CASES])
def test_backward_refuses_wrong_dout_shape(label, layer, x):
    out = layer.forward(x)
    with pytest.raises(ValueError, match="dout must have the shape"):
        layer.backward(np.zeros(out.shape + (1,)))


def test_relu_refuses_unknown_mode():
    relu = mc.ReLU()
    relu.forward(np.ones(3))
    with pytest.raises(ValueError, match="mode must be one of .* got 'guide'"):
        relu.backward(np.ones(3), mode="guide")


def test_batchnorm_train_needs_more_than_one_value():
    with pytest.raises(ValueError, match="more than one value per channel"):
        mc.BatchNorm2d(2).forward(np.ones((1, 2, 1, 1)))


# -- caches, checks and zeros of the fast paths --------------------------------


@pytest.mark.parametrize("label,layer,x", CASES, ids=[c[0] for c in CASES])
def test_changing_x_or_out_after_forward_does_not_change_gradients(label, layer, x, rng):
    # Every cache is the layer's own array (unfolded input, mask, argmax, x_hat, a
    # copy of x for Linear): what the caller does with x or out afterwards is irrelevant.
    import copy

    reference = copy.deepcopy(layer)
    dout = rng.standard_normal(reference.forward(x.copy()).shape)
    want_dx = reference.backward(dout)
    x_mine = x.copy()
    out = layer.forward(x_mine)
    x_mine[...] = rng.standard_normal(x.shape)
    out[...] = 0.0
    np.testing.assert_array_equal(layer.backward(dout), want_dx)
    for key in layer.params:
        np.testing.assert_array_equal(layer.grads[key], reference.grads[key])


def test_relu_has_no_negative_zeros_on_large_inputs(rng):
    # Large enough for NumPy's SIMD loops, in both dtypes, forward and every backward rule.
    for dtype in (np.float64, np.float32):
        x = rng.standard_normal(10_000).astype(dtype)
        x[::7] = -0.0
        dout = rng.standard_normal(x.shape).astype(dtype)
        dout[::5] = -0.0
        relu = mc.ReLU()
        assert not np.any(np.signbit(relu.forward(x)))
        for mode in mc.layers.RELU_MODES:
            dx = relu.backward(dout, mode=mode)
            assert dx.dtype == dtype
            assert not np.any(np.signbit(dx[dx == 0])), mode


def test_model_checks_its_input_once_and_layers_still_check_direct_calls(monkeypatch, rng):
    import importlib

    model = mc.Sequential([mc.Conv2d(2, 3, 3, padding=1, rng=0), mc.ReLU(), mc.MaxPool2d(2),
                           mc.GlobalAvgPool2d(), mc.Linear(3, 2, rng=1)])
    x = rng.standard_normal((2, 2, 6, 5))
    calls = []
    for room in ("base", "spatial", "dense", "activations", "normalization"):
        module = importlib.import_module(f"minicam.layers.{room}")
        if hasattr(module, "check_float_array"):
            real = module.check_float_array
            monkeypatch.setattr(module, "check_float_array",
                                lambda a, name, real=real, **kw: calls.append(name) or real(a, name, **kw))
    scores = model.forward(x)
    model.backward(np.ones_like(scores))
    assert calls == []  # the model checked x and dscores itself, once each
    with pytest.raises(ValueError, match="x contains NaN"):
        model.forward(np.full(x.shape, np.nan))
    with pytest.raises(ValueError, match="x contains NaN"):
        mc.ReLU().forward(np.full(3, np.nan))
    with pytest.raises(ValueError, match="dout contains NaN"):
        model["conv1"].backward(np.full(model.outputs["conv1"].shape, np.nan))
    # Shapes are still checked inside the model, and named.
    with pytest.raises(ValueError, match="layer 'conv1'.*expects 2 input channels"):
        model.forward(rng.standard_normal((2, 3, 6, 5)))


def test_model_calls_a_layer_that_overrides_the_public_methods(rng):
    # A student's layer written against the documented protocol (forward/backward) is used as is.
    class Doubling(mc.ReLU):
        def forward(self, x):
            return 2.0 * x

        def backward(self, dout, mode="standard"):
            return 2.0 * dout

    model = mc.Sequential([mc.Linear(3, 3, rng=0), Doubling(), mc.Linear(3, 2, rng=1)])
    x = rng.standard_normal((4, 3))
    h = model["fc1"].forward(x)
    np.testing.assert_allclose(model.forward(x), 2.0 * h @ model["fc2"].params["W"].T)
    dx = model.backward(np.ones((4, 2)))
    np.testing.assert_allclose(dx, 2.0 * np.ones((4, 2)) @ model["fc2"].params["W"] @ model["fc1"].params["W"])


# -- AdaptiveAvgPool2d -----------------------------------------------------------


def test_adaptive_avg_pool_layer_shapes_config_and_repr(rng):
    pool = mc.AdaptiveAvgPool2d((3, 2))
    assert pool.config() == {"output_size": [3, 2]}
    assert mc.AdaptiveAvgPool2d(**pool.config()).output_size == (3, 2)  # the config rebuilds the layer
    assert mc.AdaptiveAvgPool2d(7).output_size == (7, 7)
    assert "output_size=[3, 2]" in repr(pool)
    assert mc.layers.LAYER_TYPES["AdaptiveAvgPool2d"] is mc.AdaptiveAvgPool2d
    for h, w in [(7, 5), (2, 1), (30, 40)]:  # any input size, smaller or larger than the output
        x = rng.standard_normal((2, 4, h, w))
        out = pool.forward(x)
        assert out.shape == (2, 4, 3, 2) == pool.output_shape(x.shape)  # 4-D, like torch
        assert pool.backward(np.ones_like(out)).shape == x.shape


def test_adaptive_avg_pool_one_is_global_average_pooling_kept_4d(rng):
    x = rng.standard_normal((3, 5, 7, 6))
    dout = rng.standard_normal((3, 5))
    pool, gap = mc.AdaptiveAvgPool2d(1), mc.GlobalAvgPool2d()
    np.testing.assert_allclose(pool.forward(x)[:, :, 0, 0], gap.forward(x), rtol=1e-14)
    gap.forward(x)
    np.testing.assert_allclose(pool.backward(dout[:, :, None, None]), gap.backward(dout), rtol=1e-15)


def test_adaptive_avg_pool_gradient_is_conserved(rng):
    # Each output spreads its whole gradient over its window (overlaps included):
    # per sample and channel, dx sums to what dout sums to.
    pool = mc.AdaptiveAvgPool2d((4, 3))
    x = rng.standard_normal((2, 3, 7, 5))
    dout = rng.standard_normal(pool.forward(x).shape)
    np.testing.assert_allclose(pool.backward(dout).sum(axis=(2, 3)), dout.sum(axis=(2, 3)), rtol=1e-12)


@pytest.mark.parametrize(
    "make,err,match",
    [
        (lambda: mc.AdaptiveAvgPool2d(0), ValueError, r"output_size must be >= 1 along both axes, got \(0, 0\)"),
        (lambda: mc.AdaptiveAvgPool2d((2, -1)), ValueError, r"output_size must be >= 1"),
        (lambda: mc.AdaptiveAvgPool2d((2, 3, 4)), TypeError, r"output_size must be an int or a pair of ints"),
        (lambda: mc.AdaptiveAvgPool2d(2.0), TypeError, r"output_size must be an int or a pair"),
        (lambda: mc.AdaptiveAvgPool2d(None), TypeError, r"output_size must be an int or a pair"),
    ],
)
def test_adaptive_avg_pool_refuses_bad_output_size(make, err, match):
    with pytest.raises(err, match=match):
        make()


def test_adaptive_avg_pool_refuses_bad_input():
    with pytest.raises(ValueError, match="x must be 4-D"):
        mc.AdaptiveAvgPool2d(2).forward(np.zeros((2, 3, 4)))


# -- Parity with PyTorch (float64) for the AlexNet/VGG/ResNet layers --------------
#
# Against torch.nn.functional directly, on the same inputs and a random upstream
# gradient. Skipped without torch (an error when CI is set, see parity_support).

PARITY_TOL = 1e-12  # relative (rel_error), for arithmetic; measured differences are ~1e-16
DIFFS = Differences("torch")


@pytest.fixture(scope="module")
def torch():
    return require("torch", "the layers' parity tests against PyTorch")


@pytest.fixture(scope="module", autouse=True)
def _parity_report(request):
    yield
    DIFFS.write_report(request, "largest difference minicam vs PyTorch per quantity (test_layers.py, float64):")


def torch_forward_backward(torch, fn, x, dout, *params):
    """``fn(x_t, *params_t)`` in torch autograd: the output and the gradients of x and each param."""
    leaves = [torch.tensor(a, requires_grad=True) for a in (x, *params)]
    out = fn(*leaves)
    out.backward(torch.tensor(dout))
    return out, [t.grad for t in leaves]


@pytest.mark.parametrize(
    "shape,output_size",
    [
        ((2, 3, 7, 7), (1, 1)),  # ResNet's head
        ((2, 3, 7, 7), (7, 7)),  # VGG's head on a 224 input: every window one pixel
        ((2, 3, 9, 11), (7, 7)),  # VGG's head on a larger input: unequal, overlapping windows
        ((2, 2, 13, 13), (6, 6)),  # AlexNet's head on a 13x13 map
        ((2, 3, 3, 5), (7, 7)),  # output larger than the input
        ((3, 2, 8, 5), (3, 2)),
    ],
)
def test_adaptive_avg_pool_matches_torch(shape, output_size, torch, rng):
    x = rng.standard_normal(shape)
    pool = mc.AdaptiveAvgPool2d(output_size)
    out = pool.forward(x)
    dout = rng.standard_normal(out.shape)
    dx = pool.backward(dout)
    out_t, (dx_t,) = torch_forward_backward(torch, lambda t: torch.nn.functional.adaptive_avg_pool2d(t, output_size), x, dout)
    where = f"{output_size} on {shape[2]}x{shape[3]}"
    DIFFS.check("AdaptiveAvgPool2d forward", out, out_t, PARITY_TOL, where)
    DIFFS.check("AdaptiveAvgPool2d dx", dx, dx_t, PARITY_TOL, where)


# -- MaxPool2d padding ----------------------------------------------------------------


def test_max_pool_padding_config_and_old_configs():
    pool = mc.MaxPool2d(3, stride=2, padding=1)
    assert pool.config() == {"kernel_size": 3, "stride": 2, "padding": 1}
    assert "padding=1" in repr(pool)
    # An unpadded pool is described exactly as before padding existed, and such a
    # config (every model file saved so far) still builds the same layer.
    assert mc.MaxPool2d(2).config() == {"kernel_size": 2, "stride": 2}
    old = mc.MaxPool2d(**{"kernel_size": 3, "stride": 2})
    assert old.padding == 0 and old.config() == {"kernel_size": 3, "stride": 2}
    assert mc.MaxPool2d(**pool.config()).config() == pool.config()
    assert mc.AvgPool2d(2).padding == 0 and "padding" not in mc.AvgPool2d(2).config()


def test_max_pool_padding_output_shape():
    # ResNet's stem pool halves a 112x112 map to 56x56; floor mode on odd sizes.
    pool = mc.MaxPool2d(3, stride=2, padding=1)
    assert pool.output_shape((1, 64, 112, 112)) == (1, 64, 56, 56)
    out = pool.forward(np.zeros((2, 3, 7, 8)))
    assert out.shape == (2, 3, 4, 4) == pool.output_shape((2, 3, 7, 8))


def test_max_pool_padding_round_trips_through_a_model_file(tmp_path, rng):
    model = mc.Sequential([("conv", mc.Conv2d(2, 3, 3, rng=0)), ("pool1", mc.MaxPool2d(3, stride=2, padding=1)),
                           ("pool2", mc.MaxPool2d(2)), ("gap", mc.GlobalAvgPool2d())])
    path = tmp_path / "m.npz"
    mc.io.save(model, path)
    loaded = mc.io.load(path)
    assert loaded["pool1"].config() == {"kernel_size": 3, "stride": 2, "padding": 1}
    assert loaded["pool2"].config() == {"kernel_size": 2, "stride": 2}
    x = rng.standard_normal((2, 2, 9, 8))
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))


@pytest.mark.parametrize(
    "make,err,match",
    [
        (lambda: mc.MaxPool2d(3, stride=2, padding=2), ValueError,
         r"padding must be <= kernel_size // 2 = 1 for kernel_size=3 .*got padding=2"),
        (lambda: mc.MaxPool2d(2, padding=2), ValueError, r"padding must be <= kernel_size // 2 = 1 .*got padding=2"),
        (lambda: mc.MaxPool2d(1, padding=1), ValueError, r"kernel_size // 2 = 0 .*got padding=1"),
        (lambda: mc.MaxPool2d(3, padding=-1), ValueError, r"padding must be >= 0, got -1"),
        (lambda: mc.MaxPool2d(3, padding=1.0), TypeError, r"padding must be an int, got 1.0"),
        (lambda: mc.MaxPool2d(3, padding=True), TypeError, r"padding must be an int, got True"),
    ],
)
def test_max_pool_refuses_bad_padding(make, err, match):
    with pytest.raises(err, match=match):
        make()


def test_avg_pool_has_no_padding_argument():
    with pytest.raises(TypeError, match="padding"):
        mc.AvgPool2d(2, padding=1)


def ties_input(kind, shape, rng):
    """Max-pool inputs with ties: ReLU zeros (whole windows of zeros), small integers, or all zeros."""
    if kind == "relu":
        return np.maximum(rng.standard_normal(shape) - 0.3, 0.0)
    if kind == "integers":
        x = rng.integers(0, 3, size=shape).astype(np.float64)
        x[0, 0] = 1.0  # a plane that is all ties
        return x
    if kind == "zeros":
        return np.zeros(shape)
    return rng.standard_normal(shape)


@pytest.mark.parametrize("kind", ["distinct", "relu", "integers", "zeros"])
@pytest.mark.parametrize(
    "kernel_size,stride,padding,shape",
    [
        (3, 2, 1, (2, 3, 7, 8)),  # ResNet's stem pool
        (3, 2, 1, (1, 2, 8, 8)),
        (3, 2, 0, (2, 2, 13, 13)),  # AlexNet's pools (overlapping)
        (3, 2, 0, (1, 2, 7, 6)),
        (2, 2, 1, (2, 2, 5, 6)),  # non-overlapping, edge windows half padding
        (3, 1, 1, (1, 2, 5, 4)),  # stride 1, "same" size
        (2, 2, 0, (2, 3, 6, 5)),  # the small networks' pool
        (5, 2, 2, (1, 2, 9, 7)),
    ],
)
def test_max_pool_matches_torch_including_ties(kernel_size, stride, padding, shape, kind, torch, rng):
    # minicam's documented rule (first maximum in row-major order of the window) is what
    # PyTorch's CPU kernel does in float64 too; padding (-inf in both) never wins.
    x = ties_input(kind, shape, rng)
    pool = mc.MaxPool2d(kernel_size, stride=stride, padding=padding)
    out = pool.forward(x)
    dout = rng.standard_normal(out.shape)
    dx = pool.backward(dout)
    out_t, (dx_t,) = torch_forward_backward(
        torch, lambda t: torch.nn.functional.max_pool2d(t, kernel_size, stride, padding), x, dout
    )
    where = f"k={kernel_size}, s={stride}, p={padding} on {shape[2]}x{shape[3]}, {kind}"
    DIFFS.check("MaxPool2d forward (exact)", out, out_t, 0.0, where)
    if stride >= kernel_size:
        DIFFS.check("MaxPool2d dx, windows apart (exact)", dx, dx_t, 0.0, where)
    else:  # a position in several windows sums their gradients, in another order than torch
        DIFFS.check("MaxPool2d dx, overlapping windows", dx, dx_t, PARITY_TOL, where)
    # the same routing: every input gets a gradient from the same windows as in torch
    np.testing.assert_array_equal(dx != 0, numpy_of(dx_t) != 0, err_msg=where)


# -- Conv2d without a bias ------------------------------------------------------------


def test_conv_without_bias_has_only_a_weight(rng):
    conv = mc.Conv2d(3, 4, 3, stride=2, padding=1, bias=False, rng=0)
    assert set(conv.params) == set(conv.grads) == {"W"}
    assert conv.num_params == 4 * 3 * 3 * 3
    assert conv.config() == {"in_channels": 3, "out_channels": 4, "kernel_size": 3, "stride": 2, "padding": 1, "bias": False}
    assert "bias=False" in repr(conv)
    x = rng.standard_normal((2, 3, 7, 6))
    out = conv.forward(x)
    dout = rng.standard_normal(out.shape)
    dx = conv.backward(dout)
    assert set(conv.grads) == {"W"}
    # The same numbers as a convolution whose bias is zero.
    with_bias = mc.Conv2d(3, 4, 3, stride=2, padding=1, rng=0)
    np.testing.assert_array_equal(with_bias.params["W"], conv.params["W"])  # the same He draw
    np.testing.assert_array_equal(out, with_bias.forward(x))
    np.testing.assert_array_equal(dx, with_bias.backward(dout))
    np.testing.assert_array_equal(conv.grads["W"], with_bias.grads["W"])
    # a float32 forward still stores float32 gradients, and only W's
    conv32 = mc.Conv2d(3, 4, 3, bias=False, rng=0, dtype=np.float32)
    conv32.backward(np.ones(conv32.forward(x.astype(np.float32)).shape, dtype=np.float32))
    assert set(conv32.grads) == {"W"} and conv32.grads["W"].dtype == np.float32


def test_conv_bias_config_keeps_old_configs():
    # A convolution with a bias is described exactly as before the option existed,
    # and such a config (every model file saved so far) builds a convolution with a bias.
    config = {"in_channels": 3, "out_channels": 4, "kernel_size": 3, "stride": 1, "padding": 1}
    assert mc.Conv2d(**config, rng=0).config() == config
    assert "b" in mc.Conv2d(**config, rng=0).params
    no_bias = mc.Conv2d(**config, bias=False, rng=0)
    assert mc.Conv2d(**no_bias.config(), rng=0).config() == no_bias.config()


@pytest.mark.parametrize("bias", [0, 1, "False", None, np.array(False)])
def test_conv_refuses_a_bias_that_is_not_a_bool(bias):
    with pytest.raises(TypeError, match=r"bias must be True or False, got"):
        mc.Conv2d(3, 4, 3, bias=bias)


def test_conv_without_bias_trains_in_a_model(rng):
    # The optimiser, the model's parameter list and backward see only W.
    model = mc.Sequential([mc.Conv2d(2, 3, 3, padding=1, bias=False, rng=0), mc.BatchNorm2d(3), mc.ReLU(),
                           mc.GlobalAvgPool2d(), mc.Linear(3, 2, rng=1)])
    assert [k for k, _ in model.named_parameters()][:1] == ["conv1.W"]
    assert not any(k.startswith("conv1.b") for k, _ in model.named_parameters())
    x = rng.standard_normal((4, 2, 5, 5))
    y = np.array([0, 1, 1, 0])
    opt = mc.optim.SGD(model, lr=0.1)
    losses = []
    for _ in range(5):
        loss, dscores = mc.softmax_cross_entropy(model.forward(x), y)
        model.backward(dscores)
        opt.step()
        losses.append(loss)
    assert losses[-1] < losses[0]
    assert "b" not in model["conv1"].params


@pytest.mark.parametrize(
    "n,c,h,w,f,k,s,p",
    [(2, 3, 7, 6, 4, 3, 2, 1), (2, 4, 7, 5, 3, 1, 2, 0), (1, 3, 9, 9, 4, 7, 2, 3), (2, 2, 5, 6, 3, 3, 1, 1)],
)
def test_conv_without_bias_matches_torch(n, c, h, w, f, k, s, p, torch, rng):
    conv = mc.Conv2d(c, f, k, stride=s, padding=p, bias=False, rng=rng)
    x = rng.standard_normal((n, c, h, w))
    out = conv.forward(x)
    dout = rng.standard_normal(out.shape)
    dx = conv.backward(dout)
    out_t, (dx_t, dW_t) = torch_forward_backward(
        torch, lambda t, Wt: torch.nn.functional.conv2d(t, Wt, None, stride=s, padding=p), x, dout, conv.params["W"]
    )
    where = f"k={k}, s={s}, p={p} on {c}x{h}x{w}"
    DIFFS.check("Conv2d(bias=False) forward", out, out_t, PARITY_TOL, where)
    DIFFS.check("Conv2d(bias=False) dx", dx, dx_t, PARITY_TOL, where)
    DIFFS.check("Conv2d(bias=False) dW", conv.grads["W"], dW_t, PARITY_TOL, where)


@pytest.mark.parametrize("label,layer,x", CASES, ids=[c[0] for c in CASES])
def test_infer_is_the_forward_keeping_nothing(label, layer, x):
    # What Sequential.forward(x, cache=False) calls: the same output, no cache (a later
    # backward fails loudly instead of reading a stale cache).
    want = layer.forward(x.copy())
    got = layer._infer(x.copy())
    if isinstance(layer, mc.Dropout) and layer.training and layer.p > 0:
        # a fresh mask each call: each value is dropped or scaled by 1 / (1 - p)
        kept = got != 0
        np.testing.assert_allclose(got[kept], x[kept] / (1 - layer.p), rtol=1e-15)
        want = got
    # eval-mode BatchNorm's inference pass is one scale-and-shift: another rounding order
    tol = dict(rtol=1e-13, atol=1e-13) if isinstance(layer, mc.BatchNorm2d) and not layer.training else dict(rtol=0, atol=0)
    np.testing.assert_allclose(got, want, **tol)
    assert layer._cache is None
    with pytest.raises(mc.StateError, match="after a forward that kept no cache"):
        layer.backward(np.ones_like(want))
