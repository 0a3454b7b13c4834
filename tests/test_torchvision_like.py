"""tests/torchvision_like.py against facts known without it.

The torch-only AlexNet/VGG/ResNet definitions stand in for torchvision, which
cannot be imported here. They are checked against what torchvision publishes
(parameter counts, minimum input sizes), against state-dict keys and shapes
that follow from torchvision's module layout, against the torch.fx graph
(which ReLU module runs how often, where the stride sits) and, where
torchvision can be imported, against torchvision itself.

Full-size networks are built on the ``meta`` device: no memory, no
initialisation, and a forward computes shapes only. Real forwards use tiny
instances (``width=1/16``) and small inputs; the one full-size forward is
ResNet-18 at 224x224.
"""

from collections import Counter

import pytest

from parity_support import require

torch = require("torch", "the torchvision-like definitions' tests")  # skips without torch, fails when CI is set
fx = require("torch.fx", "the torchvision-like definitions' tests")
F = torch.nn.functional

import torchvision_like as tl  # noqa: E402  (needs torch)
from torchvision_facts import PUBLISHED_MIN_SIZE, PUBLISHED_NUM_PARAMS  # noqa: E402

try:
    import torchvision
except Exception:  # ImportError, or a CUDA wheel that fails on import
    torchvision = None

NAMES = list(tl.BUILDERS)
TINY = 1 / 16

# Per model: keys that must be there (with their shape, or None), keys that must
# not, and the number of state-dict entries. Counts: conv/linear = 2 entries
# (weight, bias; ResNet convs have no bias = 1), BatchNorm = 5 (weight, bias,
# running_mean, running_var, num_batches_tracked).
KEYS = {
    "alexnet": (
        {"features.0.weight": (64, 3, 11, 11), "features.3.weight": (192, 64, 5, 5), "features.10.bias": (256,),
         "classifier.1.weight": (4096, 256 * 6 * 6), "classifier.4.weight": (4096, 4096),
         "classifier.6.bias": (1000,)},
        ["features.1.weight", "classifier.0.weight", "classifier.7.weight"],
        8 * 2,
    ),
    "vgg11": (
        {"features.0.weight": (64, 3, 3, 3), "features.18.weight": (512, 512, 3, 3),
         "classifier.0.weight": (4096, 512 * 7 * 7), "classifier.3.weight": (4096, 4096),
         "classifier.6.bias": (1000,)},
        ["features.1.weight", "features.2.weight"],
        11 * 2,
    ),
    "vgg11_bn": (
        {"features.1.running_mean": (64,), "features.25.weight": (512, 512, 3, 3),
         "features.26.num_batches_tracked": (), "classifier.6.weight": (1000, 4096)},
        ["features.2.weight", "features.3.weight"],
        8 * (2 + 5) + 3 * 2,
    ),
    "vgg16": (
        {"features.28.weight": (512, 512, 3, 3), "classifier.0.bias": (4096,)},
        ["features.30.weight", "features.29.weight"],
        16 * 2,
    ),
    "vgg16_bn": (
        {"features.40.weight": (512, 512, 3, 3), "features.41.running_var": (512,),
         "classifier.0.weight": (4096, 512 * 7 * 7)},
        ["features.40.running_var", "features.43.weight"],  # 40 is the last conv, 41 its BatchNorm
        13 * (2 + 5) + 3 * 2,
    ),
    "resnet18": (
        {"conv1.weight": (64, 3, 7, 7), "bn1.running_mean": (64,), "layer1.0.conv1.weight": (64, 64, 3, 3),
         "layer2.0.downsample.0.weight": (128, 64, 1, 1), "layer2.0.downsample.1.num_batches_tracked": (),
         "layer4.1.bn2.running_var": (512,), "fc.weight": (1000, 512)},
        ["conv1.bias", "layer1.0.downsample.0.weight", "layer2.1.downsample.0.weight", "layer1.0.conv3.weight",
         "layer1.0.relu.weight"],
        1 + 5 + 8 * (2 + 2 * 5) + 3 * (1 + 5) + 2,
    ),
    "resnet34": (
        {"layer3.5.conv2.weight": (256, 256, 3, 3), "layer4.2.bn2.bias": (512,),
         "layer4.0.downsample.0.weight": (512, 256, 1, 1)},
        ["conv1.bias", "layer1.0.downsample.0.weight", "layer3.6.conv1.weight"],
        1 + 5 + 16 * (2 + 2 * 5) + 3 * (1 + 5) + 2,
    ),
    "resnet50": (
        {"layer1.0.conv1.weight": (64, 64, 1, 1), "layer1.0.downsample.0.weight": (256, 64, 1, 1),
         "layer2.0.conv2.weight": (128, 128, 3, 3), "layer2.0.downsample.1.num_batches_tracked": (),
         "layer4.2.conv3.weight": (2048, 512, 1, 1), "layer4.2.bn3.running_var": (2048,),
         "fc.weight": (1000, 2048)},
        ["conv1.bias", "layer1.1.downsample.0.weight", "layer4.3.conv1.weight"],
        1 + 5 + 16 * (3 + 3 * 5) + 4 * (1 + 5) + 2,
    ),
}


def meta(name, **kwargs):
    """The full-size (or ``width``) network on the meta device: shapes only."""
    with torch.device("meta"):
        return tl.BUILDERS[name](**kwargs)


def shapes(model):
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


@pytest.fixture
def seeded():
    """Seed torch's global generator for one test and leave it as it was."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        yield


def randomise_batchnorm(model):
    """Non-trivial running statistics and affine parameters, so eval-mode BatchNorm is not the identity."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model


def smoke_side(name):
    return max(PUBLISHED_MIN_SIZE[name], 32)  # AlexNet needs 63; 32 is enough for the rest


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_is_torchvisions(name):
    assert sum(p.numel() for p in meta(name).parameters()) == PUBLISHED_NUM_PARAMS[name]


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_keys_and_shapes(name):
    present, absent, count = KEYS[name]
    sd = meta(name).state_dict()
    for key, shape in present.items():
        assert key in sd, key
        assert tuple(sd[key].shape) == shape, key
    for key in absent:
        assert key not in sd, key
    assert len(sd) == count


@pytest.mark.parametrize("name", NAMES)
def test_output_shape_at_224(name):
    assert meta(name).eval()(torch.empty(1, 3, 224, 224, device="meta")).shape == (1, 1000)


@pytest.mark.parametrize("name", NAMES)
def test_published_minimum_input_size(name):
    side = PUBLISHED_MIN_SIZE[name]
    model = meta(name).eval()
    assert model(torch.empty(1, 3, side, side, device="meta")).shape == (1, 1000)
    if side > 1:
        with pytest.raises(RuntimeError, match="too small"):
            model(torch.empty(1, 3, side - 1, side - 1, device="meta"))


def test_builder_options():
    model = meta("alexnet", num_classes=10, dropout=0.25)
    assert model.classifier[6].out_features == 10
    assert [m.p for m in model.classifier if isinstance(m, torch.nn.Dropout)] == [0.25, 0.25]
    assert meta("vgg16_bn", num_classes=7, dropout=0.1).classifier[2].p == 0.1
    assert meta("resnet50", num_classes=3).fc.out_features == 3


def test_resnet50_is_v1_5():
    """The stride of a downsampling Bottleneck sits on the 3x3 conv2 (torchvision's "ResNet V1.5")."""
    model = meta("resnet50")
    for layer in (model.layer2, model.layer3, model.layer4):
        assert layer[0].conv1.stride == (1, 1)
        assert layer[0].conv2.stride == (2, 2)
        assert layer[0].downsample[0].stride == (2, 2)
    assert model.layer1[0].conv2.stride == (1, 1)  # layer1 only widens 64 -> 256
    assert model.layer1[0].downsample[0].stride == (1, 1)


@pytest.mark.parametrize("name, block_relu_calls", [("resnet18", 2), ("resnet50", 3)])
def test_one_relu_module_per_block_reused(name, block_relu_calls):
    calls = Counter(n.target for n in fx.symbolic_trace(meta(name)).graph.nodes if n.op == "call_module")
    relus = [key for key in calls if key.endswith("relu")]
    assert calls["relu"] == 1
    assert len(relus) == 1 + sum(len(getattr(meta(name), f"layer{i}")) for i in range(1, 5))
    assert all(calls[key] == block_relu_calls for key in relus if key != "relu")


def test_resnet18_forward_at_224(seeded):
    model = tl.resnet18().eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 224, 224))
    assert out.shape == (1, 1000)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_fx_trace_gives_the_same_output(name, seeded):
    model = randomise_batchnorm(tl.BUILDERS[name](width=TINY)).eval()
    traced = fx.symbolic_trace(model)
    side = smoke_side(name)
    x = torch.randn(2, 3, side, side)
    with torch.no_grad():
        assert torch.equal(traced(x), model(x))
    assert traced.code == fx.symbolic_trace(meta(name)).code  # the graph does not depend on the width


@pytest.mark.parametrize("name", NAMES)
def test_width_keeps_keys_and_scales_channels(name):
    full, tiny = shapes(meta(name)), shapes(meta(name, width=TINY))
    assert [k for k, _ in tiny] == [k for k, _ in full]
    for (key, big), (_, small) in zip(full, tiny):
        if len(big) == 4:  # conv: out and in channels scaled, 3 input channels kept, kernel kept
            assert small == (tl.scaled(big[0], TINY), 3 if big[1] == 3 else tl.scaled(big[1], TINY)) + big[2:], key


def test_width_rule():
    assert tl.scaled(64, 1.0) == 64 and tl.scaled(4096, TINY) == 256 and tl.scaled(192, TINY) == 12
    assert tl.scaled(64, 0.001) == 1  # never below one channel
    assert tl.scaled(5, 0.5) == 2 and tl.scaled(7, 0.5) == 4  # Python's round: ties go to even
    alex = meta("alexnet", width=TINY)
    assert alex.classifier[1].weight.shape == (256, 16 * 6 * 6)
    assert meta("vgg11", width=TINY).classifier[0].weight.shape == (256, 32 * 7 * 7)
    r50 = meta("resnet50", width=0.3)  # Bottleneck output is scaled(4 * planes), not 4 * scaled(planes)
    assert r50.layer1[0].conv1.weight.shape[0] == 19 and r50.layer1[0].conv3.weight.shape[0] == 77
    assert r50.fc.weight.shape == (1000, 614)


def test_blocks_forward_as_written_out(seeded):
    """BasicBlock and Bottleneck compute torchvision's forward, written out with torch.nn.functional."""
    model = randomise_batchnorm(tl.resnet50(width=TINY)).eval()
    basic = randomise_batchnorm(tl.resnet18(width=TINY)).eval().layer2[0]

    def bn(m, t):
        return F.batch_norm(t, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0, m.eps)

    def conv(m, t):
        return F.conv2d(t, m.weight, None, m.stride, m.padding)

    def downsample(block, x):
        return bn(block.downsample[1], conv(block.downsample[0], x))

    x = torch.randn(2, basic.conv1.in_channels, 8, 8)
    out = F.relu(bn(basic.bn1, conv(basic.conv1, x)))
    out = F.relu(bn(basic.bn2, conv(basic.conv2, out)) + downsample(basic, x))
    with torch.no_grad():
        torch.testing.assert_close(basic(x), out)

    neck = model.layer2[0]
    x = torch.randn(2, neck.conv1.in_channels, 8, 8)
    out = F.relu(bn(neck.bn1, conv(neck.conv1, x)))
    out = F.relu(bn(neck.bn2, conv(neck.conv2, out)))
    out = F.relu(bn(neck.bn3, conv(neck.conv3, out)) + downsample(neck, x))
    with torch.no_grad():
        torch.testing.assert_close(neck(x), out)


needs_torchvision = pytest.mark.skipif(
    torchvision is None,
    reason="torchvision not importable here (CUDA wheel); the torch-only definitions are checked "
    "against published parameter counts instead",
)


@needs_torchvision
@pytest.mark.parametrize("name", NAMES)
def test_same_state_dict_as_torchvision(name):
    with torch.device("meta"):
        theirs = getattr(torchvision.models, name)(weights=None)
    assert shapes(meta(name)) == shapes(theirs)


@needs_torchvision
@pytest.mark.parametrize("name", ["alexnet", "vgg11_bn", "resnet18", "resnet50"])
def test_same_output_as_torchvision(name, seeded):
    theirs = randomise_batchnorm(getattr(torchvision.models, name)(weights=None)).eval()
    ours = tl.BUILDERS[name]().eval()
    ours.load_state_dict(theirs.state_dict())
    side = smoke_side(name)
    x = torch.randn(1, 3, side, side)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)
