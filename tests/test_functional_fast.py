"""The fast kernels (unfold/fold convolution, offset-view pooling) against the naive loops.

Float64 agrees to rounding error (1e-12); float32 to float32 rounding, and keeps
float32. Grids include non-square and odd sizes, stride 2 and 3, padding, and
max-pool inputs full of ties (small integers), where the gradient must go to
the first maximum of each window in row-major order, exactly as the loop does.
"""

import numpy as np
import pytest

from minicam import functional as F
from minicam.functional import conv as conv_module

CONV_GRID = [
    # (N, C, H, W, F, K, stride, padding)
    (2, 3, 7, 5, 4, 3, 1, 1),
    (2, 2, 8, 7, 3, 3, 2, 1),
    (1, 3, 5, 6, 2, 2, 2, 0),
    (2, 1, 6, 9, 2, 5, 1, 2),
    (1, 2, 9, 4, 3, 3, 2, 0),
    (2, 2, 7, 10, 3, 3, 3, 0),
    (3, 4, 11, 6, 5, 1, 1, 0),  # 1x1 kernel
    (1, 2, 6, 5, 2, 3, 2, 2),  # padding larger than needed: edge windows see only zeros
]
POOL_GRID = [
    # (H, W, K, stride): non-overlapping (divisible and cropped), overlapping, odd sizes
    (6, 4, 2, 2),
    (7, 5, 2, 2),
    (9, 7, 3, 3),
    (7, 7, 3, 2),
    (5, 4, 2, 1),
    (8, 6, 2, 3),  # stride > kernel: some rows never pooled
    (5, 7, 5, 1),
]
DTYPES = [np.float64, np.float32]


def _tol(dtype):
    return {"rtol": 1e-12, "atol": 1e-12} if dtype == np.float64 else {"rtol": 2e-5, "atol": 2e-5}


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("n,c,h,w,f,k,s,p", CONV_GRID)
def test_conv_fast_matches_naive(n, c, h, w, f, k, s, p, dtype, rng):
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    W = rng.standard_normal((f, c, k, k)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    out, cols = F.conv2d_forward(x, W, b, s, p)
    assert out.dtype == cols.dtype == dtype
    np.testing.assert_allclose(out, F.conv2d_forward_naive(x, W, b, s, p), **_tol(dtype))
    dout = rng.standard_normal(out.shape).astype(dtype)
    fast = F.conv2d_backward(dout, cols, x.shape, W, s, p)
    slow = F.conv2d_backward_naive(dout, x, W, s, p)
    for name, a, b_ in zip(("dx", "dW", "db"), fast, slow):
        assert a.dtype == dtype, name
        assert a.shape == b_.shape, name
        np.testing.assert_allclose(a, b_, **_tol(dtype), err_msg=name)


@pytest.mark.parametrize("n,c,h,w,f,k,s,p", CONV_GRID)
def test_conv_fast_writes_into_nothing_and_keeps_no_view_of_x(n, c, h, w, f, k, s, p, rng):
    x = rng.standard_normal((n, c, h, w))
    W = rng.standard_normal((f, c, k, k))
    b = rng.standard_normal(f)
    before = [a.copy() for a in (x, W, b)]
    out, cols = F.conv2d_forward(x, W, b, s, p)
    assert not np.shares_memory(cols, x) and not np.shares_memory(out, x)
    dout = rng.standard_normal(out.shape)
    dout_before = dout.copy()
    F.conv2d_backward(dout, cols, x.shape, W, s, p)
    for a, a0 in zip((x, W, b, dout), before + [dout_before]):
        np.testing.assert_array_equal(a, a0)


def test_unfold_layout():
    # Sample n, row (c, p, q), column (i, j) holds x_pad[n, c, i*s + p, j*s + q].
    x = np.arange(2 * 3 * 5 * 4, dtype=np.float64).reshape(2, 3, 5, 4)
    cols = F.unfold(x, 3, stride=2, padding=1)
    xp = F.pad2d(x, 1)
    assert cols.shape == (2, 3 * 9, 3 * 2)
    for n, c, p, q, i, j in [(0, 0, 0, 0, 0, 0), (1, 2, 1, 2, 2, 1), (0, 1, 2, 1, 1, 0), (1, 0, 0, 2, 2, 1)]:
        assert cols[n, (c * 3 + p) * 3 + q, i * 2 + j] == xp[n, c, i * 2 + p, j * 2 + q]


@pytest.mark.parametrize("n,c,h,w,f,k,s,p", CONV_GRID)
def test_fold_is_the_adjoint_of_unfold(n, c, h, w, f, k, s, p, rng):
    # <unfold(x), C> == <x, fold(C)>: fold is exactly the transpose of unfold.
    x = rng.standard_normal((n, c, h, w))
    cols = F.unfold(x, k, s, p)
    C = rng.standard_normal(cols.shape)
    lhs = np.sum(cols * C)
    rhs = np.sum(x * F.fold(C, x.shape, k, s, p))
    assert abs(lhs - rhs) < 1e-10 * max(1.0, abs(lhs))


def test_unfold_agrees_with_im2col(rng):
    # The same numbers as the row-per-window im2col, in the per-sample layout.
    x = rng.standard_normal((2, 3, 7, 6))
    cols = F.unfold(x, 3, stride=2, padding=1)  # (N, CKK, P)
    rows = F.im2col(x, 3, stride=2, padding=1)  # (N*P, CKK)
    np.testing.assert_array_equal(cols.transpose(0, 2, 1).reshape(rows.shape), rows)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
@pytest.mark.parametrize("h,w,k,s", POOL_GRID)
def test_max_pool_fast_matches_naive(h, w, k, s, ties, dtype, rng):
    if ties:  # values in {0, 1, 2}: most windows have several maxima
        x = rng.integers(0, 3, size=(2, 3, h, w)).astype(dtype)
    else:
        x = rng.standard_normal((2, 3, h, w)).astype(dtype)
    out, argmax = F.max_pool2d_forward(x, k, s)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, F.max_pool2d_forward_naive(x, k, s))
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = F.max_pool2d_backward(dout, argmax, x.shape, k, s)
    assert dx.dtype == dtype
    # The same routing, so the same numbers (bit for bit when windows do not overlap).
    np.testing.assert_allclose(dx, F.max_pool2d_backward_naive(dout, x, k, s), rtol=0, atol=1e-6 if dtype == np.float32 else 1e-15)
    if s >= k:
        np.testing.assert_array_equal(dx, F.max_pool2d_backward_naive(dout, x, k, s))


def test_max_pool_argmax_is_first_maximum_in_row_major_order():
    # Windows of a 3x3 kernel with every tie pattern we care about.
    x = np.array(
        [
            [5.0, 5.0, 5.0, 0.0, 0.0, 0.0],
            [5.0, 5.0, 5.0, 0.0, 0.0, 7.0],
            [5.0, 5.0, 5.0, 7.0, 0.0, 7.0],
        ]
    )[None, None]
    out, argmax = F.max_pool2d_forward(x, 3, 3)
    np.testing.assert_array_equal(out[0, 0], [[5.0, 7.0]])
    np.testing.assert_array_equal(argmax[0, 0], [[0, 5]])  # all tied -> (0, 0); (1, 2) comes before (2, 0)
    dx = F.max_pool2d_backward(np.array([[[[1.0, 2.0]]]]), argmax, x.shape, 3, 3)
    expected = np.zeros_like(x)
    expected[0, 0, 0, 0] = 1.0
    expected[0, 0, 1, 5] = 2.0
    np.testing.assert_array_equal(dx, expected)


def test_max_pool_backward_has_no_negative_zeros(rng):
    x = rng.standard_normal((2, 3, 8, 8))
    out, argmax = F.max_pool2d_forward(x, 2, 2)
    dx = F.max_pool2d_backward(-np.ones(out.shape), argmax, x.shape, 2, 2)
    assert not np.any(np.signbit(dx[dx == 0]))


def test_max_pool_writes_into_nothing(rng):
    x = rng.standard_normal((2, 2, 6, 6))
    x0 = x.copy()
    out, argmax = F.max_pool2d_forward(x, 2, 2)
    assert not np.shares_memory(out, x)
    dout = rng.standard_normal(out.shape)
    d0, a0 = dout.copy(), argmax.copy()
    F.max_pool2d_backward(dout, argmax, x.shape, 2, 2)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(dout, d0)
    np.testing.assert_array_equal(argmax, a0)


POOL_PAD_GRID = [
    # (H, W, K, stride, padding): ResNet's stem, AlexNet-like overlap with padding,
    # non-overlapping windows half in the padding, stride 1, a 5x5 window, a 1x1 input
    (7, 8, 3, 2, 1),
    (8, 7, 3, 2, 1),
    (6, 5, 2, 2, 1),
    (5, 4, 3, 1, 1),
    (9, 7, 5, 2, 2),
    (7, 7, 3, 3, 1),
    (1, 1, 3, 1, 1),
    (4, 6, 2, 1, 1),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("ties", [False, True, "relu"], ids=["distinct", "ties", "relu-zeros"])
@pytest.mark.parametrize("h,w,k,s,p", POOL_PAD_GRID)
def test_padded_max_pool_fast_matches_naive(h, w, k, s, p, ties, dtype, rng):
    if ties == "relu":  # what a max-pool after a ReLU sees: about half zeros, whole windows of zeros
        x = np.maximum(rng.standard_normal((2, 3, h, w)) - 0.5, 0.0).astype(dtype)
    elif ties:
        x = rng.integers(0, 3, size=(2, 3, h, w)).astype(dtype)
    else:
        x = rng.standard_normal((2, 3, h, w)).astype(dtype)
    x_before = x.copy()
    out, argmax = F.max_pool2d_forward(x, k, s, p)
    assert out.shape == (2, 3, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1) and out.dtype == dtype
    assert np.all(np.isfinite(out))  # the -inf border never comes out
    np.testing.assert_array_equal(out, F.max_pool2d_forward_naive(x, k, s, p))
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = F.max_pool2d_backward(dout, argmax, x.shape, k, s, p)
    assert dx.shape == x.shape and dx.dtype == dtype
    np.testing.assert_allclose(dx, F.max_pool2d_backward_naive(dout, x, k, s, p), rtol=0, atol=1e-6 if dtype == np.float32 else 1e-15)
    if s >= k:
        np.testing.assert_array_equal(dx, F.max_pool2d_backward_naive(dout, x, k, s, p))
    # Every window's gradient lands on an input, none in the padding.
    np.testing.assert_allclose(dx.sum(dtype=np.float64), dout.sum(dtype=np.float64), rtol=1e-5 if dtype == np.float32 else 1e-12)
    assert not np.any(np.signbit(dx[dx == 0]))
    np.testing.assert_array_equal(x, x_before)


def test_max_pool_without_padding_reads_x_itself(monkeypatch, rng):
    # The unpadded path (every existing network) makes no padded copy of x: pad2d hands x back.
    seen = []
    real = F.pad2d
    monkeypatch.setattr(F.padding, "pad2d", lambda a, padding, value=0.0: seen.append(real(a, padding, value) is a) or real(a, padding, value))
    x = rng.standard_normal((2, 3, 6, 6))
    F.max_pool2d_forward(x, 2, 2)
    F.max_pool2d_forward(x, 3, 2, 1)
    assert seen == [True, False]


# --- blocks of samples and wide rows (the layout of the fast path) -----------------------------


@pytest.mark.parametrize("block_bytes", [1, 1 << 40], ids=["one-sample-blocks", "one-block"])
@pytest.mark.parametrize("n,c,h,w,f,k,s,p", CONV_GRID)
def test_conv_results_do_not_depend_on_the_block_size(n, c, h, w, f, k, s, p, block_bytes, rng, monkeypatch):
    # The default block holds every sample of these small grids, so the tests above see one
    # block; here every sample is its own block, or all are one, and the numbers must agree
    # with the naive loops all the same (forward bit for bit: each sample is its own product).
    x = rng.standard_normal((n + 2, c, h, w))
    W = rng.standard_normal((f, c, k, k))
    b = rng.standard_normal(f)
    default_out, default_cols = F.conv2d_forward(x, W, b, s, p)
    monkeypatch.setattr(conv_module, "BLOCK_BYTES", block_bytes)
    out, cols = F.conv2d_forward(x, W, b, s, p)
    np.testing.assert_array_equal(out, default_out)
    np.testing.assert_array_equal(cols, default_cols)
    infer_out, none = F.conv2d_forward(x, W, b, s, p, keep_cols=False)
    assert none is None
    np.testing.assert_array_equal(infer_out, default_out)
    dout = rng.standard_normal(out.shape)
    dx, dW, db = F.conv2d_backward(dout, cols, x.shape, W, s, p)
    for name, a, b_ in zip(("dx", "dW", "db"), (dx, dW, db), F.conv2d_backward_naive(dout, x, W, s, p)):
        np.testing.assert_allclose(a, b_, **_tol(np.float64), err_msg=name)
    np.testing.assert_allclose(F.conv2d_backward_input(dout, x.shape, W, s, p), dx, **_tol(np.float64))


def test_a_batch_64_convolution_runs_in_several_blocks():
    # The blocked path is the one the layers take at the benchmark's shapes (16 -> 32 ch, 16x16, float32):
    # 144 * 256 * 4 bytes of unfolded input a sample, 14 samples a block.
    blocks = conv_module._blocks(64, 16 * 9 * 16 * 16 * 4)
    assert len(blocks) == 5
    assert [b.stop - b.start for b in blocks] == [14, 14, 14, 14, 8]
    assert conv_module._blocks(1, 10 ** 9) == [slice(0, 1)]  # one large image: one block, never zero samples


@pytest.mark.parametrize("n,c,h,w,k,p", [(2, 3, 7, 5, 3, 1), (1, 2, 6, 9, 5, 2), (2, 1, 4, 4, 1, 0), (1, 2, 5, 3, 3, 0)])
def test_fold_wide_is_fold_on_the_padded_width(n, c, h, w, k, p, rng):
    # Column t = i*Wp + j of the wide layout is output (i, j); columns j >= W_out hold zeros.
    h_out, w_out, wp = h + 2 * p - k + 1, w + 2 * p - k + 1, w + 2 * p
    narrow = rng.standard_normal((n, c * k * k, h_out * w_out))
    wide = np.zeros((n, c * k * k, h_out, wp))
    wide[..., :w_out] = narrow.reshape(n, c * k * k, h_out, w_out)
    wide = wide.reshape(n, c * k * k, h_out * wp)[..., : h_out * wp - (k - 1)]
    np.testing.assert_allclose(F.fold_wide(wide, (n, c, h, w), k, p), F.fold(narrow, (n, c, h, w), k, 1, p),
                               rtol=1e-13, atol=1e-13)
    with pytest.raises(ValueError, match=r"fold_wide: cols must have shape"):
        F.fold_wide(narrow, (n, c, h, w), k, p) if w_out != wp else F.fold_wide(wide[..., :-1], (n, c, h, w), k, p)


def test_fold_wide_hand_example():
    # One channel, 3x3 image, 2x2 kernel, padding 0: a 2x2 output, Wp = 3, L = 2*3 - 1 = 5 columns,
    # t = 0, 1 (row 0), t = 2 (j = 2: no window, a wrap onto the next row), t = 3, 4 (row 1).
    # Ones in every window's every offset and a zero in the wrap column: each pixel receives the
    # number of windows that cover it, the classic overlap count.
    cols = np.ones((1, 4, 5))
    cols[:, :, 2] = 0.0
    np.testing.assert_array_equal(F.fold_wide(cols, (1, 1, 3, 3), 2, 0), [[[[1, 2, 1], [2, 4, 2], [1, 2, 1]]]])
    # A nonzero wrap column would land on real pixels: that is why it must hold zeros.
    cols[:, :, 2] = 1.0
    assert F.fold_wide(cols, (1, 1, 3, 3), 2, 0).sum() > 16


def test_unfold_into_out(rng):
    x = rng.standard_normal((2, 3, 5, 4))
    out = np.empty((2, 27, 5 * 4))
    assert F.unfold(x, 3, 1, 1, out=out) is out
    np.testing.assert_array_equal(out, F.unfold(x, 3, 1, 1))
    with pytest.raises(ValueError, match=r"unfold: out must be a C-contiguous float64 array of shape \(2, 27, 20\), got float32"):
        F.unfold(x, 3, 1, 1, out=out.astype(np.float32))
    with pytest.raises(ValueError, match=r"got float64 \(2, 27, 19\)"):
        F.unfold(x, 3, 1, 1, out=np.empty((2, 27, 19)))
    with pytest.raises(ValueError, match=r"not C-contiguous"):
        F.unfold(x, 3, 1, 1, out=np.empty((2, 20, 27)).transpose(0, 2, 1))
