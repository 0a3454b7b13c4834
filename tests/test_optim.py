"""Optimizers: update rules against hand computations, convergence, validation."""

import math

import numpy as np
import pytest

import minicam as mc
from minicam.optim import SGD, Adam


def scalar_model(p0):
    """A model with one trainable scalar p = fc.W[0, 0] (and its bias b = fc.b[0])."""
    model = mc.Sequential([("fc", mc.Linear(1, 1, rng=0))])
    model["fc"].params["W"] = np.array([[p0]])
    model["fc"].params["b"] = np.array([0.0])
    return model


def set_grad(model, g, gb=0.0):
    model["fc"].grads["W"] = np.array([[g]])
    model["fc"].grads["b"] = np.array([gb])


def test_sgd_momentum_weight_decay_by_hand():
    model = scalar_model(1.0)
    opt = SGD(model, lr=0.1, momentum=0.9, weight_decay=0.01)
    set_grad(model, 0.5)
    opt.step()
    # g' = 0.5 + 0.01 * 1 = 0.51; buffer = g' on the first step; p = 1 - 0.1 * 0.51
    assert model["fc"].params["W"][0, 0] == pytest.approx(0.949, abs=1e-15)
    set_grad(model, -0.2)
    opt.step()
    # g' = -0.2 + 0.01 * 0.949 = -0.19051; buffer = 0.9 * 0.51 - 0.19051 = 0.26849
    # p = 0.949 - 0.1 * 0.26849 = 0.922151
    assert model["fc"].params["W"][0, 0] == pytest.approx(0.922151, abs=1e-15)


def test_plain_sgd_is_p_minus_lr_g():
    model = scalar_model(2.0)
    opt = SGD(model, lr=0.25)
    set_grad(model, 4.0, gb=-1.0)
    opt.step()
    assert model["fc"].params["W"][0, 0] == 1.0
    assert model["fc"].params["b"][0] == 0.25


def test_adam_by_hand():
    model = scalar_model(1.0)
    opt = Adam(model, lr=0.1, betas=(0.9, 0.999), eps=1e-8)
    set_grad(model, 0.5)
    opt.step()
    # m1 = 0.1 * 0.5 = 0.05, v1 = 0.001 * 0.25 = 0.00025;
    # m_hat = 0.05 / 0.1 = 0.5, v_hat = 0.00025 / 0.001 = 0.25
    # p1 = 1 - 0.1 * 0.5 / (0.5 + 1e-8): a step of lr in the gradient's sign.
    p1 = 1 - 0.1 * 0.5 / (0.5 + 1e-8)
    assert model["fc"].params["W"][0, 0] == pytest.approx(p1, abs=1e-15)
    assert model["fc"].params["W"][0, 0] == pytest.approx(0.9, abs=1e-8)
    set_grad(model, -0.2)
    opt.step()
    # m2 = 0.9 * 0.05 + 0.1 * (-0.2) = 0.025; v2 = 0.999 * 0.00025 + 0.001 * 0.04 = 0.00028975
    # m_hat = 0.025 / (1 - 0.81) = 0.13157894..., v_hat = 0.00028975 / (1 - 0.998001) = 0.14494747...
    m_hat = 0.025 / 0.19
    v_hat = 0.00028975 / 0.001999
    p2 = p1 - 0.1 * m_hat / (math.sqrt(v_hat) + 1e-8)
    assert model["fc"].params["W"][0, 0] == pytest.approx(p2, abs=1e-13)
    assert p2 == pytest.approx(0.865439, abs=1e-6)  # 0.9 - 0.0345607...
    # The bias had zero gradient throughout: m = v = 0, so it does not move.
    assert model["fc"].params["b"][0] == 0.0


def test_adam_weight_decay_is_added_to_the_gradient():
    # With g = 0 and weight decay, g' = wd * p: Adam's first step is lr * sign(p).
    model = scalar_model(3.0)
    opt = Adam(model, lr=0.01, weight_decay=0.1)
    set_grad(model, 0.0)
    opt.step()
    assert model["fc"].params["W"][0, 0] == pytest.approx(3.0 - 0.01, abs=1e-9)


@pytest.mark.parametrize(
    "make",
    [lambda m: SGD(m, lr=0.1), lambda m: SGD(m, lr=0.05, momentum=0.9), lambda m: Adam(m, lr=0.05)],
    ids=["sgd", "sgd-momentum", "adam"],
)
def test_minimises_a_quadratic(make, rng):
    # f(W, b) = 1/2 ||A (W - W*)||^2 + 1/2 (b - b*)^2 with an ill-conditioned A.
    model = mc.Sequential([("fc", mc.Linear(4, 1, rng=rng))])
    W_star, b_star = rng.standard_normal((1, 4)), np.array([0.7])
    A = np.diag([1.0, 2.0, 0.5, 3.0])
    opt = make(model)
    f0 = None
    for _ in range(2000):
        W, b = model["fc"].params["W"], model["fc"].params["b"]
        diff = (W - W_star) @ A
        f = 0.5 * np.sum(diff**2) + 0.5 * np.sum((b - b_star) ** 2)
        f0 = f if f0 is None else f0
        model["fc"].grads["W"] = diff @ A.T
        model["fc"].grads["b"] = b - b_star
        opt.step()
    assert f0 > 0.1
    np.testing.assert_allclose(model["fc"].params["W"], W_star, atol=1e-4)
    np.testing.assert_allclose(model["fc"].params["b"], b_star, atol=1e-4)


def test_step_replaces_arrays_and_keeps_dtype():
    model = mc.Sequential([("fc", mc.Linear(3, 2, rng=0, dtype=np.float32))])
    W_before = model["fc"].params["W"]
    snapshot = W_before.copy()
    opt = Adam(model, lr=0.1)
    model["fc"].grads["W"] = np.ones((2, 3), dtype=np.float32)
    model["fc"].grads["b"] = np.ones(2, dtype=np.float32)
    opt.step()
    np.testing.assert_array_equal(W_before, snapshot)  # the old array is not written into
    assert model["fc"].params["W"] is not W_before
    assert model["fc"].params["W"].dtype == np.float32
    assert opt.state[0]["exp_avg"].dtype == np.float32
    assert opt.t == 1


def test_bad_hyper_parameters():
    model = scalar_model(1.0)
    with pytest.raises(ValueError, match="lr"):
        SGD(model, lr=0.0)
    with pytest.raises(ValueError, match="lr"):
        Adam(model, lr=-1e-3)
    with pytest.raises(TypeError, match="lr"):
        SGD(model, lr="0.1")
    with pytest.raises(ValueError, match="momentum"):
        SGD(model, lr=0.1, momentum=1.0)
    with pytest.raises(ValueError, match="weight_decay"):
        SGD(model, lr=0.1, weight_decay=-0.1)
    with pytest.raises(ValueError, match=r"betas\[1\]"):
        Adam(model, betas=(0.9, 1.0))
    with pytest.raises(TypeError, match="betas"):
        Adam(model, betas=0.9)
    with pytest.raises(ValueError, match="eps"):
        Adam(model, eps=0.0)
    with pytest.raises(TypeError, match="model"):
        Adam([np.zeros(3)])
    with pytest.raises(ValueError, match="no trainable parameters"):
        SGD(mc.Sequential([mc.ReLU()]), lr=0.1)


def test_non_finite_gradient_names_the_parameter():
    model = scalar_model(1.0)
    opt = SGD(model, lr=0.1)
    set_grad(model, float("nan"))
    with pytest.raises(ValueError, match=r"fc\.W.*NaN"):
        opt.step()
