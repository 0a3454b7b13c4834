"""No layer or model hands back (or keeps) an array the caller owns.

A returned array that shares memory with an argument lets a later write by
the caller change minicam's results (or minicam's write change the caller's
data): every forward output and every backward gradient is a new array.
These tests kill the mutants "Dropout.eval returns x itself", "Flatten
returns a view", "Sequential.backward returns its argument".
"""

import numpy as np
import pytest

import minicam as mc
from minicam.gradcheck import layer_cases

CASES = layer_cases(seed=3)


@pytest.mark.parametrize("label, layer, x", CASES, ids=[c[0] for c in CASES])
def test_layer_outputs_and_gradients_are_new_arrays(label, layer, x):
    out = layer.forward(x)
    assert out is not x and not np.shares_memory(out, x), f"{label}: forward output shares memory with x"
    dout = np.random.default_rng(0).standard_normal(out.shape)
    dx = layer.backward(dout)
    assert dx is not dout and not np.shares_memory(dx, dout), f"{label}: dx shares memory with dout"


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_identity_layers_still_copy(mode):
    # Dropout in eval mode and with p = 0 is the identity: it must still return a copy.
    for layer in (mc.Dropout(0.5, rng=0), mc.Dropout(0.0, rng=0)):
        getattr(layer, mode)()
        if mode == "train" and layer.p > 0:
            continue
        x = np.arange(6.0).reshape(2, 3)
        out = layer.forward(x)
        np.testing.assert_array_equal(out, x)
        out[0, 0] = 99.0
        assert x[0, 0] == 0.0


def test_sequential_backward_never_returns_its_argument():
    model = mc.Sequential([mc.Linear(4, 3, rng=0), mc.Dropout(0.5, rng=0)]).eval()
    scores = model.forward(np.ones((2, 4)))
    dscores = np.ones_like(scores)
    # stop_at the last layer: no layer runs, the gradient is dscores itself -- returned as a copy
    got = model.backward(dscores, stop_at="dropout1")
    np.testing.assert_array_equal(got, dscores)
    assert got is not dscores and not np.shares_memory(got, dscores)
    got[0, 0] = -5.0
    assert dscores[0, 0] == 1.0
    dx = model.backward(dscores)
    assert not np.shares_memory(dx, dscores)


def test_pools_whose_windows_are_single_pixels_still_copy():
    # AdaptiveAvgPool2d to the input's own size and MaxPool2d(1) are the identity:
    # they must still return new arrays (mutant: "return x when nothing is pooled").
    x = np.arange(24.0).reshape(2, 3, 2, 2)
    for layer in (mc.AdaptiveAvgPool2d((2, 2)), mc.MaxPool2d(1)):
        out = layer.forward(x)
        np.testing.assert_array_equal(out, x)
        assert not np.shares_memory(out, x), type(layer).__name__
        dout = np.ones_like(out)
        assert not np.shares_memory(layer.backward(dout), dout), type(layer).__name__
