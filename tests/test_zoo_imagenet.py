"""minicam.zoo's AlexNet, VGG-11/16 (+BN) and ResNet-18/34/50: torchvision's names, shapes and numbers.

NumPy only: parameter counts at width 1 (torchvision's published figures),
layer names, the default Grad-CAM layer, the smallest input size and its
error, seeding and modes, the builders' arguments, ``load_torch_state_dict``'s
errors, and every tiny network's backward against central differences.

With torch (skipped without it): the torch-style keys and shapes equal those
of ``tests/torchvision_like.py``'s state dicts at width 1 and 1/16, and a
tiny network loaded from the torch definition's random state dict computes
the same scores and feature maps.

Full-size networks are built once each, in float32 (a module-scoped fixture;
pytest runs the tests of one network together, so one is alive at a time):
drawing VGG-16's 138 M weights takes seconds, and names, shapes and counts do
not depend on the dtype. Everything that computes uses ``width=1/16`` and
float64.
"""

import re

import numpy as np
import pytest

import minicam as mc
from minicam import functional as F
from minicam import gradcheck, zoo
from minicam.explain import last_feature_layer
from minicam.interop.keys import load_torch_state_dict, torch_keys
from minicam.losses import softmax_cross_entropy
from minicam.zoo import imagenet
from parity_support import require
from torchvision_facts import PUBLISHED_MIN_SIZE as MIN_SIZE, PUBLISHED_NUM_PARAMS as NUM_PARAMS

NAMES = ["alexnet", "vgg11", "vgg11_bn", "vgg16", "vgg16_bn", "resnet18", "resnet34", "resnet50"]
TINY = 1 / 16

# The default CAM layer and its shape for one 224x224 image.
DEFAULT_LAYER = {
    "alexnet": ("features.11", (1, 256, 13, 13)),
    "vgg11": ("features.19", (1, 512, 14, 14)),
    "vgg11_bn": ("features.27", (1, 512, 14, 14)),
    "vgg16": ("features.29", (1, 512, 14, 14)),
    "vgg16_bn": ("features.42", (1, 512, 14, 14)),
    "resnet18": ("layer4", (1, 512, 7, 7)),
    "resnet34": ("layer4", (1, 512, 7, 7)),
    "resnet50": ("layer4", (1, 2048, 7, 7)),
}
# Small non-square inputs for the computing tests (just above the minimum for AlexNet/VGG).
TINY_INPUT = {"alexnet": (2, 3, 67, 75), "resnet18": (2, 3, 41, 35), "resnet34": (2, 3, 41, 35),
              "resnet50": (2, 3, 41, 35)}  # ResNets: layer4 is 2x2


def tiny_input_shape(name):
    return TINY_INPUT.get(name, (2, 3, 35, 41))


def build(name, **kwargs):
    return imagenet.IMAGENET_ARCHITECTURES[name](**kwargs)


@pytest.fixture(scope="module", params=NAMES)
def full(request):
    """``(name, model)``: the width-1 network in float32 (built once per module run)."""
    return request.param, build(request.param, rng=0, dtype=np.float32)


def randomise_batchnorm(model, gen):
    """Random affine parameters and running statistics, so eval-mode BatchNorm is not the identity."""
    for _, layer in model.named_layers():
        if isinstance(layer, mc.BatchNorm2d):
            c = layer.params["gamma"].shape[0]
            layer.params["gamma"] = gen.uniform(0.5, 1.5, c)
            layer.params["beta"] = gen.uniform(-0.5, 0.5, c)
            layer.buffers["running_mean"] = gen.uniform(-0.5, 0.5, c)
            layer.buffers["running_var"] = gen.uniform(0.5, 1.5, c)
    return model


def torch_style(model):
    """``{torch key: shape}`` of a minicam model, in its parameter-then-buffer order."""
    state = dict(model.named_parameters())
    state.update(dict(model.named_buffers()))
    return {theirs: state[mine].shape for mine, theirs in torch_keys(model).items()}


# ----------------------------------------------------------------------------
# Full size (float32, built once each)
# ----------------------------------------------------------------------------


def test_parameter_count_is_torchvisions(full):
    name, model = full
    assert model.num_params == NUM_PARAMS[name]
    assert {v.dtype for _, v in model.named_parameters()} == {np.dtype(np.float32)}


def test_default_cam_layer_and_output_at_224(full):
    name, model = full
    shapes = model.output_shapes((1, 3, 224, 224))
    layer, shape = DEFAULT_LAYER[name]
    assert last_feature_layer(model, shapes) == layer
    assert dict(shapes)[layer] == shape
    if not name.startswith("resnet"):
        assert dict(shapes)["features"] == ((1, 256, 6, 6) if name == "alexnet" else (1, 512, 7, 7))
    assert shapes[-1] == ("classifier" if name.startswith(("alexnet", "vgg")) else "fc", (1, 1000))
    if name.startswith("vgg"):  # the max-pool after the last ReLU is what the default skips
        last = int(layer.split(".")[1])
        assert isinstance(model[f"features.{last + 1}"], mc.MaxPool2d)
        assert len(model["features"]) == last + 2


def test_smallest_input_size_is_torchvisions(full):
    name, model = full
    assert model.smallest_input_size((1, 3, 224, 224)) == MIN_SIZE[name]


def test_docstring_states_the_facts(full):
    """The numbers each docstring gives are the model's (docstrings that drift are wrong)."""
    name, model = full
    doc = imagenet.IMAGENET_ARCHITECTURES[name].__doc__
    assert f"{model.num_params:,} parameters" in " ".join(doc.split())
    assert f"``{DEFAULT_LAYER[name][0]}``" in doc
    paper = {"a": "Krizhevsky", "v": "Simonyan & Zisserman 2015", "r": "He, Zhang, Ren & Sun 2016"}[name[0]]
    assert paper in doc and "eval mode" in doc and ".train()" in doc
    side = MIN_SIZE[name]
    assert re.search(rf"{side}x{side}|H, W >= {side}\b", doc), f"{name}: smallest input {side} not stated"


# ----------------------------------------------------------------------------
# Layout and arguments (tiny instances: the layout is the same at every width)
# ----------------------------------------------------------------------------


def test_alexnet_and_vgg_layout():
    model = zoo.alexnet(width=TINY, rng=0)
    assert model.names == ["features", "avgpool", "flatten", "classifier"]
    kinds = [type(node).__name__ for node in model["features"].layers]
    assert kinds == ["Conv2d", "ReLU", "MaxPool2d"] * 2 + ["Conv2d", "ReLU"] * 3 + ["MaxPool2d"]
    assert model["features"].names == [str(i) for i in range(13)]
    assert [type(n).__name__ for n in model["classifier"].layers] == [
        "Dropout", "Linear", "ReLU", "Dropout", "Linear", "ReLU", "Linear"]
    assert model["avgpool"].output_size == (6, 6) and isinstance(model["flatten"], mc.Flatten)
    assert (model["features.0"].kernel_size, model["features.0"].stride, model["features.0"].padding) == (11, 4, 2)
    assert all(model[n].bias for n in ("features.0", "features.10"))

    vgg = zoo.vgg16_bn(width=TINY, rng=0)
    assert [type(n).__name__ for n in vgg["features"].layers[:7]] == [
        "Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"]
    assert vgg["features.0"].bias  # torchvision keeps the bias before BatchNorm in VGG
    assert [type(n).__name__ for n in vgg["classifier"].layers] == [
        "Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    assert vgg["avgpool"].output_size == (7, 7)
    assert isinstance(zoo.vgg16(width=TINY, rng=0)["features.29"], mc.ReLU)


def test_resnet_layout():
    model = zoo.resnet18(width=TINY, rng=0)
    assert model.names == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4",
                           "avgpool", "flatten", "fc"]
    assert (model["maxpool"].kernel_size, model["maxpool"].stride, model["maxpool"].padding) == (3, 2, 1)
    assert model["layer1"].names == ["0", "1"] and isinstance(model["layer1.0"], mc.Residual)
    assert model["layer1.0"].names == ["conv1", "bn1", "relu1", "conv2", "bn2", "relu2"]  # identity shortcut
    assert model["layer2.0"].names == ["conv1", "bn1", "relu1", "conv2", "bn2", "downsample", "relu2"]
    assert model["layer2.0.conv1"].stride == 2 and model["layer2.0.downsample.0"].stride == 2
    assert [type(n).__name__ for n in model["layer2.0.downsample"].layers] == ["Conv2d", "BatchNorm2d"]
    assert not any(layer.bias for _, layer in model.named_layers() if isinstance(layer, mc.Conv2d))
    assert model["avgpool"].output_size == (1, 1)
    assert [len(zoo.resnet34(width=TINY, rng=0)[f"layer{i}"]) for i in range(1, 5)] == [3, 4, 6, 3]

    r50 = zoo.resnet50(width=TINY, rng=0)
    assert r50["layer1.0"].names == ["conv1", "bn1", "relu1", "conv2", "bn2", "relu2", "conv3", "bn3",
                                     "downsample", "relu3"]  # layer1.0 widens 64 -> 256
    assert "downsample" not in r50["layer1.1"].names
    for stage in ("layer2", "layer3", "layer4"):  # v1.5: the stride is on the 3x3 convolution
        assert (r50[f"{stage}.0.conv1"].stride, r50[f"{stage}.0.conv2"].stride) == (1, 2)
    # The width rule: a Bottleneck's output is scaled(4 * planes), not 4 * scaled(planes).
    assert imagenet.scaled(256, TINY) == 16 and r50["layer1.0.conv3"].out_channels == 16
    assert r50["fc"].in_features == imagenet.scaled(2048, TINY) == 128


def test_width_rule():
    assert [imagenet.scaled(c, 1 / 16) for c in (64, 192, 384, 4096)] == [4, 12, 24, 256]
    assert imagenet.scaled(64, 1 / 128) == 1  # never 0 channels
    assert imagenet.scaled(40, 1 / 16) == 2  # round(2.5): ties go to the even integer, as in Python


def test_returned_in_eval_mode_seeded_typed_and_initialised():
    model = zoo.vgg11_bn(num_classes=7, dropout=0.25, width=TINY, rng=3)
    assert not model.training
    assert [model[f"classifier.{i}"].p for i in (2, 5)] == [0.25, 0.25]
    assert model["classifier.6"].out_features == 7
    assert model.train().training and not model.eval().training
    again = zoo.vgg11_bn(num_classes=7, dropout=0.25, width=TINY, rng=np.random.default_rng(3))
    other = zoo.vgg11_bn(num_classes=7, width=TINY, rng=4)
    a, b, c = model.state_dict(), again.state_dict(), other.state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["features.0.W"], c["features.0.W"])
    bn = model["features.1"]
    assert np.all(bn.params["gamma"] == 1) and np.all(bn.params["beta"] == 0)
    assert np.all(bn.buffers["running_mean"] == 0) and np.all(bn.buffers["running_var"] == 1)
    assert not np.any(model["features.0"].params["b"]) and not np.any(model["classifier.0"].params["b"])
    f32 = zoo.resnet18(width=TINY, rng=0, dtype=np.float32)
    assert {v.dtype for v in f32.state_dict().values()} == {np.dtype(np.float32)}
    assert zoo.alexnet(width=TINY, rng=0)["classifier.0"].p == 0.5


def test_registry():
    assert list(zoo.IMAGENET_ARCHITECTURES) == NAMES
    assert zoo.IMAGENET_ARCHITECTURES["resnet50"] is zoo.resnet50 is imagenet.resnet50
    assert not set(NAMES) & set(zoo.ARCHITECTURES)  # `train` calls those on 32x32 datasets
    assert set(NAMES) <= set(zoo.__all__) and "IMAGENET_ARCHITECTURES" in zoo.__all__
    with pytest.raises(TypeError):
        zoo.resnet18(10, TINY)  # the options are keyword-only


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"width": 0}, ValueError, r"width must be > 0\.0, got 0\.0"),
        ({"width": "1"}, TypeError, "width must be a real number"),
        ({"dropout": 1.0}, ValueError, r"dropout must be in \[0\.0, 1\.0\), got 1\.0"),
        ({"num_classes": 0}, ValueError, "num_classes must be >= 1, got 0"),
        ({"dtype": np.int32}, TypeError, "dtype must be float32 or float64"),
        ({"rng": "seed"}, TypeError, "rng must be None, an int seed"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, error, match):
    with pytest.raises(error, match=match):
        zoo.vgg11(**{"width": TINY, **kwargs})
    if "dropout" not in kwargs:
        with pytest.raises(error, match=match):
            zoo.resnet18(**{"width": TINY, **kwargs})


@pytest.mark.parametrize("name", NAMES)
def test_too_small_input_is_a_clear_error(name):
    model = build(name, num_classes=3, width=TINY, rng=0)
    side = MIN_SIZE[name]
    assert model.smallest_input_size((1, 3, 1, 1)) == side  # the geometry, not the width, decides it
    assert model.forward(np.ones((1, 3, side, side))).shape == (1, 3)
    if side == 1:
        return
    message = rf"an input of {side - 1}x{side - 2} pixels is too small .* the smallest it accepts is {side}x{side}"
    with pytest.raises(ValueError, match=message):
        model.forward(np.ones((1, 3, side - 1, side - 2)))
    with pytest.raises(ValueError, match=message):
        model.output_shapes((1, 3, side - 1, side - 2))


# ----------------------------------------------------------------------------
# Gradients (tiny, float64, eval mode: BatchNorm is an affine map, Dropout the identity)
# ----------------------------------------------------------------------------


def kink_pattern(model):
    """Which side of every kink the last forward was on: each ReLU's positive mask, each max-pool's argmax."""
    pattern = []
    previous = None
    for name, layer in model.named_layers():
        if isinstance(layer, mc.ReLU):
            pattern.append(model.outputs[name] > 0)
        elif isinstance(layer, mc.MaxPool2d):
            assert isinstance(model[previous], mc.ReLU)  # so the pool's input is model.outputs[previous]
            _, argmax = F.max_pool2d_forward(model.outputs[previous], layer.kernel_size, layer.stride, layer.padding)
            pattern.append(argmax)
        previous = name
    return pattern


def directional_errors(model, x, y, gen, h=1e-6, tries=10):
    """Backward against a central difference along one random unit direction per array.

    ``gradcheck.check_model`` perturbs every scalar, two forward passes each
    (and a copy of the model per pass): tens of thousands of passes for
    these networks. Here each parameter array ``p`` (and the input) gets one
    random direction ``v`` with ``|v| = 1``, and the projection
    ``a = sum(grad * v)`` is compared with ``n = (L(p + h v) - L(p - h v)) / 2h``:
    two passes per array. An error ``e`` in the gradient moves ``a`` by
    ``sum(e * v)``, which is zero only for ``e`` orthogonal to ``v`` (a
    probability-zero event). It is weaker than an entry-by-entry check
    against errors confined to a few entries: an error in one of ``n``
    entries shows diluted, ~``|e_i| / (|grad| sqrt(n))``; an error spread
    over the array (a wrong factor, a wrong formula) shows in full.

    A central difference across a kink is meaningless, and with thousands of
    ReLU units and max-pool windows one of them is sometimes within ``h`` of
    its kink. So a direction is used only if every ReLU's sign and every
    max-pool's argmax are the same at ``p - h v``, ``p`` and ``p + h v``
    (the loss is then smooth along the segment); otherwise another is drawn.
    ``h = 1e-6`` rather than gradcheck's 1e-5: VGG-16's tiny instance has two
    max-pool entries 8e-7 apart, which half the directions cross at 1e-5;
    the rounding error, ~1e-16 |L| / h, stays far below the tolerance.

    Returns
    -------
    errors : dict
        ``{"x": err, "<layer>.<param>": err, ...}`` with
        ``err = |a - n| / max(|grad|, |n|)``: the error relative to the
        gradient's norm (the largest ``|a|`` any direction gives), not to
        ``|a|``, which a random direction can make arbitrarily small.
    redrawn : int
        Directions discarded because they crossed a kink.
    """
    point = {"x": x}
    _, dscores = softmax_cross_entropy(model.forward(x), y)
    reference = kink_pattern(model)
    analytic = {"x": model.backward(dscores)}
    analytic.update({k: g.copy() for k, g in model.named_gradients()})
    arrays = {"x": (point, "x")}
    for name, layer in model.named_layers():
        arrays.update({f"{name}.{key}": (layer.params, key) for key in layer.params})
    errors, redrawn = {}, 0
    for label, (holder, key) in arrays.items():
        base = holder[key]
        for _ in range(tries):
            v = gen.standard_normal(base.shape)
            v /= np.linalg.norm(v)
            patterns = []

            def along(t, holder=holder, key=key, base=base, v=v, patterns=patterns):
                holder[key] = base + t[0] * v  # a new array: the model's own is put back below
                loss = softmax_cross_entropy(model.forward(point["x"]), y)[0]
                patterns.append(kink_pattern(model))
                return loss

            numeric = gradcheck.numerical_gradient(along, np.zeros(1), 1.0, h)[0]
            holder[key] = base
            if all(np.array_equal(a, b) for p in patterns for a, b in zip(p, reference)):
                break
            redrawn += 1
        else:
            raise AssertionError(f"{label}: every one of {tries} directions crossed a kink")
        scale = max(np.linalg.norm(analytic[label]), abs(numeric))
        errors[label] = 0.0 if scale == 0 else abs(np.sum(analytic[label] * v) - numeric) / scale
    return errors, redrawn


@pytest.mark.parametrize("name", NAMES)
def test_backward_matches_central_differences(name):
    gen = np.random.default_rng(7)
    model = randomise_batchnorm(build(name, num_classes=5, width=TINY, rng=0), gen)
    x = gen.standard_normal(tiny_input_shape(name))
    errors, redrawn = directional_errors(model, x, np.array([1, 3]), gen)
    assert redrawn <= 3, f"{name}: {redrawn} directions crossed a kink"  # rare, or the inputs are degenerate
    assert len(errors) == 1 + len(list(model.named_parameters()))
    worst = max(errors, key=errors.get)
    assert errors[worst] < gradcheck.MODEL_TOL, f"{name}: {worst} rel error {errors[worst]:.2e}"


@pytest.mark.parametrize("bug", ["dgamma 1% too large", "one channel's dgamma of the wrong sign"])
def test_directional_check_rejects_a_wrong_backward(bug):
    """The check above can fail: one BatchNorm deep in ResNet-18 gets a wrong gamma gradient."""
    gen = np.random.default_rng(7)
    model = randomise_batchnorm(build("resnet18", num_classes=5, width=TINY, rng=0), gen)
    bn = model["layer3.1.bn2"]
    right = bn._backward

    def wrong(dout):
        dx = right(dout)
        dgamma = bn.grads["gamma"].copy()
        if bug == "dgamma 1% too large":
            dgamma *= 1.01
        else:
            dgamma[5] = -dgamma[5]
        bn.grads["gamma"] = dgamma
        return dx

    bn._backward = wrong  # this one object only; the model calls _backward (see Sequential)
    errors, _ = directional_errors(model, gen.standard_normal(tiny_input_shape("resnet18")), np.array([1, 3]), gen)
    assert errors["layer3.1.bn2.gamma"] > 100 * gradcheck.MODEL_TOL
    assert max(v for k, v in errors.items() if k != "layer3.1.bn2.gamma") < gradcheck.MODEL_TOL


@pytest.mark.parametrize("name", ["alexnet", "vgg11_bn", "resnet50"])
def test_grad_cam_explains_the_default_layer(name):
    model = build(name, num_classes=5, width=TINY, rng=0)
    x = np.random.default_rng(0).standard_normal(tiny_input_shape(name))
    maps = mc.grad_cam(model, x, class_idx=None)
    layer = DEFAULT_LAYER[name][0]
    assert maps.shape == (2,) + dict(model.output_shapes(x.shape))[layer][2:]
    np.testing.assert_array_equal(maps, mc.grad_cam(model, x, class_idx=None, layer=layer))
    assert not model.training  # explanations never change the mode


@pytest.mark.parametrize("name", ["vgg11_bn", "resnet50"])
def test_save_and_load_keep_the_layout(name, tmp_path):
    """Nested names and bias-less convolutions survive minicam's own model files."""
    model = randomise_batchnorm(build(name, num_classes=3, width=TINY, rng=0), np.random.default_rng(1))
    mc.io.save(model, tmp_path / "model.npz")
    loaded = mc.io.load(tmp_path / "model.npz")
    assert torch_style(loaded) == torch_style(model)
    x = np.random.default_rng(2).standard_normal((1, 3, 40, 33))
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))


# ----------------------------------------------------------------------------
# load_torch_state_dict (NumPy arrays stand in for tensors)
# ----------------------------------------------------------------------------


def torch_state_of(model):
    """The model's state under torch's keys, plus the counter torch adds to every BatchNorm."""
    state = model.state_dict()
    out = {theirs: state[mine] for mine, theirs in torch_keys(model).items()}
    out["bn1.num_batches_tracked"] = np.array(0)  # int64 in torch; skipped by the loader
    return out


def test_load_torch_state_dict_round_trip_and_errors():
    gen = np.random.default_rng(0)
    source = randomise_batchnorm(zoo.resnet18(num_classes=4, width=TINY, rng=1), gen)
    state = torch_state_of(source)
    model = load_torch_state_dict(zoo.resnet18(num_classes=4, width=TINY, rng=2), state)
    x = gen.standard_normal((1, 3, 9, 9))
    np.testing.assert_array_equal(model.forward(x), source.forward(x))

    before = model.state_dict()
    missing = {k: v for k, v in state.items() if k != "layer2.0.downsample.1.running_var"}
    with pytest.raises(ValueError, match=r"missing \['layer2\.0\.downsample\.1\.running_var'\]"):
        load_torch_state_dict(model, missing)
    with pytest.raises(ValueError, match=r"unexpected \['layer1\.0\.conv1\.bias'\]"):
        load_torch_state_dict(model, {**state, "layer1.0.conv1.bias": np.zeros(4)})
    wrong = {**state, "layer4.1.conv2.weight": np.zeros((32, 32, 1, 3))}
    with pytest.raises(ValueError, match=r"'layer4\.1\.conv2\.weight' has shape \(32, 32, 1, 3\), the model expects "
                                         r"\(32, 32, 3, 3\)"):
        load_torch_state_dict(model, wrong)
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)  # nothing changed


# ----------------------------------------------------------------------------
# Against the torch definitions (tests/torchvision_like.py)
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tv():
    """``(torch, torchvision_like)``, or a skip without torch."""
    torch = require("torch", "the comparisons with the torch definitions")  # fails when CI is set
    import torchvision_like  # needs torch

    return torch, torchvision_like


def torch_shapes(tv, name, **kwargs):
    torch, tl = tv
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        module = tl.BUILDERS[name](**kwargs)
    return module, {k: tuple(v.shape) for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}


def test_keys_and_shapes_are_torchvisions(full, tv):
    name, model = full
    module, theirs = torch_shapes(tv, name)
    mine = torch_style(model)
    assert mine == theirs
    # Same order, too: parameters as torch's named_parameters(), buffers as its named_buffers().
    keys = torch_keys(model)
    assert [keys[k] for k, _ in model.named_parameters()] == [k for k, _ in module.named_parameters()]
    assert [keys[k] for k, _ in model.named_buffers()] == [
        k for k, _ in module.named_buffers() if not k.endswith("num_batches_tracked")]


@pytest.mark.parametrize("name", NAMES)
def test_tiny_keys_and_shapes_are_the_torch_definitions(name, tv):
    _, theirs = torch_shapes(tv, name, num_classes=5, width=TINY)
    assert torch_style(build(name, num_classes=5, width=TINY, rng=0)) == theirs


def torch_features(module, x, name):
    """The torch module's default CAM map: ``features(x)``'s last ReLU, or ``layer4``."""
    if name.startswith("resnet"):
        x = module.maxpool(module.relu(module.bn1(module.conv1(x))))
        return module.layer4(module.layer3(module.layer2(module.layer1(x))))
    return module.features[: len(module.features) - 1](x)  # all but the last max-pool


@pytest.mark.parametrize("name", NAMES)
def test_tiny_forward_matches_the_torch_definition(name, tv):
    torch, tl = tv
    with torch.random.fork_rng():
        torch.manual_seed(0)
        module = tl.BUILDERS[name](num_classes=5, width=TINY).double().eval()
        with torch.no_grad():
            for m in module.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.5, 0.5)
                    m.running_var.uniform_(0.5, 1.5)
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.5, 0.5)
        x = torch.randn(tiny_input_shape(name), dtype=torch.float64)
    model = load_torch_state_dict(build(name, num_classes=5, width=TINY, rng=0), module.state_dict())
    with torch.no_grad():
        want, want_map = module(x).numpy(), torch_features(module, x, name).numpy()
    got = model.forward(x.numpy())
    layer = last_feature_layer(model, model.output_shapes(x.shape))
    assert layer == DEFAULT_LAYER[name][0]
    for label, a, b in (("scores", got, want), (layer, model.outputs[layer], want_map)):
        assert a.shape == b.shape, label
        rel = np.abs(a - b).max() / np.abs(b).max()
        assert rel <= 1e-10, f"{name} {label}: max relative difference {rel:.2e}"
