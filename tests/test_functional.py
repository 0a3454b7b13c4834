"""Naive (loop) and fast (vectorized) kernels agree, and the hand-checkable cases hold."""

import numpy as np
import pytest

from minicam import functional as F
from minicam.gradcheck import CONV_CASES

CONV_GRID = CONV_CASES  # the grid the gradient checks and the exercises share


def test_hand_checkable_convolution():
    # 1 channel, 3x3 input, 2x2 kernel: every output is a 4-term sum you can do by hand.
    x = np.arange(9, dtype=np.float64).reshape(1, 1, 3, 3)  # [[0,1,2],[3,4,5],[6,7,8]]
    W = np.array([[[[1.0, 0.0], [0.0, -1.0]]]])  # top-left minus bottom-right
    b = np.array([0.5])
    expected = np.array([[[[0 - 4 + 0.5, 1 - 5 + 0.5], [3 - 7 + 0.5, 4 - 8 + 0.5]]]])
    np.testing.assert_array_equal(F.conv2d_forward_naive(x, W, b), expected)
    np.testing.assert_array_equal(F.conv2d_forward(x, W, b)[0], expected)
    # Cross-correlation, not convolution: a flipped kernel would give +3.5 here.
    assert expected[0, 0, 0, 0] == -3.5


def test_hand_checkable_padding_and_stride():
    x = np.ones((1, 1, 3, 3))
    W = np.ones((1, 1, 3, 3))
    out = F.conv2d_forward_naive(x, W, np.zeros(1), stride=2, padding=1)
    # Corners of the padded input see a 2x2 block of ones.
    np.testing.assert_array_equal(out, np.full((1, 1, 2, 2), 4.0))


@pytest.mark.parametrize("n,c,h,w,f,k,s,p", CONV_GRID)
def test_conv_fast_matches_naive(n, c, h, w, f, k, s, p, rng):
    x = rng.standard_normal((n, c, h, w))
    W = rng.standard_normal((f, c, k, k))
    b = rng.standard_normal(f)
    slow = F.conv2d_forward_naive(x, W, b, s, p)
    fast, cols = F.conv2d_forward(x, W, b, s, p)
    assert fast.shape == (n, f, F.output_size(h, k, s, p), F.output_size(w, k, s, p))
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(fast.shape)
    dx_s, dW_s, db_s = F.conv2d_backward_naive(dout, x, W, s, p)
    dx_f, dW_f, db_f = F.conv2d_backward(dout, cols, x.shape, W, s, p)
    np.testing.assert_allclose(dx_f, dx_s, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dW_f, dW_s, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db_f, db_s, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n,c,h,w,f,k,s,p", CONV_GRID)
def test_naive_conv_backward_matches_finite_differences(n, c, h, w, f, k, s, p, rng):
    from minicam.gradcheck import numerical_gradient, rel_error

    x = rng.standard_normal((n, c, h, w))
    W = rng.standard_normal((f, c, k, k))
    b = rng.standard_normal(f)
    dout = rng.standard_normal(F.conv2d_forward_naive(x, W, b, s, p).shape)
    dx, dW, db = F.conv2d_backward_naive(dout, x, W, s, p)
    assert rel_error(dx, numerical_gradient(lambda v: F.conv2d_forward_naive(v, W, b, s, p), x.copy(), dout)) < 1e-7
    assert rel_error(dW, numerical_gradient(lambda v: F.conv2d_forward_naive(x, v, b, s, p), W.copy(), dout)) < 1e-7
    assert rel_error(db, numerical_gradient(lambda v: F.conv2d_forward_naive(x, W, v, s, p), b.copy(), dout)) < 1e-7


def test_im2col_col2im_are_adjoint(rng):
    # <im2col(x), C> == <x, col2im(C)>: col2im is exactly the transpose of im2col.
    x = rng.standard_normal((2, 3, 7, 6))
    cols = F.im2col(x, 3, stride=2, padding=1)
    C = rng.standard_normal(cols.shape)
    lhs = np.sum(cols * C)
    rhs = np.sum(x * F.col2im(C, x.shape, 3, stride=2, padding=1))
    assert abs(lhs - rhs) < 1e-10 * abs(lhs)


def test_im2col_row_layout():
    x = np.arange(2 * 4 * 4, dtype=np.float64).reshape(1, 2, 4, 4)
    cols = F.im2col(x, 2, stride=2)
    assert cols.shape == (4, 2 * 2 * 2)
    # Row 1 is the window at output (0, 1): columns 2..3 of rows 0..1, both channels.
    np.testing.assert_array_equal(cols[1], np.concatenate([x[0, 0, 0:2, 2:4].ravel(), x[0, 1, 0:2, 2:4].ravel()]))


@pytest.mark.parametrize("k,s,h,w", [(2, 2, 6, 5), (3, 2, 7, 7), (2, 1, 5, 4), (3, 3, 7, 8)])
def test_max_pool_fast_matches_naive(k, s, h, w, rng):
    x = rng.standard_normal((2, 3, h, w))
    out, argmax = F.max_pool2d_forward(x, k, s)
    np.testing.assert_array_equal(out, F.max_pool2d_forward_naive(x, k, s))
    dout = rng.standard_normal(out.shape)
    np.testing.assert_allclose(
        F.max_pool2d_backward(dout, argmax, x.shape, k, s), F.max_pool2d_backward_naive(dout, x, k, s), rtol=0, atol=1e-15
    )


def test_max_pool_ties_go_to_first_maximum_in_row_major_order():
    x = np.array([[[[1.0, 3.0], [3.0, 3.0]]]])  # three tied maxima
    out, argmax = F.max_pool2d_forward(x, 2, 2)
    assert out[0, 0, 0, 0] == 3.0
    dx = F.max_pool2d_backward(np.ones((1, 1, 1, 1)), argmax, x.shape, 2, 2)
    np.testing.assert_array_equal(dx, [[[[0.0, 1.0], [0.0, 0.0]]]])
    np.testing.assert_array_equal(F.max_pool2d_backward_naive(np.ones((1, 1, 1, 1)), x, 2, 2), dx)


def test_max_pool_floor_mode_drops_leftovers():
    x = np.arange(25, dtype=np.float64).reshape(1, 1, 5, 5)
    out, _ = F.max_pool2d_forward(x, 2, 2)
    np.testing.assert_array_equal(out, [[[[6.0, 8.0], [16.0, 18.0]]]])


def test_avg_pool_hand_example_and_backward():
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    out = F.avg_pool2d_forward(x, 2, 2)
    np.testing.assert_array_equal(out, [[[[2.5, 4.5], [10.5, 12.5]]]])
    dx = F.avg_pool2d_backward(np.ones((1, 1, 2, 2)), x.shape, 2, 2)
    np.testing.assert_array_equal(dx, np.full((1, 1, 4, 4), 0.25))


@pytest.mark.parametrize(
    "size,k,s,p,expected", [(32, 3, 1, 1, 32), (7, 3, 2, 1, 4), (5, 2, 2, 0, 2), (6, 5, 1, 2, 6), (7, 3, 3, 0, 2)]
)
def test_output_size_formula(size, k, s, p, expected):
    assert F.output_size(size, k, s, p) == expected


def test_output_size_rejects_kernel_larger_than_padded_input():
    with pytest.raises(ValueError, match="kernel_size 5 is larger than the padded input"):
        F.output_size(3, 5, 1, 0)


# -- adaptive average pooling ---------------------------------------------------


@pytest.mark.parametrize(
    "size,out_size,expected",
    [
        (5, 3, [(0, 2), (1, 4), (3, 5)]),  # unequal, overlapping windows
        (7, 3, [(0, 3), (2, 5), (4, 7)]),
        (6, 2, [(0, 3), (3, 6)]),  # divisible: an ordinary pool, kernel = stride = 3
        (2, 5, [(0, 1), (0, 1), (0, 2), (1, 2), (1, 2)]),  # output larger than input: rows repeat
        (4, 1, [(0, 4)]),  # global pooling
        (3, 3, [(0, 1), (1, 2), (2, 3)]),  # identity
    ],
)
def test_adaptive_windows_follow_pytorchs_rule(size, out_size, expected):
    assert F.adaptive_windows(size, out_size) == expected


def test_adaptive_windows_cover_the_input_and_are_never_empty():
    for size in range(1, 30):
        for out_size in range(1, 30):
            wins = F.adaptive_windows(size, out_size)
            assert all(0 <= a < b <= size for a, b in wins), (size, out_size)
            assert wins[0][0] == 0 and wins[-1][1] == size
            assert all(b0 >= a1 for (_, b0), (a1, _) in zip(wins, wins[1:]))  # consecutive windows touch or overlap


def test_adaptive_avg_pool_hand_example():
    # One row 0..4 pooled to 3 outputs: windows [0, 2), [1, 4), [3, 5).
    x = np.arange(5, dtype=np.float64).reshape(1, 1, 1, 5)
    want = [[[[0.5, 2.0, 3.5]]]]
    np.testing.assert_array_equal(F.adaptive_avg_pool2d_forward_naive(x, (1, 3)), want)
    np.testing.assert_array_equal(F.adaptive_avg_pool2d_forward(x, (1, 3)), want)
    # Each output shares its gradient over its window; positions 1 and 3 sit in two windows.
    dx = F.adaptive_avg_pool2d_backward(np.ones((1, 1, 1, 3)), x.shape)
    np.testing.assert_allclose(dx[0, 0, 0], [1 / 2, 1 / 2 + 1 / 3, 1 / 3, 1 / 3 + 1 / 2, 1 / 2], rtol=1e-15)
    np.testing.assert_array_equal(F.adaptive_avg_pool2d_backward_naive(np.ones((1, 1, 1, 3)), x.shape), dx)


ADAPTIVE_GRID = [
    # (H, W, H_out, W_out): divisible, overlapping, output larger than input, global, identity
    (6, 4, 3, 2),
    (7, 5, 3, 2),
    (5, 7, 3, 4),
    (3, 2, 5, 7),
    (7, 6, 1, 1),
    (6, 5, 6, 5),
    (1, 1, 2, 3),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("h,w,oh,ow", ADAPTIVE_GRID)
def test_adaptive_avg_pool_fast_matches_naive(h, w, oh, ow, dtype, rng):
    x = rng.standard_normal((2, 3, h, w)).astype(dtype)
    tol = {"rtol": 1e-12, "atol": 1e-12} if dtype == np.float64 else {"rtol": 2e-6, "atol": 2e-6}
    out = F.adaptive_avg_pool2d_forward(x, (oh, ow))
    assert out.shape == (2, 3, oh, ow) and out.dtype == dtype
    np.testing.assert_allclose(out, F.adaptive_avg_pool2d_forward_naive(x, (oh, ow)), **tol)
    dout = rng.standard_normal(out.shape).astype(dtype)
    x_before, dout_before = x.copy(), dout.copy()
    dx = F.adaptive_avg_pool2d_backward(dout, x.shape)
    assert dx.shape == x.shape and dx.dtype == dtype
    np.testing.assert_allclose(dx, F.adaptive_avg_pool2d_backward_naive(dout, x.shape), **tol)
    # backward is the adjoint of forward: <pool(x), dout> == <x, dx>
    assert abs(np.sum(out * dout, dtype=np.float64) - np.sum(x * dx, dtype=np.float64)) < (1e-12 if dtype == np.float64 else 1e-4) * x.size
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(dout, dout_before)


@pytest.mark.parametrize("h,w,oh,ow", ADAPTIVE_GRID)
def test_naive_adaptive_avg_pool_backward_matches_finite_differences(h, w, oh, ow, rng):
    from minicam.gradcheck import numerical_gradient, rel_error

    x = rng.standard_normal((2, 2, h, w))
    dout = rng.standard_normal((2, 2, oh, ow))
    dx = F.adaptive_avg_pool2d_backward_naive(dout, x.shape)
    numeric = numerical_gradient(lambda v: F.adaptive_avg_pool2d_forward_naive(v, (oh, ow)), x.copy(), dout)
    assert rel_error(dx, numeric) < 1e-7


def test_adaptive_avg_pool_is_an_avg_pool_when_the_size_divides(rng):
    x = rng.standard_normal((2, 3, 6, 9))
    np.testing.assert_allclose(F.adaptive_avg_pool2d_forward(x, (2, 3)), F.avg_pool2d_forward(x, 3, 3), rtol=1e-13)
    np.testing.assert_allclose(
        F.adaptive_avg_pool2d_forward(x, (1, 1))[:, :, 0, 0], x.mean(axis=(2, 3)), rtol=1e-13
    )


# -- max pooling with padding -----------------------------------------------------


def test_max_pool_padding_never_wins_hand_example():
    # All inputs negative: a zero border would win every edge window; -inf never does.
    x = -np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    want = -np.array([[[[1.0, 1.0, 2.0], [1.0, 1.0, 2.0], [3.0, 3.0, 4.0]]]])  # k=2, s=1, p=1: 3x3 windows
    np.testing.assert_array_equal(F.max_pool2d_forward_naive(x, 2, 1, 1), want)
    out, argmax = F.max_pool2d_forward(x, 2, 1, 1)
    np.testing.assert_array_equal(out, want)
    # Window (0, 0) holds pad, pad, pad, x[0, 0]: its maximum is offset (1, 1) = 3.
    assert argmax[0, 0, 0, 0] == 3
    dx = F.max_pool2d_backward(np.ones((1, 1, 3, 3)), argmax, x.shape, 2, 1, 1)
    np.testing.assert_array_equal(dx, [[[[4.0, 2.0], [2.0, 1.0]]]])  # -1 wins 4 windows, -2 and -3 two, -4 one
    np.testing.assert_array_equal(F.max_pool2d_backward_naive(np.ones((1, 1, 3, 3)), x, 2, 1, 1), dx)


def test_max_pool_padding_ties_go_to_the_first_input_maximum():
    # ResNet's stem pool (3/2/1) on a map of ReLU zeros: every window is a tie among
    # its inputs; the gradient goes to the first input in row-major order, never to the border.
    x = np.zeros((1, 1, 4, 4))
    out, argmax = F.max_pool2d_forward(x, 3, 2, 1)
    np.testing.assert_array_equal(out, np.zeros((1, 1, 2, 2)))
    # windows start at padded rows/cols 0 and 2: their first input is at padded (1, 1), (1, 2), (2, 1), (2, 2)
    np.testing.assert_array_equal(argmax[0, 0], [[4, 3], [1, 0]])
    dx = F.max_pool2d_backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), argmax, x.shape, 3, 2, 1)
    want = np.zeros((1, 1, 4, 4))
    want[0, 0, 0, 0], want[0, 0, 0, 1], want[0, 0, 1, 0], want[0, 0, 1, 1] = 1.0, 2.0, 3.0, 4.0
    np.testing.assert_array_equal(dx, want)
    np.testing.assert_array_equal(F.max_pool2d_backward_naive(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), x, 3, 2, 1), want)


@pytest.mark.parametrize("k,p", [(3, 2), (2, 2), (1, 1), (4, 3)])
def test_max_pool_refuses_padding_above_half_the_kernel(k, p):
    match = rf"padding must be <= kernel_size // 2 = {k // 2} for kernel_size={k} .* got padding={p}"
    x = np.zeros((1, 1, 8, 8))
    for call in (lambda: F.max_pool2d_forward(x, k, 1, p), lambda: F.max_pool2d_forward_naive(x, k, 1, p)):
        with pytest.raises(ValueError, match=match):
            call()


@pytest.mark.parametrize("size,k,s,p,expected", [(7, 3, 2, 1, 4), (112, 3, 2, 1, 56), (55, 3, 2, 0, 27), (5, 2, 2, 1, 3), (1, 3, 1, 1, 1)])
def test_max_pool_output_size_is_floor_mode(size, k, s, p, expected):
    out, _ = F.max_pool2d_forward(np.zeros((1, 1, size, size)), k, s, p)
    assert out.shape[2:] == (expected, expected) == (F.output_size(size, k, s, p),) * 2


# -- convolution without a bias ----------------------------------------------------


@pytest.mark.parametrize("n,c,h,w,f,k,s,p", CONV_GRID)
def test_conv_without_bias_is_conv_with_zero_bias(n, c, h, w, f, k, s, p, rng):
    x = rng.standard_normal((n, c, h, w))
    W = rng.standard_normal((f, c, k, k))
    want = F.conv2d_forward_naive(x, W, np.zeros(f), s, p)
    np.testing.assert_array_equal(F.conv2d_forward_naive(x, W, None, s, p), want)
    fast, cols = F.conv2d_forward(x, W, None, s, p)
    np.testing.assert_allclose(fast, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(fast, F.conv2d_forward(x, W, np.zeros(f), s, p)[0])
    np.testing.assert_array_equal(cols, F.unfold(x, k, s, p))
