"""Conventions shared by every method: class_idx, layer, score, targets, batches,
the model left untouched, x never modified, and loud failure on bad input."""

import numpy as np
import pytest
from explain_nets import embedding_net, fc_net, gap_net, head, images

import minicam as mc
from minicam import gradcheck as gc
from minicam.explain import layer_gradients
from minicam.explain.targets import evaluate_stacked, evaluate_target

CLASSES = [0, 3, 4]

# (name, call(model, x, class_idx, **kw)) for every class-specific method
CAM_METHODS = [
    ("grad_cam", lambda m, x, c, **kw: mc.grad_cam(m, x, c, relu=False, **kw)),
    ("grad_cam_plus_plus", lambda m, x, c, **kw: mc.grad_cam_plus_plus(m, x, c, relu=False, **kw)),
    ("hires_cam", lambda m, x, c, **kw: mc.hires_cam(m, x, c, relu=False, **kw)),
    ("xgrad_cam", lambda m, x, c, **kw: mc.xgrad_cam(m, x, c, relu=False, **kw)),
    ("layer_cam", lambda m, x, c, **kw: mc.layer_cam(m, x, c, relu=False, **kw)),
    ("score_cam", lambda m, x, c, **kw: mc.score_cam(m, x, c, relu=False, **kw)),
]
INPUT_METHODS = [
    ("saliency", mc.saliency),
    ("guided_backprop", mc.guided_backprop),
    ("deconvnet", mc.deconvnet),
    ("guided_grad_cam", mc.guided_grad_cam),
]
OTHER_METHODS = [
    ("occlusion", lambda m, x, c, **kw: mc.occlusion(m, x, c, window=3, stride=2, **kw)),
]
CLASS_METHODS = CAM_METHODS + INPUT_METHODS + OTHER_METHODS
ALL = CLASS_METHODS + [
    ("cam", lambda m, x, c, **kw: mc.cam(m, x, c, **kw)),
    ("eigen_cam", lambda m, x, c, **kw: mc.eigen_cam(m, x, **kw)),
    ("smoothgrad", lambda m, x, c, **kw: mc.smoothgrad(mc.saliency, m, x, c, n_samples=2, rng=0, **kw)),
]
IDS = [name for name, _ in CLASS_METHODS]


# -- class_idx ------------------------------------------------------------------


@pytest.mark.parametrize("name,method", CLASS_METHODS, ids=IDS)
@pytest.mark.parametrize("make", [gap_net, fc_net])
def test_batch_equals_one_by_one(name, method, make):
    model, x = make(0), images()
    batch = method(model, x, CLASSES)
    single = np.concatenate([method(model, x[i:i + 1], CLASSES[i]) for i in range(3)])
    assert gc.rel_error(batch, single) < 1e-12
    assert np.abs(batch).max() > 0


@pytest.mark.parametrize("name,method", CLASS_METHODS, ids=IDS)
def test_class_idx_none_is_the_predicted_class(name, method):
    model, x = fc_net(0), images(4)
    predicted = model.forward(x).argmax(axis=1)
    assert len(set(predicted.tolist())) >= 2
    np.testing.assert_array_equal(method(model, x, None), method(model, x, predicted))


@pytest.mark.parametrize("name,method", CLASS_METHODS, ids=IDS)
def test_class_idx_int_list_and_array_agree(name, method):
    model, x = gap_net(0), images()
    ref = method(model, x, 2)
    np.testing.assert_array_equal(method(model, x, [2, 2, 2]), ref)
    np.testing.assert_array_equal(method(model, x, np.array([2, 2, 2], dtype=np.int32)), ref)
    np.testing.assert_array_equal(method(model, x, np.int64(2)), ref)
    assert gc.rel_error(method(model, x, 1), ref) > 1e-3  # the class matters


def test_cam_class_idx_none_and_per_sample():
    model, x = gap_net(0), images()
    predicted = model.forward(x).argmax(axis=1)
    np.testing.assert_array_equal(mc.cam(model, x, None), mc.cam(model, x, predicted))
    batch = mc.cam(model, x, CLASSES)
    np.testing.assert_allclose(batch, np.concatenate([mc.cam(model, x[i:i + 1], CLASSES[i]) for i in range(3)]),
                               rtol=1e-13)


# -- scores and targets ------------------------------------------------------


def _score_fn(score, class_idx):
    rows = np.arange(len(class_idx))

    def f(s):
        if score == "logit":
            return s[rows, class_idx]
        if score == "softmax":
            return mc.softmax(s)[rows, class_idx]
        return mc.log_softmax(s)[rows, class_idx]

    return f


@pytest.mark.parametrize("score", ["logit", "softmax", "log_softmax"])
def test_class_target_gradient_matches_finite_differences(score, rng):
    scores = rng.standard_normal((4, 6)) * 3
    idx = np.array([0, 5, 2, 2])
    value, dscores = mc.class_target(idx, score)(scores)
    f = _score_fn(score, idx)
    np.testing.assert_allclose(value, f(scores), rtol=1e-14)
    dout = rng.standard_normal(4)
    numeric = gc.numerical_gradient(f, scores.copy(), dout)
    assert gc.rel_error(dout[:, None] * dscores, numeric) < 1e-7


@pytest.mark.parametrize("score", ["logit", "softmax", "log_softmax"])
def test_saliency_score_matches_finite_differences_of_the_model(score):
    model, x = fc_net(0), images()
    grad = mc.saliency(model, x, CLASSES, score=score)
    f = _score_fn(score, np.array(CLASSES))
    numeric = gc.numerical_gradient(lambda v: f(model.forward(v)), x.copy(), np.ones(3))
    assert gc.rel_error(grad, numeric) < 1e-7


@pytest.mark.parametrize("score", ["softmax", "log_softmax"])
def test_layer_gradient_of_softmax_scores_matches_finite_differences(score):
    model, x = fc_net(1), images()
    A, dA = layer_gradients(model, x, CLASSES, score=score)
    f = _score_fn(score, np.array(CLASSES))
    g = head(model, "relu2")
    numeric = gc.numerical_gradient(lambda a: f(g(a)), A.copy(), np.ones(3))
    assert gc.rel_error(dA, numeric) < 1e-7
    # the softmax gradient is the logit gradient reweighted through the softmax Jacobian row
    _, dA_logit = layer_gradients(model, x, CLASSES)
    assert gc.rel_error(dA, dA_logit) > 1e-3


def test_similarity_target_gradient_matches_finite_differences(rng):
    ref = rng.standard_normal(8)
    tgt = mc.similarity_target(ref)
    f = rng.standard_normal((3, 8))
    value, dscores = tgt(f)
    cos = f @ ref / (np.linalg.norm(f, axis=1) * np.linalg.norm(ref))
    np.testing.assert_allclose(value, cos, rtol=1e-14)
    dout = rng.standard_normal(3)
    numeric = gc.numerical_gradient(lambda s: tgt(s)[0], f.copy(), dout)
    assert gc.rel_error(dout[:, None] * dscores, numeric) < 1e-7
    # per-sample references
    refs = rng.standard_normal((3, 8))
    tgt2 = mc.similarity_target(refs)
    numeric = gc.numerical_gradient(lambda s: tgt2(s)[0], f.copy(), dout)
    assert gc.rel_error(dout[:, None] * tgt2(f)[1], numeric) < 1e-7


def test_grad_cam_for_an_embedding_network():
    model = embedding_net(0)
    query, reference = images(2, seed=3), images(1, seed=4)
    e_ref = model.forward(reference)[0]
    target = mc.similarity_target(e_ref)
    # the gradient at the feature map is that of cos(f(x), e_ref), by finite differences
    A, dA = layer_gradients(model, query, target=target)
    g = head(model, "relu2")
    numeric = gc.numerical_gradient(lambda a: target(g(a))[0], A.copy(), np.ones(2))
    assert gc.rel_error(dA, numeric) < 1e-7
    maps = mc.grad_cam(model, query, target=target, relu=False)
    np.testing.assert_allclose(maps, np.einsum("nk,nkhw->nhw", dA.mean(axis=(2, 3)), A), rtol=1e-13)
    # GAP -> Linear head: the signed map sums to dcos/df . (f - b), the first-order share of the features
    f = model.forward(query)
    dcos = target(f)[1]
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), (dcos * (f - model["embed"].params["b"])).sum(axis=1),
                               rtol=1e-12)
    # the reference explained against itself: cos is at its maximum 1, every gradient vanishes
    self_maps = mc.grad_cam(model, reference, target=target, relu=False)
    assert np.abs(self_maps).max() < 1e-14 * np.abs(maps).max()
    # and any method accepts the target
    assert mc.saliency(model, query, target=target).shape == query.shape
    assert mc.occlusion(model, query, target=target, window=4, stride=4).shape == (2, 10, 8)


def test_custom_target_callable():
    model, x = fc_net(0), images()

    def margin(scores):  # y_3 - y_0: "why class 3 rather than class 0"
        d = np.zeros_like(scores)
        d[:, 3], d[:, 0] = 1.0, -1.0
        return scores[:, 3] - scores[:, 0], d

    np.testing.assert_allclose(
        mc.grad_cam(model, x, target=margin, relu=False),
        mc.grad_cam(model, x, 3, relu=False) - mc.grad_cam(model, x, 0, relu=False), rtol=1e-12, atol=1e-15)


# -- layer -------------------------------------------------------------------------


def test_default_layer_is_the_last_4d_output():
    for model in (gap_net(0), fc_net(0)):
        x = images()
        np.testing.assert_array_equal(mc.grad_cam(model, x, 1), mc.grad_cam(model, x, 1, layer="relu2"))
    model, x = gap_net(0), images()
    assert mc.grad_cam(model, x, 1, layer="conv1").shape == (3, 10, 8)
    assert mc.grad_cam(model, x, 1, layer="pool1").shape == (3, 5, 4)


def test_gradient_methods_work_on_an_mlp_over_vectors(rng):
    model = mc.Sequential([mc.Linear(7, 9, rng=0), mc.ReLU(), mc.Linear(9, 4, rng=1)])
    x = rng.standard_normal((5, 7))
    grad = mc.saliency(model, x, [0, 1, 2, 3, 0])
    f = _score_fn("logit", np.array([0, 1, 2, 3, 0]))
    assert gc.rel_error(grad, gc.numerical_gradient(lambda v: f(model.forward(v)), x.copy(), np.ones(5))) < 1e-7
    assert mc.guided_backprop(model, x, 1).shape == (5, 7)
    with pytest.raises(ValueError, match="4-D"):
        mc.grad_cam(model, x, 1)


# -- the model and x are left as they were ---------------------------------------------


def _snapshot(model):
    return (
        [layer.training for layer in model.layers],
        model.state_dict(),
        {k: v.copy() for k, v in model.named_gradients()},
        model.outputs,
        {k: v.copy() for k, v in model.outputs.items()},
    )


@pytest.mark.parametrize("name,method", ALL, ids=[n for n, _ in ALL])
@pytest.mark.parametrize("training", [False, True])
def test_model_and_x_untouched(name, method, training):
    model = gap_net(0, batchnorm=True, dropout=True)
    x = images()
    # a previous training step's state: outputs, caches and gradients
    scores = model.train().forward(images(seed=9))
    dx_before = model.backward(np.ones_like(scores))
    model.train(training)
    before = _snapshot(model)
    x_before = x.copy()
    if name == "cam" and training:
        with pytest.raises(ValueError, match="Dropout, training"):  # a random head is not GAP -> Linear
            method(model, x, CLASSES)
    else:
        method(model, x, CLASSES)
    after = _snapshot(model)
    assert after[0] == before[0], "train/eval mode changed"
    for key in before[1]:
        np.testing.assert_array_equal(after[1][key], before[1][key], err_msg=f"{key} changed")
    for key in before[2]:
        np.testing.assert_array_equal(after[2][key], before[2][key], err_msg=f"gradient {key} changed")
    assert after[3] is before[3]
    for key in before[4]:
        np.testing.assert_array_equal(after[4][key], before[4][key])
    np.testing.assert_array_equal(x, x_before)
    # the caches still belong to the old forward: backward gives the old gradients again
    np.testing.assert_array_equal(model.backward(np.ones_like(scores)), dx_before)


def test_eval_mode_results_do_not_depend_on_dropout():
    model, x = gap_net(0, dropout=True), images()
    model.eval()
    np.testing.assert_array_equal(mc.grad_cam(model, x, CLASSES), mc.grad_cam(model, x, CLASSES))
    assert model.training is False


# -- bad input ----------------------------------------------------------------------


@pytest.mark.parametrize("name,method", CLASS_METHODS + [ALL[-3]], ids=IDS + ["cam"])
@pytest.mark.parametrize("bad,exc,words", [
    (5, ValueError, ["class_idx", "[0, 5)", "5"]),
    (-1, ValueError, ["class_idx", "-1"]),
    ([0, 1], ValueError, ["class_idx", "N=3", "(2,)"]),
    ([0, 1, 2, 3], ValueError, ["class_idx", "N=3"]),
    (2.0, TypeError, ["class_idx", "2.0"]),
    ([0, 1.5, 2], TypeError, ["class_idx"]),
    (True, TypeError, ["class_idx", "True"]),
    ("1", TypeError, ["class_idx", "'1'"]),
    ([[0, 1, 2]], ValueError, ["class_idx", "(1, 3)"]),
])
def test_bad_class_idx(name, method, bad, exc, words):
    model, x = gap_net(0), images()
    with pytest.raises(exc) as info:
        method(model, x, bad)
    for word in words:
        assert word in str(info.value), f"{word!r} not in {info.value}"


LAYER_METHODS = CAM_METHODS + [("guided_grad_cam", mc.guided_grad_cam), ("cam", ALL[-3][1]),
                               ("eigen_cam", ALL[-2][1])]


@pytest.mark.parametrize("name,method", LAYER_METHODS, ids=[n for n, _ in LAYER_METHODS])
def test_bad_layer(name, method):
    model, x = gap_net(0), images()
    with pytest.raises(ValueError, match=r"layer must name a layer.*'conv9'"):
        method(model, x, 1, layer="conv9")
    with pytest.raises(ValueError, match=r"4-D feature map.*'fc'.*\(3, 5\)"):
        method(model, x, 1, layer="fc")
    with pytest.raises(ValueError, match=r"4-D.*'gap'"):
        method(model, x, 1, layer="gap")
    with pytest.raises(TypeError, match=r"layer must be a layer name.*3"):
        method(model, x, 1, layer=3)


@pytest.mark.parametrize("name,method", ALL, ids=[n for n, _ in ALL])
def test_bad_x(name, method):
    model = gap_net(0)
    with pytest.raises(ValueError, match=r"x of shape \(3, 2, 10, 8\) does not fit the model.*3 input channels"):
        method(model, np.zeros((3, 2, 10, 8)), 1)
    with pytest.raises(ValueError, match=r"x.*\(10, 8\)"):
        method(model, np.zeros((10, 8)), 1)
    with pytest.raises(TypeError, match=r"x must have a floating-point dtype.*int64"):
        method(model, np.zeros((3, 3, 10, 8), dtype=np.int64), 1)
    with pytest.raises(TypeError, match="x must be a numpy.ndarray.*list"):
        method(model, [[1.0]], 1)
    with pytest.raises(ValueError, match="x contains NaN"):
        method(model, np.full((1, 3, 10, 8), np.nan), 1)
    with pytest.raises(TypeError, match="model must be a minicam.Sequential.*dict"):
        method({}, images(), 1)


@pytest.mark.parametrize("name,method", CLASS_METHODS, ids=IDS)
def test_bad_score(name, method):
    with pytest.raises(ValueError, match=r"score must be one of \('logit', 'softmax', 'log_softmax'\), got 'prob'"):
        method(gap_net(0), images(), 1, score="prob")


@pytest.mark.parametrize("name,method", CLASS_METHODS, ids=IDS)
def test_target_and_class_idx_are_exclusive(name, method):
    model, x = gap_net(0), images()
    with pytest.raises(ValueError, match="class_idx or target, not both"):
        method(model, x, 1, target=mc.class_target(1))
    with pytest.raises(TypeError, match="target must be a callable"):
        method(model, x, None, target=3)


def test_bad_target_results():
    model, x = gap_net(0), images()
    with pytest.raises(TypeError, match=r"target must return a pair \(value, dscores\)"):
        mc.grad_cam(model, x, target=lambda s: s[:, 0])
    with pytest.raises(ValueError, match=r"dscores of the model output's shape \(3, 5\)"):
        mc.grad_cam(model, x, target=lambda s: (s[:, 0], np.ones((3, 4))))
    with pytest.raises(ValueError, match=r"value as a float array of shape \(3,\)"):
        mc.grad_cam(model, x, target=lambda s: (s[:2, 0], np.ones_like(s)))
    with pytest.raises(ValueError, match="embeddings"):
        mc.grad_cam(model, x, target=mc.similarity_target(np.ones(8)))
    with pytest.raises(ValueError, match="nonzero"):
        mc.similarity_target(np.zeros(8))
    with pytest.raises(ValueError, match="class_target needs explicit classes"):
        mc.class_target(None)
    with pytest.raises(ValueError, match="score must be one of"):
        mc.class_target(1, "probability")


def test_cam_refuses_other_heads_and_says_why():
    x = images()
    with pytest.raises(ValueError) as info:
        mc.cam(fc_net(0), x, 1)
    message = str(info.value)
    for word in ("GAP -> Linear", "GlobalAvgPool2d", "flatten (Flatten)", "grad_cam"):
        assert word in message, f"{word!r} not in {message}"
    with pytest.raises(ValueError, match=r"after layer 'conv2'.*relu2 \(ReLU\)"):
        mc.cam(gap_net(0), x, 1, layer="conv2")  # a ReLU between the map and the GAP
    with pytest.raises(ValueError, match=r"drop \(Dropout, training\)"):
        mc.cam(gap_net(0, dropout=True).train(), x, 1)  # random in training mode
    mc.cam(gap_net(0, dropout=True).eval(), x, 1)  # the identity in eval mode


def test_bad_method_options():
    model, x = gap_net(0), images()
    with pytest.raises(ValueError, match=r"interpolation must be one of \('bilinear', 'nearest'\), got 'cubic'"):
        mc.guided_grad_cam(model, x, 1, interpolation="cubic")
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        mc.score_cam(model, x, 1, batch_size=0)
    with pytest.raises(ValueError, match="x must be 4-D"):
        mc.score_cam(mc.Sequential([mc.Linear(4, 2, rng=0)]), np.ones((2, 4)), 1)
    with pytest.raises(ValueError, match=r"window must fit in the image \(10, 8\), got \(3, 9\)"):
        mc.occlusion(model, x, 1, window=(3, 9))
    with pytest.raises(ValueError, match=r"stride must be >= 1 along both axes, got \(0, 0\)"):
        mc.occlusion(model, x, 1, stride=0)
    with pytest.raises(ValueError, match=r"stride must not exceed window \(3, 2\).*got \(2, 3\)"):
        mc.occlusion(model, x, 1, window=(3, 2), stride=(2, 3))
    with pytest.raises(TypeError, match="window must be an int or a pair"):
        mc.occlusion(model, x, 1, window=(1, 2, 3))
    with pytest.raises(ValueError, match=r"baseline must be a number or broadcast to x's shape"):
        mc.occlusion(model, x, 1, baseline=np.zeros((2, 10, 8)))
    with pytest.raises(TypeError, match="method must be an explanation function"):
        mc.smoothgrad("saliency", model, x, 1)
    with pytest.raises(ValueError, match="n_samples must be >= 1, got 0"):
        mc.smoothgrad(mc.saliency, model, x, 1, n_samples=0)
    with pytest.raises(ValueError, match=r"sigma must be >= 0\.0, got"):
        mc.smoothgrad(mc.saliency, model, x, 1, sigma=-0.1)
    with pytest.raises(ValueError, match="score applies to class scores"):
        mc.grad_cam(model, x, target=mc.class_target(1), score="softmax")


@pytest.mark.parametrize("score", ["logit", "softmax", "log_softmax"])
@pytest.mark.parametrize("class_idx", [4, -1, np.array([0, 7]), np.array([-2, 1])])
def test_class_score_checks_its_own_range(class_idx, score):
    # ClassScore is public and can be called on any scores: its own range check must say what is wrong.
    # Without it, 4 or 7 would be numpy's IndexError and -1 would silently explain the *last* class.
    target = mc.explain.ClassScore(class_idx, score)
    with pytest.raises(ValueError, match=r"class_idx must be in \[0, 4\) for a model with 4 outputs"):
        target(np.zeros((2, 4)))


# -- many perturbed copies of a batch at once (Score-CAM, occlusion) ---------------------------


def _per_copy(target, scores):
    return np.stack([evaluate_target(target, s)[0] for s in scores])


@pytest.mark.parametrize("score", ["logit", "softmax", "log_softmax"])
@pytest.mark.parametrize("class_idx", [2, np.array([0, 3, 1])], ids=["one-class", "per-sample"])
def test_stacked_class_scores_are_the_scores_of_each_copy(class_idx, score, rng):
    scores = rng.standard_normal((5, 3, 4))  # 5 copies of a 3-sample batch, 4 classes
    target = mc.explain.ClassScore(class_idx, score)
    stacked = evaluate_stacked(target, scores)
    assert stacked.shape == (5, 3)
    np.testing.assert_allclose(stacked, _per_copy(target, scores), rtol=1e-15, atol=1e-15)
    # and they are the numbers of the definition: row p, sample n -> its class's score in copy p
    idx = np.broadcast_to(class_idx, (3,))
    logp = scores - np.log(np.exp(scores).sum(axis=2, keepdims=True))
    expected = {"logit": scores, "softmax": np.exp(logp), "log_softmax": logp}[score][:, np.arange(3), idx]
    np.testing.assert_allclose(stacked, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("per_sample", [False, True], ids=["one-reference", "per-sample"])
def test_stacked_similarities_are_the_similarities_of_each_copy(per_sample, rng):
    scores = rng.standard_normal((4, 2, 6))
    target = mc.similarity_target(rng.standard_normal((2, 6) if per_sample else 6))
    np.testing.assert_allclose(evaluate_stacked(target, scores), _per_copy(target, scores), rtol=1e-14, atol=1e-15)


def test_stacked_other_targets_are_called_once_per_copy(rng):
    calls = []

    def margin(scores):
        calls.append(scores.shape)
        d = np.zeros_like(scores)
        d[:, 3], d[:, 0] = 1.0, -1.0
        return scores[:, 3] - scores[:, 0], d

    class Doubled(mc.explain.ClassScore):  # a subclass may compute something else: it is not rewritten
        def __call__(self, scores):
            value, d = super().__call__(scores)
            return 2 * value, 2 * d

    scores = rng.standard_normal((3, 2, 4))
    np.testing.assert_array_equal(evaluate_stacked(margin, scores), scores[:, :, 3] - scores[:, :, 0])
    assert calls == [(2, 4)] * 3  # defined for N = 2 rows, so called with 2 rows, 3 times
    np.testing.assert_allclose(evaluate_stacked(Doubled(1), scores), 2 * scores[:, :, 1], rtol=1e-15)


def test_stacked_evaluation_keeps_the_targets_own_errors(rng):
    scores = rng.standard_normal((3, 2, 4))
    with pytest.raises(ValueError, match=r"class target holds 3 classes, the batch has 2 samples"):
        evaluate_stacked(mc.explain.ClassScore(np.array([0, 1, 2])), scores)
    with pytest.raises(ValueError, match=r"reference holds 3 embeddings, the batch has 2"):
        evaluate_stacked(mc.similarity_target(rng.standard_normal((3, 4))), scores)
    with pytest.raises(ValueError, match=r"class_idx must be in \[0, 4\)"):
        evaluate_stacked(mc.explain.ClassScore(np.array([0, 5])), scores)


@pytest.mark.parametrize("method", ["score_cam", "occlusion"])
def test_perturbation_methods_agree_with_a_custom_target_of_the_same_score(method):
    # A custom callable goes the one-copy-at-a-time way, a class index the stacked way: same maps.
    model, x = gap_net(0), images()

    def logit_1(scores):
        d = np.zeros_like(scores)
        d[:, 1] = 1.0
        return scores[:, 1].copy(), d

    run = {"score_cam": lambda **kw: mc.score_cam(model, x, score="logit", **kw) if "class_idx" in kw
           else mc.score_cam(model, x, **kw),
           "occlusion": lambda **kw: mc.occlusion(model, x, window=4, stride=4, **kw)}[method]
    np.testing.assert_allclose(run(class_idx=1), run(target=logit_1), rtol=1e-12, atol=1e-14)
