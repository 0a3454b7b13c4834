"""Input-gradient maps: saliency, guided backprop, deconvnet, Guided Grad-CAM, SmoothGrad;
and a tiny network whose every map is computed by hand."""

import numpy as np
import pytest
from explain_nets import fc_net, gap_net, images

import minicam as mc
from minicam import gradcheck as gc
from minicam.layers import ReLU

CLASSES = [0, 3, 4]


def tiny_net():
    """x (1, 1, 2, 2) -> 1x1 conv (W = 2, b = 0) -> ReLU -> GAP -> Linear(W = [[3], [-1]], b = [0.5, 0])."""
    conv = mc.Conv2d(1, 1, 1, rng=0)
    conv.params["W"] = np.full((1, 1, 1, 1), 2.0)
    fc = mc.Linear(1, 2, rng=0)
    fc.params["W"], fc.params["b"] = np.array([[3.0], [-1.0]]), np.array([0.5, 0.0])
    return mc.Sequential([("conv", conv), ("relu", mc.ReLU()), ("gap", mc.GlobalAvgPool2d()), ("fc", fc)])


TINY_X = np.array([[[[1.0, -2.0], [3.0, 4.0]]]])


def test_tiny_net_by_hand():
    # A = relu(2x) = [[2, 0], [6, 8]]; GAP = 4; y = [3*4 + 0.5, -4] = [12.5, -4].
    model = tiny_net()
    np.testing.assert_allclose(model.forward(TINY_X), [[12.5, -4.0]])
    # CAM_0 = 3 A; Grad-CAM_0: dy0/dA = 3/4 everywhere, alpha = 3/4, map = 3/4 A (sums to 12 = y0 - b0).
    np.testing.assert_allclose(mc.cam(model, TINY_X, 0), [[[6.0, 0.0], [18.0, 24.0]]])
    np.testing.assert_allclose(mc.grad_cam(model, TINY_X, 0), [[[1.5, 0.0], [4.5, 6.0]]])
    # class 1: alpha = -1/4, signed map -A/4, ReLU -> 0, counterfactual -> A/4
    np.testing.assert_allclose(mc.grad_cam(model, TINY_X, 1, relu=False), [[[-0.5, 0.0], [-1.5, -2.0]]])
    np.testing.assert_allclose(mc.grad_cam(model, TINY_X, 1), np.zeros((1, 2, 2)))
    np.testing.assert_allclose(mc.grad_cam(model, TINY_X, 1, counterfactual=True), [[[0.5, 0.0], [1.5, 2.0]]])
    # Input maps, class 0: the ReLU receives dout = 3/4 > 0 at every position.
    #   saliency: 3/4 * [x > 0] * 2;  guided: the same (dout > 0);  deconvnet: ignores x's sign -> 1.5 everywhere.
    np.testing.assert_allclose(mc.saliency(model, TINY_X, 0), [[[[1.5, 0.0], [1.5, 1.5]]]])
    np.testing.assert_allclose(mc.guided_backprop(model, TINY_X, 0), [[[[1.5, 0.0], [1.5, 1.5]]]])
    np.testing.assert_allclose(mc.deconvnet(model, TINY_X, 0), [[[[1.5, 1.5], [1.5, 1.5]]]])
    # class 1: dout = -1/4 < 0: saliency -1/2 where x > 0; guided and deconvnet block it entirely.
    np.testing.assert_allclose(mc.saliency(model, TINY_X, 1), [[[[-0.5, 0.0], [-0.5, -0.5]]]])
    np.testing.assert_array_equal(mc.guided_backprop(model, TINY_X, 1), np.zeros((1, 1, 2, 2)))
    np.testing.assert_array_equal(mc.deconvnet(model, TINY_X, 1), np.zeros((1, 1, 2, 2)))
    # Guided Grad-CAM, same size: Grad-CAM * guided
    np.testing.assert_allclose(mc.guided_grad_cam(model, TINY_X, 0), [[[[2.25, 0.0], [6.75, 9.0]]]])
    # occlusion with 1x1 windows: drop of y0 when pixel p is zeroed = 3/4 * relu(2 x_p)
    np.testing.assert_allclose(mc.occlusion(model, TINY_X, 0, window=1), [[[1.5, 0.0], [4.5, 6.0]]])


@pytest.mark.parametrize("make", [gap_net, fc_net])
def test_saliency_is_the_gradient_of_the_logit(make):
    model, x = make(0), images()
    grad = mc.saliency(model, x, CLASSES)
    rows = np.arange(3)
    numeric = gc.numerical_gradient(lambda v: model.forward(v)[rows, CLASSES], x.copy(), np.ones(3))
    assert gc.rel_error(grad, numeric) < 1e-7


def test_saliency_map_is_max_abs_over_channels(rng):
    grad = rng.standard_normal((2, 3, 4, 5))
    m = mc.saliency_map(grad)
    assert m.shape == (2, 4, 5)
    for n in range(2):
        for i in range(4):
            for j in range(5):
                assert m[n, i, j] == max(abs(grad[n, c, i, j]) for c in range(3))
    with pytest.raises(ValueError, match=r"grad must be 4-D"):
        mc.saliency_map(grad[0])


def _manual_chain(model, x, dscores, rule):
    """Backward by hand, layer by layer, applying ``rule(inp, dout)`` at every ReLU."""
    model.forward(x)
    outputs = [x] + [model.outputs[name] for name in model.names]
    grad = dscores
    for i in range(len(model) - 1, -1, -1):
        layer = model.layers[i]
        if isinstance(layer, ReLU):
            grad = rule(outputs[i], grad)
        else:
            grad = layer.backward(grad)
    return grad


RULES = {
    "guided": (mc.guided_backprop, lambda inp, d: d * (inp > 0) * (d > 0)),
    "deconvnet": (mc.deconvnet, lambda inp, d: d * (d > 0)),
    "standard": (mc.saliency, lambda inp, d: d * (inp > 0)),
}


@pytest.mark.parametrize("mode", list(RULES))
@pytest.mark.parametrize("make", [gap_net, fc_net])
def test_input_maps_follow_their_relu_rule(mode, make):
    method, rule = RULES[mode]
    model, x = make(0), images()
    got = method(model, x, CLASSES)
    dscores = np.zeros((3, 5))
    dscores[np.arange(3), CLASSES] = 1.0
    np.testing.assert_allclose(got, _manual_chain(model, x, dscores, rule), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("make", [gap_net, fc_net])
def test_rule_level_properties_at_every_relu(make):
    # Just below each ReLU (the gradient w.r.t. its input): guided and deconvnet signals are >= 0;
    # guided is zero wherever the forward input was <= 0; deconvnet passes some of those through.
    model, x = make(0), images()
    dscores = np.zeros((3, 5))
    dscores[np.arange(3), CLASSES] = 1.0
    model.forward(x)
    names = model.names
    for i, name in enumerate(names):
        if not isinstance(model[name], ReLU):
            continue
        below = names[i - 1]
        inp = model.outputs[below]
        model.forward(x)
        guided = model.backward(dscores, relu_mode="guided", stop_at=below)
        deconv = model.backward(dscores, relu_mode="deconvnet", stop_at=below)
        assert guided.min() >= 0 and guided.max() > 0
        assert np.all(guided[inp <= 0] == 0)
        assert deconv.min() >= 0 and (deconv[inp <= 0] > 0).any()
    # at the input, guided backprop can be negative (the first conv's weights flip signs)
    assert mc.guided_backprop(model, x, CLASSES).min() < 0


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("make", [gap_net, fc_net])
def test_guided_grad_cam_is_upsampled_grad_cam_times_guided_backprop(interpolation, make):
    model, x = make(0), images()
    got = mc.guided_grad_cam(model, x, CLASSES, interpolation=interpolation)
    up = mc.upsample(mc.grad_cam(model, x, CLASSES), (10, 8), interpolation=interpolation)
    np.testing.assert_array_equal(got, up[:, None] * mc.guided_backprop(model, x, CLASSES))
    assert got.shape == x.shape and np.abs(got).max() > 0


def test_guided_grad_cam_layer_and_interpolations_differ():
    model, x = gap_net(0), images()
    bil = mc.guided_grad_cam(model, x, CLASSES)
    assert gc.rel_error(bil, mc.guided_grad_cam(model, x, CLASSES, interpolation="nearest")) > 1e-3
    np.testing.assert_array_equal(
        mc.guided_grad_cam(model, x, CLASSES, layer="relu1"),
        mc.grad_cam(model, x, CLASSES, layer="relu1")[:, None] * mc.guided_backprop(model, x, CLASSES))


# -- SmoothGrad ------------------------------------------------------------------


def test_smoothgrad_of_a_linear_model_is_its_gradient(rng):
    # the gradient of a linear model does not depend on x: averaging noisy copies changes nothing
    model = mc.Sequential([mc.Flatten(), mc.Linear(3 * 10 * 8, 5, rng=0)])
    x = images()
    np.testing.assert_allclose(mc.smoothgrad(mc.saliency, model, x, CLASSES, n_samples=5, sigma=0.3, rng=rng),
                               mc.saliency(model, x, CLASSES), rtol=1e-13)


def test_smoothgrad_is_the_mean_over_noisy_copies():
    model, x = fc_net(0), images()
    got = mc.smoothgrad(mc.guided_backprop, model, x, CLASSES, n_samples=4, sigma=0.2, rng=7)
    gen = np.random.default_rng(7)
    span = (x.max(axis=(1, 2, 3)) - x.min(axis=(1, 2, 3)))[:, None, None, None]
    manual = np.mean([mc.guided_backprop(model, x + gen.standard_normal(x.shape) * 0.2 * span, CLASSES)
                      for _ in range(4)], axis=0)
    np.testing.assert_allclose(got, manual, rtol=1e-12)
    assert gc.rel_error(got, mc.guided_backprop(model, x, CLASSES)) > 1e-2  # the noise does something
    # sigma = 0: the method itself
    np.testing.assert_allclose(mc.smoothgrad(mc.saliency, model, x, CLASSES, n_samples=3, sigma=0.0, rng=0),
                               mc.saliency(model, x, CLASSES), rtol=1e-14)


def test_smoothgrad_keeps_the_clean_prediction_and_passes_options():
    model, x = fc_net(0), images()
    predicted = model.forward(x).argmax(axis=1)
    a = mc.smoothgrad(mc.saliency, model, x, None, n_samples=3, sigma=0.5, rng=1, score="softmax")
    b = mc.smoothgrad(mc.saliency, model, x, predicted, n_samples=3, sigma=0.5, rng=1, score="softmax")
    np.testing.assert_array_equal(a, b)
    maps = mc.smoothgrad(mc.grad_cam, model, x, CLASSES, n_samples=2, rng=0, layer="relu1")
    assert maps.shape == (3, 10, 8)


@pytest.mark.parametrize("method", [mc.guided_backprop, mc.grad_cam, mc.eigen_cam])
def test_smoothgrad_stacks_noisy_copies_into_one_batch_with_the_same_noise(method):
    model, x = fc_net(0), images()
    cls = None if method is mc.eigen_cam else CLASSES
    one_at_a_time = mc.smoothgrad(method, model, x, cls, n_samples=5, sigma=0.2, rng=3, batch_size=1)
    stacked = mc.smoothgrad(method, model, x, cls, n_samples=5, sigma=0.2, rng=3)  # 5 copies of 3 in one pass
    two_per_call = mc.smoothgrad(method, model, x, cls, n_samples=5, sigma=0.2, rng=3, batch_size=6)
    np.testing.assert_allclose(stacked, one_at_a_time, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(two_per_call, one_at_a_time, rtol=1e-12, atol=1e-15)


def test_smoothgrad_batches_really_are_batch_size_images():
    model, x = fc_net(0), images()
    seen = []

    def recording(model_, batch, class_idx=None):
        seen.append((batch.shape[0], np.asarray(class_idx).tolist()))
        return mc.saliency(model_, batch, class_idx)

    mc.smoothgrad(recording, model, x, [0, 1, 2], n_samples=5, rng=0, batch_size=6)
    assert seen == [(6, [0, 1, 2, 0, 1, 2])] * 2 + [(3, [0, 1, 2])]
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        mc.smoothgrad(mc.saliency, model, x, 0, batch_size=0)
