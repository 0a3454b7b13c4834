"""The CAM family: the identities the papers state, on random-weight models."""

import numpy as np
import pytest
from explain_nets import N_CLASSES, fc_net, gap_net, head, images

import minicam as mc
from minicam import gradcheck as gc
from minicam.explain import layer_gradients

CLASSES = [0, 3, 4]  # a different class per sample


def gap_variants():
    """(label, model, layer) for every GAP network and layer where CAM applies."""
    return [
        ("conv-relu-gap-fc @relu2", gap_net(0), "relu2"),
        ("conv-gap-fc @conv2", gap_net(1, final_relu=False), "conv2"),
        ("gap-dropout(eval)-fc @relu2", gap_net(2, dropout=True).eval(), "relu2"),
        ("conv-bn(eval)-relu-gap-fc @relu2", gap_net(3, batchnorm=True).eval(), "relu2"),
    ]


VARIANTS = gap_variants()
IDS = [v[0] for v in VARIANTS]


@pytest.mark.parametrize("label,model,layer", VARIANTS, ids=IDS)
def test_signed_grad_cam_equals_cam_over_hw(label, model, layer):
    x = images()
    cam = mc.cam(model, x, CLASSES, layer=layer)
    signed = mc.grad_cam(model, x, CLASSES, layer=layer, relu=False)
    h, w = cam.shape[1:]
    assert cam.shape == (3, 5, 4)
    err = gc.rel_error(signed, cam / (h * w))
    assert err < 1e-12, f"{label}: rel error {err:.1e}"
    assert np.abs(cam).max() > 0.1  # not trivially zero


@pytest.mark.parametrize("label,model,layer", VARIANTS, ids=IDS)
def test_signed_map_sums_to_logit_minus_bias(label, model, layer):
    x = images()
    scores = model.forward(x)
    signed = mc.grad_cam(model, x, CLASSES, layer=layer, relu=False)
    b = model["fc"].params["b"]
    expected = scores[np.arange(3), CLASSES] - b[CLASSES]
    np.testing.assert_allclose(signed.sum(axis=(1, 2)), expected, rtol=0, atol=1e-10)
    # CAM spreads the same quantity: its mean over positions
    np.testing.assert_allclose(mc.cam(model, x, CLASSES, layer=layer).mean(axis=(1, 2)), expected, rtol=0, atol=1e-10)


def test_cam_is_the_fc_row_times_the_maps():
    model, x = gap_net(0), images()
    model.forward(x)
    A = model.outputs["relu2"]
    W = model["fc"].params["W"]
    expected = np.stack([np.tensordot(W[c], A[n], axes=(0, 0)) for n, c in enumerate(CLASSES)])
    np.testing.assert_allclose(mc.cam(model, x, CLASSES), expected, rtol=1e-13)


def test_grad_cam_weights_on_gap_are_fc_weights_over_hw():
    model, x = gap_net(0), images()
    _, alpha = mc.grad_cam(model, x, CLASSES, return_weights=True)
    W = model["fc"].params["W"]
    np.testing.assert_allclose(alpha, W[CLASSES] / 20, rtol=1e-13)


@pytest.mark.parametrize("make", [gap_net, fc_net])
def test_relu_and_counterfactual(make):
    model, x = make(0), images()
    signed, alpha = mc.grad_cam(model, x, CLASSES, relu=False, return_weights=True)
    assert (signed > 0).any() and (signed < 0).any()  # the ReLU matters here
    np.testing.assert_array_equal(mc.grad_cam(model, x, CLASSES), np.maximum(signed, 0))
    cf, cf_alpha = mc.grad_cam(model, x, CLASSES, counterfactual=True, return_weights=True)
    np.testing.assert_array_equal(cf_alpha, -alpha)
    np.testing.assert_allclose(cf, np.maximum(-signed, 0), rtol=1e-15, atol=0)
    np.testing.assert_allclose(mc.grad_cam(model, x, CLASSES, counterfactual=True, relu=False), -signed, rtol=1e-15)


def test_grad_cam_is_mean_gradient_times_maps_on_fc_net():
    model, x = fc_net(0), images()
    A, dA = layer_gradients(model, x, CLASSES)
    # the gradient itself, by finite differences through the head
    f = head(model, "relu2")
    dout = np.zeros((3, N_CLASSES))
    dout[np.arange(3), CLASSES] = 1.0
    assert gc.rel_error(dA, gc.numerical_gradient(f, A.copy(), dout)) < 1e-7
    expected = np.einsum("nk,nkhw->nhw", dA.mean(axis=(2, 3)), A)
    np.testing.assert_allclose(mc.grad_cam(model, x, CLASSES, relu=False), expected, rtol=1e-13)


@pytest.mark.parametrize("label,model,layer", VARIANTS, ids=IDS)
def test_hires_cam_equals_grad_cam_on_gap(label, model, layer):
    x = images()
    for relu in (False, True):
        hires = mc.hires_cam(model, x, CLASSES, layer=layer, relu=relu)
        grad = mc.grad_cam(model, x, CLASSES, layer=layer, relu=relu)
        assert gc.rel_error(hires, grad) < 1e-12
    assert gc.rel_error(mc.hires_cam(model, x, CLASSES, layer=layer, relu=False),
                        mc.cam(model, x, CLASSES, layer=layer) / 20) < 1e-12


def test_hires_cam_sums_to_first_order_contribution_and_differs_on_fc():
    model, x = fc_net(0), images()
    A, dA = layer_gradients(model, x, CLASSES)
    hires = mc.hires_cam(model, x, CLASSES, relu=False)
    np.testing.assert_allclose(hires.sum(axis=(1, 2)), (A * dA).sum(axis=(1, 2, 3)), rtol=1e-12)
    grad = mc.grad_cam(model, x, CLASSES, relu=False)
    assert gc.rel_error(hires, grad) > 0.1


@pytest.mark.parametrize("label,model,layer", VARIANTS, ids=IDS)
def test_xgrad_cam_weights_equal_grad_cam_weights_on_gap(label, model, layer):
    x = images()
    xmaps, xw = mc.xgrad_cam(model, x, CLASSES, layer=layer, relu=False, return_weights=True)
    gmaps, gw = mc.grad_cam(model, x, CLASSES, layer=layer, relu=False, return_weights=True)
    model.forward(x)
    live = model.outputs[layer].sum(axis=(2, 3)) != 0  # dead channels: weight 0 by convention
    assert live.sum() >= 10
    assert gc.rel_error(xw[live], gw[live]) < 1e-12
    np.testing.assert_array_equal(xw[~live], 0.0)
    assert gc.rel_error(xmaps, gmaps) < 1e-12


def test_xgrad_cam_differs_from_grad_cam_on_fc_and_follows_its_formula():
    model, x = fc_net(0), images()
    A, dA = layer_gradients(model, x, CLASSES)
    _, xw = mc.xgrad_cam(model, x, CLASSES, return_weights=True)
    _, gw = mc.grad_cam(model, x, CLASSES, return_weights=True)
    assert gc.rel_error(xw, gw) > 0.1
    n, k = 1, 2
    assert A[n, k].sum() != 0
    manual = sum(A[n, k, i, j] / A[n, k].sum() * dA[n, k, i, j] for i in range(5) for j in range(4))
    np.testing.assert_allclose(xw[n, k], manual, rtol=1e-12)


@pytest.mark.parametrize("label,model,layer", VARIANTS, ids=IDS)
def test_grad_cam_plus_plus_closed_form_on_gap(label, model, layer):
    # On GAP -> Linear, g = w_k / Z everywhere, so
    # alpha_ij = 1 / (2 + sum_ab A_ab * w_k / Z) and w_k^++ = relu(w_k) / (2 + w_k * mean(A^k)).
    x = images()
    _, wpp = mc.grad_cam_plus_plus(model, x, CLASSES, layer=layer, return_weights=True)
    model.forward(x)
    A = model.outputs[layer]
    w = model["fc"].params["W"][CLASSES]
    expected = np.maximum(w, 0) / (2 + w * A.mean(axis=(2, 3)))
    assert (expected > 0).sum() >= 5 and (expected == 0).sum() >= 3
    assert gc.rel_error(wpp, expected) < 1e-12


def _exp_score_derivatives(f, A, n, c, k, i, j, g, shrink=1):
    """2nd and 3rd derivatives of Y = exp(S^c) in A[n, k, i, j], from values of Y only.

    Central differences with Richardson extrapolation, step h = 0.02 / |g| (so
    that h * g, which sets the truncation error, is fixed), halved until S is
    linear in A_ij over the whole stencil (no ReLU or max-pool kink crossed):
    the closed form assumes exactly that. ``shrink`` divides the step found
    (a second, independent estimate on a kink-free stencil).
    """
    h = 0.02 / abs(g)
    for _ in range(30):
        ts = np.arange(-4, 5) * h
        S = np.empty(len(ts))
        for m, t in enumerate(ts):
            B = A.copy()
            B[n, k, i, j] += t
            S[m] = f(B)[n, c]
        if np.abs(S - S[4] - g * ts).max() <= 1e-12 * max(1.0, np.abs(S).max()):
            break
        h /= 2
    else:
        raise AssertionError("no kink-free step found")
    if shrink != 1:
        h /= shrink
        S = np.array([f(_moved(A, n, k, i, j, t))[n, c] for t in np.arange(-4, 5) * h])
    Y = dict(zip(range(-4, 5), np.exp(S)))

    def d2(s):
        return (Y[s] - 2 * Y[0] + Y[-s]) / (s * h) ** 2

    def d3(s):
        return (Y[2 * s] - 2 * Y[s] + 2 * Y[-s] - Y[-2 * s]) / (2 * (s * h) ** 3)

    # D(h) = D + c h^2 + O(h^4): (4 D(h) - D(2h)) / 3 cancels the h^2 term
    return (4 * d2(1) - d2(2)) / 3, (4 * d3(1) - d3(2)) / 3


def _moved(A, n, k, i, j, t):
    B = A.copy()
    B[n, k, i, j] += t
    return B


@pytest.mark.parametrize("make,layer", [(gap_net, "relu2"), (fc_net, "relu2")])
def test_grad_cam_plus_plus_matches_the_general_formula(make, layer):
    # The paper's general alpha (before assuming Y = exp(S)):
    #   alpha_ij = d2Y / (2 d2Y + sum_ab A_ab d3Y),  w_k = sum_ij alpha_ij relu(dY/dA_ij),
    # with the derivatives of Y = exp(S^c) taken numerically, from values of Y only.
    # Dividing w_k by exp(S^c) (the factor the closed form drops) must give the closed form.
    # Where a kink lies close to A_ij the step must be tiny and the third difference
    # carries rounding noise: each term is also estimated at half the step, and the
    # spread of the two estimates is that term's numerical uncertainty. The comparison
    # allows 1e-8 plus that measured uncertainty -- which itself must stay small, so a
    # wrong closed form (an error of order one) cannot pass.
    model, x = make(4), images(1, seed=5)
    c = 2
    A, dA = layer_gradients(model, x, c, layer=layer)
    f = head(model, layer)
    _, wpp = mc.grad_cam_plus_plus(model, x, c, layer=layer, return_weights=True)
    checked = 0
    general = np.zeros(A.shape[1])
    spread = np.zeros(A.shape[1])
    for k in range(A.shape[1]):
        total = A[0, k].sum()
        for i in range(A.shape[2]):
            for j in range(A.shape[3]):
                g = dA[0, k, i, j]
                if g <= 0:
                    continue  # relu(dY/dA) = 0: no contribution
                terms = []
                for shrink in (1, 2):
                    d2, d3 = _exp_score_derivatives(f, A, 0, c, k, i, j, g, shrink=shrink)
                    terms.append(d2 / (2 * d2 + total * d3) * g)
                general[k] += terms[0]
                spread[k] += abs(terms[0] - terms[1])
                checked += 1
    assert checked >= 10
    scale = np.abs(wpp[0]).max()
    assert spread.max() < 1e-6 * scale, spread.max() / scale  # the numerical check is sharp enough to mean something
    np.testing.assert_array_less(np.abs(general - wpp[0]), 1e-8 * scale + spread)


def test_grad_cam_plus_plus_zero_denominator_gives_zero_alpha():
    # A channel of zeros with zero gradient: 0/0 positions contribute 0, not NaN.
    model, x = gap_net(0), images()
    model["fc"].params["W"][:, 0] = 0.0
    maps, w = mc.grad_cam_plus_plus(model, x, CLASSES, return_weights=True)
    assert np.all(np.isfinite(maps)) and np.all(w[:, 0] == 0)


@pytest.mark.parametrize("label,model,layer", VARIANTS, ids=IDS)
def test_layer_cam_closed_form_on_gap(label, model, layer):
    # g = w_k / Z everywhere, so LayerCAM = ReLU(sum_k relu(w_k) A^k) / Z.
    x = images()
    model.forward(x)
    A = model.outputs[layer]
    w = model["fc"].params["W"][CLASSES]
    expected = np.maximum(np.einsum("nk,nkhw->nhw", np.maximum(w, 0), A), 0) / 20
    got = mc.layer_cam(model, x, CLASSES, layer=layer)
    assert gc.rel_error(got, expected) < 1e-12
    assert got.max() > 0


def test_layer_cam_equals_hires_cam_when_every_gradient_is_positive():
    model, x = gap_net(0), images()
    model["fc"].params["W"] = np.abs(model["fc"].params["W"])  # positive weights: dy/dA > 0
    np.testing.assert_allclose(mc.layer_cam(model, x, CLASSES), mc.hires_cam(model, x, CLASSES), rtol=1e-13)


def test_layer_cam_on_an_early_layer_is_nonnegative_and_follows_its_formula():
    model, x = fc_net(0), images()
    A, dA = layer_gradients(model, x, CLASSES, layer="conv1")
    got = mc.layer_cam(model, x, CLASSES, layer="conv1")
    assert got.shape == (3, 10, 8) and got.min() >= 0
    np.testing.assert_allclose(got, np.maximum((np.maximum(dA, 0) * A).sum(axis=1), 0), rtol=1e-13)


# -- Score-CAM ---------------------------------------------------------------


def _score_cam_net(V, b):
    """x (N, 2, H, W) -> 1x1 conv (identity) -> ReLU -> GAP -> Linear(V, b): A^k = x_k for x > 0,
    and the logits are linear in the input: f(z) = V @ mean(z) + b."""
    conv = mc.Conv2d(2, 2, 1, rng=0)
    conv.params["W"] = np.eye(2).reshape(2, 2, 1, 1)
    fc = mc.Linear(2, V.shape[0], rng=0)
    fc.params["W"], fc.params["b"] = V, b
    return mc.Sequential([("conv", conv), ("relu", mc.ReLU()), ("gap", mc.GlobalAvgPool2d()), ("fc", fc)])


@pytest.mark.parametrize("score", ["logit", "softmax"])
@pytest.mark.parametrize("subtract_baseline", [True, False])
def test_score_cam_by_hand(score, subtract_baseline):
    rng = np.random.default_rng(7)
    V, b = rng.standard_normal((3, 2)), rng.standard_normal(3)
    model = _score_cam_net(V, b)
    x = rng.uniform(0.1, 1.0, (2, 2, 6, 5))  # positive: A = x, same resolution (no upsampling)
    c = [1, 2]
    maps, weights = mc.score_cam(model, x, c, layer="relu", score=score, subtract_baseline=subtract_baseline,
                                 return_weights=True)

    def f(z):  # the model's logits, written out
        return z.mean(axis=(2, 3)) @ V.T + b

    def s(logits):
        return logits if score == "logit" else mc.softmax(logits)

    expected = np.zeros((2, 2))
    for n in range(2):
        for k in range(2):
            H = (x[n, k] - x[n, k].min()) / (x[n, k].max() - x[n, k].min())  # the channel's mask in [0, 1]
            value = s(f((x[n] * H)[None]))[0, c[n]]
            base = s(f(np.zeros((1, 2, 6, 5))))[0, c[n]] if subtract_baseline else 0.0
            expected[n, k] = value - base
    np.testing.assert_allclose(weights, expected, rtol=1e-12)
    np.testing.assert_allclose(maps, np.maximum(np.einsum("nk,nkhw->nhw", expected, x), 0), rtol=1e-12)


def test_score_cam_chunking_and_batching_do_not_change_the_result():
    model, x = fc_net(0), images()
    full = mc.score_cam(model, x, CLASSES, batch_size=1000)
    assert gc.rel_error(mc.score_cam(model, x, CLASSES, batch_size=1), full) < 1e-13
    one = np.concatenate([mc.score_cam(model, x[i:i + 1], CLASSES[i], batch_size=4) for i in range(3)])
    assert gc.rel_error(one, full) < 1e-12


# -- Eigen-CAM ---------------------------------------------------------------


def _rank1_net(u):
    """A^k_ij = u_k * x_ij: a 1x1 conv from one input channel (rank-1 activations)."""
    conv = mc.Conv2d(1, len(u), 1, rng=0)
    conv.params["W"] = np.asarray(u, dtype=float).reshape(-1, 1, 1, 1)
    return mc.Sequential([("conv", conv), ("gap", mc.GlobalAvgPool2d()), ("fc", mc.Linear(len(u), 3, rng=1))])


@pytest.mark.parametrize("u", [[0.5, 2.0, 1.0], [-0.5, 2.0, -1.0]])
def test_eigen_cam_recovers_a_rank_one_activation(u):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 1, 7, 6))  # signed maps
    model = _rank1_net(u)
    got = mc.eigen_cam(model, x)
    # sum(u) > 0, so the sign convention gives +||u|| * x exactly
    np.testing.assert_allclose(got, np.linalg.norm(u) * x[:, 0], rtol=1e-12, atol=1e-13)
    centred = mc.eigen_cam(model, x, center=True)
    m = x[:, 0] - x[:, 0].mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(centred, np.linalg.norm(u) * m, rtol=1e-12, atol=1e-13)


def test_eigen_cam_of_nonnegative_activations_is_nonnegative_and_class_agnostic():
    model, x = gap_net(0), images()
    got = mc.eigen_cam(model, x)
    assert got.shape == (3, 5, 4)
    assert got.min() >= -1e-12 and got.max() > 0
    # it is the projection on the top right-singular vector: its norm is the top singular value
    model.forward(x)
    A = model.outputs["relu2"]
    for n in range(3):
        top = np.linalg.svd(A[n].reshape(6, -1).T, compute_uv=False)[0]
        np.testing.assert_allclose(np.linalg.norm(got[n]), top, rtol=1e-12)
