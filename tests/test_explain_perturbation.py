"""Occlusion: captum's definition, checked on a linear model where every drop has a closed form."""

import math

import numpy as np
import pytest
from explain_nets import fc_net, images

import minicam as mc
from minicam import gradcheck as gc

CLASSES = [0, 3, 4]


def linear_model(seed=0):
    rng = np.random.default_rng(seed)
    model = mc.Sequential([mc.Flatten(), mc.Linear(3 * 10 * 8, 5, rng=rng)])
    model.layers[1].params["b"] = rng.standard_normal(5)
    return model


def captum_occlusion_of_linear(W, x, c, kh, kw, sh, sw, baseline):
    """captum's Occlusion for f(x) = W x + b, written from its definition with closed-form drops."""
    n, C, H, Wd = x.shape
    Wc = W.reshape(-1, C, H, Wd)
    total = np.zeros((n, H, Wd))
    count = np.zeros((H, Wd))
    for i in range(math.ceil((H - kh) / sh) + 1):
        for j in range(math.ceil((Wd - kw) / sw) + 1):
            win = (slice(None), slice(i * sh, i * sh + kh), slice(j * sw, j * sw + kw))
            for s in range(n):
                # f(x) - f(x with the window set to baseline) = sum over the window of W_c (x - baseline)
                drop = (Wc[c[s]][win] * (x[s][win] - baseline)).sum()
                total[s][win[1:]] += drop
            count[win[1:]] += 1
    return total / count


@pytest.mark.parametrize("window,stride", [(1, 1), (3, 1), (2, 2), ((3, 2), (2, 1)), (4, 3), ((10, 8), 5)])
@pytest.mark.parametrize("baseline", [0.0, -0.5])
def test_occlusion_of_a_linear_model(window, stride, baseline):
    model, x = linear_model(), images()
    got = mc.occlusion(model, x, CLASSES, window=window, stride=stride, baseline=baseline)
    kh, kw = (window, window) if isinstance(window, int) else window
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    W = model.layers[1].params["W"]
    expected = captum_occlusion_of_linear(W, x, CLASSES, kh, kw, sh, sw, baseline)
    assert gc.rel_error(got, expected) < 1e-12


def test_occlusion_1x1_windows_are_the_per_pixel_contributions():
    model, x = linear_model(), images()
    W = model.layers[1].params["W"].reshape(5, 3, 10, 8)
    got = mc.occlusion(model, x, CLASSES, window=1)
    expected = np.stack([(W[c] * x[n]).sum(axis=0) for n, c in enumerate(CLASSES)])
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-13)


def test_occlusion_last_window_is_cut_at_the_edge():
    # H = 10, k = 4, s = 4: ceil((10 - 4) / 4) + 1 = 3 windows, at rows 0, 4 and 8; the last one
    # sticks out and is cut to rows 8-9. Each row is covered once.
    model, x = linear_model(), images(1)
    W = model.layers[1].params["W"].reshape(5, 3, 10, 8)[2]

    def drop(r0, r1):
        return (W[:, r0:r1, :] * x[0, :, r0:r1, :]).sum()

    got = mc.occlusion(model, x, 2, window=(4, 8), stride=(4, 1))
    for r0, r1 in [(0, 4), (4, 8), (8, 10)]:
        np.testing.assert_allclose(got[0, r0:r1], np.full((r1 - r0, 8), drop(r0, r1)), rtol=1e-12)
    # k = 4, s = 3: windows at rows 0, 3, 6 (ceil(6 / 3) + 1 = 3); row 6 is covered by the windows at 3 and 6
    got = mc.occlusion(model, x, 2, window=(4, 8), stride=(3, 1))
    np.testing.assert_allclose(got[0, 6], np.full(8, (drop(3, 7) + drop(6, 10)) / 2), rtol=1e-12)
    np.testing.assert_allclose(got[0, 9], np.full(8, drop(6, 10)), rtol=1e-12)


def test_occlusion_array_baseline_and_score():
    model, x = fc_net(0), images()
    base = np.random.default_rng(3).standard_normal((1, 3, 10, 8))
    got = mc.occlusion(model, x, CLASSES, window=5, stride=5, baseline=base, score="softmax")
    # stride = window, sizes divisible: each pixel is covered once, its value is its window's drop
    p0 = mc.softmax(model.forward(x))[np.arange(3), CLASSES]
    occluded = x.copy()
    occluded[:, :, 5:10, 0:5] = base[:, :, 5:10, 0:5]
    p1 = mc.softmax(model.forward(occluded))[np.arange(3), CLASSES]
    np.testing.assert_allclose(got[:, 5:10, 0:5], np.broadcast_to((p0 - p1)[:, None, None], (3, 5, 5)), rtol=1e-12)


def test_occlusion_batching_does_not_change_the_result():
    model, x = fc_net(0), images()
    a = mc.occlusion(model, x, CLASSES, window=3, stride=2, batch_size=1)
    b = mc.occlusion(model, x, CLASSES, window=3, stride=2, batch_size=1000)
    assert gc.rel_error(a, b) < 1e-13  # norm-wise: matrix products round differently per batch size
