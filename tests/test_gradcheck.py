"""The checker itself: whole models pass, wrong backward passes are rejected."""

import numpy as np
import pytest

import minicam as mc
from minicam import gradcheck as gc
from minicam.__main__ import main

MODELS = gc.model_cases(seed=0)


@pytest.mark.parametrize("label,model,x,y", MODELS, ids=[m[0] for m in MODELS])
def test_whole_model_gradients(label, model, x, y):
    errors = gc.check_model(model, x, y)
    assert set(errors) == {"x"} | {k for k, _ in model.named_parameters()}
    for key, err in errors.items():
        assert err < gc.MODEL_TOL, f"{label}: d{key} relative error {err:.2e}"


class WrongConv(mc.Conv2d):
    """A classic bug: forgetting to sum the bias gradient over the batch."""

    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["b"] = dout[0].sum(axis=(1, 2))
        return dx


class WrongReLU(mc.ReLU):
    """Another classic bug: letting the gradient through at x < 0 too (identity backward)."""

    def backward(self, dout, mode="standard"):
        return dout.copy()


class TransposedLinear(mc.Linear):
    """Off by a transpose in dW (square W, so the shapes do not catch it)."""

    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["W"] = self.grads["W"].T.copy()
        return dx


def test_checker_rejects_wrong_backward(rng):
    errors = gc.check_layer(WrongConv(2, 3, 3, rng=0), rng.standard_normal((3, 2, 5, 4)))
    assert errors["b"] > 1e-2 and errors["x"] < gc.LAYER_TOL
    errors = gc.check_layer(WrongReLU(), gc.kink_free_input((2, 3, 4, 4), rng))
    assert errors["x"] > 1e-2
    errors = gc.check_layer(TransposedLinear(4, 4, rng=0), rng.standard_normal((3, 4)))
    assert errors["W"] > 1e-2


def test_checker_rejects_wrong_backward_inside_a_model(rng):
    model = mc.Sequential([WrongConv(3, 2, 3, rng=0), mc.ReLU(), mc.GlobalAvgPool2d(), mc.Linear(2, 2, rng=1)])
    errors = gc.check_model(model, rng.standard_normal((3, 3, 5, 5)), np.array([0, 1, 1]))
    assert errors["conv1.b"] > gc.MODEL_TOL


def test_numerical_gradient_hand_example():
    x = np.array([1.0, 2.0, 3.0])
    g = gc.numerical_gradient(lambda v: v**2, x, np.array([1.0, 10.0, 100.0]))
    np.testing.assert_allclose(g, [2.0, 40.0, 600.0], rtol=1e-9)
    np.testing.assert_array_equal(x, [1.0, 2.0, 3.0])  # restored


def test_numerical_gradient_restores_x_when_f_raises():
    x = np.array([1.0, 2.0])

    def f(v):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        gc.numerical_gradient(f, x, 1.0)
    np.testing.assert_array_equal(x, [1.0, 2.0])


def test_float32_is_refused():
    with pytest.raises(TypeError, match="gradient checks need float64"):
        gc.numerical_gradient(lambda v: v, np.ones(3, dtype=np.float32), np.ones(3))
    with pytest.raises(TypeError, match="float64"):
        gc.check_layer(mc.Linear(2, 2, rng=0, dtype=np.float32), np.ones((1, 2)))
    with pytest.raises(TypeError, match="float64"):
        gc.check_layer(mc.ReLU(), np.ones((1, 2), dtype=np.float32))


def test_rel_error():
    assert gc.rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert gc.rel_error([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert gc.rel_error([1.0, -2.0], [1.0, -1.0]) == 0.5
    with pytest.raises(ValueError, match="same shape"):
        gc.rel_error(np.zeros(2), np.zeros(3))


def test_check_layer_leaves_layer_untouched(rng):
    bn = mc.BatchNorm2d(2)
    gc.check_layer(bn, rng.standard_normal((3, 2, 3, 3)))
    np.testing.assert_array_equal(bn.buffers["running_mean"], 0.0)


def test_cli_gradcheck_passes(capsys):
    assert main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out
    assert out.count("PASS") >= 40
    assert "0 failed" in out


def test_cli_gradcheck_fails_loudly_on_a_wrong_layer(capsys, monkeypatch):
    real = gc.layer_cases

    def with_a_bug(seed=0):
        return real(seed) + [("WrongReLU", WrongReLU(), gc.kink_free_input((2, 2, 3, 3), 0))]

    monkeypatch.setattr(gc, "layer_cases", with_a_bug)
    assert main(["gradcheck"]) == 1
    out = capsys.readouterr().out
    assert "WrongReLU" in out and "FAIL" in out and "1 failed" in out


def test_resnet_style_model_gradients(rng):
    # The issue #14 layers end to end: a bias-less conv straight into train-mode
    # BatchNorm (ResNet's pattern: no bias whose true gradient is zero), ResNet's stem
    # pool (3/2/1, overlapping, -inf padding, windows of ReLU zeros), AlexNet's
    # overlapping pool, an adaptive pool to a size that does not divide the map.
    model = mc.Sequential([
        mc.Conv2d(3, 4, 3, stride=1, padding=1, bias=False, rng=rng), mc.BatchNorm2d(4), mc.ReLU(),
        mc.MaxPool2d(3, stride=2, padding=1),
        mc.Conv2d(4, 5, 3, padding=1, rng=rng), mc.ReLU(), mc.MaxPool2d(3, stride=2),
        mc.AdaptiveAvgPool2d((2, 3)), mc.Flatten(), mc.Linear(5 * 2 * 3, 3, rng=rng),
    ])
    x = rng.standard_normal((3, 3, 11, 13))
    errors = gc.check_model(model, x, np.array([0, 2, 1]))
    assert "conv1.b" not in errors and "conv1.W" in errors
    for key, err in errors.items():
        assert err < gc.MODEL_TOL, f"d{key} relative error {err:.2e}"
