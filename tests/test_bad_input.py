"""The bad-input table: every public function and every command, fed what it must refuse.

Each row is one bad input, the exception type it must raise (or, for a
command, exit status 2 with one line on stderr), and a regex that the message
must match: the regex names the argument *and* the value received (or what is
wrong with it: ``NaN``, a shape, a dtype), so a message that only says "bad
input" fails. Nothing here trains, draws a full demo or explains a bundled
model: the commands' rows stop in their checks, before any work, and the
table runs in a few seconds.
"""

import contextlib
import io as stdio
import os

import numpy as np
import pytest
from explain_nets import fc_net, gap_net, images

import minicam as mc
from minicam import gradcheck as gc
from minicam.__main__ import main

MODEL = gap_net()  # conv1 relu1 pool1 conv2 relu2 gap fc; 5 classes; input (3, 10, 8)
X = images(2)      # (2, 3, 10, 8)
Y = np.array([0, 1])
MAPS = np.random.default_rng(0).random((2, 10, 8))
MASKS = np.zeros((2, 10, 8), dtype=bool)
MASKS[:, 2:5, 2:5] = True
BOXES = np.array([[1, 1, 5, 5], [2, 2, 6, 6]])


def _with(x=X, **changes):
    out = x.copy()
    for index, value in changes.get("set", []):
        out[index] = value
    return out


X_NAN = _with(set=[((0, 0, 0, 0), np.nan)])
X_INF = _with(set=[((1, 2, 3, 4), -np.inf)])
READ_ONLY = np.ones(3)
READ_ONLY.flags.writeable = False

ROWS = []


def row(name, call, exc, pattern):
    ROWS.append(pytest.param(call, exc, pattern, id=name))


# -- explanation methods: x, class_idx, the model ------------------------------------------------

GRADIENT_CAMS = {
    "grad_cam": mc.grad_cam, "grad_cam_plus_plus": mc.grad_cam_plus_plus, "hires_cam": mc.hires_cam,
    "xgrad_cam": mc.xgrad_cam, "layer_cam": mc.layer_cam, "score_cam": mc.score_cam,
}
INPUT_MAPS = {"saliency": mc.saliency, "guided_backprop": mc.guided_backprop, "deconvnet": mc.deconvnet}
ALL = {"cam": mc.cam, **GRADIENT_CAMS, **INPUT_MAPS, "guided_grad_cam": mc.guided_grad_cam, "occlusion": mc.occlusion}

# one kind of bad x per method, rotating through the kinds, so every method sees several
X_KINDS = [
    ("int x", lambda: X.astype(np.int64), TypeError, r"x must have a floating-point dtype .*got dtype int64"),
    ("bool x", lambda: X > 0, TypeError, r"x must have a floating-point dtype .*got dtype bool"),
    ("complex x", lambda: X.astype(complex), TypeError, r"x must have a floating-point dtype .*got dtype complex128"),
    ("object x", lambda: X.astype(object), TypeError, r"x must have a floating-point dtype .*got dtype object"),
    ("float16 x", lambda: X.astype(np.float16), TypeError, r"x's dtype must be float32 or float64, got float16"),
    ("NaN in x", lambda: X_NAN, ValueError, r"x contains NaN"),
    ("-inf in x", lambda: X_INF, ValueError, r"x contains NaN or infinity"),
    ("list x", lambda: X.tolist(), TypeError, r"x must be a numpy.ndarray of floats, got list"),
    ("empty batch", lambda: X[:0], ValueError, r"x must be a batch .*N >= 1, got shape \(0, 3, 10, 8\)"),
    ("2 channels", lambda: X[:, :2], ValueError, r"x of shape \(2, 2, 10, 8\) does not fit the model: .*expects 3 input channels, got 2"),
    ("1x1 image", lambda: X[:, :, :1, :1], ValueError, r"x of shape \(2, 3, 1, 1\) does not fit the model: .*kernel_size 2"),
]
for i, (name, fn) in enumerate(ALL.items()):
    for kind, make, exc, pattern in (X_KINDS[i % len(X_KINDS)], X_KINDS[(i + 5) % len(X_KINDS)]):
        row(f"{name}: {kind}", lambda fn=fn, make=make: fn(MODEL, make(), 0), exc, pattern)
row("cam: 3-D x (no batch axis)", lambda: mc.cam(MODEL, X[0], 0), ValueError, r"x of shape \(3, 10, 8\) does not fit .*4-D input")
row("score_cam: 3-D x", lambda: mc.score_cam(MODEL, X[0], 0), ValueError, r"x must be 4-D, got shape \(3, 10, 8\)")
row("occlusion: zero-size width", lambda: mc.occlusion(MODEL, X[:, :, :, :0], 0), ValueError, r"x of shape \(2, 3, 10, 0\)")

CLASS_KINDS = [
    ("class_idx out of range", 5, ValueError, r"class_idx must be in \[0, 5\) .*got 5"),
    ("negative class_idx", -1, ValueError, r"class_idx must be in \[0, 5\) .*got -1"),
    ("float class_idx", 1.0, TypeError, r"class_idx must be an int.*got 1\.0"),
    ("bool class_idx", True, TypeError, r"class_idx must be an int.*got True"),
    ("wrong-length class_idx", [0, 1, 2], ValueError, r"class_idx must hold one class per sample \(N=2\), got shape \(3,\)"),
    ("str class_idx", "0", TypeError, r"class_idx must be an int.*got '0'"),
    ("float array class_idx", np.array([0.0, 1.0]), TypeError, r"class_idx must hold ints, got .*dtype float64"),
    ("class_idx row out of range", [0, 7], ValueError, r"class_idx must be in \[0, 5\) .*got 7"),
]
for i, (name, fn) in enumerate(ALL.items()):
    kind, value, exc, pattern = CLASS_KINDS[i % len(CLASS_KINDS)]
    row(f"{name}: {kind}", lambda fn=fn, value=value: fn(MODEL, X, value), exc, pattern)
    row(f"{name}: model=None", lambda fn=fn: fn(None, X, 0), TypeError, r"model must be a minicam.Sequential, got NoneType")

# -- boolean options: only True or False ------------------------------------------------------------

FLAGS = [(name, fn, flag) for name, fn in GRADIENT_CAMS.items() for flag in ("relu", "return_weights")]
FLAGS += [("grad_cam", mc.grad_cam, "counterfactual"), ("score_cam", mc.score_cam, "subtract_baseline")]
for i, (name, fn, flag) in enumerate(FLAGS):
    value = ["False", 1, np.array([True]), None][i % 4]
    row(f"{name}: {flag}={value!r}", lambda fn=fn, flag=flag, value=value: fn(MODEL, X, 0, **{flag: value}), TypeError,
        rf"{flag} must be True or False, got {__import__('re').escape(repr(value))}")
row("eigen_cam: center='yes'", lambda: mc.eigen_cam(MODEL, X, center="yes"), TypeError, r"center must be True or False, got 'yes'")

# -- layer, score, target, other options --------------------------------------------------------------

row("grad_cam: layer=3", lambda: mc.grad_cam(MODEL, X, 0, layer=3), TypeError, r"layer must be a layer name \(str\), got 3")
row("hires_cam: unknown layer", lambda: mc.hires_cam(MODEL, X, 0, layer="conv9"), ValueError, r"layer must name a layer of the model.*got 'conv9'")
row("layer_cam: 2-D layer", lambda: mc.layer_cam(MODEL, X, 0, layer="fc"), ValueError, r"layer must output a 4-D feature map .*layer 'fc' outputs shape \(2, 5\)")
row("eigen_cam: 2-D layer", lambda: mc.eigen_cam(MODEL, X, layer="gap"), ValueError, r"layer 'gap' outputs shape \(2, 6\)")
row("eigen_cam: int x", lambda: mc.eigen_cam(MODEL, X.astype(np.int32)), TypeError, r"x must have a floating-point dtype .*int32")
row("cam: no GAP head", lambda: mc.cam(fc_net(), X, 0), ValueError, r"cam needs a GAP -> Linear head right after layer 'relu2'")
row("xgrad_cam: unknown score", lambda: mc.xgrad_cam(MODEL, X, 0, score="prob"), ValueError, r"score must be one of .*got 'prob'")
row("saliency: target not callable", lambda: mc.saliency(MODEL, X, target=3), TypeError, r"target must be a callable .*got int")
row("guided_backprop: class_idx and target", lambda: mc.guided_backprop(MODEL, X, 1, target=mc.class_target(1)), ValueError,
    r"give class_idx or target, not both.*class_idx=1")
row("deconvnet: score with target", lambda: mc.deconvnet(MODEL, X, target=mc.class_target(1), score="softmax"), ValueError,
    r"score .*must stay 'logit', got 'softmax'")
row("guided_grad_cam: interpolation='cubic'", lambda: mc.guided_grad_cam(MODEL, X, 0, interpolation="cubic"), ValueError,
    r"interpolation must be one of .*got 'cubic'")
row("score_cam: batch_size=0", lambda: mc.score_cam(MODEL, X, 0, batch_size=0), ValueError, r"batch_size must be >= 1, got 0")
row("score_cam: batch_size=1.5", lambda: mc.score_cam(MODEL, X, 0, batch_size=1.5), TypeError, r"batch_size must be an int, got 1\.5")
row("occlusion: baseline=nan", lambda: mc.occlusion(MODEL, X, 0, baseline=np.nan), ValueError, r"baseline must be finite, got nan")
row("occlusion: baseline=inf", lambda: mc.occlusion(MODEL, X, 0, baseline=np.inf), ValueError, r"baseline must be finite, got inf")
row("occlusion: baseline='0'", lambda: mc.occlusion(MODEL, X, 0, baseline="0"), TypeError, r"baseline must be a real number or a float ndarray.*got '0'")
row("occlusion: NaN baseline array", lambda: mc.occlusion(MODEL, X, 0, baseline=np.full(X.shape, np.nan)), ValueError,
    r"baseline contains NaN")
row("occlusion: baseline of the wrong shape", lambda: mc.occlusion(MODEL, X, 0, baseline=np.zeros(5)), ValueError,
    r"baseline must be a number or broadcast to x's shape .*got shape \(5,\)")
row("occlusion: window=0", lambda: mc.occlusion(MODEL, X, 0, window=0), ValueError, r"window must be >= 1 .*got \(0, 0\)")
row("occlusion: window larger than the image", lambda: mc.occlusion(MODEL, X, 0, window=50), ValueError,
    r"window must fit in the image \(10, 8\), got \(50, 50\)")
row("occlusion: window=2.5", lambda: mc.occlusion(MODEL, X, 0, window=2.5), TypeError, r"window must be an int or a pair .*got 2\.5")
row("occlusion: stride past the window", lambda: mc.occlusion(MODEL, X, 0, window=2, stride=3), ValueError,
    r"stride must not exceed window \(2, 2\).*got \(3, 3\)")
row("occlusion: batch_size=True", lambda: mc.occlusion(MODEL, X, 0, batch_size=True), TypeError, r"batch_size must be an int, got True")

# -- smoothgrad ---------------------------------------------------------------------------------------

row("smoothgrad: class_idx to a class-agnostic method", lambda: mc.smoothgrad(mc.eigen_cam, MODEL, X, 0, n_samples=2, rng=0),
    ValueError, r"method 'eigen_cam' has no class_idx parameter .*got class_idx=0")
row("smoothgrad: n_samples=0", lambda: mc.smoothgrad(mc.saliency, MODEL, X, n_samples=0), ValueError, r"n_samples must be >= 1, got 0")
row("smoothgrad: n_samples=2.0", lambda: mc.smoothgrad(mc.saliency, MODEL, X, n_samples=2.0), TypeError, r"n_samples must be an int, got 2\.0")
row("smoothgrad: sigma=nan", lambda: mc.smoothgrad(mc.saliency, MODEL, X, sigma=np.nan), ValueError, r"sigma must be finite, got nan")
row("smoothgrad: sigma=-1", lambda: mc.smoothgrad(mc.saliency, MODEL, X, sigma=-1), ValueError, r"sigma must be >= 0\.0, got -1\.0")
row("smoothgrad: method as a string", lambda: mc.smoothgrad("saliency", MODEL, X), TypeError, r"method must be an explanation function.*got str")
row("smoothgrad: rng=-1", lambda: mc.smoothgrad(mc.saliency, MODEL, X, rng=-1), ValueError, r"rng seed must be >= 0, got -1")
row("smoothgrad: empty batch", lambda: mc.smoothgrad(mc.saliency, MODEL, X[:0], n_samples=2), ValueError, r"got shape \(0, 3, 10, 8\)")

# -- post-processing and targets ------------------------------------------------------------------------

row("upsample: 2-D maps", lambda: mc.upsample(np.zeros((3, 3)), 4), ValueError, r"maps must be 3 or 4-D, got shape \(3, 3\)")
row("upsample: int maps", lambda: mc.upsample(np.zeros((1, 3, 3), int), 4), TypeError, r"maps must have a floating-point dtype .*int64")
row("upsample: float16 maps", lambda: mc.upsample(np.zeros((1, 3, 3), np.float16), 4), TypeError, r"maps's dtype must be float32 or float64, got float16")
row("upsample: size=0", lambda: mc.upsample(np.zeros((1, 3, 3)), 0), ValueError, r"size must be >= 1 .*got \(0, 0\)")
row("upsample: negative size", lambda: mc.upsample(np.zeros((1, 3, 3)), (-2, 3)), ValueError, r"size must be >= 1 .*got \(-2, 3\)")
row("upsample: size=nan", lambda: mc.upsample(np.zeros((1, 3, 3)), np.nan), TypeError, r"size must be an int or a pair .*got nan")
row("upsample: size=inf", lambda: mc.upsample(np.zeros((1, 3, 3)), float("inf")), TypeError, r"size must be an int or a pair .*got inf")
row("upsample: size of 3", lambda: mc.upsample(np.zeros((1, 3, 3)), (2, 2, 2)), TypeError, r"size must be an int or a pair .*got \(2, 2, 2\)")
row("upsample: huge size", lambda: mc.upsample(np.zeros((1, 3, 3)), (10**6, 10**6)), ValueError,
    r"size must have at most MAX_OUTPUT_PIXELS .*got \(1000000, 1000000\)")
row("upsample: NaN maps", lambda: mc.upsample(np.full((1, 3, 3), np.nan), 4), ValueError, r"maps contains NaN")
row("upsample: empty batch", lambda: mc.upsample(np.zeros((0, 3, 3)), 4), ValueError, r"maps must have at least one sample .*got shape \(0, 3, 3\)")
row("upsample: zero-size h", lambda: mc.upsample(np.zeros((1, 0, 3)), 4), ValueError, r"non-empty \(h, w\), got shape \(1, 0, 3\)")
row("upsample: interpolation='area'", lambda: mc.upsample(np.zeros((1, 3, 3)), 4, "area"), ValueError, r"interpolation must be one of .*got 'area'")
row("normalize: 1-D maps", lambda: mc.normalize(np.zeros(4)), ValueError, r"maps must be a batch .*got shape \(4,\)")
row("normalize: empty batch", lambda: mc.normalize(np.zeros((0, 3))), ValueError, r"maps must hold at least one sample .*got shape \(0, 3\)")
row("normalize: int maps", lambda: mc.normalize(np.zeros((2, 3), np.int32)), TypeError, r"maps must have a floating-point dtype .*int32")
row("normalize: inf", lambda: mc.normalize(np.array([[np.inf, 1.0]])), ValueError, r"maps contains NaN or infinity")
row("saliency_map: 3-D grad", lambda: mc.saliency_map(np.zeros((1, 3, 3))), ValueError, r"grad must be 4-D, got shape \(1, 3, 3\)")
row("saliency_map: no channel", lambda: mc.saliency_map(np.zeros((1, 0, 3, 3))), ValueError, r"grad must hold .*one channel, got shape \(1, 0, 3, 3\)")
row("similarity_target: zero reference", lambda: mc.similarity_target(np.zeros(4)), ValueError, r"reference must be a nonzero embedding.*all-zero")
row("similarity_target: empty reference", lambda: mc.similarity_target(np.ones(0)), ValueError, r"reference must hold at least one .*got shape \(0,\)")
row("similarity_target: 3-D reference", lambda: mc.similarity_target(np.ones((1, 1, 4))), ValueError, r"reference must be 1 or 2-D, got shape \(1, 1, 4\)")
row("similarity_target: NaN reference", lambda: mc.similarity_target(np.array([np.nan, 1.0])), ValueError, r"reference contains NaN")
row("similarity_target: list", lambda: mc.similarity_target([1.0, 2.0]), TypeError, r"reference must be a numpy.ndarray of floats, got list")
row("similarity_target: wrong width", lambda: mc.grad_cam(MODEL, X, target=mc.similarity_target(np.ones(3))), ValueError,
    r"embeddings \(N, 3\), got shape \(2, 5\)")
row("class_target: None", lambda: mc.class_target(None), ValueError, r"class_target needs explicit classes .*got class_idx=None")
row("class_target: -1", lambda: mc.class_target(-1), ValueError, r"class_idx must be >= 0, got -1")
row("class_target: 1.5", lambda: mc.class_target(1.5), TypeError, r"class_idx must be an int .*got 1\.5")
row("class_target: score='prob'", lambda: mc.class_target(1, score="prob"), ValueError, r"score must be one of .*got 'prob'")
row("class_target: class past the output", lambda: mc.grad_cam(MODEL, X, target=mc.class_target(7)), ValueError,
    r"class_idx must be in \[0, 5\) .*got 7")

# -- layers and Sequential ---------------------------------------------------------------------------------

CONV = mc.Conv2d(3, 4, 3, rng=0)
CONV.forward(X)
row("Conv2d: in_channels=0", lambda: mc.Conv2d(0, 4, 3), ValueError, r"in_channels must be >= 1, got 0")
row("Conv2d: kernel_size=(3,)", lambda: mc.Conv2d(3, 4, (3,)), TypeError, r"kernel_size must be an int, got \(3,\)")
row("Conv2d: stride=-1", lambda: mc.Conv2d(3, 4, 3, stride=-1), ValueError, r"stride must be >= 1, got -1")
row("Conv2d: padding=True", lambda: mc.Conv2d(3, 4, 3, padding=True), TypeError, r"padding must be an int, got True")
row("Conv2d: dtype=float16", lambda: mc.Conv2d(3, 4, 3, dtype=np.float16), TypeError, r"dtype must be float32 or float64, got float16")
row("Conv2d: rng='x'", lambda: mc.Conv2d(3, 4, 3, rng="x"), TypeError, r"rng must be None, an int seed or a numpy.random.Generator, got str")
row("Conv2d.forward: 2 channels", lambda: CONV.forward(X[:, :2]), ValueError, r"expects 3 input channels, got 2")
row("Conv2d.forward: complex x", lambda: CONV.forward(X.astype(complex)), TypeError, r"x must have a floating-point dtype .*complex128")
row("Conv2d.backward: dout of the wrong shape", lambda: CONV.backward(np.zeros((2, 4, 8, 5))), ValueError,
    r"dout must have the shape of Conv2d's last output \(2, 4, 8, 6\), got \(2, 4, 8, 5\)")
row("Conv2d.backward: NaN dout", lambda: CONV.backward(np.full((2, 4, 8, 6), np.nan)), ValueError, r"dout contains NaN")
row("Conv2d.forward: empty batch", lambda: CONV.forward(X[:0]), ValueError, r"x must be a batch \(N, \.\.\.\) with N >= 1, got shape \(0, 3, 10, 8\)")
row("ReLU.forward: 0-d", lambda: mc.ReLU().forward(np.zeros(())), ValueError, r"x must be a batch .*N >= 1, got shape \(\)")
row("Sequential.forward: empty batch", lambda: MODEL.forward(X[:0]), ValueError, r"x must be a batch .*N >= 1, got shape \(0, 3, 10, 8\)")
row("Conv2d.backward before forward", lambda: mc.Conv2d(3, 4, 3, rng=0).backward(np.zeros((2, 4, 8, 6))), mc.StateError,
    r"Conv2d.backward called before forward")
row("Linear: out_features=-1", lambda: mc.Linear(3, -1), ValueError, r"out_features must be >= 1, got -1")
row("Linear.forward: 4 features", lambda: mc.Linear(3, 2, rng=0).forward(np.zeros((2, 4))), ValueError, r"expects 3 input features, got 4")
row("MaxPool2d: kernel_size=2.0", lambda: mc.MaxPool2d(2.0), TypeError, r"kernel_size must be an int, got 2\.0")
row("AvgPool2d: stride=0", lambda: mc.AvgPool2d(2, stride=0), ValueError, r"stride must be >= 1, got 0")
row("MaxPool2d.forward: window past the input", lambda: mc.MaxPool2d(20).forward(X), ValueError, r"kernel_size 20 is larger than the padded input")
row("Dropout: p=1", lambda: mc.Dropout(1.0), ValueError, r"p must be in \[0\.0, 1\.0\), got 1\.0")
row("Dropout: p=nan", lambda: mc.Dropout(np.nan), ValueError, r"p must be finite, got nan")
row("BatchNorm2d: eps=0", lambda: mc.BatchNorm2d(3, eps=0), ValueError, r"eps must be > 0\.0, got 0\.0")
row("BatchNorm2d: momentum=2", lambda: mc.BatchNorm2d(3, momentum=2), ValueError, r"momentum must be in \[0\.0, 1\.0\], got 2\.0")
row("BatchNorm2d.forward: one value per channel", lambda: mc.BatchNorm2d(3).forward(X[:1, :, :1, :1]), ValueError,
    r"needs more than one value per channel, got input shape \(1, 3, 1, 1\)")
row("ReLU.backward: mode='gided'", lambda: (lambda r: (r.forward(X), r.backward(X, mode="gided")))(mc.ReLU()), ValueError,
    r"mode must be one of .*got 'gided'")
row("Flatten.forward: 1-D", lambda: mc.Flatten().forward(np.zeros(3)), ValueError, r"at least 2 dimensions, got shape \(3,\)")
row("GlobalAvgPool2d.forward: 2-D", lambda: mc.GlobalAvgPool2d().forward(np.zeros((2, 3))), ValueError, r"x must be 4-D, got shape \(2, 3\)")
row("Sequential: empty", lambda: mc.Sequential([]), ValueError, r"layers must not be empty")
row("Sequential: not a list", lambda: mc.Sequential(3), TypeError, r"layers must be a list .*got int")
row("Sequential: duplicate names", lambda: mc.Sequential([("a", mc.ReLU()), ("a", mc.ReLU())]), ValueError,
    r"layer names must be unique, got duplicates \['a'\]")
row("Sequential: name 'a b'", lambda: mc.Sequential([("a b", mc.ReLU())]), ValueError, r"layer names must be identifiers .*got 'a b'")
row("Sequential[...]: unknown name", lambda: MODEL["nope"], ValueError, r"name must name a layer of the model.*got 'nope'")
row("Sequential.backward: stop_at unknown", lambda: (MODEL.forward(X), MODEL.backward(np.zeros((2, 5)), stop_at="nope")), ValueError,
    r"stop_at must name a layer .*got 'nope'")
row("Sequential.backward: relu_mode='x'", lambda: (MODEL.forward(X), MODEL.backward(np.zeros((2, 5)), relu_mode="x")), ValueError,
    r"relu_mode must be one of .*got 'x'")
row("Sequential.backward: dscores of the wrong shape", lambda: (MODEL.forward(X), MODEL.backward(np.zeros((2, 4)))), ValueError,
    r"dscores must have the shape of the model's output \(2, 5\), got \(2, 4\)")

# -- losses, optimizers, gradient checks -----------------------------------------------------------------------

row("softmax_cross_entropy: empty batch", lambda: mc.softmax_cross_entropy(np.zeros((0, 3)), np.zeros(0, int)), ValueError,
    r"scores must hold at least one sample \(N >= 1\).*got shape \(0, 3\)")
row("softmax_cross_entropy: no class", lambda: mc.softmax_cross_entropy(np.zeros((2, 0)), np.zeros(2, int)), ValueError,
    r"scores must hold at least one class .*got shape \(2, 0\)")
row("softmax_cross_entropy: float labels", lambda: mc.softmax_cross_entropy(np.zeros((2, 3)), np.zeros(2)), TypeError,
    r"y must have an integer dtype, got dtype float64")
row("softmax_cross_entropy: label 3 of 3", lambda: mc.softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 3])), ValueError,
    r"y must hold class labels in \[0, 3\), got 3")
row("softmax_cross_entropy: NaN scores", lambda: mc.softmax_cross_entropy(np.full((2, 3), np.nan), Y), ValueError, r"scores contains NaN")
row("softmax: int scores", lambda: mc.softmax(np.zeros((2, 3), int)), TypeError, r"scores must have a floating-point dtype .*int64")
row("log_softmax: 3-D", lambda: mc.log_softmax(np.zeros((2, 3, 1))), ValueError, r"scores must be 2-D, got shape \(2, 3, 1\)")
row("SGD: lr=0", lambda: mc.optim.SGD(MODEL, 0), ValueError, r"lr must be > 0\.0, got 0\.0")
row("SGD: lr=nan", lambda: mc.optim.SGD(MODEL, np.nan), ValueError, r"lr must be finite, got nan")
row("SGD: momentum=1", lambda: mc.optim.SGD(MODEL, 0.1, momentum=1), ValueError, r"momentum must be in \[0\.0, 1\.0\), got 1\.0")
row("Adam: three betas", lambda: mc.optim.Adam(MODEL, betas=(0.9, 0.9, 0.9)), TypeError, r"betas must be a pair .*got \(0\.9, 0\.9, 0\.9\)")
row("Adam: eps=inf", lambda: mc.optim.Adam(MODEL, eps=np.inf), ValueError, r"eps must be finite, got inf")
row("Adam: weight_decay='0'", lambda: mc.optim.Adam(MODEL, weight_decay="0"), TypeError, r"weight_decay must be a real number, got '0'")
row("numerical_gradient: h=0", lambda: gc.numerical_gradient(lambda v: v**2, np.ones(3), np.ones(3), h=0), ValueError,
    r"h must be > 0\.0, got 0\.0")
row("numerical_gradient: h=nan", lambda: gc.numerical_gradient(lambda v: v**2, np.ones(3), np.ones(3), h=np.nan), ValueError,
    r"h must be finite, got nan")
row("numerical_gradient: f not callable", lambda: gc.numerical_gradient(3, np.ones(3), np.ones(3)), TypeError,
    r"f must be a callable .*got 3")
row("numerical_gradient: dout='a'", lambda: gc.numerical_gradient(lambda v: v, np.ones(3), "a"), TypeError,
    r"dout must be a numpy.ndarray of floats, got str")
row("numerical_gradient: NaN dout", lambda: gc.numerical_gradient(lambda v: v, np.ones(3), np.full(3, np.nan)), ValueError,
    r"dout contains NaN")
row("numerical_gradient: float32 x", lambda: gc.numerical_gradient(lambda v: v, np.ones(3, np.float32), np.ones(3)), TypeError,
    r"gradient checks need float64 \(x is float32\)")
row("check_layer: h=-1e-5", lambda: gc.check_layer(mc.ReLU(), np.ones((2, 3)), h=-1e-5), ValueError, r"h must be > 0\.0, got -1e-05")
row("check_model: h=nan", lambda: gc.check_model(gap_net(), X, Y, h=np.nan), ValueError, r"h must be finite, got nan")

# -- data, models, files, figures, metrics, training -----------------------------------------------------------

row("shapes: n=0", lambda: mc.datasets.shapes(0), ValueError, r"n must be >= 1, got 0")
row("shapes: seed=-1", lambda: mc.datasets.shapes(2, seed=-1), ValueError, r"seed must be an int >= 0, got -1")
row("shapes: noise=nan", lambda: mc.datasets.shapes(2, noise=np.nan), ValueError, r"noise must be finite, got nan")
row("shapes: object_size reversed", lambda: mc.datasets.shapes(2, object_size=(18, 10)), ValueError, r"object_size must satisfy .*got \(18, 10\)")
row("scenes: size=8", lambda: mc.datasets.scenes(2, size=8), ValueError, r"size must be at least 46 .*got 8")
row("cluttered_digits: split='val'", lambda: mc.datasets.cluttered_digits(2, split="val"), ValueError, r"split must be one of .*got 'val'")
row("zoo.gap_net: widths=()", lambda: mc.zoo.gap_net(widths=()), ValueError, r"widths must name at least one block, got \(\)")
row("zoo.gap_net: batch_norm='yes'", lambda: mc.zoo.gap_net(batch_norm="yes"), TypeError, r"batch_norm must be True or False, got 'yes'")
row("zoo.fc_net: input_size=2", lambda: mc.zoo.fc_net(input_size=2), ValueError, r"input_size \(2, 2\) is too small")
row("zoo.pretrained: unknown name", lambda: mc.zoo.pretrained("imagenet"), ValueError, r"name must be one of the bundled models .*got 'imagenet'")
row("io.load_image: mode='CMYK'", lambda: mc.io.load_image("docs/demo.png", mode="CMYK"), ValueError, r"mode must be 'RGB' or 'L', got 'CMYK'")
row("io.load_image: size=0", lambda: mc.io.load_image("docs/demo.png", size=0), ValueError, r"size must be >= 1, got 0")
row("io.load_image: background=2", lambda: mc.io.load_image("docs/demo.png", background=2.0), ValueError, r"background must be in \[0\.0, 1\.0\], got 2\.0")
row("io.load_image: verbose='yes'", lambda: mc.io.load_image("docs/demo.png", verbose="yes"), TypeError, r"verbose must be True or False, got 'yes'")
row("io.save: path is a folder", lambda: mc.io.save(MODEL, "docs"), ValueError, r"path must be a file in an existing folder, got 'docs', which is a folder")
row("io.save: missing folder", lambda: mc.io.save(MODEL, "no-such-folder/m.npz"), ValueError, r"path must be a file in an existing folder, got 'no-such-folder/m.npz', which has no folder")
row("io.load_image: missing file", lambda: mc.io.load_image("no/such.png"), ValueError, r"path 'no/such.png' is not a readable image")
row("viz.overlay: alpha=2", lambda: mc.viz.overlay(MAPS[0][None].repeat(3, 0), MAPS[0], alpha=2), ValueError, r"alpha must be in \[0\.0, 1\.0\], got 2\.0")
row("viz.overlay: NaN cam", lambda: mc.viz.overlay(MAPS[0][None].repeat(3, 0), np.full((5, 4), np.nan)), ValueError, r"cam contains NaN")
row("viz.overlay: cmap='nope'", lambda: mc.viz.overlay(MAPS[0][None].repeat(3, 0), MAPS[0], cmap="nope"), ValueError,
    r"cmap must be a matplotlib colormap name, got 'nope'")
row("viz.to_display_image: 5 channels", lambda: mc.viz.to_display_image(np.zeros((5, 4, 4))), ValueError,
    r"image must have 1 or 3 channels .*got shape \(5, 4, 4\)")
row("viz.show_signed: int grad", lambda: mc.viz.show_signed(np.zeros((3, 4, 4), int)), TypeError, r"grad must have a floating-point dtype .*int64")
row("viz.explanation_grid: unknown column", lambda: mc.viz.explanation_grid(MODEL, X, columns=("nope",)), ValueError,
    r"columns must be a non-empty selection .*got \['nope'\]")
row("metrics.localization: threshold=1.5", lambda: mc.metrics.localization(MAPS, BOXES, threshold=1.5), ValueError,
    r"threshold must be in \(0, 1\], got 1\.5")
row("metrics.pointing_game: float masks", lambda: mc.metrics.pointing_game(MAPS, MASKS.astype(float)), TypeError,
    r"masks must be a boolean ndarray .*got dtype float64")
row("metrics.energy_in_mask: masks of another batch", lambda: mc.metrics.energy_in_mask(MAPS, MASKS[:1]), ValueError,
    r"masks must have the shape of maps \(2, 10, 8\), got \(1, 10, 8\)")
row("metrics.iou: 3 numbers", lambda: mc.metrics.iou((0, 0, 1), (0, 0, 1, 1)), ValueError, r"box_a must be 4 integers .*got \(0, 0, 1\)")
row("metrics.rank_correlation: lengths differ", lambda: mc.metrics.rank_correlation(np.ones(3), np.ones(4)), ValueError,
    r"a and b must have the same shape .*got \(3,\) and \(4,\)")
row("metrics.deletion_insertion: steps=0", lambda: mc.metrics.deletion_insertion(MODEL, X, MAPS, 0, steps=0), ValueError, r"steps must be >= 1, got 0")
row("metrics.average_drop: class 9", lambda: mc.metrics.average_drop(MODEL, X, MAPS, 9), ValueError, r"class_idx must be in \[0, 5\) .*got 9")
row("metrics.image_maps: reduce='nope'", lambda: mc.metrics.image_maps(MAPS, (10, 8), reduce="nope"), ValueError, r"reduce must be .*got 'nope'")
row("train.fit: epochs=0", lambda: mc.train.fit(MODEL, (X, Y), 0, 2, mc.optim.SGD(MODEL, 0.1), 0, verbose=False), ValueError,
    r"epochs must be >= 1, got 0")
row("train.fit: verbose='no'", lambda: mc.train.fit(MODEL, (X, Y), 1, 2, mc.optim.SGD(MODEL, 0.1), 0, verbose="no"), TypeError,
    r"verbose must be True or False, got 'no'")
row("train.evaluate: empty", lambda: mc.train.evaluate(MODEL, X[:0], np.zeros(0, int)), ValueError, r"X must hold at least one image, got shape \(0, 3, 10, 8\)")
row("train.cosine_schedule: warmup past the epochs", lambda: mc.train.cosine_schedule(0.1, 3, warmup=5), ValueError,
    r"warmup must be in \[0\.0, 3\.0\], got 5\.0")


@pytest.mark.parametrize("call, exc, pattern", ROWS)
def test_bad_input_is_refused_naming_argument_and_value(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


# -- the commands: exit 2, one line on stderr, before any work ------------------------------------------------

HAS_TORCH = True
try:
    import torch  # noqa: F401
    import captum  # noqa: F401
except ImportError:
    HAS_TORCH = False


def run_cli(argv):
    out, err = stdio.StringIO(), stdio.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    (d / "a_file").write_text("not a folder")
    (d / "notes.txt").write_text("not an image")
    (d / "syntax.py").write_text("def build_model(:\n")
    (d / "raises.py").write_text("raise RuntimeError('boom at import')\n")
    (d / "builder_raises.py").write_text("def build_model():\n    raise KeyError('no such layer')\n")
    (d / "nan_weight.py").write_text(
        "import torch\nfrom torch import nn\n\n"
        "def build_model():\n"
        "    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))\n"
        "    with torch.no_grad():\n        m[0].weight[1, 0, 0, 0] = float('nan')\n    return m\n"
    )
    (d / "negative_var.py").write_text(
        "import torch\nfrom torch import nn\n\n"
        "def build_model():\n"
        "    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),"
        " nn.Linear(4, 2))\n"
        "    with torch.no_grad():\n        m[1].running_var[2] = -1.0\n    return m\n"
    )
    return d


IMG = "docs/demo.png"
TINY = "examples/tiny_cnn.py"
EXPLAIN = ["explain", IMG, "--model", "shapes-gap", "--method", "grad-cam"]
TRAIN = ["train", "--dataset", "shapes", "--model", "gap"]
CT = ["check-torch", "--input-shape", "1,3,8,8", "--model"]
COMMANDS = [
    # (id, argv with {d} for the temp folder, regex, needs torch)
    ("gradcheck --seed -1", ["gradcheck", "--seed", "-1"], r"--seed must be >= 0, got -1", False),
    ("gradcheck --seed x", ["gradcheck", "--seed", "x"], r"argument --seed: invalid int value: 'x'", False),
    ("unknown command", ["explian"], r"invalid choice: 'explian'", False),
    ("check-torch --rtol nan", CT + [TINY, "--rtol", "nan"], r"rtol must be finite, got nan", False),
    ("check-torch --rtol -1", CT + [TINY, "--rtol", "-1"], r"rtol must be > 0\.0, got -1\.0", False),
    ("check-torch --seed -1", CT + [TINY, "--seed", "-1"], r"seed must be >= 0, got -1", False),
    ("check-torch --input-shape 1,3,8", ["check-torch", "--model", TINY, "--input-shape", "1,3,8"],
     r"input shape must be 4 positive integers .*got '1,3,8'", False),
    ("check-torch --method cam", CT + [TINY, "--method", "cam"], r"argument --method: invalid choice: 'cam'", False),
    ("check-torch missing model file", CT + ["{d}/missing.py"], r"model file not found: '.*missing\.py'", True),
    ("check-torch model file with a syntax error", CT + ["{d}/syntax.py"], r"model file '.*syntax\.py' failed to run: SyntaxError", True),
    ("check-torch model file that raises", CT + ["{d}/raises.py"], r"model file '.*raises\.py' failed to run: RuntimeError: boom", True),
    ("check-torch builder that raises", CT + ["{d}/builder_raises.py"], r"build_model\(\) in .*raised KeyError: 'no such layer'", True),
    ("check-torch --builder missing", CT + [TINY, "--builder", "nope"], r"defines no 'nope'", True),
    ("check-torch NaN weight", CT + ["{d}/nan_weight.py"], r"0 \(Conv2d\): tensor 'weight' contains NaN or infinity \(1 of 108", True),
    ("check-torch negative running_var", CT + ["{d}/negative_var.py"],
     r"1 \(BatchNorm2d\): tensor 'running_var' must be >= 0 .*got -1\.0 in channel 2", True),
    ("check-torch --class-idx 9", CT + [TINY, "--class-idx", "9"], r"class_idx must be in \[0, 4\) .*got 9", True),
    ("demo --out a file", ["demo", "--out", "{d}/a_file"], r"--out must be a directory \(folder\), got the file '.*a_file'", False),
    ("demo --out under a file", ["demo", "--out", "{d}/a_file/figs"], r"--out '.*a_file/figs' cannot be created: '.*a_file' is not a folder", False),
    ("demo --dpi 0", ["demo", "--out", "{d}/figs", "--dpi", "0"], r"--dpi must be in \[20, 600\], got 0", False),
    ("explain --out without .png", EXPLAIN + ["--out", "{d}/noext"], r"--out must name a \.png file .*got '.*noext'", False),
    ("explain --out a folder", EXPLAIN + ["--out", "{d}"], r"--out must name a \.png file .*got '.*'", False),
    ("explain --out under a file", EXPLAIN + ["--out", "{d}/a_file/x.png"], r"--out '.*a_file/x\.png': its folder '.*a_file' is not a folder", False),
    ("explain --out in a missing folder", EXPLAIN + ["--out", "{d}/missing/x.png"], r"--out '.*missing/x\.png': its folder .* does not exist", False),
    ("explain --model", ["explain", IMG, "--model", "vgg", "--method", "cam", "--out", "{d}/x.png"],
     r"model must be one of the bundled models .*got 'vgg'", False),
    ("explain --method", ["explain", IMG, "--model", "shapes-gap", "--method", "gradcam", "--out", "{d}/x.png"],
     r"method must be one of .*got 'gradcam'", False),
    ("explain --class 9", EXPLAIN + ["--class", "9", "--out", "{d}/x.png"], r"class_idx must be in \[0, 4\) .*got 9", False),
    ("explain --class hexagon", EXPLAIN + ["--class", "hexagon", "--out", "{d}/x.png"], r"class must be an index .*got 'hexagon'", False),
    ("explain --layer", EXPLAIN + ["--layer", "conv99", "--out", "{d}/x.png"], r"layer must name a layer of shapes-gap.*got 'conv99'", False),
    ("explain a text file", ["explain", "{d}/notes.txt", "--model", "shapes-gap", "--method", "cam", "--out", "{d}/x.png"],
     r"'.*notes\.txt' is not a readable image", False),
    ("train --out a folder", TRAIN + ["--out", "{d}"], r"--out must be a file path, got the folder '.*'", False),
    ("train --out under a file", TRAIN + ["--out", "{d}/a_file/m.npz"], r"--out '.*a_file/m\.npz': its folder '.*a_file' is not a folder", False),
    ("train --out in a missing folder", TRAIN + ["--out", "{d}/missing/m.npz"], r"its folder '.*missing' does not exist", False),
    ("train --dataset", ["train", "--dataset", "cifar", "--model", "gap", "--out", "{d}/m.npz"], r"--dataset must be one of .*got 'cifar'", False),
    ("train --epochs 0", TRAIN + ["--epochs", "0", "--out", "{d}/m.npz"], r"epochs must be >= 1, got 0", False),
    ("train --lr nan", TRAIN + ["--lr", "nan", "--out", "{d}/m.npz"], r"lr must be finite, got nan", False),
    ("train --seed -1", TRAIN + ["--seed", "-1", "--out", "{d}/m.npz"], r"seed must be >= 0, got -1", False),
    ("evaluate-model unknown", ["evaluate-model", "imagenet"], r"got 'imagenet'", False),
    ("evaluate-model --n -1", ["evaluate-model", "shapes-gap", "--n", "-1"], r"n must be >= 1, got -1", False),
    ("evaluate-model --seed -1", ["evaluate-model", "shapes-gap", "--seed", "-1"], r"seed must be >= 0, got -1", False),
    ("evaluate --dpi 5", ["evaluate", "--out", "{d}/eval", "--dpi", "5"], r"--dpi must be in \[20, 600\], got 5", False),
    ("evaluate --models", ["evaluate", "--out", "{d}/eval", "--models", "nope"], r"--models: .*got \['nope'\]", False),
    ("evaluate --out a file", ["evaluate", "--out", "{d}/a_file"], r"--out .*a_file exists and is not a folder", False),
]


@pytest.mark.parametrize("argv, pattern, needs_torch", [pytest.param(a, p, t, id=i) for i, a, p, t in COMMANDS])
def test_commands_refuse_bad_input_with_one_line_and_exit_2(files, argv, pattern, needs_torch):
    if needs_torch and not HAS_TORCH:
        pytest.skip("needs torch and captum (requirements-torch.txt)")
    before = sorted(os.listdir(files))
    code, stdout, stderr = run_cli([a.format(d=files) for a in argv])
    lines = stderr.strip().splitlines()
    assert code == 2, stdout + stderr
    assert len(lines) == 1, stderr
    command = argv[0] if argv[0] in {c[1][0] for c in COMMANDS if c[0] != "unknown command"} else None
    assert lines[0].startswith(f"python -m minicam{' ' + command if command else ''}: error: "), stderr
    assert __import__("re").search(pattern, lines[0]), (pattern, stderr)
    assert sorted(os.listdir(files)) == before  # nothing written, no probe file left behind


@pytest.mark.parametrize("argv, pattern", [
    (["bench", "--repeat", "0"], r"--repeat must be >= 1, got 0"),
    (["bench", "--threads", "0"], r"--threads must be comma-separated positive ints .*got '0'"),
])
def test_bench_refuses_bad_options_with_exit_2(argv, pattern):
    # bench parses its own options (minicam.bench): its message has no command prefix
    code, _, stderr = run_cli(argv)
    assert code == 2
    assert __import__("re").search(pattern, stderr.strip().splitlines()[-1]), stderr


def test_the_table_is_large_and_distinct():
    ids = [p.id for p in ROWS] + [c[0] for c in COMMANDS]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 100


# -- regression tests for behaviour the table does not show --------------------------------------------------------


def test_explain_image_refuses_an_unwritable_out_before_the_work(tmp_path):
    from minicam.demo import explain_image

    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ValueError, match=r"out '.*a_file/x\.png': its folder '.*a_file' is not a folder"):
        explain_image(IMG, "shapes-gap", "grad-cam", out=tmp_path / "a_file" / "x.png", verbose=False)
    with pytest.raises(ValueError, match=r"out must name a \.png file .*got '.*noext'"):
        explain_image(IMG, "shapes-gap", "grad-cam", out=tmp_path / "noext", verbose=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_output_probe_leaves_an_existing_file_as_it_was(tmp_path):
    from minicam.demo import output_file_problem

    target = tmp_path / "keep.png"
    target.write_bytes(b"old contents")
    assert output_file_problem(target, "--out", suffix=".png") is None
    assert target.read_bytes() == b"old contents"
    assert output_file_problem(tmp_path / "new.png", "--out", suffix=".png") is None
    assert not (tmp_path / "new.png").exists()


def test_smoothgrad_calls_a_class_agnostic_method_without_class_idx():
    # eigen_cam(model, x, layer=None, center=False): a positional class_idx would land in `layer`
    smooth = mc.smoothgrad(mc.eigen_cam, MODEL, X, n_samples=2, sigma=0.0, rng=0)
    np.testing.assert_allclose(smooth, mc.eigen_cam(MODEL, X), rtol=0, atol=1e-12)
    smooth = mc.smoothgrad(mc.eigen_cam, MODEL, X, n_samples=2, sigma=0.0, rng=0, layer="relu1")
    np.testing.assert_allclose(smooth, mc.eigen_cam(MODEL, X, layer="relu1"), rtol=0, atol=1e-12)


def test_numerical_gradient_on_a_read_only_x_leaves_it_unwritten():
    g = gc.numerical_gradient(lambda v: v**2, READ_ONLY, np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(g, [2.0, 4.0, 6.0], rtol=1e-9)
    assert not READ_ONLY.flags.writeable


def test_from_torch_refuses_nan_and_negative_variance_naming_the_tensor():
    torch = pytest.importorskip("torch")
    from torch import nn

    from minicam.interop.torch import from_torch

    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        m[4].bias[1] = float("inf")
    with pytest.raises(ValueError, match=r"4 \(Linear\): tensor 'bias' contains NaN or infinity"):
        from_torch(m)
    with torch.no_grad():
        m[4].bias[1] = 0.0
        m[1].running_var[0] = -0.5
    with pytest.raises(ValueError, match=r"1 \(BatchNorm2d\): tensor 'running_var' must be >= 0 .*got -0\.5 in channel 0"):
        from_torch(m)
