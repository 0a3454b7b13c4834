"""upsample and normalize: hand-checked examples, the rules, and bad input."""

import numpy as np
import pytest

import minicam as mc


def test_bilinear_2x2_to_4x4_by_hand():
    # Half-pixel centres, scale 2/4: output d samples s = (d + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25,
    # clamped to 0 below and to the last pixel above, so along a row [1, 2] becomes
    # [1, 0.75*1 + 0.25*2, 0.25*1 + 0.75*2, 2] = [1, 1.25, 1.75, 2].
    m = np.array([[[1.0, 2.0], [3.0, 4.0]]])
    expected = np.array([[[1.0, 1.25, 1.75, 2.0],
                          [1.5, 1.75, 2.25, 2.5],
                          [2.5, 2.75, 3.25, 3.5],
                          [3.0, 3.25, 3.75, 4.0]]])
    np.testing.assert_allclose(mc.upsample(m, 4), expected, rtol=1e-15)
    np.testing.assert_allclose(mc.upsample(m, (4, 4), interpolation="bilinear"), expected, rtol=1e-15)


def test_bilinear_non_square_and_downsampling_by_hand():
    # 1x3 -> 1x5: scale 3/5, s = (d + 0.5) * 0.6 - 0.5 = -0.2, 0.4, 1.0, 1.6, 2.2
    # -> clamp: 0, 0.4, 1.0, 1.6, 2.2 (neighbour clamped at 2) on [0, 10, 20]: [0, 4, 10, 16, 20]
    m = np.array([[[0.0, 10.0, 20.0]]])
    np.testing.assert_allclose(mc.upsample(m, (1, 5)), [[[0.0, 4.0, 10.0, 16.0, 20.0]]], rtol=1e-12)
    # 4 -> 2: s = (d + 0.5) * 2 - 0.5 = 0.5, 2.5: means of pairs
    m = np.array([[[1.0, 2.0, 5.0, 9.0]]])
    np.testing.assert_allclose(mc.upsample(m, (1, 2)), [[[1.5, 7.0]]], rtol=1e-15)


def test_bilinear_is_separable_identity_at_same_size_and_keeps_constants(rng):
    m = rng.standard_normal((2, 5, 4))
    np.testing.assert_array_equal(mc.upsample(m, (5, 4)), m)
    const = np.full((2, 3, 5), 1.7)
    np.testing.assert_allclose(mc.upsample(const, (11, 7)), np.full((2, 11, 7), 1.7), rtol=1e-15)
    # an outer product u v^T resizes to the outer product of the resized u and v
    u, v = rng.standard_normal(5), rng.standard_normal(4)
    up = mc.upsample(np.outer(u, v)[None], (13, 9))[0]
    uu = mc.upsample(np.tile(u[:, None], (1, 1))[None], (13, 1))[0, :, 0]
    vv = mc.upsample(v[None, None], (1, 9))[0, 0]
    np.testing.assert_allclose(up, np.outer(uu, vv), rtol=1e-12, atol=1e-14)
    # every output value is a convex combination: within the input's range
    big = mc.upsample(m, (23, 17))
    assert big.min() >= m.min() - 1e-15 and big.max() <= m.max() + 1e-15


def test_upsample_4d_resizes_each_channel_like_3d(rng):
    m = rng.standard_normal((2, 3, 4, 5))
    got = mc.upsample(m, (9, 7))
    assert got.shape == (2, 3, 9, 7)
    for c in range(3):
        np.testing.assert_array_equal(got[:, c], mc.upsample(m[:, c], (9, 7)))


def test_nearest_rule_by_hand():
    # 3 -> 7: src = floor(d * 3 / 7) = 0, 0, 0, 1, 1, 2, 2
    m = np.array([[[10.0, 20.0, 30.0]]])
    np.testing.assert_array_equal(mc.upsample(m, (1, 7), interpolation="nearest"),
                                  [[[10.0, 10.0, 10.0, 20.0, 20.0, 30.0, 30.0]]])
    # 14 -> 46: output 23 reads 23 * 14 / 46 = 7 exactly (PyTorch's float32 scale gives 6)
    ramp = np.arange(14, dtype=float)[None, None, :]
    got = mc.upsample(ramp, (1, 46), interpolation="nearest")[0, 0]
    assert got[23] == 7.0
    np.testing.assert_array_equal(got, (np.arange(46) * 14) // 46)
    # integer factor: each pixel repeated
    m = np.array([[[1.0, 2.0], [3.0, 4.0]]])
    np.testing.assert_array_equal(mc.upsample(m, (4, 6), interpolation="nearest")[0],
                                  np.repeat(np.repeat(m[0], 2, axis=0), 3, axis=1))


def test_upsample_keeps_dtype_and_input():
    m = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    before = m.copy()
    for mode in ("bilinear", "nearest"):
        out = mc.upsample(m, (5, 4), interpolation=mode)
        assert out.dtype == np.float32
    np.testing.assert_array_equal(m, before)


def test_upsample_bad_input():
    m = np.zeros((1, 2, 2))
    with pytest.raises(ValueError, match=r"size must be >= 1 along both axes, got \(0, 4\)"):
        mc.upsample(m, (0, 4))
    with pytest.raises(ValueError, match=r"size must be >= 1 along both axes, got \(-3, -3\)"):
        mc.upsample(m, -3)
    with pytest.raises(TypeError, match=r"size must be an int or a pair of ints \(rows, cols\), got \(1, 2, 3\)"):
        mc.upsample(m, (1, 2, 3))
    with pytest.raises(TypeError, match=r"size must be an int or a pair of ints \(rows, cols\), got \(2.5, 3\)"):
        mc.upsample(m, (2.5, 3))
    with pytest.raises(ValueError, match=r"maps must have at least one sample and a non-empty \(h, w\), got shape \(1, 0, 3\)"):
        mc.upsample(np.zeros((1, 0, 3)), 4)
    with pytest.raises(ValueError, match=r"interpolation must be one of \('bilinear', 'nearest'\), got 'bicubic'"):
        mc.upsample(m, 4, interpolation="bicubic")
    with pytest.raises(ValueError, match=r"maps must be 3 or 4-D, got shape \(2, 2\)"):
        mc.upsample(m[0], 4)
    with pytest.raises(TypeError, match="maps must have a floating-point dtype"):
        mc.upsample(np.zeros((1, 2, 2), dtype=int), 4)


def test_normalize_range_per_sample(rng):
    maps = rng.standard_normal((3, 5, 4)) * np.array([1.0, 100.0, 0.01])[:, None, None]
    out = mc.normalize(maps)
    np.testing.assert_array_equal(out.min(axis=(1, 2)), 0.0)
    np.testing.assert_array_equal(out.max(axis=(1, 2)), 1.0)
    for n in range(3):
        lo, hi = maps[n].min(), maps[n].max()
        np.testing.assert_allclose(out[n], (maps[n] - lo) / (hi - lo), rtol=1e-15)
    # samples are independent: scaling one does not change another
    scaled = maps.copy()
    scaled[0] *= 1e3
    np.testing.assert_array_equal(mc.normalize(scaled)[1:], out[1:])


def test_normalize_over_all_channels_of_a_sample(rng):
    maps = rng.standard_normal((2, 3, 4, 4))
    maps[:, 1] *= 10  # channel 1 dominates; its relative strength is kept
    out = mc.normalize(maps)
    for n in range(2):
        np.testing.assert_allclose(out[n], (maps[n] - maps[n].min()) / np.ptp(maps[n]), rtol=1e-15)


def test_normalize_flat_maps_give_zeros_never_nan():
    maps = np.stack([np.zeros((4, 5)), np.full((4, 5), -3.2), np.arange(20.0).reshape(4, 5)])
    before = maps.copy()
    out = mc.normalize(maps)
    assert not np.isnan(out).any()
    np.testing.assert_array_equal(out[0], 0.0)
    np.testing.assert_array_equal(out[1], 0.0)
    np.testing.assert_allclose(out[2], np.arange(20.0).reshape(4, 5) / 19)
    np.testing.assert_array_equal(maps, before)


def test_normalize_of_an_all_negative_grad_cam_is_zero():
    # The ReLU of an all-negative signed Grad-CAM is all zeros; normalising it stays zeros.
    from explain_nets import gap_net, images

    model, x = gap_net(0), images(1)
    model["fc"].params["W"] = -np.abs(model["fc"].params["W"])  # every weight negative, A >= 0
    signed = mc.grad_cam(model, x, 2, relu=False)
    assert signed.max() <= 0 and signed.min() < 0
    out = mc.normalize(mc.grad_cam(model, x, 2))
    np.testing.assert_array_equal(out, np.zeros_like(signed))


def test_normalize_bad_input():
    with pytest.raises(ValueError, match=r"maps must be a batch \(N, \.\.\.\) with at least 2 dimensions, got shape \(4,\)"):
        mc.normalize(np.zeros(4))
    with pytest.raises(TypeError, match="maps must have a floating-point dtype"):
        mc.normalize(np.zeros((2, 3), dtype=np.int32))
    with pytest.raises(ValueError, match="maps contains NaN"):
        mc.normalize(np.array([[np.nan, 1.0]]))


def test_normalize_does_not_overflow_near_the_float_limit():
    # max - min = 2e308 overflows to inf; the map is scaled first, never NaN
    for dt in (np.float64, np.float32):
        big = np.finfo(dt).max
        out = mc.normalize(np.array([[-big, 0, big], [1, 2, 3]], dtype=dt))
        assert out.dtype == dt
        np.testing.assert_array_equal(out, np.array([[0, 0.5, 1], [0, 0.5, 1]], dtype=dt))
    ordinary = np.random.default_rng(0).standard_normal((3, 4, 5))
    lo = ordinary.min(axis=(1, 2), keepdims=True)
    hi = ordinary.max(axis=(1, 2), keepdims=True)
    np.testing.assert_array_equal(mc.normalize(ordinary), (ordinary - lo) / (hi - lo))  # unchanged, bit for bit


def test_upsample_refuses_a_size_that_would_exhaust_memory():
    with pytest.raises(ValueError, match=r"size must have at most MAX_OUTPUT_PIXELS = 67108864 pixels .*got \(1000000000, 1000000000\)"):
        mc.upsample(np.zeros((1, 3, 3)), 10**9)
