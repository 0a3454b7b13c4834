"""Parity with PyTorch: every layer, whole models and the bridge, in float64.

minicam's hand-written forward and backward passes are compared with
``torch.autograd`` on the same weights and inputs, over the shape grid of the
gradient checks (:func:`minicam.gradcheck.layer_cases`). Differences are the
norm-wise relative error of :func:`minicam.gradcheck.rel_error`; selections
(ReLU, max-pool, Flatten, eval-mode Dropout) must agree exactly, arithmetic to
``TOL``. The largest difference per quantity is printed at the end of the
module.

Without PyTorch these tests skip (``pip install torch==2.13.0 captum`` enables
them); when the environment variable ``CI`` is set, a missing PyTorch is an
error instead, so CI can never pass by skipping them.
"""

import copy
import os
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest

import minicam as mc
from minicam import gradcheck as gc
from parity_support import Differences, numpy_of, require, zoo_models

torch = require("torch", "the parity tests against PyTorch")
bridge = require("minicam.interop.torch", "the parity tests against PyTorch")
nn = torch.nn

TOL = 1e-10  # relative, for arithmetic (float64; measured differences are ~1e-15)
EXACT = 0.0  # for selections and copies

DIFFS = Differences("torch")
MEASURED = DIFFS.measured  # quantity -> [largest relative, largest absolute, where]
check = DIFFS.check


@pytest.fixture(scope="module", autouse=True)
def _report(request):
    yield
    DIFFS.write_report(
        request,
        f"largest difference minicam vs PyTorch per quantity ({os.path.basename(__file__)}; "
        f"models: {', '.join(label for label, _, _ in reference_models())}):",
    )


# minicam key -> torch attribute
TORCH_NAME = {"W": "weight", "b": "bias", "gamma": "weight", "beta": "bias"}
EXACT_KINDS = ("ReLU", "MaxPool2d", "Flatten", "Dropout")


def fill(module, rng, scale=0.5):
    """Overwrite every parameter of a torch module with seeded normal values (no torch global RNG)."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.tensor(scale * rng.standard_normal(tuple(p.shape)), dtype=p.dtype))
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.tensor(rng.standard_normal(tuple(b.shape)), dtype=b.dtype))
            elif name.endswith("running_var"):
                b.copy_(torch.tensor(0.5 + rng.random(tuple(b.shape)), dtype=b.dtype))
    return module


# ---------------------------------------------------------------------------
# Every layer, over the gradient-check grid
# ---------------------------------------------------------------------------

CASES = [c for c in gc.layer_cases(seed=0) if not (isinstance(c[1], mc.Dropout) and c[1].training)]


@pytest.mark.parametrize("label,layer,x", CASES, ids=[c[0] for c in CASES])
def test_layer_forward_and_backward_match_torch_autograd(label, layer, x):
    layer = copy.deepcopy(layer)
    kind = type(layer).__name__
    tol = EXACT if kind in EXACT_KINDS else TOL
    module = bridge.to_torch(layer)
    assert module.training == layer.training
    rng = np.random.default_rng(11)

    xt = torch.tensor(x, requires_grad=True)
    out_t = module(xt)
    out = layer.forward(x)
    check(f"{kind} forward", out, out_t, tol, label)

    dout = rng.standard_normal(out.shape)  # random upstream gradient: no cancelling errors
    out_t.backward(torch.tensor(dout))
    dx = layer.backward(dout)
    overlapping = isinstance(layer, mc.MaxPool2d) and layer.stride < layer.kernel_size
    # overlapping windows sum several contributions per input, in another order than torch
    check(f"{kind} dx", dx, xt.grad, TOL if overlapping else tol, label)
    assert set(layer.params) == {k for k in TORCH_NAME if k in layer.params}
    for key in layer.params:
        check(f"{kind} d{key}", layer.grads[key], getattr(module, TORCH_NAME[key]).grad, TOL, label)
    if isinstance(layer, mc.BatchNorm2d):
        # in training mode both update the running statistics (unbiased variance)
        for key in ("running_mean", "running_var"):
            check(f"BatchNorm2d {key} after forward ({'train' if layer.training else 'eval'})",
                  layer.buffers[key], getattr(module, key), TOL, label)


def test_l2normalize_matches_torch_functional_normalize():
    # The embedding network's last layer against F.normalize(x, dim=1) (eps 1e-12 never
    # reached here: rows of norm ~1-10), forward and backward, with a random upstream gradient.
    rng = np.random.default_rng(11)
    x = rng.standard_normal((5, 7)) * rng.uniform(0.5, 3.0, (5, 1))
    dout = rng.standard_normal((5, 7))
    layer = mc.layers.L2Normalize()
    out = layer.forward(x)
    dx = layer.backward(dout)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.normalize(xt, dim=1)
    yt.backward(torch.tensor(dout))
    check("L2Normalize forward", out, yt, TOL, "5x7")
    check("L2Normalize dx", dx, xt.grad, TOL, "5x7")


def test_batchnorm_running_statistics_follow_torch_over_several_steps():
    rng = np.random.default_rng(3)
    layer = mc.BatchNorm2d(3, eps=1e-3, momentum=0.3)
    layer.params["gamma"] = 1.0 + 0.3 * rng.standard_normal(3)
    module = bridge.to_torch(layer)
    for step in range(5):
        x = 1.5 + 2.0 * rng.standard_normal((3, 3, 4, 5))
        check("BatchNorm2d train forward, step by step", layer.forward(x), module(torch.tensor(x)), TOL, f"step {step}")
        for key in ("running_mean", "running_var"):
            check(f"BatchNorm2d {key} after 5 steps", layer.buffers[key], getattr(module, key), TOL, f"step {step}")
    layer.eval()
    module.eval()
    x = rng.standard_normal((2, 3, 4, 5))
    check("BatchNorm2d eval forward after training", layer.forward(x), module(torch.tensor(x)), TOL, "eval")


def test_dropout_train_follows_torchs_rule():
    # Masks are random in both frameworks and never equal: compare the rule.
    # Where both keep an entry the values agree exactly; elsewhere each is 0;
    # the kept fraction is 1 - p in both; the gradient uses the same mask.
    p = 0.3
    rng = np.random.default_rng(5)
    x = rng.uniform(0.5, 1.5, size=(8, 4, 25, 25))  # no zeros: out == 0 means dropped
    layer = mc.Dropout(p, rng=1)
    out = layer.forward(x)
    with torch.random.fork_rng():  # torch draws masks from its global generator: leave it as it was
        torch.manual_seed(0)
        xt = torch.tensor(x, requires_grad=True)
        out_t = nn.Dropout(p).train()(xt)
    dout = rng.standard_normal(x.shape)
    out_t.backward(torch.tensor(dout))
    dx = layer.backward(dout)
    out_t, dx_t = numpy_of(out_t), numpy_of(xt.grad)
    keep, keep_t = out != 0, out_t != 0
    both = keep & keep_t
    assert both.sum() > 0.4 * x.size
    check("Dropout train: kept values", out[both], out_t[both], EXACT, f"p={p}")
    check("Dropout train: gradient where kept", dx[both], dx_t[both], EXACT, f"p={p}")
    np.testing.assert_array_equal(dx[~keep], 0.0)
    np.testing.assert_array_equal(dx_t[~keep_t], 0.0)
    sigma = np.sqrt(p * (1 - p) / x.size)
    for name, k in (("minicam", keep), ("torch", keep_t)):
        assert abs(k.mean() - (1 - p)) < 5 * sigma, f"{name} kept {k.mean():.4f}, expected {1 - p}"


@pytest.mark.parametrize("kernel_size,stride,shape", [(2, None, (2, 3, 6, 6)), (3, 1, (1, 2, 7, 5)), (3, 2, (2, 2, 7, 9)), (2, 1, (1, 1, 5, 4))])
def test_maxpool_ties_go_to_the_first_maximum_in_both(kernel_size, stride, shape):
    # minicam's rule (first maximum in row-major order) is a documented
    # convention; PyTorch's CPU kernel (float64, contiguous NCHW) does the
    # same in torch 2.13 but does not promise it. Inputs with many ties.
    rng = np.random.default_rng(kernel_size * 10 + (stride or 0))
    x = rng.integers(0, 3, size=shape).astype(np.float64)
    x[0, 0] = 1.0  # a plane that is all ties
    layer = mc.MaxPool2d(kernel_size, stride)
    module = bridge.to_torch(layer)
    xt = torch.tensor(x, requires_grad=True)
    out_t = module(xt)
    out = layer.forward(x)
    dout = rng.standard_normal(out.shape)
    out_t.backward(torch.tensor(dout))
    check("MaxPool2d forward with ties", out, out_t, EXACT, f"k={kernel_size}, s={stride}")
    overlapping = layer.stride < kernel_size
    check("MaxPool2d dx with ties", layer.backward(dout), xt.grad, TOL if overlapping else EXACT, f"k={kernel_size}, s={stride}")


def test_float32_conversion_rounds_weights_once():
    label, model, x, _ = gc.model_cases(seed=0)[0]
    t32 = bridge.to_torch(model, dtype=torch.float32)
    assert all(p.dtype == torch.float32 for p in t32.parameters())
    out = model.forward(x)
    out32 = numpy_of(t32(torch.tensor(x, dtype=torch.float32)))
    assert gc.rel_error(out, out32) < 1e-5
    back = bridge.from_torch(t32, dtype=np.float32)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[key], value.astype(np.float32))
        assert back.state_dict()[key].dtype == np.float32


# ---------------------------------------------------------------------------
# Whole models
# ---------------------------------------------------------------------------


def reference_models():
    """(label, model, x): the gradcheck models, then the zoo's reference architectures and every bundled model."""
    models = [(label, model, x) for label, model, x, _ in gc.model_cases(seed=0)]
    return models + zoo_models(np.random.default_rng(8))


def compare_models(label, model, module, x, rng, names=None):
    """Logits, input gradient, every parameter gradient and BatchNorm statistics of a minicam model and a torch module."""
    names = names or {n: n for n, _ in model.named_layers()}
    xt = torch.tensor(x, requires_grad=True)
    logits_t = module(xt)
    logits = model.forward(x)
    check("model logits", logits, logits_t, TOL, label)
    dscores = rng.standard_normal(logits.shape)
    logits_t.backward(torch.tensor(dscores))
    check("model input gradient", model.backward(dscores), xt.grad, TOL, label)
    compared = 0
    layers = [layer for _, layer in model.named_layers()]
    for i, (name, layer) in enumerate(model.named_layers()):
        tmod = module.get_submodule(names[name])
        # The next layer that is not a max-pool: max-pool commutes with adding a per-channel constant, so a
        # conv bias followed by max-pool and then train-mode BatchNorm still has a true gradient of 0.
        j = i + 1
        while j < len(layers) and isinstance(layers[j], mc.MaxPool2d):
            j += 1
        before_train_bn = (
            isinstance(layer, mc.Conv2d) and j < len(layers) and isinstance(layers[j], mc.BatchNorm2d) and layers[j].training
        )
        for key in layer.params:
            tparam = getattr(tmod, TORCH_NAME[key], None)
            if tparam is None:  # bias=False in torch: minicam's zero bias has a gradient torch does not compute
                np.testing.assert_array_equal(layer.params[key], 0.0)
                continue
            if key == "b" and before_train_bn:
                # A bias before train-mode BatchNorm (directly or through max-pools) has a true gradient of exactly 0 (the batch
                # mean removes it): both frameworks return rounding noise, whose relative difference is
                # meaningless. Both must be zero to rounding, on the scale of the same layer's dW.
                scale = float(np.abs(layer.grads["W"]).max())
                worst = max(float(np.abs(layer.grads[key]).max()), float(np.abs(numpy_of(tparam.grad)).max()))
                MEASURED.setdefault("model bias before train-mode BatchNorm: max |db| / max |dW| (true db = 0)",
                                    [0.0, 0.0, ""])
                entry = MEASURED["model bias before train-mode BatchNorm: max |db| / max |dW| (true db = 0)"]
                if worst / scale >= entry[0]:
                    entry[:] = [worst / scale, worst, f"{label}: {name}.{key}"]
                assert worst <= TOL * scale, f"{label}: {name}.{key}: |db| up to {worst:.2e}, should be 0 (dW scale {scale:.2e})"
                continue
            check("model parameter gradients", layer.grads[key], tparam.grad, TOL, f"{label}: {name}.{key}")
            compared += 1
        for key, value in layer.buffers.items():
            check("model BatchNorm statistics", value, getattr(tmod, key), TOL, f"{label}: {name}.{key}")
    assert compared > 0


@pytest.mark.parametrize("mode", ["eval", "train (BatchNorm on batch statistics, Dropout off)"])
@pytest.mark.parametrize("label,model,x", reference_models(), ids=[m[0] for m in reference_models()])
def test_whole_model_matches_torch(label, model, x, mode):
    model = copy.deepcopy(model)
    if mode == "eval":
        model.eval()
    else:
        model.train()
        for layer in model.layers:
            if isinstance(layer, mc.Dropout):
                layer.eval()  # random masks cannot be compared
    module = bridge.to_torch(model)
    compare_models(f"{label}, {mode.split()[0]}", model, module, x, np.random.default_rng(21))


def torch_model_with_every_layer(rng, bn_training=False):
    """A PyTorch-written model: nested containers, bias=False, 'same' padding, the pool + flatten head split across containers."""
    features = nn.Sequential(
        nn.Conv2d(3, 6, kernel_size=(3, 3), padding="same", bias=False, dtype=torch.float64),
        nn.BatchNorm2d(6, eps=1e-4, momentum=0.2, dtype=torch.float64),
        nn.ReLU(inplace=False),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, stride=(2, 2), padding=1, dtype=torch.float64),
        nn.ReLU(),
        nn.AvgPool2d(kernel_size=(2, 2), stride=1),
        nn.Conv2d(8, 8, 1, dtype=torch.float64),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d((1, 1)),
    )
    head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(8, 6, dtype=torch.float64), nn.ReLU(), nn.Linear(6, 4, bias=False, dtype=torch.float64))
    module = fill(nn.Sequential(OrderedDict([("features", features), ("head", head)])), rng)
    module.eval()
    features[1].train(bn_training)
    return module


@pytest.mark.parametrize("bn_training", [False, True])
def test_model_imported_with_from_torch_matches_torch(bn_training):
    rng = np.random.default_rng(4)
    module = torch_model_with_every_layer(rng, bn_training)
    model = bridge.from_torch(module)
    # nested containers stay nested, named as in torch
    assert model.names == ["features", "head"]
    assert model["features"].names == [str(i) for i in range(10)] and model["head"].names == [str(i) for i in range(5)]
    assert isinstance(model["features.9"], mc.AdaptiveAvgPool2d) and isinstance(model["head.0"], mc.Flatten)
    assert model["features.1"].training == bn_training and not model["head.1"].training
    names = bridge.layer_map(module)
    assert names["features.9"] == "features.9" and names["head.2"] == "head.2" and names["features"] == "features"
    x = rng.standard_normal((3, 3, 13, 11))
    compare_models(f"from_torch model (BatchNorm {'train' if bn_training else 'eval'})", model, module, x, rng, names)


# ---------------------------------------------------------------------------
# The bridge: round trip, names, modes, refusals
# ---------------------------------------------------------------------------


def every_layer_model(dtype=np.float64):
    rng = np.random.default_rng(2)
    model = mc.Sequential([
        ("conv_in", mc.Conv2d(3, 4, 3, padding=1, rng=rng, dtype=dtype)),
        ("bn", mc.BatchNorm2d(4, eps=1e-3, momentum=0.05, dtype=dtype)),
        ("act", mc.ReLU()),
        ("pool", mc.MaxPool2d(3, 2)),
        ("conv_b", mc.Conv2d(4, 5, 1, stride=1, rng=rng, dtype=dtype)),
        ("relu_b", mc.ReLU()),
        ("avg", mc.AvgPool2d(2, 1)),
        ("gap", mc.GlobalAvgPool2d()),
        ("flat", mc.Flatten()),
        ("drop", mc.Dropout(0.1, rng=0)),
        ("fc", mc.Linear(5, 3, rng=rng, dtype=dtype)),
    ])
    for layer in model.layers:
        for key in layer.params:
            layer.params[key] = rng.standard_normal(layer.params[key].shape).astype(dtype)
    model["bn"].buffers["running_mean"] = rng.standard_normal(4).astype(dtype)
    model["bn"].buffers["running_var"] = (0.5 + rng.random(4)).astype(dtype)
    return model


EVERY_X = np.random.default_rng(0).standard_normal((2, 3, 12, 10))
ROUND_TRIP = reference_models() + [
    ("every layer type", every_layer_model(), EVERY_X),
    ("every layer type, float32", every_layer_model(np.float32), EVERY_X.astype(np.float32)),
    ("mixed modes", every_layer_model().eval(), EVERY_X),
]


@pytest.mark.parametrize("label,model,x", ROUND_TRIP, ids=[r[0] for r in ROUND_TRIP])
def test_round_trip_is_bit_for_bit(label, model, x):
    model = copy.deepcopy(model)
    if label == "mixed modes":
        model["bn"].train()
    dtype = next(iter(model.state_dict().values())).dtype
    module = bridge.to_torch(model, dtype=dtype)
    assert list(dict(module.named_children())) == model.names  # getattr(module, name) is minicam's layer
    back = bridge.from_torch(module, dtype=dtype)
    assert back.names == model.names
    for (name, a), (_, b) in zip(model, back):
        assert type(a) is type(b), name
        assert a.config() == b.config(), name
        assert a.training == b.training, name
    state, state_back = model.state_dict(), back.state_dict()
    assert state.keys() == state_back.keys()
    for key in state:
        assert state_back[key].dtype == state[key].dtype, key
        np.testing.assert_array_equal(state_back[key], state[key], err_msg=key)
    # Same code, same weights: the same forward, bit for bit (Dropout off).
    for m in (model, back):
        for layer in m.layers:
            if isinstance(layer, mc.Dropout):
                layer.eval()
    np.testing.assert_array_equal(back.forward(x), model.forward(x))


def test_to_torch_names_modes_and_no_shared_memory():
    model = every_layer_model()
    model.eval()
    model["bn"].train()
    module = bridge.to_torch(model)
    assert isinstance(module.conv_in, nn.Conv2d) and isinstance(module.gap, nn.Sequential)
    assert module.bn.training and not module.drop.training and not module.training
    assert module.bn.eps == 1e-3 and module.bn.momentum == 0.05 and module.drop.p == 0.1
    with torch.no_grad():
        module.conv_in.weight.add_(1.0)
    assert not np.array_equal(model["conv_in"].params["W"], numpy_of(module.conv_in.weight))


def test_to_torch_leaves_torchs_global_random_state_alone():
    before = torch.random.get_rng_state()
    bridge.to_torch(every_layer_model())
    assert torch.equal(before, torch.random.get_rng_state())


def test_to_torch_refuses_an_unknown_layer():
    class Square(mc.Layer):
        def forward(self, x):
            return x * x

    model = mc.Sequential([("conv", mc.Conv2d(1, 1, 1, rng=0)), ("sq", Square())])
    with pytest.raises(TypeError, match=r"'sq' is a Square"):
        bridge.to_torch(model)
    with pytest.raises(TypeError, match="model must be a minicam Sequential, Residual or Layer, got Sequential"):
        bridge.to_torch(nn.Sequential(nn.ReLU()))
    with pytest.raises(TypeError, match="torch.float32 or torch.float64, got torch.float16"):
        bridge.to_torch(model, dtype=torch.float16)


def test_unnamed_torch_layers_keep_their_torch_names():
    module = nn.Sequential(nn.Conv2d(1, 2, 3, dtype=torch.float64), nn.ReLU(), nn.Flatten())
    model = bridge.from_torch(module)
    assert model.names == ["0", "1", "2"]
    assert bridge.layer_map(module) == {"0": "0", "1": "1", "2": "2"}


def test_float32_torch_weights_widen_exactly():
    module = fill(nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 2)), np.random.default_rng(0))
    model = bridge.from_torch(module)
    assert model["0"].params["W"].dtype == np.float64
    np.testing.assert_array_equal(model["0"].params["W"], numpy_of(module[0].weight).astype(np.float64))


class MyConv(nn.Conv2d):
    pass


REFUSED = [
    (nn.Conv2d(2, 2, 3, dilation=2), r"0 \(Conv2d\): dilation=\(2, 2\)"),
    (nn.Conv2d(2, 2, 3, groups=2), r"0 \(Conv2d\): groups=2"),
    (nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect"), r"0 \(Conv2d\): padding_mode='reflect'"),
    (nn.Conv2d(2, 2, (3, 5)), r"0 \(Conv2d\): kernel_size=\(3, 5\).*square"),
    (nn.Conv2d(2, 2, 3, stride=(1, 2)), r"0 \(Conv2d\): stride=\(1, 2\)"),
    (nn.Conv2d(2, 2, 3, padding=(1, 0)), r"0 \(Conv2d\): padding=\(1, 0\)"),
    (nn.Conv2d(2, 2, 2, padding="same"), r"0 \(Conv2d\): padding='same'.*odd kernel"),
    (nn.MaxPool2d(2, ceil_mode=True), r"0 \(MaxPool2d\): ceil_mode=True"),
    (nn.MaxPool2d(3, padding=2), r"0 \(MaxPool2d\): padding=2.*at most half the kernel"),
    (nn.MaxPool2d(2, dilation=2), r"0 \(MaxPool2d\): dilation=2"),
    (nn.MaxPool2d(2, return_indices=True), r"0 \(MaxPool2d\): return_indices=True"),
    (nn.MaxPool2d((2, 3)), r"0 \(MaxPool2d\): kernel_size=\(2, 3\)"),
    (nn.AvgPool2d(3, padding=1, count_include_pad=False), r"0 \(AvgPool2d\): padding=1"),
    (nn.AvgPool2d(2, ceil_mode=True), r"0 \(AvgPool2d\): ceil_mode=True"),
    (nn.AvgPool2d(2, divisor_override=3), r"0 \(AvgPool2d\): divisor_override=3"),
    (nn.AdaptiveAvgPool2d((None, 2)), r"0 \(AdaptiveAvgPool2d\): output_size=\(None, 2\)"),
    (nn.Flatten(start_dim=2), r"0 \(Flatten\): start_dim, end_dim=\(2, -1\)"),
    (nn.BatchNorm2d(2, affine=False), r"0 \(BatchNorm2d\): affine=False"),
    (nn.BatchNorm2d(2, track_running_stats=False), r"0 \(BatchNorm2d\): track_running_stats=False"),
    (nn.BatchNorm2d(2, momentum=None), r"0 \(BatchNorm2d\): momentum=None"),
    (nn.Sigmoid(), r"0 \(Sigmoid\) is not supported"),
    (nn.LeakyReLU(), r"0 \(LeakyReLU\) is not supported"),
    (nn.Dropout2d(0.5), r"0 \(Dropout2d\) is not supported"),
    (nn.Identity(), r"0 \(Identity\) is not supported"),
    (MyConv(2, 2, 3), r"0 \(MyConv\) is a subclass of Conv2d"),
    (nn.ModuleList([nn.ReLU()]), r"0 \(ModuleList\) is not supported"),
]


@pytest.mark.parametrize("bad,message", REFUSED, ids=[m for _, m in REFUSED])
def test_from_torch_refuses_what_minicam_does_not_model(bad, message):
    with pytest.raises((ValueError, TypeError), match=message):
        bridge.from_torch(nn.Sequential(bad))


def test_from_torch_refusals_name_nested_paths_and_containers():
    with pytest.raises(ValueError, match=r"features\.1 \(Conv2d\): groups=2"):
        bridge.from_torch(nn.Sequential(OrderedDict(features=nn.Sequential(nn.ReLU(), nn.Conv2d(2, 2, 3, groups=2)))))
    with pytest.raises(TypeError, match="module is a single Conv2d.*nn.Sequential"):
        bridge.from_torch(nn.Conv2d(1, 2, 3))
    with pytest.raises(TypeError, match="module must be a torch.nn.Module, got list"):
        bridge.from_torch([nn.ReLU()])


def test_load_state_dict_names_every_tensor_that_does_not_fit(tmp_path):
    module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2))
    good = {k: v.clone() for k, v in module.state_dict().items()}
    bad = dict(good)
    bad["0.weight"] = torch.zeros(4, 1, 3, 3)
    del bad["3.bias"]
    bad["3.scale"] = torch.zeros(2)
    with pytest.raises(ValueError, match=r"missing \['3.bias'\]; unexpected \['3.scale'\]; '0.weight' has shape \(4, 1, 3, 3\), the architecture expects \(4, 3, 3, 3\)"):
        bridge.load_state_dict(module, bad)
    path = tmp_path / "weights.pt"
    torch.save(good, path)
    bridge.load_state_dict(module, str(path))
    with pytest.raises(ValueError, match="cannot read a state dict"):
        (tmp_path / "junk.pt").write_text("not a checkpoint")
        bridge.load_state_dict(module, str(tmp_path / "junk.pt"))


def test_import_minicam_never_imports_torch():
    # every module of the package but the bridge itself, imported in a fresh interpreter
    code = (
        "import importlib, pkgutil, sys, minicam\n"
        "TORCH_MODULES = {'minicam.interop.torch', 'minicam.interop._torch_base', 'minicam.interop.export', "
        "'minicam.interop.importer', 'minicam.interop.modules'}\n"
        "names = [m.name for m in pkgutil.walk_packages(minicam.__path__, 'minicam.') if m.name not in TORCH_MODULES]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "leaked = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.') or m.startswith('captum'))\n"
        "assert not leaked, leaked\n"
        "print(len(names))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) >= 5  # the walk really imported the package's modules


# ---------------------------------------------------------------------------
# from_torch by tracing: graphs minicam models, and those it refuses
# ---------------------------------------------------------------------------


class _Net(nn.Module):
    """A module whose forward is given as a function of (self, x)."""

    def __init__(self, forward, **modules):
        super().__init__()
        for name, mod in modules.items():
            self.add_module(name, mod)
        self._fwd = forward

    def forward(self, x):
        return self._fwd(self, x)


def test_an_addition_inside_a_forward_becomes_a_residual_block_named_after_it():
    torch.manual_seed(0)

    def forward(m, x):
        y = torch.relu(m.stem(x))
        y = m.conv(y) + y                    # identity shortcut, body first
        y = y.view(y.size(0), -1)
        return m.fc(y)

    net = _Net(forward, stem=nn.Conv2d(2, 3, 3), conv=nn.Conv2d(3, 3, 3, padding=1), fc=nn.Linear(3 * 4 * 4, 2))
    net = net.double().eval()
    model = bridge.from_torch(net)
    assert model.names == ["stem", "relu", "add", "flatten", "fc"]
    assert isinstance(model["add"], mc.Residual) and model["add"].shortcut is None
    assert bridge.layer_map(net)["add.conv"] == "conv"  # the block's layer keeps its torch module
    x = np.random.default_rng(0).standard_normal((2, 2, 6, 6))
    xt = torch.tensor(x, requires_grad=True)
    out = net(xt)
    out.backward(torch.ones_like(out))
    np.testing.assert_allclose(model.forward(x), numpy_of(out), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(model.backward(np.ones((2, 2))), numpy_of(xt.grad), rtol=1e-12, atol=1e-14)


FX_REFUSED = [
    (lambda m, x: m.conv(x) if x.sum() > 0 else x, dict(conv=nn.Conv2d(1, 1, 1)), "cannot be traced by torch.fx"),
    (lambda m, x: torch.sigmoid(m.conv(x)), dict(conv=nn.Conv2d(1, 1, 1)), r"node 'sigmoid' \(call_function sigmoid\) is not supported"),
    (lambda m, x: m.conv(x) * m.conv2(x), dict(conv=nn.Conv2d(1, 1, 1), conv2=nn.Conv2d(1, 1, 1)), r"node 'mul'"),
    (lambda m, x: m.a(x) + m.b(x) + m.c(x), dict(a=nn.ReLU(), b=nn.ReLU(), c=nn.ReLU()), "feeds 3 consumers"),
    (lambda m, x: m.a(x) + m.a(x).relu(), dict(a=nn.Conv2d(1, 1, 1)), r"module 'a' \(Conv2d\) has parameters and is called 2 times"),
    (lambda m, x: m.conv(x).view(2, -1), dict(conv=nn.Conv2d(1, 1, 1)), "hard-coded batch size"),
    (lambda m, x: torch.flatten(m.conv(x), 2), dict(conv=nn.Conv2d(1, 1, 1)), "flatten with.*start_dim"),
    (lambda m, x: m.conv(x) * m.scale, dict(conv=nn.Conv2d(1, 1, 1)), "reads a parameter or buffer"),
    (lambda m, x: m.conv(x) + 1.0, dict(conv=nn.Conv2d(1, 1, 1)), "only the addition of two tensors"),
    (lambda m, x: (m.conv(x), m.conv2(x)), dict(conv=nn.Conv2d(1, 1, 1), conv2=nn.Conv2d(1, 1, 1)), "output|feeds|fork"),
    (lambda m, x: x + x, dict(), r"adds a tensor to itself"),
]


@pytest.mark.parametrize("forward,modules,message", FX_REFUSED, ids=[m for *_, m in FX_REFUSED])
def test_from_torch_refuses_graphs_it_cannot_model_naming_the_node(forward, modules, message):
    net = _Net(forward, **modules)
    if "reads a parameter" in message:
        net.scale = nn.Parameter(torch.ones(1))
    with pytest.raises((ValueError, TypeError), match=message):
        bridge.from_torch(net)


def test_a_numbered_call_that_clashes_with_a_module_name_is_refused():
    # relu is called twice (relu1, relu2), and a module is already named relu1
    net = _Net(lambda m, x: m.relu1(m.relu(m.relu(x))), relu=nn.ReLU(), relu1=nn.ReLU())
    with pytest.raises(ValueError, match=r"names cannot all become minicam names.*duplicates \['relu1'\]"):
        bridge.from_torch(net)
