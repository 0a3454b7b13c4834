"""The exercise checkers accept correct answers and reject the classic wrong ones.

Each wrong answer below is a mistake students really make; the checker must
reject it, and its report must point at the first differing position.
"""

import re

import numpy as np
import pytest

import minicam as mc
from minicam import exercises as ex

# --------------------------------------------------------------------------
# Student answers, right and wrong (written independently of the library)
# --------------------------------------------------------------------------


def relu_backward(dout, x):
    return dout * (x > 0)


def relu_backward_geq(dout, x):  # ReLU'(0) = 1: wrong at the kink
    return dout * (x >= 0)


def relu_backward_no_mask(dout, x):  # forgot the mask
    return dout.copy()


def relu_backward_in_place(dout, x):  # right values, but writes into dout
    dout[x <= 0] = 0.0
    return dout


def relu_backward_guided(dout, x):
    return dout * (x > 0) * (dout > 0)


def relu_backward_deconvnet(dout, x):
    return dout * (dout > 0)


def _windows(x, k, s, i, j):
    return x[:, :, i * s : i * s + k, j * s : j * s + k]


def maxpool_backward(dout, x, kernel_size, stride):
    k, s = kernel_size, stride
    n, c, h_out, w_out = dout.shape
    dx = np.zeros_like(x)
    for i in range(h_out):
        for j in range(w_out):
            win = _windows(x, k, s, i, j).reshape(n, c, k * k)
            first = win.argmax(axis=2)  # first maximum, row-major
            p, q = np.divmod(first, k)
            for a in range(n):
                for b in range(c):
                    dx[a, b, i * s + p[a, b], j * s + q[a, b]] += dout[a, b, i, j]
    return dx


def maxpool_backward_all_ties(dout, x, kernel_size, stride):  # every maximum gets the gradient
    k, s = kernel_size, stride
    dx = np.zeros_like(x)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            win = _windows(x, k, s, i, j)
            mask = win == win.max(axis=(2, 3), keepdims=True)
            dx[:, :, i * s : i * s + k, j * s : j * s + k] += mask * dout[:, :, i, j][:, :, None, None]
    return dx


def maxpool_backward_shared_ties(dout, x, kernel_size, stride):  # ties share the gradient
    k, s = kernel_size, stride
    dx = np.zeros_like(x)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            win = _windows(x, k, s, i, j)
            mask = win == win.max(axis=(2, 3), keepdims=True)
            share = mask / mask.sum(axis=(2, 3), keepdims=True)
            dx[:, :, i * s : i * s + k, j * s : j * s + k] += share * dout[:, :, i, j][:, :, None, None]
    return dx


def maxpool_backward_last_max(dout, x, kernel_size, stride):  # last maximum instead of first
    k, s = kernel_size, stride
    n, c, h_out, w_out = dout.shape
    dx = np.zeros_like(x)
    for i in range(h_out):
        for j in range(w_out):
            win = _windows(x, k, s, i, j).reshape(n, c, k * k)[:, :, ::-1]
            p, q = np.divmod(k * k - 1 - win.argmax(axis=2), k)
            for a in range(n):
                for b in range(c):
                    dx[a, b, i * s + p[a, b], j * s + q[a, b]] += dout[a, b, i, j]
    return dx


def maxpool_backward_overwrite(dout, x, kernel_size, stride):  # = instead of += (overlapping windows)
    k, s = kernel_size, stride
    n, c, h_out, w_out = dout.shape
    dx = np.zeros_like(x)
    for i in range(h_out):
        for j in range(w_out):
            win = _windows(x, k, s, i, j).reshape(n, c, k * k)
            p, q = np.divmod(win.argmax(axis=2), k)
            for a in range(n):
                for b in range(c):
                    dx[a, b, i * s + p[a, b], j * s + q[a, b]] = dout[a, b, i, j]
    return dx


def maxpool_backward_ignores_stride(dout, x, kernel_size, stride):  # assumes stride == kernel_size
    return maxpool_backward(dout, x, kernel_size, kernel_size)


def maxpool_backward_no_mask(dout, x, kernel_size, stride):  # spreads the gradient over the window
    k, s = kernel_size, stride
    dx = np.zeros_like(x)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            dx[:, :, i * s : i * s + k, j * s : j * s + k] += dout[:, :, i, j][:, :, None, None]
    return dx


def conv_forward(x, W, b, stride, padding):
    n = x.shape[0]
    f, _, k, _ = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    h_out = (xp.shape[2] - k) // stride + 1
    w_out = (xp.shape[3] - k) // stride + 1
    out = np.zeros((n, f, h_out, w_out))
    for i in range(h_out):
        for j in range(w_out):
            win = xp[:, :, i * stride : i * stride + k, j * stride : j * stride + k]
            out[:, :, i, j] = np.tensordot(win, W, axes=([1, 2, 3], [1, 2, 3])) + b
    return out


def conv_forward_flipped(x, W, b, stride, padding):  # true convolution: flips the kernel
    return conv_forward(x, W[:, :, ::-1, ::-1], b, stride, padding)


def conv_forward_no_bias(x, W, b, stride, padding):
    return conv_forward(x, W, np.zeros_like(b), stride, padding)


def conv_backward(dout, x, W, stride, padding):
    f, _, k, _ = W.shape
    p = padding
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    dxp = np.zeros_like(xp)
    dW = np.zeros_like(W)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            rows, cols = slice(i * stride, i * stride + k), slice(j * stride, j * stride + k)
            g = dout[:, :, i, j]  # (N, F)
            dxp[:, :, rows, cols] += np.tensordot(g, W, axes=([1], [0]))
            dW += np.tensordot(g, xp[:, :, rows, cols], axes=([0], [0]))
    dx = dxp[:, :, p : xp.shape[2] - p, p : xp.shape[3] - p]
    return dx, dW, dout.sum(axis=(0, 2, 3))


def conv_backward_mean_db(dout, x, W, stride, padding):  # mean instead of sum for db
    dx, dW, _ = conv_backward(dout, x, W, stride, padding)
    return dx, dW, dout.mean(axis=(0, 2, 3))


def conv_backward_transposed_W(dout, x, W, stride, padding):  # dx through W with F and C swapped
    dx, dW, db = conv_backward(dout, x, W, stride, padding)
    if W.shape[0] == W.shape[1]:
        dx, _, _ = conv_backward(dout, x, W.transpose(1, 0, 2, 3), stride, padding)
    return dx, dW, db


def conv_backward_forgot_padding(dout, x, W, stride, padding):  # ignores padding in the backward
    f, _, k, _ = W.shape
    dx = np.zeros_like(x)
    dW = np.zeros_like(W)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            r0, c0 = i * stride, j * stride
            rows, cols = slice(r0, r0 + k), slice(c0, c0 + k)
            win = x[:, :, rows, cols]
            g = dout[:, :, i, j]
            kh, kw = win.shape[2], win.shape[3]
            dx[:, :, rows, cols] += np.tensordot(g, W[:, :, :kh, :kw], axes=([1], [0]))
            if (kh, kw) == (k, k):
                dW += np.tensordot(g, win, axes=([0], [0]))
    return dx, dW, dout.sum(axis=(0, 2, 3))


def conv_backward_forgot_stride(dout, x, W, stride, padding):
    return conv_backward(dout, x, W, 1, padding) if stride == 1 else _stride1_windows(dout, x, W, padding)


def _stride1_windows(dout, x, W, padding):
    f, _, k, _ = W.shape
    p = padding
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    dxp = np.zeros_like(xp)
    dW = np.zeros_like(W)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            rows, cols = slice(i, i + k), slice(j, j + k)  # window at (i, j), not (i*s, j*s)
            g = dout[:, :, i, j]
            dxp[:, :, rows, cols] += np.tensordot(g, W, axes=([1], [0]))
            dW += np.tensordot(g, xp[:, :, rows, cols], axes=([0], [0]))
    return dxp[:, :, p : xp.shape[2] - p, p : xp.shape[3] - p], dW, dout.sum(axis=(0, 2, 3))


def grad_cam_weights(model, x, class_idx, layer):
    scores = model.forward(x)
    onehot = np.zeros_like(scores)
    onehot[np.arange(len(x)), class_idx] = 1.0
    return model.backward(onehot, stop_at=layer).mean(axis=(2, 3))


def grad_cam_weights_sum(model, x, class_idx, layer):  # sum instead of mean
    return grad_cam_weights(model, x, class_idx, layer) * np.prod(model.outputs[layer].shape[2:])


def grad_cam_weights_predicted(model, x, class_idx, layer):  # explains the predicted class instead
    scores = model.forward(x)
    return grad_cam_weights(model, x, scores.argmax(axis=1), layer)


def grad_cam_weights_softmax(model, x, class_idx, layer):  # differentiates the softmax probability
    scores = model.forward(x)
    p = mc.softmax(scores)
    n = np.arange(len(x))
    onehot = np.zeros_like(p)
    onehot[n, class_idx] = 1.0
    dscores = p[n, class_idx][:, None] * (onehot - p)
    return model.backward(dscores, stop_at=layer).mean(axis=(2, 3))


def grad_cam_weights_from_fc(model, x, class_idx, layer):  # the CAM shortcut w_c / Z
    model.forward(x)
    W = model.layers[-1].params["W"]
    z = np.prod(model.outputs[layer].shape[2:])
    alpha = W[class_idx] / z
    if alpha.shape[1] != model.outputs[layer].shape[1]:
        raise ValueError("the last linear layer does not read the feature maps")
    return alpha


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------

FIRST_POSITION = re.compile(r"first differing positions.*\n\s+(\([0-9, ]+\))\s+(\S+)\s+(\S+)")


def _first_position(report):
    match = FIRST_POSITION.search(report)
    assert match, f"the report names no differing position:\n{report}"
    return eval(match.group(1)), float(match.group(2)), float(match.group(3))  # noqa: S307 - a tuple of ints


def test_relu_checker_accepts_correct_answers(capsys):
    assert ex.check_relu_backward(relu_backward)
    assert ex.check_relu_backward(relu_backward_guided, mode="guided")
    assert ex.check_relu_backward(relu_backward_deconvnet, mode="deconvnet")
    out = capsys.readouterr().out
    assert out.count("PASSED") == 3 and "FAILED" not in out


@pytest.mark.parametrize(
    "wrong,mode",
    [
        (relu_backward_geq, "standard"),
        (relu_backward_no_mask, "standard"),
        (relu_backward, "guided"),  # the standard rule is not the guided one
        (relu_backward_guided, "deconvnet"),
        (relu_backward_deconvnet, "standard"),
    ],
)
def test_relu_checker_rejects_wrong_answers(wrong, mode, capsys):
    assert ex.check_relu_backward(wrong, mode=mode) is False
    report = capsys.readouterr().out
    assert "FAILED on case 1" in report and "relative error" in report
    assert report == ex.last_report() + "\n"


def test_relu_report_names_the_first_differing_position_with_both_values(capsys):
    ex.check_relu_backward(relu_backward_geq)
    report = capsys.readouterr().out
    pos, mine, ref = _first_position(report)
    # rebuild case 1 and check the position is really the first difference
    x, dout = ex.layers._relu_cases(np.random.default_rng(0))[0]
    differ = np.argwhere(relu_backward_geq(dout, x) != relu_backward(dout, x))
    assert pos == tuple(differ[0])
    assert x[pos] == 0.0  # the kink is where >= and > disagree
    assert mine == pytest.approx(dout[pos], rel=1e-5) and ref == 0.0
    assert "x > 0 (strictly)" in report  # the hint


def test_relu_checker_reports_writing_into_arguments(capsys):
    assert ex.check_relu_backward(relu_backward_in_place) is False
    assert "wrote into its argument(s) ['dout']" in capsys.readouterr().out


def test_maxpool_checker_accepts_correct_answer():
    assert ex.check_maxpool_backward(maxpool_backward, verbose=False)
    assert ex.check_maxpool_backward(maxpool_backward, seed=7, verbose=False)


def test_maxpool_checker_accepts_the_library_naive_reference():
    assert ex.check_maxpool_backward(mc.functional.max_pool2d_backward_naive, verbose=False)


@pytest.mark.parametrize(
    "wrong",
    [
        maxpool_backward_all_ties,
        maxpool_backward_shared_ties,
        maxpool_backward_last_max,
        maxpool_backward_overwrite,
        maxpool_backward_ignores_stride,
        maxpool_backward_no_mask,
    ],
)
def test_maxpool_checker_rejects_wrong_answers(wrong, capsys):
    assert ex.check_maxpool_backward(wrong) is False
    report = capsys.readouterr().out
    assert "FAILED" in report
    assert ("first differing positions" in report) or ("shape mine" in report) or ("raised" in report)


def test_maxpool_tie_rule_is_caught_on_a_tie_case_with_position(capsys):
    ex.check_maxpool_backward(maxpool_backward_all_ties)
    report = capsys.readouterr().out
    assert "ties" in report.splitlines()[0] or "constant" in report.splitlines()[0]
    pos, mine, ref = _first_position(report)
    assert len(pos) == 4 and mine != ref
    assert "first maximum in row-major" in report


def test_maxpool_raise_on_fail():
    with pytest.raises(ex.ExerciseError, match="FAILED"):
        ex.check_maxpool_backward(maxpool_backward_last_max, raise_on_fail=True, verbose=False)
    assert ex.check_maxpool_backward(maxpool_backward, raise_on_fail=True, verbose=False) is True


def test_conv_forward_checker():
    assert ex.check_conv_forward(conv_forward, verbose=False)
    assert ex.check_conv_forward(mc.functional.conv2d_forward_naive, verbose=False)
    assert ex.check_conv_forward(conv_forward_flipped, verbose=False) is False
    assert ex.check_conv_forward(conv_forward_no_bias, verbose=False) is False
    assert "first differing positions" in ex.last_report()


def test_conv_backward_checker_accepts_correct_answers():
    assert ex.check_conv_backward(conv_backward, verbose=False)
    assert ex.check_conv_backward(mc.functional.conv2d_backward_naive, verbose=False)


@pytest.mark.parametrize(
    "wrong,what",
    [
        (conv_backward_mean_db, "db"),
        (conv_backward_transposed_W, "dx"),
        (conv_backward_forgot_padding, "dx"),
        (conv_backward_forgot_stride, "dx"),
    ],
)
def test_conv_backward_checker_rejects_wrong_answers(wrong, what, capsys):
    assert ex.check_conv_backward(wrong) is False
    report = capsys.readouterr().out
    assert re.search(rf"^  {what}: ", report, re.M), report
    assert "FAILED" in report


def test_conv_backward_report_names_first_difference_of_db(capsys):
    ex.check_conv_backward(conv_backward_mean_db)
    report = capsys.readouterr().out
    assert "case 1 of" in report  # N*H_out*W_out > 1 from the first case on
    pos, mine, ref = _first_position(report)
    assert pos == (0,)
    assert mine != pytest.approx(ref)
    assert "not a mean" in report


def test_conv_backward_wrong_return_and_errors_are_reported(capsys):
    assert ex.check_conv_backward(lambda dout, x, W, stride, padding: conv_backward(dout, x, W, stride, padding)[:2]) is False
    assert "expected a tuple (dx, dW, db)" in capsys.readouterr().out
    assert ex.check_conv_backward(lambda dout, x, W, stride, padding: None) is False
    assert "expected a tuple" in capsys.readouterr().out

    def crashes(dout, x, W, stride, padding):
        return dout @ x

    assert ex.check_conv_backward(crashes) is False
    assert "your function raised ValueError" in capsys.readouterr().out


def test_grad_cam_weights_checker():
    assert ex.check_grad_cam_weights(grad_cam_weights, verbose=False)


@pytest.mark.parametrize(
    "wrong",
    [grad_cam_weights_sum, grad_cam_weights_predicted, grad_cam_weights_softmax, grad_cam_weights_from_fc],
)
def test_grad_cam_weights_checker_rejects_wrong_answers(wrong):
    assert ex.check_grad_cam_weights(wrong, verbose=False) is False
    assert "FAILED" in ex.last_report()


def test_cam_shortcut_passes_the_last_gap_map_only(capsys):
    """alpha = w_c / Z is right on case 1 (the last map of a GAP net): the checker fails it later."""
    ex.check_grad_cam_weights(grad_cam_weights_from_fc)
    report = capsys.readouterr().out
    assert "FAILED on case 2" in report and "relu1" in report


def test_not_attempted_yet(capsys):
    def stub(dout, x):
        raise NotImplementedError

    assert ex.check_relu_backward(stub) is False
    assert "not attempted yet" in capsys.readouterr().out
    with pytest.raises(ex.ExerciseError, match="not attempted yet"):
        ex.check_relu_backward(stub, raise_on_fail=True, verbose=False)


def test_checker_arguments_are_validated():
    with pytest.raises(TypeError, match="student_fn"):
        ex.check_relu_backward("relu")
    with pytest.raises(ValueError, match="mode"):
        ex.check_relu_backward(relu_backward, mode="guide")
    with pytest.raises(TypeError, match="seed"):
        ex.check_conv_backward(conv_backward, seed=1.5)


# --------------------------------------------------------------------------
# The full maps: Grad-CAM, counterfactual, Guided Grad-CAM
# --------------------------------------------------------------------------


def _signed(model, x, class_idx, layer, mean_axes=(2, 3)):
    scores = model.forward(x)
    onehot = np.zeros_like(scores)
    onehot[np.arange(len(x)), class_idx] = 1.0
    dA = model.backward(onehot, stop_at=layer)
    alpha = dA.mean(axis=mean_axes)
    alpha = np.broadcast_to(alpha.reshape(-1, dA.shape[1]) if alpha.ndim == 1 else alpha, dA.shape[:2])
    return np.einsum("nk,nkij->nij", alpha, model.outputs[layer])


def grad_cam_map(model, x, class_idx, layer):
    return np.maximum(_signed(model, x, class_idx, layer), 0)


def grad_cam_map_no_relu(model, x, class_idx, layer):
    return _signed(model, x, class_idx, layer)


def grad_cam_map_batch_mean(model, x, class_idx, layer):  # wrong mean axis: over the batch and positions
    return np.maximum(_signed(model, x, class_idx, layer, mean_axes=(0, 2, 3)), 0)


def grad_cam_map_channel_mean(model, x, class_idx, layer):  # wrong mean axis: over the channels
    scores = model.forward(x)
    onehot = np.zeros_like(scores)
    onehot[np.arange(len(x)), class_idx] = 1.0
    dA = model.backward(onehot, stop_at=layer)
    return np.maximum((dA.mean(axis=1, keepdims=True) * model.outputs[layer]).sum(axis=1), 0)


def grad_cam_map_upsampled(model, x, class_idx, layer):
    return mc.upsample(grad_cam_map(model, x, class_idx, layer), x.shape[2:])


def counterfactual_map(model, x, class_idx, layer):
    return np.maximum(-_signed(model, x, class_idx, layer), 0)


def counterfactual_no_sign(model, x, class_idx, layer):  # sign error: Grad-CAM itself
    return grad_cam_map(model, x, class_idx, layer)


def counterfactual_negated_after_relu(model, x, class_idx, layer):  # sign error: -ReLU(S)
    return -grad_cam_map(model, x, class_idx, layer)


def counterfactual_no_relu(model, x, class_idx, layer):
    return -_signed(model, x, class_idx, layer)


def _guided(model, x, class_idx, layer, interpolation="bilinear", relu=True, relu_mode="guided"):
    scores = model.forward(x)
    onehot = np.zeros_like(scores)
    onehot[np.arange(len(x)), class_idx] = 1.0
    S = _signed(model, x, class_idx, layer)
    L = np.maximum(S, 0) if relu else S
    g = model.backward(onehot, relu_mode=relu_mode)
    return mc.upsample(L, x.shape[2:], interpolation=interpolation)[:, None] * g


def guided_grad_cam_map(model, x, class_idx, layer):
    return _guided(model, x, class_idx, layer)


def guided_grad_cam_no_upsampling(model, x, class_idx, layer):
    scores = model.forward(x)
    onehot = np.zeros_like(scores)
    onehot[np.arange(len(x)), class_idx] = 1.0
    return grad_cam_map(model, x, class_idx, layer)[:, None] * model.backward(onehot, relu_mode="guided")


def guided_grad_cam_nearest(model, x, class_idx, layer):
    return _guided(model, x, class_idx, layer, interpolation="nearest")


def guided_grad_cam_no_relu(model, x, class_idx, layer):
    return _guided(model, x, class_idx, layer, relu=False)


def guided_grad_cam_saliency(model, x, class_idx, layer):
    return _guided(model, x, class_idx, layer, relu_mode="standard")


def test_map_checkers_accept_correct_answers():
    assert ex.check_grad_cam(grad_cam_map, verbose=False)
    assert ex.check_counterfactual(counterfactual_map, verbose=False)
    assert ex.check_guided_grad_cam(guided_grad_cam_map, verbose=False)
    assert ex.check_grad_cam(lambda model, x, class_idx, layer: mc.grad_cam(model, x, class_idx, layer=layer), verbose=False)
    assert ex.check_guided_grad_cam(
        lambda model, x, class_idx, layer: mc.guided_grad_cam(model, x, class_idx, layer=layer), verbose=False)


@pytest.mark.parametrize(
    "checker, wrong, diagnosis",
    [
        (ex.check_grad_cam, grad_cam_map_no_relu, "without the ReLU"),
        (ex.check_grad_cam, grad_cam_map_batch_mean, "same for every sample"),
        (ex.check_grad_cam, grad_cam_map_channel_mean, None),
        (ex.check_grad_cam, grad_cam_map_upsampled, None),
        (ex.check_grad_cam, counterfactual_map, "sign error"),
        (ex.check_counterfactual, counterfactual_no_sign, "sign error: this is the Grad-CAM map itself"),
        (ex.check_counterfactual, counterfactual_negated_after_relu, "negated after the ReLU"),
        (ex.check_counterfactual, counterfactual_no_relu, "the ReLU is missing"),
        (ex.check_guided_grad_cam, guided_grad_cam_no_upsampling, None),
        (ex.check_guided_grad_cam, guided_grad_cam_nearest, "nearest"),
        (ex.check_guided_grad_cam, guided_grad_cam_no_relu, "missing its ReLU"),
        (ex.check_guided_grad_cam, guided_grad_cam_saliency, "guided backprop"),
    ],
)
def test_map_checkers_reject_classic_mistakes_and_name_them(checker, wrong, diagnosis):
    assert checker(wrong, verbose=False) is False
    report = ex.last_report()
    assert "FAILED on case" in report
    if diagnosis is not None:
        assert "diagnosis: " in report and diagnosis in report, report
    with pytest.raises(ex.ExerciseError):
        checker(wrong, raise_on_fail=True, verbose=False)


def test_no_upsampling_report_says_to_upsample():
    ex.check_guided_grad_cam(guided_grad_cam_no_upsampling, verbose=False)
    report = ex.last_report()
    assert "could not be broadcast" in report and "upsample the (N, h, w) Grad-CAM map" in report
    ex.check_grad_cam(grad_cam_map_upsampled, verbose=False)
    assert "shape mine (3, 10, 8) != reference (3, 5, 4)" in ex.last_report()
    assert "no upsampling" in ex.last_report()


def test_relu_reports_diagnose_the_rule_and_only_mention_the_kink_when_it_matters():
    ex.check_relu_backward(relu_backward_geq, verbose=False)
    assert "diagnosis: you let the gradient through where x = 0" in ex.last_report()
    ex.check_relu_backward(relu_backward_guided, mode="deconvnet", verbose=False)
    report = ex.last_report()
    assert "diagnosis: you masked with x > 0 as well (the guided rule)" in report
    assert "ReLU'(0)" not in report and "x >= 0" not in report
    ex.check_relu_backward(relu_backward, mode="deconvnet", verbose=False)
    assert "ReLU'(0)" not in ex.last_report()
    ex.check_relu_backward(relu_backward_deconvnet, mode="guided", verbose=False)
    assert "diagnosis: you masked with dout > 0 only (deconvnet)" in ex.last_report()
