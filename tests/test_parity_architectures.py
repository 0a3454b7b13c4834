"""AlexNet, VGG and ResNet: minicam against PyTorch autograd and captum, float64, every number.

The torch networks are ``tests/torchvision_like.py`` (torchvision's module
trees and state-dict keys; torchvision itself cannot be imported on these
machines). Each is built at full width (VGG-11 at half width, see WIDTH),
random weights and random BatchNorm statistics, imported with ``from_torch``
(which traces its forward with torch.fx) and compared, in eval mode, at the
smallest size its pooling allows (AlexNet 63x63, VGG 32x32), ResNets at 64x64
(a 2x2 ``layer4``), plus one ResNet-18 at 224x224:

- logits, the input gradient and every parameter gradient of a random
  upstream gradient against ``torch.autograd`` (norm-wise relative, <= 1e-10);
- Grad-CAM at the usual layer (the last ReLU of ``features`` for AlexNet/VGG,
  ``layer4`` for ResNet), with and without its ReLU, against captum's
  ``LayerGradCam``;
- guided backpropagation against captum's ``GuidedBackprop``. torchvision's
  blocks call one ReLU module two (three) times; captum hooks every call of a
  hooked module, and minicam has one ReLU per call (``relu1``, ``relu2``), so
  the two agree on the torch module as it is -- and on ``to_torch``'s
  re-export, whose ReLUs are distinct modules.

The other direction, ``to_torch`` of minicam's own builders, is checked on
the same numbers in ``test_zoo_imagenet.py`` (keys) and here (a round trip).
"""

import numpy as np
import pytest

from parity_support import Differences, numpy_of, require

torch = require("torch", "the AlexNet/VGG/ResNet parity tests")
captum_attr = require("captum.attr", "the AlexNet/VGG/ResNet parity tests")

import minicam as mc  # noqa: E402
import torchvision_like as tl  # noqa: E402
from minicam.explain import last_feature_layer  # noqa: E402
from minicam.interop import torch as bridge  # noqa: E402
from minicam.interop.keys import torch_keys  # noqa: E402

TOL = 1e-10
DIFFS = Differences("torch")
# Smallest input AlexNet (63) and VGG (32) accept; ResNets take anything, 64 gives a
# 2x2 layer4 (at 32 it is 1x1, where Grad-CAM has no spatial structure to compare).
SIZES = {"alexnet": 63, "vgg11": 32, "vgg11_bn": 32, "vgg16": 32, "vgg16_bn": 32, "resnet18": 64, "resnet34": 64,
         "resnet50": 64}
CLASSES = 10  # fewer outputs than ImageNet's 1000; every other shape is torchvision's
# VGG-11 computes what VGG-16 does with fewer layers, and its 103 M-weight classifier is
# VGG-16's: at half width it checks the same operations in a quarter of the time (its
# full-width keys and shapes are checked in test_zoo_imagenet.py).
WIDTH = {"vgg11": 0.5, "vgg11_bn": 0.5}


@pytest.fixture(scope="module", autouse=True)
def _report(request):
    yield
    DIFFS.write_report(request, "largest difference minicam vs torch/captum per quantity (test_parity_architectures.py):")


def randomized(name, seed=0, width=1.0):
    """The torch network ``name`` in float64, eval mode, random weights and BatchNorm statistics."""
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # torch's default initialisation draws from the global generator
        net = tl.BUILDERS[name](num_classes=CLASSES, width=width).double()
    with torch.no_grad():
        for mod in net.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.weight.copy_(1 + 0.2 * torch.randn(mod.weight.shape, generator=gen, dtype=torch.float64))
                mod.bias.copy_(0.2 * torch.randn(mod.bias.shape, generator=gen, dtype=torch.float64))
                mod.running_mean.copy_(0.5 * torch.randn(mod.running_mean.shape, generator=gen, dtype=torch.float64))
                mod.running_var.copy_(0.5 + torch.rand(mod.running_var.shape, generator=gen, dtype=torch.float64))
    return net.eval()


def image(size, seed=1, n=2):
    return np.random.default_rng(seed).standard_normal((n, 3, size, size))


@pytest.fixture(scope="module", params=list(SIZES))
def pair(request):
    name = request.param
    net = randomized(name, width=WIDTH.get(name, 1.0))
    model = bridge.from_torch(net)
    net.requires_grad_(False)  # captum needs no parameter gradients; the autograd test turns them on
    return name, net, model


@pytest.fixture(scope="module")
def re_export(pair):
    return bridge.to_torch(pair[2]).requires_grad_(False)


def test_keys_of_the_imported_model_are_the_torch_state_dict_keys(pair):
    name, net, model = pair
    theirs = {k: tuple(v.shape) for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    params = dict(model.named_parameters())
    params.update(dict(model.named_buffers()))
    ours = {torch_keys(model)[k]: v.shape for k, v in params.items()}
    assert ours == theirs, name


def test_logits_input_and_parameter_gradients_match_autograd(pair):
    name, net, model = pair
    x = image(SIZES[name])
    dscores = np.random.default_rng(2).standard_normal((x.shape[0], CLASSES))
    xt = torch.tensor(x, requires_grad=True)
    net.requires_grad_(True)
    try:
        logits_t = net(xt)
        logits_t.backward(torch.tensor(dscores))
    finally:
        net.requires_grad_(False)
    DIFFS.check("logits", model.forward(x), logits_t, TOL, name)
    DIFFS.check("input gradient", model.backward(dscores), xt.grad, TOL, name)
    keys = torch_keys(model)
    tparams = dict(net.named_parameters())
    count = 0
    for key, grad in model.named_gradients():
        DIFFS.check("parameter gradients", grad, tparams[keys[key]].grad, TOL, f"{name}: {key}")
        count += 1
    assert count == len(tparams)  # every parameter compared
    for param in tparams.values():
        param.grad = None


def test_grad_cam_at_the_usual_layer_matches_captum(pair):
    name, net, model = pair
    x = image(SIZES[name])
    layer = last_feature_layer(model, model.output_shapes(x.shape))
    assert layer == ("layer4" if name.startswith("resnet") else layer)
    if not name.startswith("resnet"):
        assert layer.startswith("features.") and isinstance(model[layer], mc.ReLU)
        assert isinstance(model["features"].layers[-1], mc.MaxPool2d)  # features[-1], the tutorial mistake
    target = model.forward(x).argmax(axis=1)
    cam = captum_attr.LayerGradCam(net, net.get_submodule(layer))
    for relu in (True, False):
        theirs = cam.attribute(torch.tensor(x, requires_grad=True), target=torch.tensor(target), relu_attributions=relu)
        mine = mc.grad_cam(model, x, target, layer=layer, relu=relu)
        DIFFS.check(f"Grad-CAM ({'ReLU' if relu else 'signed'}) vs LayerGradCam", mine, theirs[:, 0], TOL, f"{name}: {layer}")


def test_guided_backprop_matches_captum_on_the_module_and_its_re_export(pair, re_export, recwarn):
    name, net, model = pair
    x = image(SIZES[name])
    target = model.forward(x).argmax(axis=1)
    mine = mc.guided_backprop(model, x, target)
    for label, module in (("torch module", net), ("to_torch re-export", re_export)):
        theirs = captum_attr.GuidedBackprop(module).attribute(torch.tensor(x, requires_grad=True),
                                                              target=torch.tensor(target))
        DIFFS.check(f"guided backprop vs GuidedBackprop ({label})", mine, theirs, TOL, name)


def test_to_torch_round_trip_keeps_keys_and_numbers(pair, re_export):
    name, net, model = pair
    back = re_export
    assert list(back.state_dict()) == [k for k in net.state_dict()], name  # same keys, same order
    x = image(SIZES[name])
    DIFFS.check("round trip logits", numpy_of(back(torch.tensor(x))), net(torch.tensor(x)), TOL, name)


def test_resnet18_at_224():
    net = randomized("resnet18", seed=3)
    model = bridge.from_torch(net)
    x = image(224, seed=4, n=1)
    xt = torch.tensor(x, requires_grad=True)
    logits_t = net(xt)
    target = int(logits_t.argmax())
    logits_t[0, target].backward()
    DIFFS.check("logits", model.forward(x), logits_t, TOL, "resnet18 at 224")
    onehot = np.eye(CLASSES)[[target]]
    DIFFS.check("input gradient", model.backward(onehot), xt.grad, TOL, "resnet18 at 224")
    theirs = captum_attr.LayerGradCam(net, net.layer4).attribute(torch.tensor(x), target=target, relu_attributions=True)
    mine = mc.grad_cam(model, x, target, layer="layer4")
    assert mine.shape == (1, 7, 7)
    DIFFS.check("Grad-CAM (ReLU) vs LayerGradCam", mine, theirs[:, 0], TOL, "resnet18 at 224: layer4")
    # and on the GAP head, Grad-CAM before its ReLU is CAM / (h w) (Selvaraju et al. Sec. 3.1)
    signed = mc.grad_cam(model, x, target, layer="layer4", relu=False)
    np.testing.assert_allclose(signed, mc.cam(model, x, target, layer="layer4") / 49, rtol=1e-10, atol=1e-14)
