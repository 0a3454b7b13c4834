"""Parity of the explanation maps with captum, on the same weights, in float64.

Each minicam method is run on a model and captum's counterpart on the same
model converted with :func:`minicam.interop.torch.to_torch` (so its ReLUs are
``nn.ReLU`` modules, which captum's guided backprop and deconvnet hook):

============================================  ===============================================
minicam                                       captum 0.9 / torch 2.13
============================================  ===============================================
``grad_cam(relu=True / False)``               ``LayerGradCam(relu_attributions=True / False)``
``saliency``                                  ``Saliency(abs=False)``
``guided_backprop``                           ``GuidedBackprop``
``deconvnet``                                 ``Deconvolution``
``guided_grad_cam(interpolation="nearest")``  ``GuidedGradCam`` (nearest, its default)
``occlusion(window, stride, baseline)``       ``Occlusion`` (window and stride over all channels)
``upsample(interpolation="bilinear")``                 ``F.interpolate(bilinear, align_corners=False)``
``upsample(interpolation="nearest")``                  ``F.interpolate(nearest)`` where torch's float32
                                              scale gives ``floor(dst * in / out)``
============================================  ===============================================

Tolerance: relative 1e-10 (norm-wise, :func:`minicam.gradcheck.rel_error`);
nearest upsampling must agree exactly. The largest difference per quantity
is printed at the end of the module. Without torch/captum these tests skip;
with the environment variable ``CI`` set they fail instead.
"""

import copy
import os
from collections import OrderedDict

import numpy as np
import pytest

import minicam as mc
from minicam import gradcheck as gc
from parity_support import Differences, numpy_of, require, zoo_models

torch = require("torch", "the parity tests against captum")
ca = require("captum.attr", "the parity tests against captum")
bridge = require("minicam.interop.torch", "the parity tests against captum")
nn = torch.nn
F = torch.nn.functional

TOL = 1e-10
EXACT = 0.0
DIFFS = Differences("captum/torch")
MEASURED = DIFFS.measured
check = DIFFS.check

# captum's GuidedBackprop / Deconvolution announce the hooks they set on every call
pytestmark = pytest.mark.filterwarnings("ignore:Setting backward hooks on ReLU activations")


@pytest.fixture(scope="module", autouse=True)
def _report(request):
    yield
    DIFFS.write_report(
        request,
        f"largest difference minicam vs captum/torch per quantity ({os.path.basename(__file__)}; models: {', '.join(IDS)}):",
    )


# ---------------------------------------------------------------------------
# Models: the gradcheck models, the zoo's reference architectures, and a
# model written in PyTorch and imported with from_torch
# ---------------------------------------------------------------------------


def _with_random_biases(model, rng):
    for layer in model.layers:
        if "b" in layer.params:
            layer.params["b"] = 0.1 * rng.standard_normal(layer.params["b"].shape)
    return model


def _torch_written_model():
    rng = np.random.default_rng(6)
    module = nn.Sequential(OrderedDict([
        ("features", nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 8, 3, padding="same"), nn.ReLU(),
        )),
        ("head", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3), nn.Linear(8, 5))),
    ])).double().eval()
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.tensor(0.5 * rng.standard_normal(tuple(p.shape))))
        module.features[1].running_mean.copy_(torch.tensor(0.2 * rng.standard_normal(6)))
        module.features[1].running_var.copy_(torch.tensor(0.5 + rng.random(6)))
    return bridge.from_torch(module)


def explained_models():
    """(label, model, x): eval mode; input sizes multiples of the feature maps' (see nearest upsampling)."""
    rng = np.random.default_rng(12)
    cases = gc.model_cases(seed=3)
    gap, fc, bn = (copy.deepcopy(c[1]).eval() for c in cases)
    models = [
        ("GAP net", _with_random_biases(gap, rng), rng.standard_normal((3, 3, 8, 6))),
        ("FC net", _with_random_biases(fc, rng), rng.standard_normal((3, 2, 8, 8))),
        ("BN net (eval)", _with_random_biases(bn, rng), rng.standard_normal((3, 3, 8, 8))),
        ("from_torch model", _torch_written_model(), rng.standard_normal((3, 3, 12, 10))),
    ]
    bn_train = copy.deepcopy(models[2][1]).train()
    bn_train["dropout1"].eval()  # masks are random in both frameworks
    models.append(("BN net (BatchNorm in train mode)", bn_train, models[2][2]))
    models += zoo_models(rng, prepare=lambda m: _with_random_biases(m.eval(), rng))
    return models


MODELS = explained_models()
IDS = [m[0] for m in MODELS]


def four_d_layers(model, x):
    return [name for name, shape in model.output_shapes(x.shape) if len(shape) == 4]


def class_indices(model, x):
    """One class per sample, not all equal, not all the predicted one."""
    m = model.output_shapes(x.shape)[-1][1][1]
    return [(3 * i + 1) % m for i in range(x.shape[0])]


SCORE_HEAD = {"logit": None, "softmax": lambda: nn.Softmax(dim=1), "log_softmax": lambda: nn.LogSoftmax(dim=1)}


def torch_of(model, score="logit"):
    """``to_torch(model)``, followed by softmax / log-softmax when that is the explained score."""
    module = bridge.to_torch(model)
    if SCORE_HEAD[score] is None:
        return module, module
    wrapped = nn.Sequential(OrderedDict([("net", module), ("score", SCORE_HEAD[score]())]))
    wrapped.train(False)
    for name, layer in model:
        module.get_submodule(name).train(layer.training)
    return wrapped, module


def inputs(x):
    return torch.tensor(x, requires_grad=True)


# ---------------------------------------------------------------------------
# Grad-CAM
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("relu", [True, False], ids=["relu", "signed"])
@pytest.mark.parametrize("label,model,x", MODELS, ids=IDS)
def test_grad_cam_matches_layer_grad_cam_at_every_4d_layer(label, model, x, relu):
    cls = class_indices(model, x)
    forward, net = torch_of(model)
    layers = four_d_layers(model, x)
    assert len(layers) >= 3
    for layer in layers:
        mine = mc.grad_cam(model, x, cls, layer=layer, relu=relu)
        theirs = ca.LayerGradCam(forward, net.get_submodule(layer)).attribute(
            inputs(x), target=cls, relu_attributions=relu
        )
        assert theirs.shape[1] == 1  # captum keeps a channel axis
        check(f"grad_cam(relu={relu}) vs LayerGradCam", mine, theirs[:, 0], TOL, f"{label}, layer {layer}")


@pytest.mark.parametrize("score", ["softmax", "log_softmax"])
@pytest.mark.parametrize("label,model,x", MODELS[:2], ids=IDS[:2])
def test_grad_cam_of_softmax_scores_matches_captum_on_a_softmax_head(label, model, x, score):
    cls = class_indices(model, x)
    forward, net = torch_of(model, score)
    layer = four_d_layers(model, x)[-1]
    mine = mc.grad_cam(model, x, cls, layer=layer, relu=False, score=score)
    theirs = ca.LayerGradCam(forward, net.get_submodule(layer)).attribute(inputs(x), target=cls)
    check(f"grad_cam(score={score!r}) vs LayerGradCam", mine, theirs[:, 0], TOL, f"{label}, layer {layer}")


def test_grad_cam_default_class_is_the_prediction_in_both():
    label, model, x = MODELS[0]
    forward, net = torch_of(model)
    predicted = numpy_of(forward(torch.tensor(x))).argmax(axis=1)
    mine = mc.grad_cam(model, x, None)
    theirs = ca.LayerGradCam(forward, net.relu2).attribute(inputs(x), target=torch.tensor(predicted), relu_attributions=True)
    check("grad_cam(class_idx=None) vs LayerGradCam(predicted)", mine, theirs[:, 0], TOL, label)


# ---------------------------------------------------------------------------
# Input gradients: saliency, guided backprop, deconvnet, Guided Grad-CAM
# ---------------------------------------------------------------------------

INPUT_METHODS = [
    ("saliency", lambda m, x, c, s: mc.saliency(m, x, c, score=s), lambda f, xt, c: ca.Saliency(f).attribute(xt, target=c, abs=False)),
    ("guided_backprop", lambda m, x, c, s: mc.guided_backprop(m, x, c, score=s), lambda f, xt, c: ca.GuidedBackprop(f).attribute(xt, target=c)),
    ("deconvnet", lambda m, x, c, s: mc.deconvnet(m, x, c, score=s), lambda f, xt, c: ca.Deconvolution(f).attribute(xt, target=c)),
]
CAPTUM_NAME = {"saliency": "Saliency(abs=False)", "guided_backprop": "GuidedBackprop", "deconvnet": "Deconvolution"}


@pytest.mark.parametrize("method,mine_fn,theirs_fn", INPUT_METHODS, ids=[m[0] for m in INPUT_METHODS])
@pytest.mark.parametrize("label,model,x", MODELS, ids=IDS)
def test_input_gradient_maps_match_captum(label, model, x, method, mine_fn, theirs_fn):
    cls = class_indices(model, x)
    forward, _ = torch_of(model)
    mine = mine_fn(model, x, cls, "logit")
    theirs = theirs_fn(forward, inputs(x), cls)
    check(f"{method} vs {CAPTUM_NAME[method]}", mine, theirs, TOL, label)


@pytest.mark.parametrize("score", ["softmax", "log_softmax"])
@pytest.mark.parametrize("method,mine_fn,theirs_fn", INPUT_METHODS, ids=[m[0] for m in INPUT_METHODS])
def test_input_gradient_maps_of_softmax_scores_match_captum(method, mine_fn, theirs_fn, score):
    label, model, x = MODELS[1]
    cls = class_indices(model, x)
    forward, _ = torch_of(model, score)
    check(f"{method}(score={score!r}) vs {CAPTUM_NAME[method]}", mine_fn(model, x, cls, score),
          theirs_fn(forward, inputs(x), cls), TOL, label)


def test_guided_and_deconvnet_rules_really_differ_from_saliency():
    # the comparison above would be vacuous if the three maps coincided
    label, model, x = MODELS[0]
    cls = class_indices(model, x)
    sal = mc.saliency(model, x, cls)
    assert gc.rel_error(sal, mc.guided_backprop(model, x, cls)) > 1e-2
    assert gc.rel_error(sal, mc.deconvnet(model, x, cls)) > 1e-2


@pytest.mark.parametrize("label,model,x", MODELS, ids=IDS)
def test_guided_grad_cam_nearest_matches_captum(label, model, x):
    cls = class_indices(model, x)
    forward, net = torch_of(model)
    for layer in four_d_layers(model, x):
        h, w = dict(model.output_shapes(x.shape))[layer][2:]
        if not torch_nearest_is_floor(h, x.shape[2]) or not torch_nearest_is_floor(w, x.shape[3]):
            continue  # documented below: torch's float32 scale moves a source pixel
        mine = mc.guided_grad_cam(model, x, cls, layer=layer, interpolation="nearest")
        theirs = ca.GuidedGradCam(forward, net.get_submodule(layer)).attribute(inputs(x), target=cls)
        check("guided_grad_cam(nearest) vs GuidedGradCam", mine, theirs, TOL, f"{label}, layer {layer}")


def test_guided_grad_cam_bilinear_is_captum_with_bilinear_interpolation():
    label, model, x = MODELS[3]
    cls = class_indices(model, x)
    forward, net = torch_of(model)
    layer = four_d_layers(model, x)[-1]
    mine = mc.guided_grad_cam(model, x, cls, layer=layer)  # the paper's bilinear
    theirs = ca.GuidedGradCam(forward, net.get_submodule(layer)).attribute(inputs(x), target=cls, interpolate_mode="bilinear")
    check("guided_grad_cam(bilinear) vs GuidedGradCam(bilinear)", mine, theirs, TOL, f"{label}, layer {layer}")


# ---------------------------------------------------------------------------
# Occlusion
# ---------------------------------------------------------------------------

OCCLUSION = [((3, 3), (1, 1), 0.0), ((2, 3), (2, 1), 0.5), ((4, 4), (3, 3), -1.0), ((3, 2), (2, 2), 0.25)]


@pytest.mark.parametrize("window,stride,baseline", OCCLUSION, ids=[f"w{w}-s{s}-b{b}" for w, s, b in OCCLUSION])
@pytest.mark.parametrize("label,model,x", MODELS[:4], ids=IDS[:4])
def test_occlusion_matches_captum(label, model, x, window, stride, baseline):
    cls = class_indices(model, x)
    forward, _ = torch_of(model)
    c = x.shape[1]
    mine = mc.occlusion(model, x, cls, window=window, stride=stride, baseline=baseline)
    with torch.no_grad():
        theirs = ca.Occlusion(forward).attribute(
            torch.tensor(x), sliding_window_shapes=(c,) + window, strides=(c,) + stride, baselines=baseline,
            target=cls, perturbations_per_eval=16,
        )
    theirs = numpy_of(theirs)
    np.testing.assert_array_equal(theirs, np.repeat(theirs[:, :1], c, axis=1))  # captum repeats the map per channel
    theirs = theirs[:, 0]
    # captum 0.9 divides by the window counts after casting the float64 sums
    # to float32 (``single_attrib.float() / weight`` in feature_ablation.py),
    # so its map is float32 whatever the model's dtype: the agreement is
    # float32 rounding, checked in units in the last place.
    assert theirs.dtype == np.float32
    check("occlusion vs Occlusion (captum output is float32)", mine, theirs, 1e-6,
          f"{label}, window {window}, stride {stride}, baseline {baseline}")
    ulps = np.abs(mine.astype(np.float32) - theirs) / np.spacing(np.abs(theirs))
    assert ulps.max() <= 2, f"{label}: occlusion differs from captum by {ulps.max():.0f} float32 ulps"


# ---------------------------------------------------------------------------
# Upsampling
# ---------------------------------------------------------------------------

def torch_nearest_is_floor(n_in, n_out):
    """True when torch's legacy 2-D nearest (float32 scale) picks floor(dst * in / out) for every dst.

    Probed along both axes of a 4-D tensor: the 2-D kernel is the one that
    rounds (torch's 1-D nearest on a 3-D tensor agrees with floor for 14 -> 46).
    """
    want = (np.arange(n_out) * n_in) // n_out
    for shape, size in (((1, 1, n_in, 1), (n_out, 1)), ((1, 1, 1, n_in), (1, n_out))):
        src = F.interpolate(torch.arange(n_in, dtype=torch.float64).reshape(shape), size=size, mode="nearest")
        if not np.array_equal(numpy_of(src).ravel().astype(np.int64), want):
            return False
    return True


SIZE_PAIRS = [
    ((4, 3), (8, 6)), ((4, 3), (32, 24)), ((5, 4), (10, 8)), ((7, 7), (224, 224)), ((3, 5), (13, 11)),
    ((8, 8), (32, 32)), ((6, 6), (28, 28)), ((14, 14), (46, 46)), ((2, 9), (7, 20)), ((1, 1), (5, 4)),
    ((1, 6), (3, 6)), ((7, 5), (7, 5)),
    # down
    ((32, 24), (8, 6)), ((13, 11), (3, 5)), ((10, 10), (3, 7)), ((46, 46), (14, 14)), ((9, 8), (1, 1)),
    ((224, 224), (7, 7)), ((6, 8), (5, 7)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("src,dst", SIZE_PAIRS, ids=[f"{s}->{d}" for s, d in SIZE_PAIRS])
def test_upsample_bilinear_is_torch_interpolate(src, dst, dtype):
    rng = np.random.default_rng(src[0] * 100 + dst[0])
    maps = rng.standard_normal((2, 3) + src).astype(dtype)
    mine = mc.upsample(maps, dst, interpolation="bilinear")
    theirs = F.interpolate(torch.tensor(maps), size=dst, mode="bilinear", align_corners=False)
    tol = TOL if dtype == np.float64 else 1e-6
    check(f"upsample bilinear vs F.interpolate ({np.dtype(dtype).name})", mine, theirs, tol, f"{src} -> {dst}")
    mine3 = mc.upsample(maps[:, 0], dst, interpolation="bilinear")  # (N, h, w) maps too
    check(f"upsample bilinear vs F.interpolate ({np.dtype(dtype).name})", mine3, theirs[:, 0], tol, f"{src} -> {dst}, 3-D")


# the pairs where torch's legacy nearest is floor(dst * in / out); 14 -> 46 is not (tested below)
NEAREST_PAIRS = [(s, d) for s, d in SIZE_PAIRS if torch_nearest_is_floor(s[0], d[0]) and torch_nearest_is_floor(s[1], d[1])]


@pytest.mark.parametrize("src,dst", NEAREST_PAIRS, ids=[f"{s}->{d}" for s, d in NEAREST_PAIRS])
def test_upsample_nearest_is_torch_interpolate_where_torch_floors_exactly(src, dst):
    maps = np.random.default_rng(0).standard_normal((2, 3) + src)
    mine = mc.upsample(maps, dst, interpolation="nearest")
    check("upsample nearest vs F.interpolate", mine, F.interpolate(torch.tensor(maps), size=dst, mode="nearest"), EXACT, f"{src} -> {dst}")


def test_torch_nearest_differs_where_documented():
    # of the tested size pairs, only 14 -> 46 is off (46 -> 14 agrees)
    assert [p for p in SIZE_PAIRS if p not in NEAREST_PAIRS] == [((14, 14), (46, 46))]
    # DESIGN.md: 14 -> 46 moves a source pixel in PyTorch's legacy nearest
    # (dst 23 reads 23 * 14 / 46 = 7 in exact arithmetic, 6 in torch).
    assert not torch_nearest_is_floor(14, 46)
    maps = np.arange(14.0).reshape(1, 1, 14).repeat(14, axis=1)[None]  # (1, 1, 14, 14), value = column
    mine = mc.upsample(maps, (46, 46), interpolation="nearest")
    theirs = numpy_of(F.interpolate(torch.tensor(maps), size=(46, 46), mode="nearest"))
    assert mine[0, 0, 0, 23] == 7.0 and theirs[0, 0, 0, 23] == 6.0
    moved = sorted({int(c) for c in np.argwhere(mine[0, 0, 0] != theirs[0, 0, 0]).ravel()})
    assert moved == [23]


# ---------------------------------------------------------------------------
# The captum rows of docs/conventions.md, as written there
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_conventions_doc_captum_recipe_upsampled_layer_grad_cam(mode):
    # captum: LayerAttribution.interpolate(LayerGradCam(...).attribute(x, target), (H, W), mode)
    # minicam: upsample(grad_cam(..., relu=False), (H, W), mode)
    label, model, x = MODELS[3]
    cls = class_indices(model, x)
    forward, net = torch_of(model)
    layer = four_d_layers(model, x)[-1]
    attr = ca.LayerGradCam(forward, net.get_submodule(layer)).attribute(inputs(x), target=cls)  # relu_attributions=False
    theirs = ca.LayerAttribution.interpolate(attr, tuple(x.shape[2:]), interpolate_mode=mode)
    mine = mc.upsample(mc.grad_cam(model, x, cls, layer=layer, relu=False), x.shape[2:], interpolation=mode)
    check(f"docs recipe: upsample(grad_cam(relu=False), {mode}) vs LayerAttribution.interpolate", mine, theirs[:, 0],
          TOL, f"{label}, layer {layer}")
